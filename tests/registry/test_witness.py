"""Forks and rollbacks are caught; honest growth is witnessed."""

from __future__ import annotations

import pytest

from claimkit.errors import InconsistentLogError, MalformedInputError, VerificationError
from claimkit.identity import Identity
from claimkit.registry.checkpoint import verify_cosignature
from claimkit.registry.log import Registry
from claimkit.registry.witness import CheckpointTracker, Witness

from conftest import PASSPHRASE, FakeClock, register_many


@pytest.fixture
def witness(tmp_path):
    return Witness(Identity.generate("witness", seed=b"\x44" * 32), tmp_path / "seen.json")


def test_honest_growth_is_cosigned(registry, owner, witness):
    register_many(registry, owner, 3)
    first = witness.cosign(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    assert verify_cosignature(first, witness.verifier_key) > 0
    register_many(registry, owner, 5)
    second = witness.cosign(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    assert second.checkpoint.size == 8
    registry.add_cosignature(second, witness.verifier_key)
    assert verify_cosignature(registry.latest_checkpoint(), witness.verifier_key) > 0
    assert registry.audit().ok


def test_rollback_is_refused(registry, owner, witness):
    register_many(registry, owner, 3)
    old = registry.latest_checkpoint()
    register_many(registry, owner, 3)
    witness.cosign(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    with pytest.raises(InconsistentLogError, match="rollback") as info:
        witness.cosign(old, registry.log_key, registry.consistency_proof)
    assert info.value.seen and info.value.presented


def test_fork_is_refused(tmp_path, owner, witness):
    """Two copies of one log (same key) that diverge: the second history is a fork."""
    reg = Registry.init(tmp_path / "a", origin="test.example/fork", passphrase=PASSPHRASE,
                        key_strength="min", clock=FakeClock())
    register_many(reg, owner, 4)
    reg.close()
    import shutil
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    a = Registry.open(tmp_path / "a", passphrase=PASSPHRASE, clock=FakeClock(1))
    b = Registry.open(tmp_path / "b", passphrase=PASSPHRASE, clock=FakeClock(2))
    register_many(a, owner, 2)
    register_many(b, Identity.generate("bob", seed=b"\x55" * 32), 2)
    witness.cosign(a.latest_checkpoint(), a.log_key, a.consistency_proof)
    with pytest.raises(InconsistentLogError, match="fork"):
        witness.cosign(b.latest_checkpoint(), b.log_key, b.consistency_proof)
    register_many(b, owner, 3)  # larger, but still not an extension of what was seen
    with pytest.raises(InconsistentLogError, match="fork"):
        witness.cosign(b.latest_checkpoint(), b.log_key, b.consistency_proof)
    a.close()
    b.close()


def test_tracker_survives_restart_and_rejects_wrong_key(registry, owner, tmp_path):
    register_many(registry, owner, 2)
    tracker = CheckpointTracker(tmp_path / "t.json")
    tracker.observe(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    again = CheckpointTracker(tmp_path / "t.json")
    assert again.seen(registry.origin).checkpoint.size == 2
    other = Registry.init(tmp_path / "o", origin=registry.origin, passphrase=PASSPHRASE,
                          key_strength="min")
    with pytest.raises(VerificationError):
        again.observe(registry.latest_checkpoint(), other.log_key, registry.consistency_proof)
    other.close()


def test_corrupt_state_file_is_one_error(tmp_path):
    (tmp_path / "t.json").write_text('{"type": "nope"}')
    with pytest.raises(MalformedInputError):
        CheckpointTracker(tmp_path / "t.json")


def test_empty_tree_root_is_compared_in_constant_time(registry, owner, witness, monkeypatch):
    import hmac
    import types
    import claimkit.registry.witness as witness_module
    from claimkit.registry import merkle
    compared = []

    def compare_digest(a, b):
        compared.append((bytes(a), bytes(b)))
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(witness_module, "hmac", types.SimpleNamespace(compare_digest=compare_digest))
    assert registry.latest_checkpoint().checkpoint.size == 0
    witness.cosign(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    register_many(registry, owner, 2)
    witness.cosign(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    assert (merkle.EMPTY_ROOT, merkle.EMPTY_ROOT) in compared


def test_add_cosignature_refuses_lines_by_the_registrys_own_keys(registry, owner):
    """A zeroed line under the log key's name and ID would replace its valid signature
    and break every later receipt; the time key's line likewise."""
    from claimkit.errors import RegistryError
    from claimkit.registry.note import NoteSignature
    register_many(registry, owner, 3)
    for key in (registry.log_key, registry.time_key):
        forged = registry.latest_checkpoint().with_signature(
            NoteSignature(key.name, key.key_hash, b"\0" * 72))
        with pytest.raises(RegistryError, match="only the registry signs"):
            registry.add_cosignature(forged, key)
    registry.receipt(2).verify(registry.log_key)
    assert registry.audit().ok


def test_add_cosignature_verifies_the_witness_line_against_its_key(registry, owner, witness):
    from claimkit.errors import RegistryError
    from claimkit.registry.note import NoteSignature
    register_many(registry, owner, 3)
    cosigned = witness.cosign(registry.latest_checkpoint(), registry.log_key,
                              registry.consistency_proof)
    key = witness.verifier_key
    bad = cosigned.with_signature(NoteSignature(key.name, key.key_hash, b"\0" * 72))
    with pytest.raises(VerificationError):
        registry.add_cosignature(bad, key)
    other = Witness(Identity.generate("other", seed=b"\x45" * 32), witness.tracker.path)
    with pytest.raises(RegistryError, match="not by the witness key"):
        registry.add_cosignature(cosigned, other.verifier_key)
    with pytest.raises(RegistryError, match="own key"):
        registry.add_cosignature(cosigned, registry.time_key)
    assert registry.latest_checkpoint().note.signatures_by(key) == ()
    registry.add_cosignature(cosigned, key)
    assert verify_cosignature(registry.latest_checkpoint(), key) > 0


def test_two_trackers_sharing_a_state_file_lose_no_log(registry, owner, tmp_path):
    """Two `registry cosign` runs on one --state: each read the whole file when it
    opened and wrote back what it read, so the second dropped the first's log (and the
    witness later took a fork of it on first use). The state is now re-read under a lock."""
    other = Registry.init(tmp_path / "other", origin="test.example/other",
                          passphrase=PASSPHRASE, key_strength="min", clock=FakeClock())
    register_many(registry, owner, 2)
    register_many(other, owner, 3)
    first = CheckpointTracker(tmp_path / "t.json")
    second = CheckpointTracker(tmp_path / "t.json")    # opened before the first saves
    first.observe(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    second.observe(other.latest_checkpoint(), other.log_key, other.consistency_proof)
    again = CheckpointTracker(tmp_path / "t.json")
    assert again.seen(registry.origin).checkpoint.size == 2
    assert again.seen(other.origin).checkpoint.size == 3
    # And the second tracker checks against what the first saw, not its stale view.
    old = registry.latest_checkpoint()
    register_many(registry, owner, 2)
    first.observe(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    with pytest.raises(InconsistentLogError, match="rollback"):
        second.observe(old, registry.log_key, registry.consistency_proof)
    other.close()


def test_the_state_lock_is_held_from_reading_to_writing(registry, owner, tmp_path):
    """While one tracker checks (here: while the log proves), another cannot take the
    lock on STATE.lock: a non-blocking attempt is refused, so nothing times a wait."""
    import fcntl
    import os
    import stat
    tracker = CheckpointTracker(tmp_path / "t.json")
    register_many(registry, owner, 2)
    tracker.observe(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    register_many(registry, owner, 2)
    lock = tmp_path / "t.json.lock"
    refused = []

    def prove(size1, size2):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            refused.append(True)
        finally:
            os.close(fd)
        return registry.consistency_proof(size1, size2)

    tracker.observe(registry.latest_checkpoint(), registry.log_key, prove)
    assert refused == [True]
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    fd = os.open(lock, os.O_RDWR)          # released once observe returned
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def _damage(registry, sql, *params):
    registry.store.conn.execute(sql, params)


@pytest.mark.parametrize("damage", ["node", "last entry", "latest checkpoint"])
def test_damaged_storage_is_no_fork_nor_rollback(registry, owner, witness, damage):
    """The witness saw size 5, the log grew to 8, then its database was damaged: a node
    the proof 5 -> 8 uses edited, the last entry row deleted (the head then claimed
    more than the log), or the latest checkpoint row deleted (a stale head). Each was
    reported as a fork or rollback with evidence, accusing an honest operator; the
    registry now checks what it hands out and says its storage is damaged."""
    from claimkit.errors import RegistryError
    register_many(registry, owner, 5)
    witness.cosign(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    for _ in range(3):
        register_many(registry, owner, 1)
    if damage == "latest checkpoint":      # the witness has seen 8 as well
        witness.cosign(registry.latest_checkpoint(), registry.log_key,
                       registry.consistency_proof)
        _damage(registry, "DELETE FROM checkpoints WHERE size = 8")
    elif damage == "last entry":
        _damage(registry, "DELETE FROM entries WHERE idx = 7")
    else:                                  # node (1, 3) = MTH(D[6:8]), in PROOF(5, D[8])
        _damage(registry, "UPDATE nodes SET hash = zeroblob(32) WHERE id = ?", (1 << 56) | 3)
    state = witness.tracker.path.read_bytes()
    with pytest.raises(RegistryError, match="damaged storage.*registry audit"):
        witness.cosign(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    assert witness.tracker.path.read_bytes() == state


def test_a_failing_prover_is_no_evidence_of_a_fork(registry, owner, witness):
    """Only a proof that fails between two validly signed checkpoints is a fork; a
    prover that cannot give one raises its own error and nothing is cosigned."""
    register_many(registry, owner, 2)
    witness.cosign(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    register_many(registry, owner, 2)

    def prove(size1, size2):     # what a log missing its last entry row said
        raise MalformedInputError(f"tree size {size2} is beyond the log ({size2 - 1})")

    with pytest.raises(MalformedInputError, match="beyond the log"):
        witness.cosign(registry.latest_checkpoint(), registry.log_key, prove)
    assert witness.tracker.seen(registry.origin).checkpoint.size == 2


@pytest.mark.parametrize("target", ["nowhere", "real.json"])
def test_a_symlinked_state_file_is_refused(registry, owner, tmp_path, target):
    """A dangling link as the state read as "nothing seen" (path.exists() is False for
    it), so the witness trusted the log on first use again, and the save replaced the
    link with a regular file. Links are refused, dangling or not."""
    register_many(registry, owner, 2)
    CheckpointTracker(tmp_path / "real.json").observe(
        registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    (tmp_path / "link.json").symlink_to(target)
    with pytest.raises(MalformedInputError, match="link.json: the witness state is a symbolic link"):
        CheckpointTracker(tmp_path / "link.json")
    assert (tmp_path / "link.json").is_symlink()
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(MalformedInputError, match="not a regular file"):
        CheckpointTracker(tmp_path / "dir.json")


@pytest.mark.parametrize("how", ["edited", "foreign"])
def test_a_bad_remembered_note_is_blamed_on_the_state_file(registry, owner, tmp_path, how):
    """A remembered note that does not verify under the log's key (edited in the state,
    or signed by another log of the same origin) was reported as "bad signature by note
    key …", blaming the log; it is now malformed input naming the state file."""
    import base64
    import json
    register_many(registry, owner, 2)
    path = tmp_path / "t.json"
    if how == "edited":
        CheckpointTracker(path).observe(registry.latest_checkpoint(), registry.log_key,
                                        registry.consistency_proof)
        state = json.loads(path.read_text())
        lines = state["logs"][registry.origin].split("\n")
        lines[2] = base64.b64encode(b"\0" * 32).decode()        # the root hash line
        state["logs"][registry.origin] = "\n".join(lines)
        path.write_text(json.dumps(state))
    else:
        other = Registry.init(tmp_path / "o", origin=registry.origin, passphrase=PASSPHRASE,
                              key_strength="min")
        register_many(other, owner, 1)
        CheckpointTracker(path).observe(other.latest_checkpoint(), other.log_key,
                                        other.consistency_proof)
        other.close()
    before = path.read_bytes()
    with pytest.raises(MalformedInputError, match=f"{path}: the checkpoint remembered"):
        CheckpointTracker(path).observe(registry.latest_checkpoint(), registry.log_key,
                                        registry.consistency_proof)
    assert path.read_bytes() == before


def test_every_remembered_note_is_parsed_and_filed_under_its_origin(registry, owner, tmp_path):
    """Only the note of the log being cosigned was ever parsed: garbage, or a note
    filed under another origin, sat in the state unnoticed."""
    import json
    register_many(registry, owner, 2)
    path = tmp_path / "t.json"
    CheckpointTracker(path).observe(registry.latest_checkpoint(), registry.log_key,
                                    registry.consistency_proof)
    note = json.loads(path.read_text())["logs"][registry.origin]
    for logs, message in (({"other.example/log": "xx"}, "other.example/log.*note"),
                          ({"other.example/log": note}, "holds a checkpoint of 'test.example")):
        path.write_text(json.dumps({"type": "claimkit/witness-state/v1",
                                    "logs": {registry.origin: note, **logs}}))
        with pytest.raises(MalformedInputError, match=f"{path}: logs\\[.*{message}"):
            CheckpointTracker(path)


def test_a_head_read_before_another_run_cosigned_a_newer_one_is_no_rollback(registry, owner,
                                                                             tmp_path):
    """A review: one `registry cosign` run read the log's head (size 3), waited on the
    state's lock while another run cosigned size 4, then reported 'rollback' with
    evidence against an honest log. The head is now read under the lock."""
    identity = Identity.generate("witness", seed=b"\x33" * 32)
    first, second = Witness(identity, tmp_path / "w.json"), Witness(identity, tmp_path / "w.json")
    register_many(registry, owner, 3)
    first.cosign(registry.latest_checkpoint, registry.log_key, registry.consistency_proof)
    stale = registry.latest_checkpoint()                  # what a slow run read early
    register_many(registry, owner, 1)
    first.cosign(registry.latest_checkpoint, registry.log_key, registry.consistency_proof)
    with pytest.raises(InconsistentLogError, match="rollback"):   # given the stale head
        second.cosign(stale, registry.log_key, registry.consistency_proof)
    cosigned = second.cosign(registry.latest_checkpoint, registry.log_key,
                             registry.consistency_proof)           # reading it itself
    assert cosigned.checkpoint.size == registry.size


def test_add_cosignature_refuses_a_cosigned_fork_of_the_stored_checkpoint(registry, owner,
                                                                         tmp_path, clock):
    """A witness's valid cosignature on another tree of the same size (the log key signed
    a fork) is not merged into this log's checkpoint of that size."""
    from claimkit.errors import RegistryError
    from conftest import LOG_SEED
    register_many(registry, owner, 3)
    fork = Registry.init(tmp_path / "fork", origin=registry.origin, passphrase=PASSPHRASE,
                         clock=clock, key_strength="min", log_seed=LOG_SEED)
    register_many(fork, Identity.generate("bob", seed=b"\x12" * 32), 3)
    witness = Witness(Identity.generate("witness", seed=b"\x44" * 32), tmp_path / "fork.json")
    cosigned = witness.cosign(fork.latest_checkpoint(), fork.log_key, fork.consistency_proof)
    fork.close()
    assert cosigned.checkpoint.size == 3
    assert cosigned.checkpoint != registry.latest_checkpoint().checkpoint
    before = registry.store.checkpoint(3)
    with pytest.raises(RegistryError, match="differs from the stored one"):
        registry.add_cosignature(cosigned, witness.verifier_key)
    assert registry.store.checkpoint(3) == before


def test_growth_from_a_one_entry_tree_is_proved_not_taken_for_empty(registry, owner, witness):
    """Only the empty tree is a prefix of every tree; a tree of one entry is checked (and
    consistent with its own growth)."""
    register_many(registry, owner, 1)
    witness.cosign(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    witness.cosign(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    register_many(registry, owner, 2)
    grown = witness.cosign(registry.latest_checkpoint(), registry.log_key,
                           registry.consistency_proof)
    assert grown.checkpoint.size == 3


@pytest.mark.parametrize("state, message", [
    ({"type": "claimkit/witness-state/v2", "logs": {}}, "type"),
    ({"type": "claimkit/witness-state/v1", "logs": {"test.example/claimkit": 5}},
     "expected a note"),
    ({"type": "claimkit/witness-state/v1", "logs": {"test.example/claimkit": None}},
     "expected a note"),
])
def test_a_state_file_of_another_type_or_holding_no_note_is_refused(tmp_path, state, message):
    import json
    path = tmp_path / "seen.json"
    path.write_text(json.dumps(state))
    with pytest.raises(MalformedInputError, match=message):
        CheckpointTracker(path)


def test_a_symlinked_lock_file_is_not_followed(registry, owner, tmp_path):
    """The lock is opened with O_NOFOLLOW: a link planted at STATE.lock creates nothing
    where it points."""
    import os
    state = tmp_path / "state" / "seen.json"
    state.parent.mkdir()
    target = tmp_path / "elsewhere"
    os.symlink(target, f"{state}.lock")
    tracker = CheckpointTracker(state)
    register_many(registry, owner, 1)
    with pytest.raises(OSError):
        tracker.observe(registry.latest_checkpoint(), registry.log_key, registry.consistency_proof)
    assert not target.exists() and not state.exists()
