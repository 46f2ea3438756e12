"""The leaves of the registry log: signed requests stamped with the registry's time.

Three kinds of request are logged (Adi et al. 2018, §4 "publish vk on a time-stamped
bulletin board before release"; App. A cut-and-choose):

* a **registration** binds an owner's key to a verification-key digest (and, if given,
  the digest of the model or dataset about to be released);
* a **claim intent** announces, before any item is opened, that the owner will claim
  against a suspect model. The cut-and-choose challenge is derived from the tree head
  that ends with this very entry and the log key's signature on it, which nobody can
  compute before the log signs, so every attempt is public and cannot be ground;
* a **trigger draw** asks the log to fix the trigger of a key whose params commit to a
  secret (UBW-C's ``trigger_commitment``): the tree head that ends with the entry and
  its log signature supply the randomness, and the registry lets each digest be drawn
  once, so an owner cannot draw a key's trigger again and keep the best
  (docs/proposals/ubw-c-key-specific-test.md).

Example::

    draw = TriggerDraw(owner.public, "ubw-c", vk.digest)
    receipt = registry.draw_trigger(draw, sign_request(draw, owner))

Each request is signed by the owner over ``b"claimkit/request/v1\\n" || JCS(request)``;
the registry adds the time (UNIX milliseconds, never decreasing along the log) and, for
an intent, the items that earlier claims on the same registration already opened.
The leaf data is the RFC 8785 canonical JSON of the whole entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Union

from ..challenge import challenge_seed, select_items
from ..errors import MalformedInputError, VerificationError
from ..identity import Identity, PublicIdentity
from ..wire import Digest, Fields, b64encode, canonical_json, load_json
from . import merkle
from .checkpoint import SignedCheckpoint
from .note import VerifierKey

__all__ = [
    "REQUEST_DOMAIN",
    "ENTRY_TYPE",
    "Registration",
    "ClaimIntent",
    "TriggerDraw",
    "Request",
    "LogEntry",
    "sign_request",
    "claim_challenge",
    "opened_items",
]

REQUEST_DOMAIN = b"claimkit/request/v1\n"
ENTRY_TYPE = "claimkit/log-entry/v1"
MAX_ITEMS = 1 << 20
MAX_ENTRY_BYTES = 1 << 20
MAX_INDEX = (1 << 53) - 1     # JCS writes integers exactly only up to 2^53 - 1
MAX_COUNTER = 1 << 32
SCHEME_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def _owner_to_dict(owner: PublicIdentity) -> dict[str, str]:
    return {"name": owner.name, "public_key": b64encode(owner.public_key)}


def _owner_from_dict(obj: Any, where: str) -> PublicIdentity:
    f = Fields(obj, where)
    name = f.str("name", max_len=64)
    key = f.bytes("public_key", size=32)
    f.done()
    return PublicIdentity(name, key)


def _check_int(value: object, lo: int, hi: int, where: str) -> None:
    """An int in [lo, hi]; bool and float are refused, since JSON would write ``true`` or
    ``2.5`` into the signed leaf and the entry could never be parsed back."""
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise MalformedInputError(f"{where}: expected an integer within [{lo}, {hi}]")


def _check_types(request: Request, **fields: type) -> None:
    for name, kind in fields.items():
        if not isinstance(getattr(request, name), kind):
            raise MalformedInputError(f"{request.kind}.{name}: expected a {kind.__name__}")


def _scheme(name: str, where: str) -> str:
    if not name or len(name) > 32 or not set(name) <= SCHEME_NAME_CHARS:
        raise MalformedInputError(f"{where}: scheme names are 1-32 of [a-z0-9-]")
    return name


class _Signed:
    """What the three request kinds share: their canonical JSON, computed once (a
    request is immutable), which the owner signs and the log entry embeds."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @cached_property
    def canonical(self) -> bytes:
        return canonical_json(self.to_dict())


@dataclass(frozen=True)
class Registration(_Signed):
    """An owner's commitment to a verification key, logged before release."""

    owner: PublicIdentity
    scheme: str
    verification_key: Digest
    items: int
    subject: Digest | None = None

    kind = "registration"

    def __post_init__(self) -> None:
        _check_types(self, owner=PublicIdentity, scheme=str, verification_key=Digest)
        if self.subject is not None:
            _check_types(self, subject=Digest)
        _scheme(self.scheme, "registration.scheme")
        _check_int(self.items, 1, MAX_ITEMS, "registration.items")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "owner": _owner_to_dict(self.owner),
            "scheme": self.scheme,
            "verification_key": self.verification_key.to_dict(),
            "items": self.items,
        }
        if self.subject is not None:
            out["subject"] = self.subject.to_dict()
        return out

    @classmethod
    def from_fields(cls, f: Fields) -> Registration:
        owner = _owner_from_dict(f.obj("owner"), f.path("owner"))
        scheme = _scheme(f.str("scheme", max_len=32), f.path("scheme"))
        vk = f.digest("verification_key")
        items = f.int("items", lo=1, hi=MAX_ITEMS)
        subject = f.digest("subject", optional=True)
        return cls(owner, scheme, vk, items, subject)


@dataclass(frozen=True)
class ClaimIntent(_Signed):
    """The announcement of claim number ``counter`` against ``suspect``, opening ``open`` items."""

    owner: PublicIdentity
    registration_index: int
    registration_entry: Digest
    suspect: Digest
    counter: int
    open: int

    kind = "claim-intent"

    def __post_init__(self) -> None:
        _check_types(self, owner=PublicIdentity, registration_entry=Digest, suspect=Digest)
        _check_int(self.registration_index, 0, MAX_INDEX, "claim intent: registration index")
        _check_int(self.counter, 0, MAX_COUNTER, "claim intent: counter")
        _check_int(self.open, 1, MAX_ITEMS, "claim intent: open")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "owner": _owner_to_dict(self.owner),
            "registration": {"index": self.registration_index,
                             "entry": self.registration_entry.to_dict()},
            "suspect": self.suspect.to_dict(),
            "counter": self.counter,
            "open": self.open,
        }

    @classmethod
    def from_fields(cls, f: Fields) -> ClaimIntent:
        owner = _owner_from_dict(f.obj("owner"), f.path("owner"))
        reg = Fields(f.obj("registration"), f.path("registration"))
        index = reg.int("index")
        entry = reg.digest("entry")
        reg.done()
        suspect = f.digest("suspect")
        counter = f.int("counter", hi=MAX_COUNTER)
        k = f.int("open", lo=1, hi=MAX_ITEMS)
        return cls(owner, index, entry, suspect, counter, k)


@dataclass(frozen=True)
class TriggerDraw(_Signed):
    """A request to draw the trigger of the key ``verification_key`` from the log.

    The tree head that ends with this entry and the log's signature on it fix the
    trigger, with a secret the key's params commit to; the registry logs one draw per
    verification-key digest.
    """

    owner: PublicIdentity
    scheme: str
    verification_key: Digest

    kind = "trigger-draw"

    def __post_init__(self) -> None:
        _check_types(self, owner=PublicIdentity, scheme=str, verification_key=Digest)
        _scheme(self.scheme, "trigger-draw.scheme")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "owner": _owner_to_dict(self.owner),
            "scheme": self.scheme,
            "verification_key": self.verification_key.to_dict(),
        }

    @classmethod
    def from_fields(cls, f: Fields) -> TriggerDraw:
        owner = _owner_from_dict(f.obj("owner"), f.path("owner"))
        scheme = _scheme(f.str("scheme", max_len=32), f.path("scheme"))
        return cls(owner, scheme, f.digest("verification_key"))


Request = Union[Registration, ClaimIntent, TriggerDraw]
_KINDS: dict[str, type[Registration] | type[ClaimIntent] | type[TriggerDraw]] = {
    "registration": Registration,
    "claim-intent": ClaimIntent,
    "trigger-draw": TriggerDraw,
}


def request_from_dict(obj: Any, where: str = "request") -> Request:
    f = Fields(obj, where)
    kind = f.str("kind", choices=tuple(_KINDS))
    request = _KINDS[kind].from_fields(f)
    f.done()
    return request


def signed_bytes(request: Request) -> bytes:
    """The bytes the owner signs: a domain tag, then the request's canonical JSON."""
    return REQUEST_DOMAIN + request.canonical


def sign_request(request: Request, identity: Identity) -> bytes:
    if identity.public.public_key != request.owner.public_key:
        raise MalformedInputError("the request names another owner than the signing identity")
    return identity.sign(signed_bytes(request))


@dataclass(frozen=True)
class LogEntry:
    """One leaf of the log: a signed request, its registry time and registry notes."""

    request: Request
    signature: bytes
    time_ms: int
    spent: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.signature) != 64:
            raise MalformedInputError("entry.signature: expected 64 bytes")
        if not 0 <= self.time_ms < 1 << 53:
            raise MalformedInputError("entry.time_ms: out of range")
        is_intent = isinstance(self.request, ClaimIntent)
        if is_intent != (self.spent is not None):
            raise MalformedInputError("entry.spent: present exactly on claim intents")
        if self.spent is not None and list(self.spent) != sorted(set(self.spent)):
            raise MalformedInputError("entry.spent: must be strictly increasing")

    @property
    def kind(self) -> str:
        return self.request.kind

    def verify_signature(self) -> None:
        """Raise unless the owner named in the request signed it."""
        try:
            self.request.owner.verify(self.signature, signed_bytes(self.request))
        except VerificationError:
            raise VerificationError("log entry: the owner's signature on the request is invalid") from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": ENTRY_TYPE,
            "request": self.request.to_dict(),
            "signature": b64encode(self.signature),
            "time_ms": self.time_ms,
        }
        if self.spent is not None:
            out["spent"] = list(self.spent)
        return out

    def to_bytes(self) -> bytes:
        """The leaf data: canonical JSON of the entry.

        Assembled around the request's cached canonical bytes: the members are already
        in RFC 8785 order (request < signature < spent < time_ms < type) and every other
        value is ASCII that JCS writes verbatim. Tests check it equals ``JCS(to_dict())``.
        """
        spent = b"" if self.spent is None else (
            b',"spent":[' + ",".join(map(str, self.spent)).encode() + b"]")
        return (b'{"request":' + self.request.canonical + b',"signature":"'
                + b64encode(self.signature).encode() + b'"' + spent + b',"time_ms":'
                + str(self.time_ms).encode() + b',"type":"' + ENTRY_TYPE.encode() + b'"}')

    @property
    def digest(self) -> Digest:
        return Digest.of(self.to_bytes())

    @property
    def leaf_hash(self) -> bytes:
        return merkle.leaf_hash(self.to_bytes())

    @classmethod
    def from_dict(cls, obj: Any, where: str = "entry") -> LogEntry:
        f = Fields(obj, where)
        f.str("type", choices=(ENTRY_TYPE,))
        request = request_from_dict(f.obj("request"), f.path("request"))
        signature = f.bytes("signature", size=64)
        time_ms = f.int("time_ms", hi=(1 << 53) - 1)
        spent_list = f.list("spent", max_items=MAX_ITEMS, optional=True)
        f.done()
        spent = None
        if spent_list is not None:
            if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < MAX_ITEMS
                       for i in spent_list):
                raise MalformedInputError(f"{where}.spent: expected item indices")
            spent = tuple(spent_list)
        return cls(request, signature, time_ms, spent)

    @classmethod
    def from_bytes(cls, data: bytes) -> LogEntry:
        """Parse leaf data; it must be exactly the canonical form (one entry, one leaf hash)."""
        entry = cls.from_dict(load_json(data, what="log entry", max_bytes=MAX_ENTRY_BYTES))
        if entry.to_bytes() != data:
            raise MalformedInputError("log entry: not in canonical JSON form")
        return entry


def claim_challenge(registration: Registration, intent_entry: LogEntry,
                    checkpoint: SignedCheckpoint, log_key: VerifierKey) -> bytes:
    """The challenge seed of a claim intent (protocol_spec/challenge.md §Seed): it selects
    the items a claim opens and, for a UBW-C key with fresh triggers, draws those.

    ``checkpoint`` is the signed tree head that ends with the intent entry itself; its
    log signature, checked under ``log_key``, is part of the seed.
    """
    intent = intent_entry.request
    assert isinstance(intent, ClaimIntent)
    cp = checkpoint.checkpoint
    return challenge_seed(vk=registration.verification_key.value, origin=cp.origin,
                          size=cp.size, root=cp.root_hash,
                          signature=checkpoint.log_signature(log_key),
                          suspect=intent.suspect.value, counter=intent.counter)


def opened_items(registration: Registration, intent_entry: LogEntry,
                 checkpoint: SignedCheckpoint, log_key: VerifierKey) -> tuple[int, ...]:
    """The items a claim intent opens: its challenge over the unspent items.

    ``checkpoint`` is the signed tree head that ends with the intent entry itself.
    """
    intent = intent_entry.request
    assert isinstance(intent, ClaimIntent)
    seed = claim_challenge(registration, intent_entry, checkpoint, log_key)
    return select_items(seed, items=registration.items, spent=intent_entry.spent or (),
                        k=intent.open)
