"""Witnessing: remember the newest checkpoint of each log, refuse forks and rollbacks.

A transparency log is trustworthy because it cannot show two different histories to two
people without being caught. A :class:`CheckpointTracker` keeps the newest checkpoint it
has seen per origin; a new checkpoint must be at least as large and provably consistent
with it (RFC 9162 §2.1.4), or it is evidence of misbehaviour and raises
:class:`~claimkit.errors.InconsistentLogError` carrying both notes.

A :class:`Witness` is a tracker with a key: after the check it adds a timestamped
``cosignature/v1`` (C2SP tlog-cosignature), which is how time is attested::

    witness = Witness(Identity.load("arbiter.key", pw), "arbiter.seen")
    cosigned = witness.cosign(reg.latest_checkpoint(), reg.log_key, reg.consistency_proof)
"""

from __future__ import annotations

import hmac
import time
from pathlib import Path
from typing import Callable

from ..errors import InconsistentLogError, MalformedInputError, VerificationError
from ..identity import Identity
from ..wire import Fields, atomic_write, canonical_json, read_json_file
from . import merkle
from .checkpoint import Checkpoint, SignedCheckpoint, cosign
from .note import NoteSigner, VerifierKey

__all__ = ["CheckpointTracker", "Witness"]

STATE_TYPE = "claimkit/witness-state/v1"
Prove = Callable[[int, int], "list[bytes]"]


class CheckpointTracker:
    """The newest verified checkpoint per log origin, kept in a JSON file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen: dict[str, bytes] = {}
        if self.path.exists():
            f = Fields(read_json_file(self.path), str(self.path))
            f.str("type", choices=(STATE_TYPE,))
            logs = f.obj("logs")
            f.done()
            for origin, note in logs.items():
                if not isinstance(note, str):
                    raise MalformedInputError(f"{self.path}: logs.{origin}: expected a note")
                self._seen[origin] = note.encode("utf-8")

    def seen(self, origin: str) -> SignedCheckpoint | None:
        note = self._seen.get(origin)
        return None if note is None else SignedCheckpoint.from_bytes(note)

    def observe(self, signed: SignedCheckpoint, log_key: VerifierKey, prove: Prove) -> Checkpoint:
        """Accept ``signed`` as the newest checkpoint of its log, or raise.

        ``prove(size1, size2)`` returns a consistency proof from the log (or a mirror).
        """
        new = signed.verify(log_key)
        old_signed = self.seen(new.origin)
        if old_signed is not None:
            old = old_signed.verify(log_key)
            seen_text = old_signed.to_bytes().decode()
            new_text = signed.to_bytes().decode()
            if new.size < old.size:
                raise InconsistentLogError(
                    f"rollback: {new.origin} presents size {new.size} after size {old.size} was seen",
                    seen=seen_text, presented=new_text)
            try:
                if old.size == 0:  # the empty tree is a prefix of every tree
                    if not hmac.compare_digest(old.root_hash, merkle.EMPTY_ROOT):
                        raise VerificationError("empty tree with a non-empty root")
                else:
                    proof = [] if new.size == old.size else prove(old.size, new.size)
                    merkle.verify_consistency(old.size, new.size, proof, old.root_hash,
                                              new.root_hash)
            except (VerificationError, MalformedInputError):
                raise InconsistentLogError(
                    f"fork: {new.origin} at size {new.size} is not consistent with the "
                    f"checkpoint of size {old.size} seen before", seen=seen_text,
                    presented=new_text) from None
        self._seen[new.origin] = signed.to_bytes()
        self._save()
        return new

    def _save(self) -> None:
        state = {"type": STATE_TYPE, "logs": {o: n.decode() for o, n in self._seen.items()}}
        atomic_write(self.path, canonical_json(state))


class Witness:
    """A checkpoint tracker that cosigns what it has checked."""

    def __init__(self, identity: Identity, state_path: str | Path, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._signer = NoteSigner.cosigner(identity.public.name, identity.seed)
        self.tracker = CheckpointTracker(state_path)
        self._clock = clock

    @property
    def verifier_key(self) -> VerifierKey:
        return self._signer.verifier_key

    def cosign(self, signed: SignedCheckpoint, log_key: VerifierKey, prove: Prove) -> SignedCheckpoint:
        checkpoint = self.tracker.observe(signed, log_key, prove)
        return signed.with_signature(cosign(checkpoint, self._signer, int(self._clock())))
