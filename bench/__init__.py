"""claimkit benchmarks: `python -m bench NAME [options]`, JSON on stdout.

Benchmarks are not tests: they measure, print JSON with the device and a baseline
measured in the same run, and never assert a time. Figures go to docs/benchmarks.md.
"""
