"""The ML layers: data, models, training engine, oracles (torch lives here and below).

Nothing in the pure layers imports this package; the CLI imports it lazily.
"""

# The largest training seed: torch.manual_seed takes a signed 64-bit integer. Here, not in
# train.py, so the CLI and the eval config check seeds without importing torch.
MAX_SEED = 2**63 - 1

# The most training epochs a command accepts: far past any recipe (Adi et al. train 60),
# low enough that a typo such as 10**12 is refused at once instead of running for ever.
MAX_EPOCHS = 100_000
