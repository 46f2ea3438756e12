"""Registry and verifier benchmarks (issue: protocol core, performance targets).

    python -m bench registry            # 1,000,000-entry log (about 2-3 minutes on 2 cores)
    python -m bench registry --quick    # 100,000 entries

Each figure comes with a baseline measured in the same run:
* batch appends vs. raw SQLite inserts of the same bytes in the same database settings;
* one durable append at a time vs. one durable SQLite transaction inserting one row;
* proof generation from SQLite vs. the same code reading a Python dict of the nodes;
* `claimkit verify` cold start vs. `python -c pass`.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from claimkit.claim.bundle import ClaimBundle
from claimkit.claim.make import make_claim
from claimkit.claim.verify import verify_claim
from claimkit.identity import Identity
from claimkit.protocol.keys import MarkingKey
from claimkit.registry import merkle
from claimkit.registry.entries import Registration, sign_request
from claimkit.registry.log import Registry
from claimkit.wire import Digest

from .common import emit, per_call, wall_of_process

PASSPHRASE = "benchmark only"


def signed_requests(owner: Identity, start: int, n: int) -> list[tuple[Registration, bytes]]:
    out = []
    for i in range(start, start + n):
        request = Registration(owner.public, "trigger-set", Digest.of(i.to_bytes(8, "big")), 100)
        out.append((request, sign_request(request, owner)))
    return out


def bench_batch_appends(reg: Registry, owner: Identity, total: int, batch: int) -> dict:
    """Fill the log; time appends of already-checked entries, then signature-checked ones."""
    appended = 0
    seconds = 0.0
    while appended < total:
        n = min(batch, total - appended)
        requests = signed_requests(owner, reg.size, n)
        start = time.perf_counter()
        reg.append(requests, signatures_checked=True)
        seconds += time.perf_counter() - start
        appended += n
        print(f"\rappended {reg.size:,}", end="", file=sys.stderr)
    print(file=sys.stderr)
    checked = signed_requests(owner, reg.size, 20 * batch // 10)
    start = time.perf_counter()
    for i in range(0, len(checked), batch):
        reg.append(checked[i:i + batch])
    checked_rate = len(checked) / (time.perf_counter() - start)

    # Baseline: the same entry bytes inserted raw, same pragmas, same batch size.
    rows = [(i, reg.store.entry(i)) for i in range(min(reg.size, 50_000))]
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (idx INTEGER PRIMARY KEY, data BLOB)")
        start = time.perf_counter()
        for i in range(0, len(rows), batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO t VALUES (?, ?)", rows[i:i + batch])
            conn.execute("COMMIT")
        raw_rate = len(rows) / (time.perf_counter() - start)
        conn.close()
    rate = total / seconds
    return {"entries": total, "batch": batch,
            "entries_per_s": round(rate), "target_entries_per_s": 20_000,
            "signature_checked_entries_per_s": round(checked_rate),
            "baseline_raw_sqlite_rows_per_s": round(raw_rate),
            "ratio_to_raw_sqlite": round(rate / raw_rate, 3)}


def bench_durable_appends(directory: Path, owner: Identity, n: int) -> dict:
    reg = Registry.init(directory, origin="bench.example/durable", passphrase=PASSPHRASE,
                        key_strength="min")
    requests = signed_requests(owner, 0, n)
    start = time.perf_counter()
    for request, signature in requests:
        reg.register(request, signature)
    rate = n / (time.perf_counter() - start)
    conn = reg.store.conn
    conn.execute("CREATE TABLE floor (i INTEGER PRIMARY KEY, d BLOB)")
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO floor VALUES (?, ?)", (i, b"x" * 400))
        conn.execute("COMMIT")
    floor = n / (time.perf_counter() - start)
    reg.close()
    return {"appends": n, "appends_per_s": round(rate), "target_appends_per_s": 1_000,
            "baseline_durable_sqlite_tx_per_s": round(floor),
            "ratio_to_durable_tx": round(rate / floor, 3),
            "note": "each append: owner signature check, fsynced transaction, checkpoint "
                    "signed and time-cosigned, receipt with inclusion proof"}


def bench_proofs(reg: Registry) -> dict:
    n = reg.size
    rnd = random.Random(7)
    root = reg.root_at(n)
    indices = [rnd.randrange(n) for _ in range(200)]
    leaf_hashes = {i: merkle.leaf_hash(reg.store.entry(i)) for i in indices}
    pairs = [(rnd.randrange(1, n), n) for _ in range(200)]
    roots = {m: reg.root_at(m) for m, _ in pairs}
    it = iter(range(10**9))

    def incl() -> None:
        i = indices[next(it) % len(indices)]
        reg.inclusion_proof(i, n)

    def cons() -> None:
        m, _ = pairs[next(it) % len(pairs)]
        reg.consistency_proof(m, n)

    incl_proofs = {i: reg.inclusion_proof(i, n) for i in indices}
    cons_proofs = {m: reg.consistency_proof(m, n) for m, _ in pairs}

    def verify_incl() -> None:
        i = indices[next(it) % len(indices)]
        merkle.verify_inclusion(leaf_hashes[i], i, n, incl_proofs[i], root)

    def verify_cons() -> None:
        m, _ = pairs[next(it) % len(pairs)]
        merkle.verify_consistency(m, n, cons_proofs[m], roots[m], root)

    nodes = dict(reg.store.iter_nodes())

    def incl_dict() -> None:
        i = indices[next(it) % len(indices)]
        merkle.inclusion_proof(i, n, lambda ids: {k: nodes[k] for k in ids})

    results = {
        "log_size": n,
        "inclusion_proof_ms": per_call(incl, repeat=200),
        "consistency_proof_ms": per_call(cons, repeat=200),
        "verify_inclusion_ms": per_call(verify_incl, repeat=1000),
        "verify_consistency_ms": per_call(verify_cons, repeat=1000),
        "baseline_inclusion_proof_from_dict_ms": per_call(incl_dict, repeat=1000),
        "targets_ms": {"generate": 2.0, "verify": 0.5},
    }
    results["ratio_sqlite_to_dict"] = round(results["inclusion_proof_ms"]["median_ms"] /
                                            results["baseline_inclusion_proof_from_dict_ms"]["median_ms"], 2)
    nodes.clear()  # free the million-entry dict before the memory measurements
    memory = {}
    for size in sorted({min(n, s) for s in (10_000, 100_000, 1_000_000)}):
        tracemalloc.start()
        for j in range(300):
            reg.inclusion_proof(rnd.randrange(size), size)
            reg.consistency_proof(rnd.randrange(1, size), size)
        memory[str(size)] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    results["peak_bytes_allocated_generating_proofs_by_tree_size"] = memory
    return results


def bench_verify(directory: Path, owner: Identity) -> dict:
    rng = random.Random(3)
    values = [{"image": rng.randbytes(48).hex(), "label": rng.randrange(10)} for _ in range(100)]
    mk = MarkingKey.create("trigger-set", {"num_classes": 10, "alpha": 0.01}, values,
                           rng=lambda k: rng.randbytes(k))
    reg = Registry.init(directory / "reg", origin="bench.example/verify", passphrase=PASSPHRASE,
                        key_strength="min")
    vk = mk.verification_key
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
    receipt = reg.register(request, sign_request(request, owner))
    table = {v["image"]: v["label"] for v in values}
    bundle = make_claim(reg, mk, receipt, Digest.of(b"suspect"), identity=owner, k=100,
                        ask=lambda qs: [table[q] for q in qs])
    path = directory / "bundle.json"
    path.write_bytes(bundle.to_json())
    data = path.read_bytes()
    log_key = reg.log_key
    in_process = per_call(lambda: verify_claim(ClaimBundle.from_json(data), log_key=log_key),
                          repeat=20)
    claimkit = [sys.executable, "-m", "claimkit.cli", "verify", str(path),
                "--registry-key", str(directory / "reg" / "log.vkey")]
    cold = wall_of_process(claimkit)
    baseline = wall_of_process([sys.executable, "-c", "pass"])
    reg.close()
    return {"bundle_bytes": len(data), "opened_items": 100,
            "in_process_verify_ms": in_process, "target_in_process_ms": 10,
            "cold_start_verify_s": cold, "target_cold_start_s": 0.5,
            "baseline_python_startup_s": baseline,
            "ratio_to_python_startup": round(cold["median_s"] / baseline["median_s"], 2)}


def bench_audit(directory: Path, owner: Identity, n: int) -> dict:
    """`claimkit registry audit` on a log of n signed registrations, through the CLI."""
    import json
    import subprocess
    reg = Registry.init(directory, origin="bench.example/audit", passphrase=PASSPHRASE,
                        key_strength="min")
    for start in range(0, n, 10_000):
        reg.append(signed_requests(owner, start, min(10_000, n - start)))
    reg.close()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "claimkit.cli", "registry", "audit",
                           str(directory), "--json"], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    report = json.loads(done.stdout)
    # Floor: the Ed25519 checks alone that an audit must make, one per entry.
    sample = signed_requests(owner, 0, 2_000)
    t0 = time.perf_counter()
    for request, signature in sample:
        request.owner.verify(signature, b"claimkit/request/v1\n" + request.canonical)
    floor = (time.perf_counter() - t0) / len(sample) * n
    return {"entries": n, "exit_code": done.returncode, "ok": report["ok"],
            "audit_s": round(seconds, 2), "baseline_signature_checks_s": round(floor, 2),
            "ratio_to_signature_checks": round(seconds / floor, 2)}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m bench registry")
    p.add_argument("--quick", action="store_true", help="100,000 entries, not 1,000,000")
    p.add_argument("--size", type=int, default=None,
                   help="entries in the batch-append log (overrides --quick)")
    args = p.parse_args(argv)
    size = args.size if args.size is not None else 100_000 if args.quick else 1_000_000
    owner = Identity.generate("bench", seed=b"\x42" * 32)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        tmp_path = Path(tmp)
        results = {"verify": bench_verify(tmp_path, owner)}
        results["durable_appends"] = bench_durable_appends(tmp_path / "durable", owner, 2_000)
        results["audit"] = bench_audit(tmp_path / "audit", owner, 100_000)
        reg = Registry.init(tmp_path / "big", origin="bench.example/big", passphrase=PASSPHRASE,
                            key_strength="min")
        results["batch_appends"] = bench_batch_appends(reg, owner, size, 10_000)
        results["proofs"] = bench_proofs(reg)
        reg.close()
    emit("registry", results)
