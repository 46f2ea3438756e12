"""The ML layers: data, models, training engine, oracles (torch lives here and below).

Nothing in the pure layers imports this package; the CLI imports it lazily.
"""
