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

import fcntl
import hmac
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    """The newest verified checkpoint per log origin, kept in a JSON file.

    Several witness processes may share one state file (two `registry cosign` runs at
    once): :meth:`observe` holds an exclusive lock on ``STATE.lock`` from reading the
    file to writing it back, so one run cannot overwrite another's newer checkpoint
    with what it read before, which would let a fork of that log be cosigned later.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen = self._load()

    def _load(self) -> dict[str, bytes]:
        """The remembered notes; none if the file does not exist. A symbolic link is
        refused, dangling or not: a dangling one read as "nothing seen" (every log
        trusted on first use again) and the save then replaced the link by a file."""
        seen: dict[str, bytes] = {}
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return seen
        if not stat.S_ISREG(mode):
            what = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise MalformedInputError(f"{self.path}: the witness state is {what}; give the "
                                      "path of a regular file")
        f = Fields(read_json_file(self.path), str(self.path))
        f.str("type", choices=(STATE_TYPE,))
        logs = f.obj("logs")
        f.done()
        for origin, note in logs.items():   # every note, not only the one cosigned now
            where = f"{self.path}: logs[{origin!r}]"
            if not isinstance(note, str):
                raise MalformedInputError(f"{where}: expected a note")
            try:
                checkpoint = SignedCheckpoint.from_bytes(note.encode("utf-8")).checkpoint
            except MalformedInputError as e:
                raise MalformedInputError(f"{where}: {e}") from None
            if checkpoint.origin != origin:
                raise MalformedInputError(f"{where}: holds a checkpoint of {checkpoint.origin!r}")
            seen[origin] = note.encode("utf-8")
        return seen

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold ``STATE.lock`` exclusively (waiting for another holder) and re-read the
        state under it, so what is written back starts from the newest state."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(f"{self.path}.lock", flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._seen = self._load()
            yield
        finally:
            os.close(fd)    # releases the lock

    def seen(self, origin: str) -> SignedCheckpoint | None:
        note = self._seen.get(origin)
        return None if note is None else SignedCheckpoint.from_bytes(note)

    def observe(self, signed: SignedCheckpoint | Callable[[], SignedCheckpoint],
                log_key: VerifierKey, prove: Prove) -> Checkpoint:
        """Accept ``signed`` as the newest checkpoint of its log, or raise.

        ``prove(size1, size2)`` returns a consistency proof from the log (or a mirror).
        It runs under the state's lock, as does the whole check. ``signed`` may be a
        function that reads the log's head: it is then read under the lock too, so a
        second witness run that cosigned a newer head meanwhile cannot make this one's
        older read look like a rollback (a false accusation, with evidence).
        """
        return self.check(signed, log_key, prove)[1]

    def check(self, signed: SignedCheckpoint | Callable[[], SignedCheckpoint],
              log_key: VerifierKey, prove: Prove) -> tuple[SignedCheckpoint, Checkpoint]:
        """:meth:`observe`, returning the signed checkpoint it checked too (the head the
        function read, for a cosignature)."""
        with self._locked():
            head = signed() if callable(signed) else signed
            return head, self._observe(head, log_key, prove)

    def _observe(self, signed: SignedCheckpoint, log_key: VerifierKey, prove: Prove) -> Checkpoint:
        new = signed.verify(log_key)
        try:     # the state's fault, not the log's: it was blamed ("bad signature by …")
            old_signed = self.seen(new.origin)
            old = None if old_signed is None else old_signed.verify(log_key)
        except (MalformedInputError, VerificationError) as e:
            raise MalformedInputError(
                f"{self.path}: the checkpoint remembered for {new.origin} does not verify "
                f"under the log's key ({e}): the state file is damaged or edited, or the "
                "log's key changed") from None
        if old_signed is not None and old is not None:
            seen_text = old_signed.to_bytes().decode()
            new_text = signed.to_bytes().decode()
            if new.size < old.size:
                raise InconsistentLogError(
                    f"rollback: {new.origin} presents size {new.size} after size {old.size} was seen",
                    seen=seen_text, presented=new_text)
            # A prover that fails (a registry that finds its storage damaged) gives no
            # proof and no evidence: only a proof that fails between the two validly
            # signed checkpoints is a fork. Nothing is cosigned either way.
            growth = old.size != 0 and new.size != old.size
            proof = prove(old.size, new.size) if growth else []
            try:
                if old.size == 0:  # the empty tree is a prefix of every tree
                    if not hmac.compare_digest(old.root_hash, merkle.EMPTY_ROOT):
                        raise VerificationError("empty tree with a non-empty root")
                else:
                    merkle.verify_consistency(old.size, new.size, proof, old.root_hash,
                                              new.root_hash)
            except VerificationError:
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

    def cosign(self, signed: SignedCheckpoint | Callable[[], SignedCheckpoint],
               log_key: VerifierKey, prove: Prove) -> SignedCheckpoint:
        """Check ``signed`` (or the head a function reads, under the state's lock) against
        what this witness saw, then add a timestamped cosignature."""
        head, checkpoint = self.tracker.check(signed, log_key, prove)
        return head.with_signature(cosign(checkpoint, self._signer, int(self._clock())))
