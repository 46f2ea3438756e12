"""The evaluation harness (`claimkit eval CONFIG`): grids of schemes × attacks × seeds.

:mod:`.config` reads the TOML grid, :mod:`.harness` trains (with a cache) and evaluates
every cell resumably, :mod:`.report` writes the tables, CSV and figures.
"""

from .config import EvalConfig, load_config
from .harness import claim_evidence, run_grid
from .report import write_report

__all__ = ["EvalConfig", "load_config", "run_grid", "claim_evidence", "write_report"]
