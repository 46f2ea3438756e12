"""An arbiter's verdict: a second DSSE envelope over the same subject as the claim.

The verdict names the bundle it judged by digest, states the decision with the
recomputed evidence and says whose answers it rests on (the owner's recorded ones, or
the arbiter's own when it re-queried the suspect)::

    envelope = make_verdict(bundle, report, arbiter)
    Path("verdict.json").write_bytes(envelope.to_json())
"""

from __future__ import annotations

from typing import Any

from ..dsse import Envelope, sign_envelope
from ..identity import Identity
from ..wire import Digest, canonical_json
from .bundle import PAYLOAD_TYPE, VERDICT_PREDICATE, ClaimBundle, Statement
from .verify import ClaimReport

__all__ = ["bundle_digest", "make_verdict"]


def bundle_digest(bundle: ClaimBundle) -> Digest:
    """What a verdict names a bundle by: SHA-256 of its envelope's canonical JSON."""
    return Digest.of(canonical_json(bundle.envelope.to_dict()))


def make_verdict(bundle: ClaimBundle, report: ClaimReport | None, arbiter: Identity, *,
                 reasons: tuple[str, ...] = (), checked_with: dict[str, Any] | None = None,
                 competition: dict[str, Any] | None = None) -> Envelope:
    """Sign a verdict; ``report`` is None when the bundle failed a check (see ``reasons``).

    ``checked_with`` says what the arbiter trusted (the log's and witnesses' verifier
    keys, its alpha limit): an origin name alone does not tell two logs apart.
    ``competition`` names the bundles judged together and the winner, so a verdict on a
    later registration cannot be shown without the earlier one that beat it."""
    accepted = report is not None and report.accepted
    predicate: dict[str, Any] = {
        "bundle": bundle_digest(bundle).to_dict(),
        "decision": "accept" if accepted else "reject",
        "reasons": list(reasons),
    }
    if report is not None:
        predicate["report"] = report.to_dict()
    if checked_with is not None:
        predicate["checked_with"] = checked_with
    if competition is not None:
        predicate["competition"] = competition
    statement = Statement(bundle.statement.subject_name, bundle.suspect, VERDICT_PREDICATE,
                          predicate)
    return sign_envelope(canonical_json(statement.to_dict()), PAYLOAD_TYPE, arbiter)
