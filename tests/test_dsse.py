"""DSSE v1 envelopes: PAE known answers, strict parsing, tamper resistance, and
interoperability with securesystemslib (the reference Python implementation)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from securesystemslib import dsse as sslib_dsse
from securesystemslib import exceptions as sslib_exceptions
from securesystemslib.signer import CryptoSigner, Signature, SSlibKey

from claimkit.dsse import (MAX_SIGNATURES, Envelope, EnvelopeSignature, add_signature, pae,
                           sign_envelope, verify_envelope)
from claimkit.errors import MalformedInputError, VerificationError
from claimkit.identity import Identity, PublicIdentity
from claimkit.wire import b64encode

TYPE = "application/vnd.in-toto+json"
PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1","subject":[]}'
OWNER_SEED = b"\x11" * 32
OWNER = Identity.generate("owner", seed=OWNER_SEED)
ARBITER = Identity.generate("arbiter", seed=b"\x22" * 32)
MALLORY = Identity.generate("mallory", seed=b"\x33" * 32)
ENVELOPE = sign_envelope(PAYLOAD, TYPE, OWNER)
REJECTED = (MalformedInputError, VerificationError)


def sslib_pae(payload_type: str, payload: bytes) -> bytes:
    return sslib_dsse.Envelope(payload, payload_type, {}).pae()


def sslib_key(public: PublicIdentity, keyid: str | None = None) -> SSlibKey:
    return SSlibKey(public.key_id if keyid is None else keyid, "ed25519", "ed25519",
                    {"public": public.public_key.hex()})


# --- PAE ------------------------------------------------------------------------------

def test_pae_spec_test_vector() -> None:
    # DSSE protocol.md, "Test Vectors".
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


@pytest.mark.parametrize("payload_type, payload, expected", [
    ("", b"", b"DSSEv1 0  0 "),
    (TYPE, b"{}", b"DSSEv1 28 application/vnd.in-toto+json 2 {}"),
    # LEN counts UTF-8 bytes, not characters: "é" is 2 bytes, "😀" is 4.
    ("é😀", b"\x00\xff", b"DSSEv1 6 \xc3\xa9\xf0\x9f\x98\x80 2 \x00\xff"),
    ("t", b"a" * 1234, b"DSSEv1 1 t 1234 " + b"a" * 1234),
])
def test_pae_known_answers(payload_type: str, payload: bytes, expected: bytes) -> None:
    assert pae(payload_type, payload) == expected
    assert sslib_pae(payload_type, payload) == expected


@settings(max_examples=200)
@given(st.text(max_size=40), st.binary(max_size=300))
def test_pae_matches_securesystemslib(payload_type: str, payload: bytes) -> None:
    type_bytes = payload_type.encode("utf-8")
    expected = b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)
    assert pae(payload_type, payload) == expected == sslib_pae(payload_type, payload)


def test_pae_is_unambiguous() -> None:
    """Length prefixes keep a type/payload boundary shift from giving the same bytes."""
    assert pae("a b", b"c") != pae("a", b"b c")
    assert ENVELOPE.pae == pae(TYPE, PAYLOAD)


# --- envelopes ------------------------------------------------------------------------

def test_sign_and_verify() -> None:
    assert ENVELOPE.signatures[0].keyid == OWNER.public.key_id
    assert len(ENVELOPE.signatures) == 1
    assert verify_envelope(ENVELOPE, OWNER.public) == OWNER.public
    assert verify_envelope(ENVELOPE, [MALLORY.public, OWNER.public]) == OWNER.public


def test_json_round_trip_and_shape() -> None:
    data = ENVELOPE.to_json()
    assert Envelope.from_json(data) == ENVELOPE
    assert json.loads(data) == {"payload": b64encode(PAYLOAD), "payloadType": TYPE,
                                "signatures": [{"keyid": OWNER.public.key_id,
                                                "sig": b64encode(ENVELOPE.signatures[0].sig)}]}
    assert Envelope.from_dict(ENVELOPE.to_dict()) == ENVELOPE


def test_untrusted_signer_is_rejected() -> None:
    with pytest.raises(VerificationError, match="no valid signature by mallory"):
        verify_envelope(ENVELOPE, MALLORY.public)
    with pytest.raises(VerificationError, match="no trusted keys"):
        verify_envelope(ENVELOPE, [])


def test_signature_is_bound_to_payload_type() -> None:
    other = Envelope(PAYLOAD, "application/vnd.other+json", ENVELOPE.signatures)
    with pytest.raises(VerificationError):
        verify_envelope(other, OWNER.public)


def test_multiple_signatures() -> None:
    both = add_signature(ENVELOPE, ARBITER)
    assert [s.keyid for s in both.signatures] == [OWNER.public.key_id, ARBITER.public.key_id]
    assert verify_envelope(both, ARBITER.public) == ARBITER.public
    assert verify_envelope(both, OWNER.public) == OWNER.public
    assert verify_envelope(both, [ARBITER.public, OWNER.public]) == ARBITER.public
    assert verify_envelope(Envelope.from_json(both.to_json()), [OWNER.public]) == OWNER.public
    # securesystemslib checks the same two-of-two envelope with a threshold.
    sslib = sslib_dsse.Envelope.from_dict(both.to_dict())
    assert set(sslib.verify([sslib_key(OWNER.public), sslib_key(ARBITER.public)], 2)) == \
        {OWNER.public.key_id, ARBITER.public.key_id}


def test_keyid_alone_is_not_trusted() -> None:
    """Mallory's signature labelled with the owner's keyid is tried and fails."""
    forged = EnvelopeSignature(OWNER.public.key_id, MALLORY.sign(ENVELOPE.pae))
    with pytest.raises(VerificationError):
        verify_envelope(Envelope(PAYLOAD, TYPE, (forged,)), OWNER.public)
    # ... and does not get in the way of a real signature that follows it.
    envelope = Envelope(PAYLOAD, TYPE, (forged,) + ENVELOPE.signatures)
    assert verify_envelope(envelope, OWNER.public) == OWNER.public


def test_empty_or_missing_keyid_is_tried_against_every_trusted_key() -> None:
    unlabelled = Envelope(PAYLOAD, TYPE, (EnvelopeSignature("", ENVELOPE.signatures[0].sig),))
    assert verify_envelope(unlabelled, [MALLORY.public, OWNER.public]) == OWNER.public
    body = ENVELOPE.to_dict()
    del body["signatures"][0]["keyid"]           # envelope.md: unset is the same as empty
    parsed = Envelope.from_dict(body)
    assert parsed == unlabelled
    assert verify_envelope(parsed, OWNER.public) == OWNER.public


def test_other_keyid_is_not_tried() -> None:
    relabelled = Envelope(PAYLOAD, TYPE, (EnvelopeSignature("ab" * 32, ENVELOPE.signatures[0].sig),))
    with pytest.raises(VerificationError):
        verify_envelope(relabelled, OWNER.public)


def test_spec_example_envelope_parses() -> None:
    # DSSE protocol.md test vector (ECDSA P-256: parsed here, not verified).
    env = Envelope.from_json(
        '{"payload": "aGVsbG8gd29ybGQ=", "payloadType": "http://example.com/HelloWorld", '
        '"signatures": [{"sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJ'
        'PcIAriEGAHTVeCUjW2JIZA=="}]}')
    assert env.payload == b"hello world" and env.signatures[0].keyid == ""
    assert env.pae == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


# --- strict parsing -------------------------------------------------------------------

def good() -> dict:
    return ENVELOPE.to_dict()


def edit(path: tuple, value: object) -> dict:
    body = good()
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


@pytest.mark.parametrize("body, message", [
    (edit(("extra",), 1), "unknown field 'extra'"),
    (edit(("signatures", 0, "extra"), 1), r"signatures\[0\]: unknown field"),
    (edit(("payload",), KeyError), "payload: missing"),
    (edit(("payloadType",), KeyError), "payloadType: missing"),
    (edit(("signatures",), KeyError), "signatures: missing"),
    (edit(("signatures", 0, "sig"), KeyError), r"signatures\[0\].sig: missing"),
    (edit(("signatures",), []), "at least one signature"),
    (edit(("signatures",), good()["signatures"] * (MAX_SIGNATURES + 1)), "more than"),
    (edit(("payload",), "aGVsbG8gd29ybGQ"), "payload: not valid base64"),
    (edit(("payload",), "aGVsbG8gd29ybGR="), "non-canonical base64"),
    (edit(("payload",), b64encode(b"\xfb\xff").replace("+", "-").replace("/", "_")), "base64"),
    (edit(("payload",), None), "base64"),
    (edit(("payloadType",), 7), "payloadType: expected a string"),
    (edit(("payloadType",), "t" * 257), "payloadType: longer than"),
    (edit(("payloadType",), "\ud800"), "payloadType: not encodable as UTF-8"),
    (edit(("signatures", 0, "keyid"), 1), "keyid: expected a string"),
    (edit(("signatures", 0, "keyid"), "k" * 257), "keyid: longer than"),
    (edit(("signatures", 0, "sig"), b64encode(b"\x00" * 1030)), "sig: larger than"),
    (edit(("signatures",), {"keyid": "x"}), "signatures: expected a list"),
    ([], "expected a JSON object"),
])
def test_parsing_is_strict(body: object, message: str) -> None:
    with pytest.raises(MalformedInputError, match=message):
        Envelope.from_dict(body)


@pytest.mark.parametrize("text", [
    b"", b"null", b"[]", b"{", b'{"payload":"","payload":""}', b"\xff\xfe",
    b'{"payload":"","payloadType":"t","signatures":[{"keyid":"","sig":""}],"x":NaN}',
])
def test_from_json_rejects_garbage(text: bytes) -> None:
    with pytest.raises(MalformedInputError):
        Envelope.from_json(text)


@pytest.mark.parametrize("args", [
    (b"x", TYPE, ()),
    (b"x", TYPE, [ENVELOPE.signatures[0]]),
    ("x", TYPE, ENVELOPE.signatures),
    (b"x", None, ENVELOPE.signatures),
    (b"x", TYPE, ("sig",)),
    (b"x", TYPE, ENVELOPE.signatures * (MAX_SIGNATURES + 1)),
])
def test_constructor_validates(args: tuple) -> None:
    with pytest.raises(MalformedInputError):
        Envelope(*args)


@pytest.mark.parametrize("keyid, sig", [(None, b""), ("k", "sig"), ("k", b"\x00" * 1025)])
def test_signature_constructor_validates(keyid: object, sig: object) -> None:
    with pytest.raises(MalformedInputError):
        EnvelopeSignature(keyid, sig)  # type: ignore[arg-type]


def test_sign_envelope_validates_its_input() -> None:
    with pytest.raises(MalformedInputError):
        sign_envelope(PAYLOAD, "\udc80", OWNER)
    with pytest.raises(MalformedInputError):
        sign_envelope("text", TYPE, OWNER)  # type: ignore[arg-type]


# --- interoperability with securesystemslib ------------------------------------------

def test_our_envelope_verifies_with_securesystemslib() -> None:
    sslib = sslib_dsse.Envelope.from_dict(json.loads(ENVELOPE.to_json()))
    assert sslib.payload == PAYLOAD and sslib.payload_type == TYPE
    assert sslib.pae() == ENVELOPE.pae
    key = sslib_key(OWNER.public)
    assert list(sslib.verify([key], 1)) == [OWNER.public.key_id]
    key.verify_signature(Signature(OWNER.public.key_id, ENVELOPE.signatures[0].sig.hex()), ENVELOPE.pae)
    assert sslib.to_dict() == ENVELOPE.to_dict()


def test_securesystemslib_rejects_our_envelope_under_another_key() -> None:
    sslib = sslib_dsse.Envelope.from_dict(ENVELOPE.to_dict())
    wrong = sslib_key(MALLORY.public, keyid=OWNER.public.key_id)
    with pytest.raises(sslib_exceptions.VerificationError):
        sslib.verify([wrong], 1)


def sslib_signer(seed: bytes, keyid: str) -> CryptoSigner:
    private = Ed25519PrivateKey.from_private_bytes(seed)
    raw = private.public_key().public_bytes_raw()
    return CryptoSigner(private, SSlibKey(keyid, "ed25519", "ed25519", {"public": raw.hex()}))


def test_securesystemslib_envelope_verifies_with_ours() -> None:
    signer = sslib_signer(OWNER_SEED, OWNER.public.key_id)
    assert signer.public_key.keyval["public"] == OWNER.public.public_key.hex()
    sslib = sslib_dsse.Envelope(PAYLOAD, TYPE, {})
    sslib.sign(signer)
    ours = Envelope.from_json(json.dumps(sslib.to_dict()))
    assert verify_envelope(ours, OWNER.public) == OWNER.public
    # Ed25519 is deterministic: both libraries produce the very same envelope.
    assert ours == ENVELOPE


def test_securesystemslib_keyid_conventions() -> None:
    """securesystemslib's default keyid (a hash of its key JSON) is not ours, so such a
    signature is not tried; with an empty keyid it is tried against every trusted key."""
    private = Ed25519PrivateKey.from_private_bytes(OWNER_SEED)
    default = CryptoSigner(private)
    assert default.public_key.keyid != OWNER.public.key_id
    sslib = sslib_dsse.Envelope(PAYLOAD, TYPE, {})
    sslib.sign(default)
    with pytest.raises(VerificationError):
        verify_envelope(Envelope.from_dict(sslib.to_dict()), OWNER.public)

    unlabelled = sslib_dsse.Envelope(PAYLOAD, TYPE, {})
    unlabelled.sign(sslib_signer(OWNER_SEED, ""))
    assert unlabelled.to_dict()["signatures"][0]["keyid"] == ""
    assert verify_envelope(Envelope.from_dict(unlabelled.to_dict()), [ARBITER.public, OWNER.public]) \
        == OWNER.public


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=2000), st.text(min_size=1, max_size=60))
def test_interop_both_ways_on_random_content(payload: bytes, payload_type: str) -> None:
    ours = sign_envelope(payload, payload_type, OWNER)
    sslib = sslib_dsse.Envelope.from_dict(json.loads(ours.to_json()))
    sslib.verify([sslib_key(OWNER.public)], 1)
    theirs = sslib_dsse.Envelope(payload, payload_type, {})
    theirs.sign(sslib_signer(OWNER_SEED, OWNER.public.key_id))
    assert verify_envelope(Envelope.from_dict(theirs.to_dict()), OWNER.public) == OWNER.public


# --- tampering ------------------------------------------------------------------------

def verifies(make: object) -> bool:
    """True if building and verifying the (tampered) envelope succeeds."""
    try:
        envelope = make() if callable(make) else make
        verify_envelope(envelope, [OWNER.public])
    except REJECTED:
        return False
    return True


def flip(data: bytes, index: int, value: int) -> bytes:
    return data[:index] + bytes([value]) + data[index + 1:]


@st.composite
def byte_flips(draw: st.DrawFn, data: bytes) -> tuple[int, int]:
    index = draw(st.integers(0, len(data) - 1))
    value = draw(st.integers(0, 255).filter(lambda v: v != data[index]))
    return index, value


ENVELOPE_JSON = ENVELOPE.to_json()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(byte_flips(ENVELOPE_JSON))
def test_flipping_any_byte_of_the_json_never_verifies(change: tuple[int, int]) -> None:
    index, value = change
    tampered = flip(ENVELOPE_JSON, index, value)
    try:
        parsed = Envelope.from_json(tampered)
    except MalformedInputError:
        return
    if verifies(parsed):
        # Only the trailing newline may become other JSON whitespace, and then
        # nothing that was signed or parsed has changed.
        assert index == len(ENVELOPE_JSON) - 1 and chr(value) in " \t\r"
        assert parsed == ENVELOPE


@settings(max_examples=300, deadline=None)
@given(byte_flips(PAYLOAD))
def test_flipping_any_payload_byte_never_verifies(change: tuple[int, int]) -> None:
    payload = flip(PAYLOAD, *change)
    assert not verifies(lambda: Envelope(payload, TYPE, ENVELOPE.signatures))


@settings(max_examples=300, deadline=None)
@given(byte_flips(TYPE.encode()))
def test_flipping_any_payload_type_byte_never_verifies(change: tuple[int, int]) -> None:
    tampered = flip(TYPE.encode(), *change).decode("utf-8", "surrogateescape")
    assert not verifies(lambda: Envelope(PAYLOAD, tampered, ENVELOPE.signatures))


@settings(max_examples=300, deadline=None)
@given(byte_flips(ENVELOPE.signatures[0].sig))
def test_flipping_any_signature_byte_never_verifies(change: tuple[int, int]) -> None:
    sig = EnvelopeSignature(OWNER.public.key_id, flip(ENVELOPE.signatures[0].sig, *change))
    assert not verifies(lambda: Envelope(PAYLOAD, TYPE, (sig,)))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64) | st.binary(min_size=64, max_size=64))
def test_random_signatures_never_verify(sig: bytes) -> None:
    for keyid in (OWNER.public.key_id, ""):
        assert not verifies(lambda: Envelope(PAYLOAD, TYPE, (EnvelopeSignature(keyid, sig),)))
