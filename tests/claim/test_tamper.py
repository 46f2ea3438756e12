"""Property tests: no change to a bundle gets it accepted.

Two attackers: one flips bytes of the bundle file (a forger without the owner's key),
the other is a dishonest owner who changes any field of the predicate and signs again,
so only the inner checks (receipts, proofs, challenge, openings, evidence) stand.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claimkit.claim.bundle import ClaimBundle
from claimkit.claim.make import make_claim
from claimkit.claim.verify import verify_claim
from claimkit.errors import ClaimkitError
from claimkit.identity import Identity
from claimkit.registry.entries import Registration, sign_request
from claimkit.registry.log import Registry

from conftest import LOG_SEED, PASSPHRASE, FakeClock, lookup_keys, marked_model
from test_flow import resign


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tamper")
    registry = Registry.init(tmp / "reg", origin="test.example/tamper", passphrase=PASSPHRASE,
                             clock=FakeClock(), key_strength="min", log_seed=LOG_SEED)
    owner = Identity.generate("alice", seed=b"\x11" * 32)
    mk = lookup_keys(items=32)
    vk = mk.verification_key
    request = Registration(owner.public, vk.scheme, vk.digest, vk.items)
    registration = registry.register(request, sign_request(request, owner))
    model = marked_model(mk)
    bundle = make_claim(registry, mk, registration, model.digest, ask=model.answer,
                        identity=owner, k=8)
    data = bundle.to_json()
    assert verify_claim(ClaimBundle.from_json(data), log_key=registry.log_key).accepted
    yield registry, owner, bundle, data
    registry.close()


def rejected(data: bytes, registry: Registry) -> bool:
    try:
        report = verify_claim(ClaimBundle.from_json(data), log_key=registry.log_key)
    except ClaimkitError:
        return True
    return not report.accepted


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0), mask=st.integers(min_value=1, max_value=255))
def test_flipping_any_byte_is_rejected(setup, position, mask):
    registry, _, _, data = setup
    i = position % len(data)
    tampered = data[:i] + bytes([data[i] ^ mask]) + data[i + 1:]
    assert rejected(tampered, registry)


def leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, path + (i,))
    else:
        yield path, value


def mutate_proof_text(text: str, rnd: random.Random) -> str:
    """Change a character of a tlog-proof, outside cosignature lines by keys the verifier
    was not given: C2SP signed notes say verifiers ignore those lines, so they carry no
    meaning (the envelope signature still covers them; see the byte-flip test)."""
    lines = text.split("\n")
    origin = text.split("\n\n")[1].split("\n")[0]
    allowed = [i for i, line in enumerate(lines)
               if line and not (line.startswith("\u2014 ") and not line.startswith(f"\u2014 {origin} "))]
    i = rnd.choice(allowed)
    lines[i] = mutate(lines[i], rnd)
    return "\n".join(lines)


def mutate(value, rnd: random.Random):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rnd.choice([-1, 1, 7, 1 << 20])
    if isinstance(value, float):
        return value * 1.5 + 0.01
    if isinstance(value, str):
        if not value:
            return "x"
        i = rnd.randrange(len(value))
        c = value[i]
        return value[:i] + ("A" if c != "A" else "B") + value[i + 1:]
    if value is None:
        return 0
    raise AssertionError(type(value))


def set_path(obj, path, value):
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=st.integers(min_value=0), seed=st.integers(min_value=0, max_value=2**32))
def test_dishonest_owner_changing_any_field_is_rejected(setup, choice, seed):
    import copy
    registry, owner, bundle, _ = setup
    predicate = copy.deepcopy(bundle.statement.predicate)
    paths = list(leaves(predicate))
    path, value = paths[choice % len(paths)]
    rnd = random.Random(seed)
    new = mutate_proof_text(value, rnd) if path[-1] == "tlog_proof" else mutate(value, rnd)
    set_path(predicate, path, new)
    try:
        forged = resign(bundle, predicate, owner)
    except ClaimkitError:
        return  # refused while parsing: rejected
    assert rejected(forged.to_json(), registry), f"accepted after changing {path}"


@pytest.mark.parametrize("encode", [
    lambda doc: json.dumps(doc, indent=2).encode(),                   # pretty-printed
    lambda doc: json.dumps(dict(reversed(list(doc.items()))), separators=(",", ":")).encode(),
])
def test_a_payload_that_is_not_jcs_is_refused_even_signed_by_the_owner(setup, encode):
    """bundle.md: the payload is JCS(statement). Another encoding of the same statement,
    signed by the owner, was accepted: one claim under many bundle digests."""
    from claimkit.claim.bundle import PAYLOAD_TYPE
    from claimkit.dsse import sign_envelope
    from claimkit.errors import MalformedInputError
    registry, owner, bundle, _ = setup
    document = json.loads(bundle.envelope.payload)
    payload = encode(document)
    assert json.loads(payload) == document and payload != bundle.envelope.payload
    forged = sign_envelope(payload, PAYLOAD_TYPE, owner)
    with pytest.raises(MalformedInputError, match="not canonical JSON"):
        ClaimBundle.from_envelope(forged)
