"""Trigger draws: logged alone, one per verification key, checked by audit."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from claimkit.cli import cli
from claimkit.errors import MalformedInputError, RegistryError, VerificationError
from claimkit.identity import Identity
from claimkit.registry import merkle
from claimkit.registry.entries import (ClaimIntent, LogEntry, Registration, TriggerDraw,
                                       request_from_dict, sign_request)
from claimkit.registry.log import Registry
from claimkit.registry.receipt import Receipt
from claimkit.registry.store import draw_ref
from claimkit.wire import Digest, canonical_json

from conftest import PASSPHRASE, register_many
from test_spec_vectors import validate


VK = Digest.of(b"vk")


def _draw(owner: Identity, vk: Digest = VK) -> tuple[TriggerDraw, bytes]:
    request = TriggerDraw(owner.public, "ubw-c", vk)
    return request, sign_request(request, owner)


@pytest.fixture
def mallory() -> Identity:
    return Identity.generate("mallory", seed=b"\x66" * 32)


def test_a_draw_round_trips_in_canonical_form(owner):
    request, signature = _draw(owner)
    assert request_from_dict(json.loads(canonical_json(request.to_dict()))) == request
    assert request.to_dict() == {
        "kind": "trigger-draw",
        "owner": {"name": "alice", "public_key": request.to_dict()["owner"]["public_key"]},
        "scheme": "ubw-c", "verification_key": {"sha256": VK.hex}}
    entry = LogEntry(request, signature, 1_763_884_800_123)
    assert entry.to_bytes() == canonical_json(entry.to_dict())
    assert LogEntry.from_bytes(entry.to_bytes()) == entry
    entry.verify_signature()
    validate("log-entry.json", entry.to_dict())


def test_the_draw_receipt_verifies_offline_and_its_checkpoint_ends_with_it(registry, owner):
    register_many(registry, owner, 3)
    receipt = registry.draw_trigger(*_draw(owner))
    assert receipt.index == 3 and receipt.checkpoint.size == receipt.index + 1
    assert receipt.checkpoint.root_hash == registry.root_at(4)
    assert receipt.verify(registry.log_key).size == 4
    assert Receipt.from_json(receipt.to_json()) == receipt
    assert registry.entry(3) == receipt.entry and receipt.entry.spent is None
    validate("receipt.json", receipt.to_dict())


@pytest.mark.parametrize("second_owner", ["owner", "mallory"])
def test_a_key_is_drawn_once_whoever_asks(registry, owner, mallory, second_owner):
    register_many(registry, owner, 2)
    registry.draw_trigger(*_draw(owner))
    again = _draw(owner if second_owner == "owner" else mallory)
    checkpoint = registry.latest_checkpoint()
    with pytest.raises(RegistryError, match=r"already drawn at entry 2$"):
        registry.draw_trigger(*again)
    assert registry.size == 3 and registry.latest_checkpoint() == checkpoint


def test_different_keys_draw_even_when_their_refs_collide(registry, owner):
    """The ref column holds 8 bytes of the digest; the rule compares all 32."""
    prefix = b"\x80" + bytes(7)  # also the smallest int64 the column holds
    for tail in (b"\x00", b"\x01", b"\x02"):
        registry.draw_trigger(*_draw(owner, Digest(prefix + tail * 24)))
    top = b"\x7f" + b"\xff" * 31  # the largest
    registry.draw_trigger(*_draw(owner, Digest(top)))
    assert draw_ref(top) == 2**63 - 1
    assert draw_ref(prefix + bytes(24)) == -2**63
    assert registry.size == 4
    report = registry.audit()
    assert report.ok, report.problems
    assert report.draws == 4
    with pytest.raises(RegistryError, match="already drawn at entry 1"):
        registry.draw_trigger(*_draw(owner, Digest(prefix + b"\x01" * 24)))


def test_a_bad_signature_is_refused(registry, owner, mallory):
    request, _ = _draw(owner)
    with pytest.raises(VerificationError):
        registry.draw_trigger(request, bytes(64))
    with pytest.raises(VerificationError):
        registry.draw_trigger(request, mallory.sign(b"claimkit/request/v1\n" + request.canonical))
    assert registry.size == 0
    registry.draw_trigger(request, sign_request(request, owner))  # the key is still drawable
    assert registry.size == 1


def test_draws_go_through_draw_trigger_only(registry, owner):
    draw = _draw(owner)
    with pytest.raises(MalformedInputError, match="draw_trigger"):
        registry.append([draw])
    with pytest.raises(MalformedInputError, match="draw_trigger"):
        registry.register(*draw)
    registration = Registration(owner.public, "ubw-c", Digest.of(b"vk"), 4)
    with pytest.raises(MalformedInputError, match="takes a trigger draw"):
        registry.draw_trigger(registration, sign_request(registration, owner))
    assert registry.size == 0


def test_a_read_only_registry_cannot_draw(registry, owner):
    with Registry.open(registry.directory) as ro:
        with pytest.raises(RegistryError, match="read-only"):
            ro.draw_trigger(*_draw(owner))
        assert ro.size == 0
    registry.draw_trigger(*_draw(owner))  # nothing of the refused draw was kept


def test_a_claim_intent_cannot_name_a_draw(registry, owner):
    registry.draw_trigger(*_draw(owner))
    draw_bytes = registry.store.entry(0)
    intent = ClaimIntent(owner.public, 0, Digest.of(draw_bytes), Digest.of(b"suspect"), 0, 1)
    with pytest.raises(RegistryError, match="entry 0 is not a registration"):
        registry.announce_claim(intent, sign_request(intent, owner))
    assert registry.size == 1


def test_audit_counts_draws_beside_registrations_and_claims(registry, owner, mallory):
    register_many(registry, owner, 2)
    registry.draw_trigger(*_draw(owner, Digest.of(b"a")))
    intent = ClaimIntent(owner.public, 0, Digest.of(registry.store.entry(0)),
                         Digest.of(b"suspect"), 0, 4)
    registry.announce_claim(intent, sign_request(intent, owner))
    registry.draw_trigger(*_draw(mallory, Digest.of(b"b")))
    report = registry.audit()
    assert report.ok, report.problems
    assert (report.registrations, report.claims, report.draws) == (2, 1, 2)
    assert report.to_dict()["draws"] == 2


def _insert_draw(registry: Registry, request: TriggerDraw, signature: bytes) -> int:
    """Append a draw row and a checkpoint behind the registry's rules: what a registry
    that broke them would have written."""
    with registry.store.transaction():
        size, last_time = registry.store.head()
        frontier = merkle.Frontier.load(size, registry.store.read_nodes)
        entry = LogEntry(request, signature, last_time)
        nodes = frontier.append(merkle.leaf_hash(entry.to_bytes()))
        registry.store.append([(size, entry.to_bytes(), request.kind,
                                draw_ref(request.verification_key.value), last_time)], nodes)
        registry._sign_checkpoint(size + 1, frontier.root(), last_time)
    return size


def test_audit_reports_a_second_draw_of_a_key(registry, owner, mallory):
    register_many(registry, owner, 2)
    registry.draw_trigger(*_draw(owner))
    index = _insert_draw(registry, *_draw(mallory))
    report = registry.audit()
    assert report.problems == (f"entry {index}: a second trigger draw of verification key "
                               f"{VK.hex[:16]}… (first at entry 2)",)
    assert report.draws == 2


def test_audit_reports_a_draw_row_with_a_wrong_ref(registry, owner):
    """A wrong ref hides the draw from the once-only rule, so audit must see it."""
    registry.draw_trigger(*_draw(owner))
    with registry.store.transaction():
        registry.store.conn.execute("UPDATE entries SET ref = ref + 1 WHERE idx = 0")
    registry.draw_trigger(*_draw(owner))  # the rule no longer finds the first draw
    problems = registry.audit().problems
    assert "entry 0: its ref column differs from the entry" in problems
    assert any("entry 1: a second trigger draw" in p for p in problems), problems


def test_audit_reports_a_draw_row_of_the_wrong_kind(registry, owner):
    registry.draw_trigger(*_draw(owner))
    with registry.store.transaction():
        registry.store.conn.execute("UPDATE entries SET kind = 'registration' WHERE idx = 0")
    assert "entry 0: its kind column differs from the entry" in registry.audit().problems


@pytest.mark.parametrize("change", [
    {"scheme": 7},
    {"scheme": "UBW_C"},
    {"verification_key": "ab" * 32},
    {"verification_key": {"sha256": "AB" * 32}},
    {"verification_key": {"sha256": "ab" * 32, "extra": 1}},
    {"owner": "alice"},
    {"owner": {"name": "alice", "public_key": "AAAA"}},
    {"items": 4},
    {"subject": {"sha256": "ab" * 32}},
    {"kind": "trigger_draw"},
    {"verification_key": None},
])
def test_malformed_draw_requests_are_refused(owner, change):
    obj = {k: v for k, v in {**_draw(owner)[0].to_dict(), **change}.items()
           if v is not None}  # None: the member is missing
    with pytest.raises(MalformedInputError):
        request_from_dict(obj)


@pytest.mark.parametrize("make", [
    lambda o: TriggerDraw(o.public, "ubw-c", b"\0" * 32),
    lambda o: TriggerDraw(o.public, "", Digest.of(b"vk")),
    lambda o: TriggerDraw(o.public, b"ubw-c", Digest.of(b"vk")),
    lambda o: TriggerDraw(o, "ubw-c", Digest.of(b"vk")),
])
def test_draws_of_the_wrong_type_are_refused(owner, make):
    with pytest.raises(MalformedInputError):
        make(owner)


def test_cli_audit_reports_draws(registry, owner):
    registry.draw_trigger(*_draw(owner))
    env = {"CLAIMKIT_LOG_PASSPHRASE": PASSPHRASE}
    result = CliRunner().invoke(cli, ["registry", "audit", str(registry.directory)], env=env)
    assert result.exit_code == 0, result.output
    assert "1 trigger draws" in result.output
    result = CliRunner().invoke(cli, ["registry", "audit", str(registry.directory), "--json"],
                                env=env)
    assert json.loads(result.output)["draws"] == 1


def test_a_key_drawn_at_entry_0_is_not_drawn_again(registry, owner, mallory):
    """The first entry of a log is a draw like any other (index 0 is no "not drawn")."""
    registry.draw_trigger(*_draw(owner))
    with pytest.raises(RegistryError, match=r"already drawn at entry 0$"):
        registry.draw_trigger(*_draw(mallory))
    assert registry.size == 1
