"""Competing claims: when several valid claims name one model, the earliest registration
wins (Adi et al. 2018, §4 "ownership piracy": a thief can embed and register his own
watermark in a stolen model, but only after its release, so his registration is later).

Registrations in one log are ordered by their log index; across logs, by the registry
time in the entries (or, where the arbiter demands them, by witnesses' cosignatures)::

    ranked = rank_claims([report_a, report_b])
    ranked[0]          # the earliest registration among the accepted claims
"""

from __future__ import annotations

from typing import Sequence

from ..errors import MalformedInputError
from .verify import ClaimReport

__all__ = ["rank_claims"]


def rank_claims(reports: Sequence[ClaimReport]) -> list[ClaimReport]:
    """Accepted claims on one suspect, earliest registration first, in the same order
    whatever the order given.

    A log is its key, not its origin name: two logs may share a name, and ranking them
    by index would order entries of different logs (a thief's entry 0 in his own log
    named like the owner's beat the owner's entry 0 when listed first)."""
    accepted = [r for r in reports if r.accepted]
    if len({r.suspect.hex for r in accepted}) > 1:
        raise MalformedInputError("competing claims must name the same suspect model")
    if len({(r.origin, r.log_key) for r in accepted}) <= 1:
        return sorted(accepted, key=lambda r: r.registration_index)
    return sorted(accepted, key=lambda r: (r.registration_time_ms, r.origin, r.log_key,
                                           r.registration_index, r.owner.key_id))
