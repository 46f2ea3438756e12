"""Run a benchmark by name: python -m bench registry [--size N] [--quick]."""

from __future__ import annotations

import sys

BENCHES = {"registry": "bench.registry", "train": "bench.train", "claim": "bench.claim",
           "ubw": "bench.ubw", "ubw-control": "bench.ubw_control",
           "ubw-c-profile": "bench.ubw_c_profile", "move": "bench.move"}


def main() -> None:
    usage = f"usage: python -m bench {{{','.join(BENCHES)}}} [options]; NAME --help for each"
    if sys.argv[1:2] in (["-h"], ["--help"]):
        print(usage)
        sys.exit(0)
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHES:
        print(usage, file=sys.stderr)
        sys.exit(2)
    import importlib
    module = importlib.import_module(BENCHES[sys.argv[1]])
    module.main(sys.argv[2:])


if __name__ == "__main__":
    main()
