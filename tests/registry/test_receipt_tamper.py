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
