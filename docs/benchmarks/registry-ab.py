"""Batch and durable appends of the registry of one source tree, for an A/B against another
in the same session (bench/registry.py's own parts at a smaller size: 30,000 batch appends
of 10,000, 1,000 durable appends, each with its same-run SQLite baseline):

    for t in OLD_TREE NEW_TREE; do (cd $t && PYTHONPATH=$t python docs/benchmarks/registry-ab.py); done

OLD_TREE e.g. from `git worktree add /tmp/base <commit>` (the script itself need not be in it).
"""
import json, tempfile
from pathlib import Path
import claimkit
from bench.registry import bench_batch_appends, bench_durable_appends, PASSPHRASE
from claimkit.identity import Identity
from claimkit.registry.log import Registry
owner = Identity.generate("owner", seed=b"\x11" * 32)
out = {"tree": claimkit.__file__}
with tempfile.TemporaryDirectory() as tmp:
    reg = Registry.init(Path(tmp) / "r", origin="bench.example/ab", passphrase=PASSPHRASE, key_strength="min")
    out["batch"] = bench_batch_appends(reg, owner, 30_000, 10_000)
    reg.close()
    out["durable"] = bench_durable_appends(Path(tmp) / "d", owner, 1000)
print(json.dumps(out))
