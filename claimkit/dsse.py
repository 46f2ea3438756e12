"""DSSE v1 envelopes (Dead Simple Signing Envelope), Ed25519 signatures.

Signatures are over the pre-authentication encoding (PAE) of the payload type and
payload, so a signature for one type never verifies for another::

    env = sign_envelope(payload, "application/vnd.in-toto+json", owner)
    signer = verify_envelope(Envelope.from_json(env.to_json()), owner.public)

A signature counts only if its ``keyid`` names the trusted key (the lowercase hex
SHA-256 of the raw public key) and it verifies: the keyid is part of what is checked,
so any changed byte of an envelope makes it fail.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import MalformedInputError, VerificationError
from .identity import Identity, PublicIdentity
from .wire import Fields, b64encode, load_json

__all__ = ["pae", "EnvelopeSignature", "Envelope", "sign_envelope", "add_signature",
           "verify_envelope"]

MAX_PAYLOAD = 256 * 1024 * 1024
MAX_SIGNATURES = 16


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII decimal."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class EnvelopeSignature:
    keyid: str
    sig: bytes

    def to_dict(self) -> dict[str, str]:
        return {"keyid": self.keyid, "sig": b64encode(self.sig)}

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> EnvelopeSignature:
        f = Fields(obj, where)
        keyid = f.str("keyid", max_len=256)
        sig = f.bytes("sig", max_size=1024)
        f.done()
        return cls(keyid, sig)


@dataclass(frozen=True)
class Envelope:
    payload: bytes
    payload_type: str
    signatures: tuple[EnvelopeSignature, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"payload": b64encode(self.payload), "payloadType": self.payload_type,
                "signatures": [s.to_dict() for s in self.signatures]}

    @classmethod
    def from_dict(cls, obj: Any, where: str = "envelope") -> Envelope:
        f = Fields(obj, where)
        payload = f.bytes("payload", max_size=MAX_PAYLOAD)
        payload_type = f.str("payloadType", max_len=256)
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
        return cls.from_dict(load_json(data, what="envelope", max_bytes=MAX_PAYLOAD * 2))


def sign_envelope(payload: bytes, payload_type: str, identity: Identity) -> Envelope:
    return add_signature(Envelope(payload, payload_type, ()), identity)


def add_signature(envelope: Envelope, identity: Identity) -> Envelope:
    sig = EnvelopeSignature(identity.public.key_id,
                            identity.sign(pae(envelope.payload_type, envelope.payload)))
    return Envelope(envelope.payload, envelope.payload_type, envelope.signatures + (sig,))


def verify_envelope(envelope: Envelope,
                    trusted: PublicIdentity | Sequence[PublicIdentity]) -> PublicIdentity:
    """The first trusted identity with a valid signature; raises if there is none."""
    keys = [trusted] if isinstance(trusted, PublicIdentity) else list(trusted)
    message = pae(envelope.payload_type, envelope.payload)
    for key in keys:
        for sig in envelope.signatures:
            if not hmac.compare_digest(sig.keyid, key.key_id):
                continue
            try:
                key.verify(sig.sig, message)
            except VerificationError:
                continue
            return key
    names = ", ".join(k.name for k in keys) or "nobody"
    raise VerificationError(f"envelope: no valid signature by {names}")
