"""The ML layers: data, models, training engine, oracles (torch lives here and below).

Nothing in the pure layers imports this package; the CLI imports it lazily.
"""

# The largest training seed: torch.manual_seed takes a signed 64-bit integer. Here, not in
# train.py, so the CLI and the eval config check seeds without importing torch.
MAX_SEED = 2**63 - 1
