"""In-process and cold-start `claimkit verify` of one source tree (bench/registry.py's
bench_verify), for an A/B as docs/benchmarks/registry-ab.py describes."""
import json, tempfile
from pathlib import Path
import claimkit
from bench.registry import bench_verify
from claimkit.identity import Identity
owner = Identity.generate("owner", seed=b"\x11" * 32)
with tempfile.TemporaryDirectory() as tmp:
    r = bench_verify(Path(tmp), owner)
print(json.dumps({"tree": claimkit.__file__, "in_process_ms": r["in_process_verify_ms"], "cold_s": r["cold_start_verify_s"], "python_s": r["baseline_python_startup_s"]}))
