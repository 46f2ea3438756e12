"""Lets ML tests import helpers from each other (e.g. test_data.make_idx_set)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
