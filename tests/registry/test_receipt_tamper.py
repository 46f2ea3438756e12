"""No changed byte of a receipt verifies (≥ 300 generated cases)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimkit.errors import ClaimkitError
from claimkit.registry.receipt import Receipt


@pytest.fixture
def receipt_bytes(registry, owner):
    from conftest import register_many
    register_many(registry, owner, 6)
    receipt = registry.receipt(3)
    data = receipt.to_json()
    assert Receipt.from_json(data).verify(registry.log_key)
    return registry, data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_flipped_receipt_byte_never_verifies(receipt_bytes, position, mask):
    registry, data = receipt_bytes
    i = position % len(data)
    if data[i:i + 1] in b" \n" and (data[i] ^ mask) in b" \n\t\r":
        return  # JSON whitespace outside strings carries no meaning
    time_line = data.index(b"\\u2014 " + registry.origin.encode() + b"/time")
    if time_line <= i < data.index(b"\\n", time_line):
        return  # a cosignature by a key this verifier was not given: ignored (C2SP signed-note)
    tampered = data[:i] + bytes([data[i] ^ mask]) + data[i + 1:]
    with pytest.raises(ClaimkitError):
        Receipt.from_json(tampered).verify(registry.log_key)


def test_a_logged_entry_with_a_bad_owner_signature_is_refused(owner):
    """Inclusion under a validly signed checkpoint is not enough: a log that appended an
    entry whose request the named owner never signed does not make it the owner's."""
    from conftest import LOG_SEED, LOOKUP_SCHEME
    from claimkit.errors import VerificationError
    from claimkit.registry import merkle
    from claimkit.registry.checkpoint import Checkpoint, SignedCheckpoint
    from claimkit.registry.entries import LogEntry, Registration, sign_request
    from claimkit.registry.note import NoteSigner, sign_note
    from claimkit.registry.tlog_proof import TlogProof
    from claimkit.wire import Digest

    log = NoteSigner("test.example/receipt", LOG_SEED)
    request = Registration(owner.public, LOOKUP_SCHEME, Digest.of(b"key"), 16)
    good = sign_request(request, owner)
    for signature, ok in [(good, True), (bytes([good[0] ^ 1]) + good[1:], False)]:
        entry = LogEntry(request, signature, 1_000, None)
        tree = merkle.MemoryTree()
        tree.append(entry.to_bytes())
        cp = Checkpoint(log.name, 1, tree.root())
        proof = TlogProof(0, (), SignedCheckpoint(cp, sign_note(cp.to_text(), log)))
        receipt = Receipt.from_json(Receipt(entry, proof).to_json())
        if ok:
            assert receipt.verify(log.verifier_key) == cp
        else:
            with pytest.raises(VerificationError, match="owner's signature"):
                receipt.verify(log.verifier_key)
