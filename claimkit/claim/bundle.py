"""Claim bundles: a DSSE envelope over an in-toto Statement v1 about a suspect model.

The subject is the suspect model's digest; the predicate carries everything an arbiter
needs to re-check the claim offline (protocol_spec/bundle.md):

* the verification key and the registry **receipt** of its registration,
* the receipt of the claim **intent**, whose checkpoint fixes the cut-and-choose
  challenge, and a consistency proof from the registration's checkpoint to it,
* the **openings** of the challenged items, the **queries** derived from them and the
  suspect's **answers** as the owner observed them,
* the owner's **evidence** — informational only: the verifier recomputes it;
* for a key whose trigger is drawn from the log, the **trigger draw**: its receipt, the
  opened secret and a consistency proof to the intent's checkpoint (:mod:`.drawn`).

The envelope is signed by the owner's key, the one named in the registration::

    bundle = ClaimBundle.from_json(Path("bundle.json").read_bytes())
    report = verify_claim(bundle, log_key=load_vkey("registry/log.vkey"))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..commitments import ItemOpening
from ..dsse import MAX_ENVELOPE_BYTES, MAX_PAYLOAD, Envelope
from ..errors import MalformedInputError
from ..protocol.keys import VerificationKey
from ..registry.receipt import Receipt
from ..wire import Digest, Fields, b64encode, b64hash, canonical_json, load_json, read_json_file
from .drawn import TriggerDrawOpening

__all__ = [
    "STATEMENT_TYPE",
    "PAYLOAD_TYPE",
    "CLAIM_PREDICATE",
    "VERDICT_PREDICATE",
    "Answers",
    "MAX_BUNDLE_PAYLOAD",
    "check_payload_size",
    "Statement",
    "ClaimPredicate",
    "ClaimBundle",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
CLAIM_PREDICATE = "https://claimkit.dev/claim/v1"
VERDICT_PREDICATE = "https://claimkit.dev/verdict/v1"
OWNER = "owner"
MAX_QUERIES = 100_000
MAX_BUNDLE_BYTES = MAX_ENVELOPE_BYTES
# What an envelope holds besides its base64 payload: payloadType and up to 16 signatures.
ENVELOPE_OVERHEAD = 8 * 1024
# The largest payload whose envelope a verifier still reads (file and payload limits).
MAX_BUNDLE_PAYLOAD = min(MAX_PAYLOAD, (MAX_BUNDLE_BYTES - ENVELOPE_OVERHEAD) // 4 * 3)


def _check_observer(observer: Any, where: str) -> None:
    """A bundle carries the owner's answers only: the owner signs it, so an "arbiter"
    label there would be the owner's word for someone else's observation. An arbiter
    that re-queries the suspect says so in its own report and verdict."""
    if observer != OWNER:
        raise MalformedInputError(f"{where}.observer: expected {OWNER!r}: a bundle carries "
                                  "the owner's answers; an arbiter reports its own in its verdict")


@dataclass(frozen=True)
class Answers:
    """The suspect's answers to the queries, as the owner observed them."""

    observer: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        _check_observer(self.observer, "answers")

    def to_dict(self) -> dict[str, Any]:
        return {"observer": self.observer, "values": list(self.values)}

    @classmethod
    def from_dict(cls, obj: Any, where: str = "answers") -> Answers:
        f = Fields(obj, where)
        observer = f.str("observer", max_len=64)
        _check_observer(observer, where)
        values = tuple(f.list("values", max_items=MAX_QUERIES))
        f.done()
        return cls(observer, values)


def check_payload_size(size: int, what: str = "the bundle's payload") -> None:
    """Refuse a payload of ``size`` bytes whose envelope a verifier would not read (over
    dsse's payload limit, or base64 plus the envelope's rest over the file limit)."""
    if size > MAX_BUNDLE_PAYLOAD:
        raise MalformedInputError(
            f"{what} would be {size / 2**20:.1f} MiB; a verifier reads at most "
            f"{MAX_BUNDLE_PAYLOAD / 2**20:.1f} MiB (a {MAX_BUNDLE_BYTES / 2**20:.0f} MiB "
            f"bundle file): open fewer items")


@dataclass(frozen=True)
class Statement:
    """An in-toto Statement v1 with one subject."""

    subject_name: str
    subject: Digest
    predicate_type: str
    predicate: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.subject_name, "digest": self.subject.to_dict()}],
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        }

    @classmethod
    def from_dict(cls, obj: Any, where: str = "statement") -> Statement:
        f = Fields(obj, where)
        f.str("_type", choices=(STATEMENT_TYPE,))
        subjects = f.list("subject", max_items=1)
        if len(subjects) != 1:
            raise MalformedInputError(f"{where}.subject: expected exactly one subject")
        s = Fields(subjects[0], f"{where}.subject[0]")
        name = s.str("name", max_len=1024)
        digest = s.digest("digest")
        s.done()
        predicate_type = f.str("predicateType", max_len=256)
        predicate = f.obj("predicate")
        f.done()
        return cls(name, digest, predicate_type, predicate)


@dataclass(frozen=True)
class ClaimPredicate:
    verification_key: VerificationKey
    registration: Receipt
    intent: Receipt
    consistency: tuple[bytes, ...]
    openings: tuple[ItemOpening, ...]
    queries: tuple[Any, ...]
    answers: Answers
    evidence: dict[str, Any]
    trigger_draw: TriggerDrawOpening | None = None

    def to_dict(self) -> dict[str, Any]:
        draw = {} if self.trigger_draw is None else {"trigger_draw": self.trigger_draw.to_dict()}
        return {
            "verification_key": self.verification_key.to_dict(),
            "registration": self.registration.to_dict(),
            "intent": self.intent.to_dict(),
            "consistency": [b64encode(h) for h in self.consistency],
            "openings": [o.to_dict() for o in self.openings],
            "queries": list(self.queries),
            "answers": self.answers.to_dict(),
            "evidence": self.evidence,
            **draw,
        }

    @classmethod
    def from_dict(cls, obj: Any, where: str = "predicate") -> ClaimPredicate:
        f = Fields(obj, where)
        vk = VerificationKey.from_dict(f.obj("verification_key"), f.path("verification_key"))
        registration = Receipt.from_dict(f.obj("registration"), f.path("registration"))
        intent = Receipt.from_dict(f.obj("intent"), f.path("intent"))
        consistency = f.each("consistency", b64hash, max_items=128)
        openings = f.each("openings", ItemOpening.from_dict, max_items=MAX_QUERIES)
        queries = tuple(f.list("queries", max_items=MAX_QUERIES))
        answers = Answers.from_dict(f.obj("answers"), f.path("answers"))
        evidence = f.obj("evidence")
        draw = (TriggerDrawOpening.from_dict(f.obj("trigger_draw"), f.path("trigger_draw"))
                if f.has("trigger_draw") else None)
        f.done()
        assert consistency is not None and openings is not None
        return cls(vk, registration, intent, consistency, openings, queries, answers, evidence,
                   draw)


@dataclass(frozen=True)
class ClaimBundle:
    """A parsed claim: the signed envelope and what its payload says."""

    envelope: Envelope
    statement: Statement
    predicate: ClaimPredicate

    @property
    def suspect(self) -> Digest:
        return self.statement.subject

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> ClaimBundle:
        if envelope.payload_type != PAYLOAD_TYPE:
            raise MalformedInputError(f"bundle: payloadType must be {PAYLOAD_TYPE}")
        # The envelope's own payload limit, not load_json's smaller default: every
        # payload an envelope may carry (and make_claim may write) must parse.
        document = load_json(envelope.payload, what="bundle payload", max_bytes=MAX_PAYLOAD)
        try:                                    # bundle.md: the payload is JCS(statement)
            canonical = canonical_json(document) == envelope.payload
        except MalformedInputError:             # e.g. 10**400, which RFC 8785 cannot write
            canonical = False
        if not canonical:
            raise MalformedInputError("bundle payload: not canonical JSON (RFC 8785); a claim "
                                      "is signed over one exact encoding")
        statement = Statement.from_dict(document)
        if statement.predicate_type != CLAIM_PREDICATE:
            raise MalformedInputError(f"bundle: predicateType must be {CLAIM_PREDICATE}")
        return cls(envelope, statement, ClaimPredicate.from_dict(statement.predicate))

    @classmethod
    def from_json(cls, data: bytes | str) -> ClaimBundle:
        return cls.from_envelope(Envelope.from_dict(
            load_json(data, what="bundle", max_bytes=MAX_BUNDLE_BYTES)))

    @classmethod
    def from_file(cls, path: str | Path) -> ClaimBundle:
        return cls.from_envelope(Envelope.from_dict(
            read_json_file(path, max_bytes=MAX_BUNDLE_BYTES)))

    def to_json(self) -> bytes:
        return self.envelope.to_json()
