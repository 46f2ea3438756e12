"""Crash safety and concurrency of the registry, with real processes."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from claimkit.registry import merkle
from claimkit.registry.log import Registry

from conftest import PASSPHRASE

WRITER = textwrap.dedent("""
    import sys
    from claimkit.identity import Identity
    from claimkit.registry.entries import Registration, sign_request
    from claimkit.registry.log import Registry
    from claimkit.wire import Digest
    directory, tag, batches, batch, log_path = sys.argv[1:6]
    owner = Identity.generate("w" + tag)
    reg = Registry.open(directory, passphrase=sys.argv[6])
    seen = open(log_path + ".cp", "a")
    with open(log_path, "a") as log:
        for b in range(int(batches)):
            pairs = []
            for i in range(int(batch)):
                r = Registration(owner.public, "test-lookup",
                                 Digest.of(f"{tag}-{b}-{i}".encode()), 8)
                pairs.append((r, sign_request(r, owner)))
            done = reg.append(pairs)
            # Written only after append returned: these entries must survive a crash.
            for i in range(done.count):
                log.write(f"{done.first_index + i} {reg.entry(done.first_index + i).digest.hex}\\n")
            log.flush()
            cp = done.checkpoint.checkpoint
            seen.write(f"{cp.size} {cp.root_hash.hex()}\\n")
            seen.flush()
""")


def start_writer(directory: Path, tag: str, batches: int, batch: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(directory), tag, str(batches),
                             str(batch), str(log), PASSPHRASE])


def returned_entries(log: Path) -> dict[int, str]:
    out = {}
    if log.exists():
        # Only whole lines: the writer's buffer can reach the file mid-line while it runs
        # (seen once in CI as a line without its digest), and a kill can cut the last one.
        for line in log.read_text().split("\n")[:-1]:
            index, digest = line.split()
            out[int(index)] = digest
    return out


def test_sigkill_mid_batch_loses_nothing_that_returned(registry, tmp_path):
    directory = registry.directory
    registry.close()
    log = tmp_path / "returned.txt"
    proc = start_writer(directory, "k", 10_000, 200, log)
    deadline = time.monotonic() + 60
    try:
        while len(returned_entries(log)) < 2_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.13)  # land somewhere inside a later batch
    finally:  # also when the polling fails: no writer left running behind the suite
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    returned = returned_entries(log)
    assert len(returned) >= 2_000
    with Registry.open(directory) as reg:
        report = reg.audit()
        assert report.ok, report.problems
        assert reg.size >= len(returned)
        for index, digest in returned.items():
            assert reg.entry(index).digest.hex == digest


def test_four_writers_make_one_linear_log(registry, tmp_path):
    directory = registry.directory
    registry.close()
    logs = [tmp_path / f"w{i}.txt" for i in range(4)]
    procs = [start_writer(directory, str(i), 15, 20, logs[i]) for i in range(4)]
    for p in procs:
        assert p.wait(timeout=300) == 0
    with Registry.open(directory) as reg:
        assert reg.size == 4 * 15 * 20
        report = reg.audit()
        assert report.ok, report.problems
        all_returned: dict[int, str] = {}
        for log in logs:
            entries = returned_entries(log)
            assert not set(entries) & set(all_returned), "two writers got the same index"
            all_returned.update(entries)
        assert sorted(all_returned) == list(range(reg.size))
        # Every checkpoint any writer observed is consistent with every later one.
        observed = set()
        for log in logs:
            for line in Path(str(log) + ".cp").read_text().splitlines():
                size, root = line.split()
                observed.add((int(size), bytes.fromhex(root)))
        observed.add((reg.size, reg.root_at(reg.size)))
        for (s1, r1), (s2, r2) in itertools.combinations(sorted(observed), 2):
            merkle.verify_consistency(s1, s2, reg.consistency_proof(s1, s2), r1, r2)


def test_no_partial_state_after_kill_during_init(tmp_path):
    """Killing a writer never leaves a database that fails to open."""
    reg = Registry.init(tmp_path / "r", origin="test.example/x", passphrase=PASSPHRASE,
                        key_strength="min")
    reg.close()
    assert os.stat(tmp_path / "r" / "log.key").st_mode & 0o777 == 0o600
    with Registry.open(tmp_path / "r") as again:
        assert again.size == 0 and again.audit().ok


CRASHING_INIT = textwrap.dedent("""
    import os, sys
    from claimkit.registry import store
    from claimkit.registry.log import Registry
    store.Store.__init__ = lambda *a, **k: os._exit(9)  # killed once the key files exist
    Registry.init(sys.argv[1], origin="test.example/x", passphrase=sys.argv[2],
                  key_strength="min")
""")


def test_crash_during_init_leaves_nothing_that_blocks_a_new_init(tmp_path):
    """Before, log.key without registry.db: init said "already holds a registry", every
    other command "no registry here". Now the directory appears whole or not at all."""
    target = tmp_path / "r"
    crashed = subprocess.run([sys.executable, "-c", CRASHING_INIT, str(target), PASSPHRASE])
    assert crashed.returncode == 9 and not target.exists()
    with Registry.init(target, origin="test.example/x", passphrase=PASSPHRASE,
                       key_strength="min") as reg:
        assert reg.audit().ok
    assert sorted(p.name for p in target.iterdir()) == [
        "log.key", "log.vkey", "registry.db", "time.vkey"]


def test_init_takes_an_empty_directory_and_refuses_a_full_one(tmp_path):
    """A full directory is bad input (exit 2), not a refused entry (exit 1)."""
    from claimkit.errors import EXIT_MALFORMED, MalformedInputError
    (tmp_path / "empty").mkdir()
    Registry.init(tmp_path / "empty", origin="test.example/x", passphrase=PASSPHRASE,
                  key_strength="min").close()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(MalformedInputError, match="not an empty directory") as refused:
        Registry.init(tmp_path / "full", origin="test.example/x", passphrase=PASSPHRASE,
                      key_strength="min")
    assert refused.value.exit_code == EXIT_MALFORMED
    with pytest.raises(MalformedInputError, match="already holds a registry"):
        Registry.init(tmp_path / "empty", origin="test.example/x", passphrase=PASSPHRASE,
                      key_strength="min")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "full"]  # no staging left
