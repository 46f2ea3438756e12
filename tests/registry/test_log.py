"""The registry log: receipts, proofs, timestamps, audits and the keys of a registry."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimkit.errors import KeyFileError, MalformedInputError, RegistryError, VerificationError
from claimkit.identity import Identity
from claimkit.registry import merkle
from claimkit.registry.entries import ClaimIntent, LogEntry, Registration, sign_request
from claimkit.registry.log import Registry
from claimkit.registry.receipt import Receipt, load_vkey
from claimkit.wire import Digest, canonical_json

from conftest import PASSPHRASE, register_many


def test_receipt_round_trip_and_offline_verification(registry, registration):
    receipt = Receipt.from_json(registration.to_json())
    assert receipt == registration
    vkey = load_vkey(registry.directory / "log.vkey")
    checkpoint = receipt.verify(vkey)
    assert checkpoint.size == 1 and checkpoint.origin == "test.example/claimkit"


def test_receipt_from_another_log_is_rejected(registry, registration, tmp_path):
    other = Registry.init(tmp_path / "other", origin="test.example/claimkit",
                          passphrase=PASSPHRASE, key_strength="min")
    with pytest.raises(VerificationError):
        registration.verify(other.log_key)
    other.close()


def test_proofs_match_an_in_memory_tree(registry, owner):
    register_many(registry, owner, 137)
    tree = merkle.MemoryTree()
    for i in range(registry.size):
        tree.append(registry.store.entry(i))
    assert registry.root_at(137) == tree.root()
    for size in (1, 2, 5, 64, 100, 137):
        assert registry.root_at(size) == tree.root(size)
        for index in (0, size // 2, size - 1):
            assert registry.inclusion_proof(index, size) == tree.inclusion_proof(index, size)
    for a, b in [(1, 137), (5, 64), (64, 100), (100, 137), (137, 137)]:
        assert registry.consistency_proof(a, b) == tree.consistency_proof(a, b)


def test_time_is_assigned_by_the_registry_and_never_decreases(registry, owner, clock):
    register_many(registry, owner, 3)
    clock.now -= 3600  # the wall clock jumps back an hour
    register_many(registry, owner, 3)
    times = [registry.entry(i).time_ms for i in range(registry.size)]
    assert times == sorted(times)


def test_bad_signature_is_refused(registry, owner):
    request = Registration(owner.public, "test-lookup", Digest.of(b"x"), 4)
    with pytest.raises(VerificationError):
        registry.register(request, bytes(64))
    assert registry.size == 0


def test_read_only_registry_cannot_append(registry, owner):
    with Registry.open(registry.directory) as ro:
        request = Registration(owner.public, "test-lookup", Digest.of(b"x"), 4)
        with pytest.raises(RegistryError, match="read-only"):
            ro.register(request, sign_request(request, owner))
        assert ro.size == 0


def test_wrong_passphrase(registry):
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        Registry.open(registry.directory, passphrase="nope")


def test_init_refuses_an_existing_registry(registry):
    with pytest.raises(MalformedInputError, match="already"):
        Registry.init(registry.directory, origin="x.example/y", passphrase=PASSPHRASE,
                      key_strength="min")


def test_audit_is_clean_then_catches_tampering(registry, owner):
    register_many(registry, owner, 50)
    assert registry.audit().ok
    db = sqlite3.connect(registry.directory / "registry.db")
    data = db.execute("SELECT data FROM entries WHERE idx = 7").fetchone()[0]
    db.execute("UPDATE entries SET data = ? WHERE idx = 7", (data.replace(b'"items":16', b'"items":17'),))
    db.commit()
    db.close()
    report = registry.audit()
    assert not report.ok
    assert any("entry 7" in p for p in report.problems)
    assert any("node" in p for p in report.problems)


def test_audit_catches_a_rewritten_checkpoint(registry, owner):
    register_many(registry, owner, 4)
    cp = registry.store.checkpoint()
    registry.store.conn.execute("UPDATE checkpoints SET note = ? WHERE size = 4",
                                (cp.replace(b"\n4\n", b"\n3\n"),))
    assert not registry.audit().ok


def test_entries_must_be_canonical(registration):
    data = registration.entry.to_bytes()
    assert LogEntry.from_bytes(data) == registration.entry
    with pytest.raises(MalformedInputError, match="canonical"):
        LogEntry.from_bytes(b"{ " + data[1:])


def test_request_signed_by_another_identity_is_refused(owner):
    mallory = Identity.generate("mallory", seed=b"\x66" * 32)
    request = Registration(owner.public, "test-lookup", Digest.of(b"x"), 4)
    with pytest.raises(MalformedInputError):
        sign_request(request, mallory)


@settings(max_examples=200, deadline=None)
@given(name=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
       items=st.integers(1, 1 << 20), time_ms=st.integers(0, (1 << 53) - 1),
       subject=st.none() | st.binary(min_size=32, max_size=32),
       spent=st.lists(st.integers(0, (1 << 20) - 1), unique=True, max_size=20),
       counter=st.integers(0, 1 << 32), intent=st.booleans())
def test_entry_bytes_are_exactly_rfc8785(name, items, time_ms, subject, spent, counter, intent):
    """LogEntry.to_bytes assembles JCS by hand for speed; it must equal rfc8785's output."""
    owner = Identity.generate(name, seed=b"\x07" * 32)
    if intent:
        request = ClaimIntent(owner.public, 3, Digest.of(b"r"), Digest.of(b"s"), counter, 5)
        entry = LogEntry(request, bytes(range(64)), time_ms, spent=tuple(sorted(spent)))
    else:
        request = Registration(owner.public, "trigger-set", Digest.of(b"vk"), items,
                               None if subject is None else Digest(subject))
        entry = LogEntry(request, bytes(range(64)), time_ms)
    assert entry.to_bytes() == canonical_json(entry.to_dict())
    assert LogEntry.from_bytes(entry.to_bytes()) == entry


def test_audit_compares_root_hashes_in_constant_time(registry, owner, monkeypatch):
    import hmac
    import types
    import claimkit.registry.log as log_module
    compared = []

    def compare_digest(a, b):
        compared.append((bytes(a), bytes(b)))
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(log_module, "hmac", types.SimpleNamespace(compare_digest=compare_digest))
    register_many(registry, owner, 3)
    assert registry.audit().ok
    root = registry.latest_checkpoint().checkpoint.root_hash
    assert (root, root) in compared


def _claimed(registry, owner, k=4):
    """Two registrations and one claim intent on the first (entry 2)."""
    register_many(registry, owner, 2)
    reg_bytes = registry.store.entry(0)
    intent = ClaimIntent(owner.public, 0, Digest.of(reg_bytes), Digest.of(b"suspect"), 0, k)
    registry.announce_claim(intent, sign_request(intent, owner))
    assert registry.audit().ok


def _add_entry_without_checkpoint(registry, owner):
    frontier = merkle.Frontier.load(registry.size, registry.store.read_nodes)
    request = Registration(owner.public, "test-lookup", Digest.of(b"injected"), 16)
    entry = LogEntry(request, sign_request(request, owner), registry.entry(2).time_ms)
    nodes = frontier.append(merkle.leaf_hash(entry.to_bytes()))
    registry.store.append([(3, entry.to_bytes(), "registration", None, entry.time_ms)], nodes)


@pytest.mark.parametrize("tamper, problem", [
    ("UPDATE entries SET kind = 'registration' WHERE idx = 2", "entry 2: its kind column"),
    ("UPDATE entries SET ref = 1 WHERE idx = 2", "entry 2: its ref column"),
    ("UPDATE entries SET ref = 0 WHERE idx = 1", "entry 1: its ref column"),
    ("UPDATE entries SET time_ms = 9007199254740991 WHERE idx = 1", "entry 1: its time_ms"),
    ("UPDATE spent SET registration = 1", "entry 2: spent rows differ"),
    ("DELETE FROM spent WHERE rowid IN (SELECT rowid FROM spent LIMIT 1)", "entry 2: spent rows"),
    ("INSERT INTO spent VALUES (1, 3, 1)", "spent table: rows name entry 1"),
    ("INSERT INTO entries SELECT -1, data, kind, ref, time_ms FROM entries WHERE idx = 0",
     "entry -1: negative index"),
    ("INSERT INTO nodes VALUES (3, zeroblob(32))", "1 nodes beyond the tree of size 3"),
    (_add_entry_without_checkpoint, "entries 3 to 3 are under no checkpoint"),
])
def test_audit_cross_checks_the_columns_the_rules_read(registry, owner, tamper, problem):
    """Counters, spent items and the next entry's time are read from these columns and
    tables, so a row edited there must fail audit, not pass with "ok"."""
    _claimed(registry, owner)
    with registry.store.transaction():
        if callable(tamper):
            tamper(registry, owner)
        else:
            registry.store.conn.execute(tamper)
    report = registry.audit()
    assert any(problem in p for p in report.problems), report.problems


@pytest.mark.parametrize("tamper, message", [
    ("DELETE FROM spent", "spent table differs"),                       # items opened again
    ("UPDATE spent SET item = 'x' WHERE rowid IN (SELECT rowid FROM spent LIMIT 1)",
     "no integer"),                                                    # was a TypeError
    ("UPDATE spent SET item = NULL WHERE rowid IN (SELECT rowid FROM spent LIMIT 1)",
     "no integer"),
    ("UPDATE entries SET kind = 'registration' WHERE idx = 2", "spent table differs"),
    ("UPDATE spent SET registration = 1", "spent table differs"),
])
def test_the_next_claim_is_refused_over_a_damaged_spent_table(registry, owner, tamper, message):
    """announce_claim signs the spent list into the next intent: it is checked against the
    log's last intent first (its own spent list and the items its challenge opened);
    before, only the audit noticed what had been signed."""
    _claimed(registry, owner)
    registry.store.conn.execute(tamper)
    size = registry.size
    intent = ClaimIntent(owner.public, 0, Digest.of(registry.store.entry(0)),
                         Digest.of(b"suspect"), registry.claims_made(0), 4)   # 0 with kind edited
    with pytest.raises(RegistryError, match=message):
        registry.announce_claim(intent, sign_request(intent, owner))
    assert registry.size == size


@pytest.mark.parametrize("make", [
    lambda o: Registration(o.public, "test-lookup", Digest.of(b"x"), 2.5),
    lambda o: Registration(o.public, "test-lookup", Digest.of(b"x"), True),
    lambda o: Registration(o.public, "test-lookup", b"\0" * 32, 4),
    lambda o: ClaimIntent(o.public, True, Digest.of(b"r"), Digest.of(b"s"), 0, 1),
    lambda o: ClaimIntent(o.public, 0, Digest.of(b"r"), Digest.of(b"s"), 0.0, 1),
    lambda o: ClaimIntent(o.public, 0, Digest.of(b"r"), Digest.of(b"s"), 0, 1.5),
    lambda o: ClaimIntent(o.public, 2**60, Digest.of(b"r"), Digest.of(b"s"), 0, 1),
])
def test_requests_of_the_wrong_type_are_refused(owner, make):
    with pytest.raises(MalformedInputError):
        make(owner)


def test_indices_beyond_sqlite_are_malformed_not_overflow(registry, owner):
    register_many(registry, owner, 2)
    for call in (lambda: registry.entry(2**64), lambda: registry.checkpoint_at(2**64),
                 lambda: registry.receipt(0, 2**64), lambda: registry.receipt(2**64),
                 lambda: registry.claims_made(2**64), lambda: registry.root_at("2")):
        with pytest.raises(MalformedInputError):
            call()
    with pytest.raises(MalformedInputError, match="2\\^63-1"):
        registry.store.checkpoint(2**64)


def test_damaged_database_gives_registry_errors(registry, owner):
    register_many(registry, owner, 3)
    registry.store.conn.execute("UPDATE entries SET data = CAST(data AS TEXT) WHERE idx = 1")
    report = registry.audit()  # TypeError in leaf_hash before
    assert any("entry 1 is stored as str" in p for p in report.problems)
    with pytest.raises(RegistryError, match="stored as str"):
        registry.entry(1)
    registry.store.conn.execute("DROP TABLE nodes")
    with pytest.raises(RegistryError, match="no such table: nodes"):
        registry.audit()
    with pytest.raises(RegistryError, match="no such table: nodes"):
        registry.register(*_signed_registration(owner))


def test_a_damaged_right_edge_is_never_signed_into_a_checkpoint(registry, owner, clock):
    """A damaged node on the tree's right edge, read by a new process: the next append
    signed a checkpoint that forked the log's own history (audit named the node, the
    append did not ask), and a receipt built over a damaged node was handed out."""
    register_many(registry, owner, 5)
    directory = registry.directory
    registry.close()
    db = sqlite3.connect(directory / "registry.db")
    db.execute("UPDATE nodes SET hash = zeroblob(32) WHERE id = ?", ((2 << 56) | 0,))
    db.commit()
    db.close()
    reopened = Registry.open(directory, passphrase=PASSPHRASE, clock=clock)
    try:
        with pytest.raises(RegistryError, match="does not give the root of its signed checkpoint"):
            reopened.register(*_signed_registration(owner))
        assert reopened.size == 5 and reopened.latest_checkpoint().checkpoint.size == 5
        with pytest.raises(RegistryError, match="does not prove entry 4 .* registry audit"):
            reopened.receipt(4)                       # its path is the damaged node (2, 0)
        assert reopened.receipt(0).verify(reopened.log_key).size == 5   # its path is not
    finally:
        reopened.close()


def _signed_registration(owner, tag=b"late"):
    request = Registration(owner.public, "test-lookup", Digest.of(tag), 16)
    return request, sign_request(request, owner)


def test_time_cosignatures_never_go_back_nor_precede_their_entries(registry, owner, clock):
    from claimkit.registry.checkpoint import verify_cosignature
    register_many(registry, owner, 2)
    clock.now -= 3600  # the wall clock jumps back an hour
    receipt = registry.register(*_signed_registration(owner))
    times = [verify_cosignature(registry.checkpoint_at(s), registry.time_key) for s in (0, 2, 3)]
    assert times == sorted(times)
    assert times[-1] >= receipt.entry.time_ms // 1000
    assert registry.audit().ok


def test_audit_catches_a_time_cosignature_that_goes_back(registry, owner):
    from claimkit.registry.checkpoint import SignedCheckpoint, cosign
    register_many(registry, owner, 2)
    signed = registry.latest_checkpoint()
    early = signed.with_signature(cosign(signed.checkpoint, registry._time_signer, 1))
    registry.store.put_checkpoint(2, early.to_bytes())
    assert SignedCheckpoint.from_bytes(registry.store.checkpoint(2)) == early
    problems = registry.audit().problems
    assert any("earlier than the previous checkpoint's" in p for p in problems), problems
    assert any("predates its entries" in p for p in problems), problems


def test_one_damaged_intent_checkpoint_is_one_audit_problem(registry, owner):
    """Without the checkpoint that ends with a claim intent its challenge (which needs the
    log's signature on that checkpoint) cannot be recomputed: audit says so once, and
    checks the next claim on the registration against the items recorded as spent."""
    _claimed(registry, owner)                                   # the first claim: entry 2
    intent = ClaimIntent(owner.public, 0, Digest.of(registry.store.entry(0)),
                         Digest.of(b"another suspect"), 1, 4)
    registry.announce_claim(intent, sign_request(intent, owner))
    assert registry.audit().ok
    registry.store.conn.execute("DELETE FROM checkpoints WHERE size = 3")
    assert registry.audit().problems == ("entry 2: no checkpoint ends with this claim intent",)


# --- mutation testing, round 2 ---------------------------------------------------------

def _intent(registry, who, **changes):
    fields = {"owner": who.public, "registration_index": 0,
              "registration_entry": Digest.of(registry.store.entry(0)),
              "suspect": Digest.of(b"suspect"), "counter": registry.claims_made(0), "open": 4}
    fields.update(changes)
    return ClaimIntent(**fields)


@pytest.mark.parametrize("change, error, message", [
    ("signature", VerificationError, "signature on the request is invalid"),
    ("entry", RegistryError, "registration entry digest does not match"),
    ("owner", RegistryError, "only the registered owner can claim"),
    ("counter_ahead", RegistryError, "counter must be 1 "),
    ("counter_behind", RegistryError, "counter must be 1 "),
    ("too_many", RegistryError, "only 12 of 16 items remain unopened"),
    ("no_entry", RegistryError, "the log has no entry 3$"),
])
def test_announce_claim_refuses_each_broken_rule(registry, owner, change, error, message):
    """One rule at a time, on a registration (16 items) with one claim (4 items) made:
    nothing is appended and no item is spent."""
    _claimed(registry, owner)
    mallory = Identity.generate("mallory", seed=b"\x66" * 32)
    signer = owner
    intent = {
        "signature": lambda: _intent(registry, owner),
        "entry": lambda: _intent(registry, owner, registration_entry=Digest.of(b"other")),
        "owner": lambda: _intent(registry, mallory),
        "counter_ahead": lambda: _intent(registry, owner, counter=2),
        "counter_behind": lambda: _intent(registry, owner, counter=0),
        "too_many": lambda: _intent(registry, owner, open=13),
        "no_entry": lambda: _intent(registry, owner, registration_index=3),
    }[change]()
    if change == "owner":
        signer = mallory
    signature = sign_request(intent, signer)
    if change == "signature":
        signature = sign_request(_intent(registry, owner, open=5), owner)
    size, spent = registry.size, registry.store.spent(0)
    with pytest.raises(error, match=message):
        registry.announce_claim(intent, signature)
    assert registry.size == size and registry.store.spent(0) == spent
    assert registry.audit().ok


def test_a_claim_may_open_exactly_the_items_that_remain(registry, owner):
    _claimed(registry, owner)
    receipt = registry.announce_claim(intent := _intent(registry, owner, open=12),
                                      sign_request(intent, owner))
    assert receipt.entry.spent is not None and len(receipt.entry.spent) == 4
    assert len(registry.store.spent(0)) == 16 and registry.audit().ok


def test_a_clock_set_back_before_the_first_entry_does_not_date_it_before_the_empty_tree(
        registry, owner, clock):
    """The floor is the previous checkpoint's time even when no entry came before."""
    from claimkit.registry.checkpoint import verify_cosignature
    clock.now -= 3600
    registry.register(*_signed_registration(owner))
    times = [verify_cosignature(registry.checkpoint_at(s), registry.time_key) for s in (0, 1)]
    assert times[1] >= times[0]
    assert registry.audit().ok


def test_receipts_and_proofs_stop_at_the_end_of_the_log(registry, owner):
    register_many(registry, owner, 3)
    with pytest.raises(MalformedInputError, match="entry 3 is not under the checkpoint of size 3"):
        registry.receipt(3, 3)
    with pytest.raises(MalformedInputError, match="tree size 4 is beyond the log"):
        registry.root_at(4)
    with pytest.raises(MalformedInputError, match="tree size 4 is beyond the log"):
        registry.inclusion_proof(0, 4)


@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_no_indices(registry, owner, value):
    register_many(registry, owner, 2)
    for call in (lambda: registry.entry(value), lambda: registry.checkpoint_at(value),
                 lambda: registry.claims_made(value), lambda: registry.root_at(value)):
        with pytest.raises(MalformedInputError, match="expected an integer"):
            call()


def test_latest_checkpoint_must_cover_every_stored_entry(registry, owner):
    _claimed(registry, owner)
    with registry.store.transaction():
        _add_entry_without_checkpoint(registry, owner)
    with pytest.raises(RegistryError, match="does not cover the 4 stored entries"):
        registry.latest_checkpoint()


def test_audit_reports_time_going_backwards(registry, owner):
    register_many(registry, owner, 2)
    entry = registry.entry(1)
    early = LogEntry(entry.request, entry.signature, 0)
    registry.store.conn.execute("UPDATE entries SET data = ?, time_ms = 0 WHERE idx = 1",
                                (early.to_bytes(),))
    problems = registry.audit().problems
    assert any("entry 1: time goes backwards" in p for p in problems), problems


def _insert_intent(registry, intent, signature, spent=()):
    """Append a claim intent behind announce_claim's rules, under a checkpoint ending with it."""
    with registry.store.transaction():
        size, last_time = registry.store.head()
        frontier = merkle.Frontier.load(size, registry.store.read_nodes)
        entry = LogEntry(intent, signature, last_time, spent=spent)
        nodes = frontier.append(merkle.leaf_hash(entry.to_bytes()))
        registry.store.append([(size, entry.to_bytes(), intent.kind, intent.registration_index,
                                last_time)], nodes)
        registry._sign_checkpoint(size + 1, frontier.root(), last_time)


@pytest.mark.parametrize("change, problem", [
    ("owner", "entry 3: claim by someone other than the owner"),
    ("counter", "entry 3: counter 5, expected 1"),
    ("spent", "entry 3: spent items differ from the earlier claims' openings"),
])
def test_audit_rechecks_the_rules_of_each_intent(registry, owner, change, problem):
    """What announce_claim refuses, a log that broke its rules shows in its audit."""
    _claimed(registry, owner)
    mallory = Identity.generate("mallory", seed=b"\x66" * 32)
    signer = mallory if change == "owner" else owner
    intent = _intent(registry, signer, counter=5 if change == "counter" else 1)
    spent = () if change == "spent" else registry.store.spent(0)
    _insert_intent(registry, intent, sign_request(intent, signer), spent)
    problems = registry.audit().problems
    assert any(problem in p for p in problems), problems


def test_open_refuses_a_log_key_that_is_not_log_vkeys(registry, tmp_path):
    directory = registry.directory
    registry.close()
    Identity.generate("log", seed=b"\x44" * 32).save(directory / "log.key", PASSPHRASE,
                                                      strength="min", overwrite=True)
    with pytest.raises(RegistryError, match="log.key does not match log.vkey"):
        Registry.open(directory, passphrase=PASSPHRASE)


def test_open_refuses_a_log_vkey_of_another_origin(registry, tmp_path):
    other = Registry.init(tmp_path / "other", origin="other.example/claimkit",
                          passphrase=PASSPHRASE, key_strength="min")
    other.close()
    (registry.directory / "log.vkey").write_bytes((tmp_path / "other" / "log.vkey").read_bytes())
    with pytest.raises(RegistryError, match="log.vkey does not belong to this registry"):
        Registry.open(registry.directory)


def test_the_time_key_is_derived_from_the_log_seed_under_its_own_domain(registry):
    """One backed-up seed, two keys: the time cosigner never signs with the log's key."""
    import hashlib

    from claimkit.registry.note import NoteSigner
    from conftest import LOG_SEED
    derived = hashlib.sha256(b"claimkit/registry-time-key/v1\n" + LOG_SEED).digest()
    expected = NoteSigner.cosigner("test.example/claimkit/time", derived).verifier_key
    assert registry.time_key == expected
    assert registry.time_key.to_vkey().split("+")[-1] != registry.log_key.to_vkey().split("+")[-1]


def test_init_syncs_the_parent_directory_after_the_rename(tmp_path, monkeypatch):
    import claimkit.registry.log as log_module
    seen: list[bool] = []
    real = log_module._fsync_dir

    def fsync_dir(path):
        seen.append((Path(path) == tmp_path, (tmp_path / "reg" / "registry.db").exists()))
        real(path)

    monkeypatch.setattr(log_module, "_fsync_dir", fsync_dir)
    Registry.init(tmp_path / "reg", origin="test.example/claimkit", passphrase=PASSPHRASE,
                  key_strength="min").close()
    assert (True, True) in seen


def test_log_entry_invariants(owner):
    """What a LogEntry refuses however it is made (the registry builds them directly)."""
    request = Registration(owner.public, "test-lookup", Digest.of(b"x"), 4)
    signature = sign_request(request, owner)
    intent = ClaimIntent(owner.public, 0, Digest.of(b"r"), Digest.of(b"s"), 0, 1)
    for make, message in [
        (lambda: LogEntry(request, signature[:63], 0), "expected 64 bytes"),
        (lambda: LogEntry(request, signature + b"\0", 0), "expected 64 bytes"),
        (lambda: LogEntry(request, signature, -1), "time_ms: out of range"),
        (lambda: LogEntry(request, signature, 1 << 53), "time_ms: out of range"),
        (lambda: LogEntry(request, signature, 0, spent=()), "present exactly on claim intents"),
        (lambda: LogEntry(intent, signature, 0), "present exactly on claim intents"),
        (lambda: LogEntry(intent, signature, 0, spent=(1, 1)), "strictly increasing"),
        (lambda: LogEntry(intent, signature, 0, spent=(2, 1)), "strictly increasing"),
    ]:
        with pytest.raises(MalformedInputError, match=message):
            make()
    LogEntry(request, signature, (1 << 53) - 1)
    good = LogEntry(intent, signature, 0, spent=(0, 3))
    bad = good.to_dict() | {"spent": [-1, 3]}
    with pytest.raises(MalformedInputError, match="spent: expected item indices"):
        LogEntry.from_dict(bad)


def test_request_parsing_refuses_zero_items_and_unknown_members(owner):
    from claimkit.registry.entries import request_from_dict
    with pytest.raises(MalformedInputError, match="registration.items"):
        Registration(owner.public, "test-lookup", Digest.of(b"x"), 0)
    intent = ClaimIntent(owner.public, 0, Digest.of(b"r"), Digest.of(b"s"), 0, 1).to_dict()
    assert request_from_dict(intent).to_dict() == intent
    for bad in ({**intent, "extra": 1},
                {**intent, "registration": {**intent["registration"], "extra": 1}},
                {**intent, "owner": {**intent["owner"], "extra": 1}}):
        with pytest.raises(MalformedInputError, match="unknown field 'extra'"):
            request_from_dict(bad)


def test_the_next_claim_is_refused_when_the_index_counts_an_intent_twice(registry, owner):
    """A copy of the last intent's row (at a negative index) makes the index count two
    claims whose last has counter 0: the log cannot back that count, so nothing is signed."""
    _claimed(registry, owner)
    registry.store.conn.execute(
        "INSERT INTO entries SELECT -1, data, kind, ref, time_ms FROM entries WHERE idx = 2")
    size = registry.size
    intent = _intent(registry, owner)
    with pytest.raises(RegistryError, match="cannot be read back"):
        registry.announce_claim(intent, sign_request(intent, owner))
    assert registry.size == size
