"""DSSE v1 envelopes (Dead Simple Signing Envelope), Ed25519 signatures.

Signatures are over the pre-authentication encoding (PAE) of the payload type and
payload, so a signature for one type never verifies for another::

    env = sign_envelope(payload, "application/vnd.in-toto+json", owner)
    signer = verify_envelope(Envelope.from_json(env.to_json()), owner.public)

Following the DSSE protocol, a ``keyid`` is an unauthenticated hint that only narrows
which keys are tried: a signature whose keyid is set is tried against the trusted key
with that id (the lowercase hex SHA-256 of the raw public key, see
:attr:`~claimkit.identity.PublicIdentity.key_id`); one whose keyid is empty or unset
is tried against every trusted key. Acceptance always rests on the Ed25519 check.

Parsing is stricter than DSSE's "ignore unknown fields" and "either base64 alphabet":
claimkit reads only what claimkit writes (standard base64, no extra fields), so a
verifier never skips bytes a signer might have meant. ``keyid`` may be absent, as the
envelope spec allows; it is written back as ``""``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import MalformedInputError, VerificationError
from .identity import Identity, PublicIdentity
from .wire import Fields, b64encode, load_json

__all__ = ["pae", "EnvelopeSignature", "Envelope", "sign_envelope", "add_signature",
           "verify_envelope"]

MAX_ENVELOPE_BYTES = 256 * 1024 * 1024
MAX_PAYLOAD = MAX_ENVELOPE_BYTES // 4 * 3
MAX_PAYLOAD_TYPE = 256
MAX_KEYID = 256
MAX_SIG = 1024
MAX_SIGNATURES = 16


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII decimal bytes."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def _check_content(payload: bytes, payload_type: str) -> None:
    if not isinstance(payload, bytes) or len(payload) > MAX_PAYLOAD:
        raise MalformedInputError(f"envelope.payload: expected at most {MAX_PAYLOAD} bytes")
    if not isinstance(payload_type, str) or len(payload_type) > MAX_PAYLOAD_TYPE:
        raise MalformedInputError(
            f"envelope.payloadType: expected a string of at most {MAX_PAYLOAD_TYPE} characters")
    try:
        payload_type.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedInputError("envelope.payloadType: not encodable as UTF-8") from None


@dataclass(frozen=True)
class EnvelopeSignature:
    """One signature: a ``keyid`` hint ("" when unset) and the raw signature bytes."""

    keyid: str
    sig: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.keyid, str) or len(self.keyid) > MAX_KEYID:
            raise MalformedInputError(f"signature keyid: expected a string of at most {MAX_KEYID} characters")
        if not isinstance(self.sig, bytes) or len(self.sig) > MAX_SIG:
            raise MalformedInputError(f"signature sig: expected at most {MAX_SIG} bytes")

    def to_dict(self) -> dict[str, str]:
        return {"keyid": self.keyid, "sig": b64encode(self.sig)}

    @classmethod
    def from_dict(cls, obj: Any, where: str = "signature") -> EnvelopeSignature:
        f = Fields(obj, where)
        keyid = f.str("keyid", max_len=MAX_KEYID) if f.has("keyid") else ""
        sig = f.bytes("sig", max_size=MAX_SIG)
        f.done()
        return cls(keyid, sig)


@dataclass(frozen=True)
class Envelope:
    """A DSSE JSON envelope with at least one signature."""

    payload: bytes
    payload_type: str
    signatures: tuple[EnvelopeSignature, ...]

    def __post_init__(self) -> None:
        _check_content(self.payload, self.payload_type)
        if not isinstance(self.signatures, tuple) or not all(
                isinstance(s, EnvelopeSignature) for s in self.signatures):
            raise MalformedInputError("envelope.signatures: expected a tuple of EnvelopeSignature")
        if not 1 <= len(self.signatures) <= MAX_SIGNATURES:
            raise MalformedInputError(
                f"envelope.signatures: expected 1 to {MAX_SIGNATURES} signatures, got {len(self.signatures)}")

    @property
    def pae(self) -> bytes:
        """The signed bytes: ``pae(payload_type, payload)``."""
        return pae(self.payload_type, self.payload)

    def to_dict(self) -> dict[str, Any]:
        return {"payload": b64encode(self.payload), "payloadType": self.payload_type,
                "signatures": [s.to_dict() for s in self.signatures]}

    @classmethod
    def from_dict(cls, obj: Any, where: str = "envelope") -> Envelope:
        f = Fields(obj, where)
        payload = f.bytes("payload", max_size=MAX_PAYLOAD)
        payload_type = f.str("payloadType", max_len=MAX_PAYLOAD_TYPE)
        signatures = f.each("signatures", EnvelopeSignature.from_dict, max_items=MAX_SIGNATURES)
        f.done()
        if not signatures:
            raise MalformedInputError(f"{where}.signatures: at least one signature is required")
        return cls(payload, payload_type, signatures)

    def to_json(self) -> bytes:
        """Compact JSON: no insignificant whitespace, so every byte of the file matters."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes | str) -> Envelope:
        return cls.from_dict(load_json(data, what="envelope", max_bytes=MAX_ENVELOPE_BYTES))


def _signature(payload: bytes, payload_type: str, identity: Identity) -> EnvelopeSignature:
    _check_content(payload, payload_type)
    return EnvelopeSignature(identity.public.key_id, identity.sign(pae(payload_type, payload)))


def sign_envelope(payload: bytes, payload_type: str, identity: Identity) -> Envelope:
    """A new envelope over ``payload`` with one signature by ``identity``."""
    return Envelope(payload, payload_type, (_signature(payload, payload_type, identity),))


def add_signature(envelope: Envelope, identity: Identity) -> Envelope:
    """A copy of ``envelope`` with one more signature, by ``identity``."""
    sig = _signature(envelope.payload, envelope.payload_type, identity)
    return Envelope(envelope.payload, envelope.payload_type, envelope.signatures + (sig,))


def verify_envelope(envelope: Envelope,
                    trusted: PublicIdentity | Sequence[PublicIdentity]) -> PublicIdentity:
    """The first of ``trusted`` that has a valid signature; raises ``VerificationError`` if none.

    For each trusted key the signatures whose keyid names it are tried first, then
    those with an empty keyid; a signature naming another keyid is never tried.
    """
    keys = (trusted,) if isinstance(trusted, PublicIdentity) else tuple(trusted)
    message = envelope.pae
    for key in keys:
        key_id = key.key_id
        candidates = [s for s in envelope.signatures if s.keyid == key_id]
        candidates += [s for s in envelope.signatures if not s.keyid]
        for sig in candidates:
            try:
                key.verify(sig.sig, message)
            except VerificationError:
                continue
            return key
    names = ", ".join(k.name for k in keys) or "nobody (no trusted keys given)"
    raise VerificationError(f"envelope: no valid signature by {names}")
