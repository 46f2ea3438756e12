"""Watermarking backends (torch): one module per family, each citing its paper."""
