"""The registry: an append-only, signed, timestamped log of registrations, claims and
trigger draws.

The trust logic lives in :mod:`merkle` (hashing and proofs), :mod:`checkpoint` and
:mod:`note` (C2SP signed checkpoints); this module strings them together over a
:class:`~claimkit.registry.store.Store`::

    reg = Registry.init("reg", origin="example.org/claimkit", passphrase="…")
    receipt = reg.register(request, signature)        # owner-signed Registration
    receipt.verify(reg.log_key)                       # anyone, offline

Registrations may be appended in batches; a claim intent (:meth:`Registry.announce_claim`)
and a trigger draw (:meth:`Registry.draw_trigger`) are each appended alone, so the
checkpoint that ends with the entry fixes its challenge or its trigger. A verification
key is drawn once: its draw row's indexed ``ref`` column holds
:func:`~claimkit.registry.store.draw_ref` of the key's digest, which finds the earlier
draws to compare in full without a schema change.

Every write transaction ends with a checkpoint signed by the log key and cosigned, with
the time, by the registry's time key (C2SP tlog-cosignature). A receipt is the entry
with a C2SP ``tlog-proof@v1`` (index, inclusion path, that signed checkpoint).

Files in a registry directory: ``registry.db`` (SQLite, WAL), ``log.key`` (the
encrypted Ed25519 seed, mode 0600), ``log.vkey`` and ``time.vkey`` (the C2SP verifier
keys of the checkpoint signer and of the time cosigner, public).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MalformedInputError, RegistryError, VerificationError
from ..identity import Identity
from ..wire import Digest, atomic_write
from . import merkle
from .checkpoint import Checkpoint, SignedCheckpoint, cosign, verify_cosignature
from .entries import ClaimIntent, LogEntry, Registration, Request, TriggerDraw, opened_items
from .note import NoteSigner, VerifierKey, sign_note
from .store import MAX_SQL_INT, Store, draw_ref
from .receipt import Receipt, load_vkey
from .tlog_proof import TlogProof

__all__ = ["Registry", "Appended", "AuditReport", "AlreadyDrawn"]

DB_NAME = "registry.db"
KEY_NAME = "log.key"
VKEY_NAME = "log.vkey"
TIME_VKEY_NAME = "time.vkey"
_TIME_KEY_DOMAIN = b"claimkit/registry-time-key/v1\n"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _index(value: object, what: str) -> int:
    """An index or size from a caller: an int SQLite can hold, so a huge number from the
    command line is malformed input rather than an OverflowError."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SQL_INT:
        raise MalformedInputError(f"{what}: expected an integer in [0, 2^63-1]")
    return value


def _time_signer(origin: str, seed: bytes) -> NoteSigner:
    """The time cosigner: its own key, derived from the log seed so one file is backed up."""
    derived = hashlib.sha256(_TIME_KEY_DOMAIN + seed).digest()
    return NoteSigner.cosigner(f"{origin}/time", derived)


class AlreadyDrawn(RegistryError):
    """A trigger draw of a key that was drawn before, at entry ``index``."""

    def __init__(self, verification_key: Digest, index: int) -> None:
        super().__init__(f"trigger draw: verification key {verification_key.hex[:16]}… was "
                         f"already drawn at entry {index}")
        self.index = index


@dataclass(frozen=True)
class Appended:
    """Entries ``first_index .. first_index + count - 1`` under ``checkpoint``."""

    first_index: int
    count: int
    checkpoint: SignedCheckpoint


@dataclass(frozen=True)
class AuditReport:
    size: int
    checkpoints: int
    registrations: int
    claims: int
    draws: int
    root_hash: bytes
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "size": self.size, "checkpoints": self.checkpoints,
                "registrations": self.registrations, "claims": self.claims,
                "draws": self.draws, "root_hash": self.root_hash.hex(),
                "problems": list(self.problems)}


class Registry:
    """A registry directory opened for reading, or for writing when given the passphrase."""

    def __init__(self, directory: Path, store: Store, log_key: VerifierKey,
                 time_key: VerifierKey, signer: NoteSigner | None,
                 time_signer: NoteSigner | None, clock: Callable[[], float]) -> None:
        self.directory = directory
        self.store = store
        self.log_key = log_key
        self.time_key = time_key
        self._signer = signer
        self._time_signer = time_signer
        self._clock = clock
        self._frontier: merkle.Frontier | None = None
        # The last checkpoint note this object stored and its time cosignature, so the
        # next append need not parse and verify it again (see _sign_checkpoint).
        self._cosigned: tuple[bytes, int] | None = None

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def init(cls, directory: str | Path, *, origin: str, passphrase: str,
             clock: Callable[[], float] = time.time, key_strength: str = "interactive",
             log_seed: bytes | None = None) -> Registry:
        """Create a new registry: database, encrypted log key, public verifier keys.

        ``log_seed`` (32 bytes) fixes the log key, for tests and vectors that must replay
        a log exactly (its signatures, and so every challenge drawn from them); a real
        registry leaves it None and draws a fresh key.

        It is built in a hidden sibling directory renamed into place at the end, so a
        crash leaves no registry or a whole one: never key files without a database,
        which neither ``init`` nor ``open`` would accept. DIRECTORY may exist if empty.
        """
        directory = Path(directory)
        target = Path(os.path.abspath(directory))
        if target.exists():
            if (target / DB_NAME).exists() or (target / KEY_NAME).exists():
                raise MalformedInputError(f"{directory} already holds a registry")
            if not target.is_dir() or any(target.iterdir()):
                raise MalformedInputError(f"{directory} exists and is not an empty directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".{target.name}.init-{secrets.token_hex(4)}"
        staging.mkdir()
        try:
            signer, time_signer = cls._build(staging, origin, passphrase, key_strength, clock,
                                             log_seed)
            try:
                os.rename(staging, target)  # replaces an empty directory, nothing else
            except OSError as e:  # e.g. another init filled it meanwhile
                raise RegistryError(f"cannot create the registry in {directory}: "
                                    f"{e.strerror}") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(target.parent)
        return cls(directory, Store(target / DB_NAME), signer.verifier_key,
                   time_signer.verifier_key, signer, time_signer, clock)

    @classmethod
    def _build(cls, directory: Path, origin: str, passphrase: str, key_strength: str,
               clock: Callable[[], float], log_seed: bytes | None) -> tuple[NoteSigner, NoteSigner]:
        """Write a complete registry into ``directory`` (the staging one) and close it."""
        identity = Identity.generate("log", seed=log_seed)
        signer = NoteSigner(origin, identity.seed)
        time_signer = _time_signer(origin, identity.seed)
        identity.save(directory / KEY_NAME, passphrase, strength=key_strength)
        (directory / "log.pub").unlink(missing_ok=True)  # the vkey files are the public halves
        atomic_write(directory / VKEY_NAME, (signer.verifier_key.to_vkey() + "\n").encode())
        atomic_write(directory / TIME_VKEY_NAME,
                     (time_signer.verifier_key.to_vkey() + "\n").encode())
        store = Store(directory / DB_NAME, create=True)
        try:
            with store.transaction():
                store.set_meta("origin", origin)
            reg = cls(directory, store, signer.verifier_key, time_signer.verifier_key, signer,
                      time_signer, clock)
            with store.transaction():
                reg._sign_checkpoint(0, merkle.EMPTY_ROOT)
        finally:
            store.close()  # folds the WAL into registry.db before the rename
        _fsync_dir(directory)
        return signer, time_signer

    @classmethod
    def open(cls, directory: str | Path, *, passphrase: str | None = None,
             clock: Callable[[], float] = time.time) -> Registry:
        """Open a registry; without a passphrase it can read, prove and audit, not append."""
        directory = Path(directory)
        if not (directory / DB_NAME).exists():
            # a wrong path is bad input (exit 2), not a refused operation
            raise MalformedInputError(f"{directory}: no registry here (run `claimkit registry "
                                      "init`)")
        log_key = load_vkey(directory / VKEY_NAME)
        time_key = load_vkey(directory / TIME_VKEY_NAME)
        store = Store(directory / DB_NAME)
        if store.meta("origin") != log_key.name:
            raise RegistryError(f"{directory}: log.vkey does not belong to this registry")
        signer = time_signer = None
        if passphrase is not None:
            identity = Identity.load(directory / KEY_NAME, passphrase)
            signer = NoteSigner(log_key.name, identity.seed)
            time_signer = _time_signer(log_key.name, identity.seed)
            if signer.verifier_key != log_key:
                raise RegistryError(f"{directory}: log.key does not match log.vkey")
        return cls(directory, store, log_key, time_key, signer, time_signer, clock)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def origin(self) -> str:
        return self.log_key.name

    @property
    def size(self) -> int:
        return self.store.size()

    # -- writing ----------------------------------------------------------------------
    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _sign_checkpoint(self, size: int, root: bytes, last_time_ms: int = 0) -> SignedCheckpoint:
        """Sign and time-cosign the tree head, in the caller's transaction.

        The cosignature's time is never before the previous checkpoint's nor before the
        second of the newest entry's ``time_ms``, even with the clock set back: it attests
        that the registry had seen these entries by then. Seconds are truncated, as every
        cosigner's are (``int(time.time())``); rounding up would date it in the future.
        """
        if self._signer is None or self._time_signer is None:
            raise RegistryError("the registry was opened read-only (no passphrase for log.key)")
        checkpoint = Checkpoint(self.origin, size, root)
        signed = SignedCheckpoint(checkpoint, sign_note(checkpoint.to_text(), self._signer))
        previous = self.store.checkpoint()
        if previous is None:
            floor = 0
        elif self._cosigned is not None and previous == self._cosigned[0]:
            floor = self._cosigned[1]      # ours, unchanged: no need to parse and verify it
        else:
            floor = verify_cosignature(SignedCheckpoint.from_bytes(previous), self.time_key)
        timestamp = max(int(self._clock()), floor, last_time_ms // 1000)
        signed = signed.with_signature(cosign(checkpoint, self._time_signer, timestamp))
        note = signed.to_bytes()
        self.store.put_checkpoint(size, note)
        self._cosigned = (note, timestamp)
        return signed

    def _frontier_at(self, size: int) -> merkle.Frontier:
        """The tree's right edge at ``size``: from this process's cache when no other
        writer appended since (an append-only log of equal size is the same log),
        otherwise read from the store (popcount(size) nodes)."""
        cached = self._frontier
        if cached is not None and cached.size == size:
            return merkle.Frontier(size, cached.nodes)
        frontier = merkle.Frontier.load(size, self.store.read_nodes)
        if size:
            self._check_head(frontier)
        return frontier

    def _check_head(self, frontier: merkle.Frontier) -> None:
        """The right edge read from the store must give the root the log last signed:
        a damaged node there would otherwise go into the next checkpoint, which then
        forks the log's own history (audit names the node; an append did not ask it)."""
        note = self.store.checkpoint(frontier.size)
        try:
            signed = None if note is None else SignedCheckpoint.from_bytes(note)
            head = None if signed is None else signed.verify(self.log_key)
        except (MalformedInputError, VerificationError):
            head = None
        if head is None or not hmac.compare_digest(head.root_hash, frontier.root()):
            raise RegistryError(f"the stored tree of {frontier.size} entries does not give the "
                                "root of its signed checkpoint (damaged storage): nothing was "
                                "appended; run claimkit registry audit")

    def _last_receipt(self, entry: LogEntry, frontier: merkle.Frontier,
                      signed: SignedCheckpoint) -> Receipt:
        """Receipt for the newest entry: its inclusion path is the frontier itself."""
        known = dict(frontier.nodes)

        def read(ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
            missing = [n for n in ids if n not in known]
            return {**known, **self.store.read_nodes(missing)} if missing else known

        index = frontier.size - 1
        proof = merkle.inclusion_proof(index, frontier.size, read)
        return Receipt(entry, TlogProof(index, tuple(proof), signed, None))

    def append(self, requests: Sequence[tuple[Request, bytes]], *,
               signatures_checked: bool = False) -> Appended:
        """Append owner-signed registrations in one transaction under one checkpoint.

        Returns the indices written and the checkpoint; receipts are made on demand
        (:meth:`receipt`). ``signatures_checked=True`` skips the Ed25519 check of each
        request, for callers that already checked them (an HTTP front end verifying in
        parallel, an import). Claim intents go through :meth:`announce_claim`, trigger
        draws through :meth:`draw_trigger`.
        """
        appended, _, _ = self._append(requests, signatures_checked)
        return appended

    def _append(self, requests: Sequence[tuple[Request, bytes]], signatures_checked: bool
                ) -> tuple[Appended, LogEntry, merkle.Frontier]:
        if not requests:
            raise MalformedInputError("nothing to append")
        for request, _ in requests:
            if not isinstance(request, Registration):
                raise MalformedInputError("append takes registrations; use announce_claim or "
                                         "draw_trigger")
        with self.store.transaction():
            size, last_time = self.store.head()
            frontier = self._frontier_at(size)
            time_ms = max(self._now_ms(), last_time)
            rows, nodes = [], []
            leaf_hash = merkle.leaf_hash
            for request, signature in requests:
                entry = LogEntry(request, signature, time_ms)
                if not signatures_checked:
                    entry.verify_signature()
                data = entry.to_bytes()
                nodes.extend(frontier.append(leaf_hash(data)))
                rows.append((size + len(rows), data, "registration", None, time_ms))
            self.store.append(rows, nodes)
            signed = self._sign_checkpoint(frontier.size, frontier.root(), time_ms)
        self._frontier = frontier
        return Appended(size, len(rows), signed), entry, frontier

    def register(self, request: Registration, signature: bytes) -> Receipt:
        """Log one owner-signed registration durably and return its receipt."""
        appended, entry, frontier = self._append([(request, signature)], False)
        return self._last_receipt(entry, frontier, appended.checkpoint)

    def announce_claim(self, intent: ClaimIntent, signature: bytes) -> Receipt:
        """Log a claim intent; its receipt's checkpoint ends with it and fixes the challenge.

        The registry checks the intent against its registration (same owner, next
        counter, enough unopened items), records the items already spent by earlier
        claims in the entry, derives this claim's challenge and marks its items spent.
        """
        if not isinstance(intent, ClaimIntent):
            raise MalformedInputError("announce_claim takes a claim intent")
        with self.store.transaction():
            size, last_time = self.store.head()
            registration = self._registration(intent.registration_index)
            reg_entry, reg_bytes = registration
            if not Digest.of(reg_bytes).matches(intent.registration_entry):
                raise RegistryError("claim intent: the registration entry digest does not match")
            reg = reg_entry.request
            assert isinstance(reg, Registration)
            if reg.owner.public_key != intent.owner.public_key:
                raise RegistryError("claim intent: only the registered owner can claim")
            expected = self.store.intents_for(intent.registration_index)
            if intent.counter != expected:
                raise RegistryError(
                    f"claim intent: counter must be {expected} (claims made so far)")
            spent = self._spent_before(intent.registration_index, reg, expected)
            if intent.open > reg.items - len(spent):
                raise RegistryError(f"claim intent: only {reg.items - len(spent)} of "
                                    f"{reg.items} items remain unopened")
            entry = LogEntry(intent, signature, max(self._now_ms(), last_time), spent=spent)
            entry.verify_signature()
            frontier = self._append_one(size, entry)
            signed = self._sign_checkpoint(size + 1, frontier.root(), entry.time_ms)
            opened = opened_items(reg, entry, signed, self.log_key)   # its seed needs the signature
            self.store.add_spent(intent.registration_index, opened, size)
        self._frontier = frontier
        return self._last_receipt(entry, frontier, signed)

    def _spent_before(self, index: int, reg: Registration, claims: int) -> tuple[int, ...]:
        """The items the registration's earlier claims opened: the spent table, checked
        against the signed log before it is signed into the next intent. The last
        intent's own spent list and the items its challenge opened must be the table's
        (the audit checks every intent; a damaged table was signed and only it noticed)."""
        spent = self.store.spent(index)
        expected: tuple[int, ...] = ()
        if claims:
            last = self.store.last_intent(index)
            try:
                entry = None if last is None else self.entry(last)
                intent = None if entry is None else entry.request
                if entry is None or not isinstance(intent, ClaimIntent) \
                        or intent.registration_index != index or intent.counter != claims - 1:
                    raise VerificationError("the last claim intent is not where the index says")
                opened = opened_items(reg, entry, self.checkpoint_at(last + 1), self.log_key)
                expected = tuple(sorted(set(entry.spent or ()) | set(opened)))
            except (MalformedInputError, VerificationError) as e:
                raise RegistryError(f"the log's last claim on registration {index} cannot be "
                                    f"read back ({e}; damaged storage): run claimkit registry "
                                    "audit") from None
        if spent != expected:
            raise RegistryError(f"the spent table differs from the items registration {index}'s "
                                "claims opened (damaged storage): run claimkit registry audit")
        return spent

    def draw_trigger(self, request: TriggerDraw, signature: bytes) -> Receipt:
        """Log a trigger draw alone; its receipt's checkpoint ends with it and fixes the trigger.

        A verification key is drawn once: a draw naming the digest of a key drawn before,
        by any owner, is refused: a key's trigger is never drawn twice.
        """
        if not isinstance(request, TriggerDraw):
            raise MalformedInputError("draw_trigger takes a trigger draw")
        with self.store.transaction():
            size, last_time = self.store.head()
            entry = LogEntry(request, signature, max(self._now_ms(), last_time))
            entry.verify_signature()
            earlier = self._drawn_at(request.verification_key)
            if earlier is not None:
                raise AlreadyDrawn(request.verification_key, earlier)
            frontier = self._append_one(size, entry)
            signed = self._sign_checkpoint(size + 1, frontier.root(), entry.time_ms)
        self._frontier = frontier
        return self._last_receipt(entry, frontier, signed)

    def _append_one(self, size: int, entry: LogEntry) -> merkle.Frontier:
        """Write ``entry`` at index ``size`` with its tree nodes, in the caller's
        transaction; the frontier returned ends with it, for the caller to sign."""
        data = entry.to_bytes()
        frontier = self._frontier_at(size)
        nodes = frontier.append(merkle.leaf_hash(data))
        self.store.append([(size, data, entry.kind, _ref(entry.request), entry.time_ms)], nodes)
        return frontier

    def _drawn_at(self, verification_key: Digest) -> int | None:
        """The index of the trigger draw of this verification-key digest, if there is one."""
        for index, data in self.store.trigger_draws(verification_key.value):
            try:
                drawn = LogEntry.from_bytes(data).request
            except MalformedInputError:  # cannot tell it from a draw of this key: refuse
                raise RegistryError(f"registry database: entry {index} is damaged "
                                    "(run `claimkit registry audit`)") from None
            if isinstance(drawn, TriggerDraw) and drawn.verification_key.matches(verification_key):
                return index
        return None

    def _registration(self, index: int) -> tuple[LogEntry, bytes]:
        if not 0 <= index < self.store.size():
            raise RegistryError(f"claim intent: the log has no entry {index}")
        data = self.store.entry(index)
        entry = LogEntry.from_bytes(data)
        if not isinstance(entry.request, Registration):
            raise RegistryError(f"claim intent: entry {index} is not a registration")
        return entry, data

    def add_cosignature(self, signed: SignedCheckpoint, witness_key: VerifierKey) -> None:
        """Store a witness's cosignatures on a checkpoint this registry signed.

        Lines by the log key or the time key (same name or key ID) are refused: stored,
        they would replace the registry's own valid lines and break every later receipt.
        Every new line must be by ``witness_key`` and verify under it.
        """
        own = (self.log_key, self.time_key)

        def is_own(name: str, key_id: bytes) -> bool:
            return any(name == k.name or key_id == k.key_hash for k in own)

        with self.store.transaction():
            stored = self.store.checkpoint(signed.checkpoint.size)
            if stored is None:
                raise RegistryError(f"no checkpoint of size {signed.checkpoint.size} to cosign")
            current = SignedCheckpoint.from_bytes(stored)
            if current.checkpoint != signed.checkpoint:
                raise RegistryError("the cosigned checkpoint differs from the stored one")
            new = [sig for sig in signed.note.signatures if sig not in current.note.signatures]
            for sig in new:
                if is_own(sig.name, sig.key_hash):
                    raise RegistryError(f"cosignature by {sig.name}: only the registry signs "
                                        "with its log and time keys")
            if is_own(witness_key.name, witness_key.key_hash):
                raise RegistryError(f"{witness_key.name} is the registry's own key, "
                                    "not a witness's")
            for sig in new:
                if not witness_key.matches(sig):
                    raise RegistryError(f"cosignature by {sig.name}: not by the witness "
                                        f"key {witness_key.name}")
            verify_cosignature(signed, witness_key)
            merged = current
            for sig in new:
                merged = merged.with_signature(sig)
            self.store.put_checkpoint(signed.checkpoint.size, merged.to_bytes())

    # -- reading ----------------------------------------------------------------------
    def claims_made(self, registration_index: int) -> int:
        """How many claim intents name this registration: the next claim's counter."""
        return self.store.intents_for(_index(registration_index, "registration index"))

    def latest_checkpoint(self) -> SignedCheckpoint:
        """The newest signed checkpoint, checked before it is handed out: signed by the
        log key and covering every stored entry. A deleted entry or checkpoint row would
        otherwise show a witness a head beyond the log or behind what it saw (a false
        fork or rollback, accusing an honest operator of its damaged disk)."""
        size, data = self.store.latest()
        if data is None:
            raise RegistryError("the registry has no checkpoint")
        try:
            signed = SignedCheckpoint.from_bytes(data)
            head = signed.verify(self.log_key)
        except (MalformedInputError, VerificationError) as e:
            raise RegistryError(f"the latest stored checkpoint does not verify ({e}; damaged "
                                "storage): run claimkit registry audit") from None
        if head.size != size:
            raise RegistryError(f"the latest stored checkpoint (size {head.size}) does not cover "
                                f"the {size} stored entries (damaged storage): run claimkit "
                                "registry audit")
        return signed

    def checkpoint_at(self, size: int) -> SignedCheckpoint:
        data = self.store.checkpoint(_index(size, "checkpoint size"))
        if data is None:
            raise MalformedInputError(f"no checkpoint of size {size} was signed")
        return SignedCheckpoint.from_bytes(data)

    def entry(self, index: int) -> LogEntry:
        return LogEntry.from_bytes(self.store.entry(_index(index, "entry index")))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        return merkle.inclusion_proof(index, size, self.store.read_nodes)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """An RFC 9162 consistency proof built from stored nodes, verified before it is
        handed out between the log's own signed checkpoints of the two sizes (for a size
        it never signed, the root its nodes give). A damaged node would otherwise give a
        witness a failing proof, which it must take for a fork."""
        self._check_size(size2)
        proof = merkle.consistency_proof(size1, size2, self.store.read_nodes)
        try:
            merkle.verify_consistency(size1, size2, proof, self._stored_root(size1),
                                      self._stored_root(size2))
        except (MalformedInputError, VerificationError) as e:
            raise RegistryError(f"the stored log does not prove its tree of size {size1} "
                                f"consistent with that of size {size2} ({e}; damaged "
                                "storage): run claimkit registry audit") from None
        return proof

    def _stored_root(self, size: int) -> bytes:
        """The root of the stored checkpoint of ``size`` (signature checked), or, when the
        log signed none of that size, the root of its stored nodes."""
        note = self.store.checkpoint(size)
        if note is None:
            return merkle.root_at(size, self.store.read_nodes)
        head = SignedCheckpoint.from_bytes(note).verify(self.log_key)
        if head.size != size:
            raise VerificationError(f"the checkpoint stored as size {size} is of size {head.size}")
        return head.root_hash

    def root_at(self, size: int) -> bytes:
        self._check_size(size)
        return merkle.root_at(size, self.store.read_nodes)

    def _check_size(self, size: int) -> None:
        if not _index(size, "tree size") <= self.store.size():
            raise MalformedInputError(f"tree size {size} is beyond the log ({self.store.size()})")

    def receipt(self, index: int, size: int | None = None) -> Receipt:
        """A receipt for entry ``index`` under the checkpoint of ``size`` (default latest)."""
        signed = self.latest_checkpoint() if size is None else self.checkpoint_at(size)
        if not _index(index, "entry index") < signed.checkpoint.size:
            raise MalformedInputError(f"entry {index} is not under the checkpoint of size "
                                f"{signed.checkpoint.size}")
        receipt = self._receipt_under(self.entry(index), index, signed)
        try:                # built from stored nodes and entries: never hand out a broken one
            receipt.verify(self.log_key)
        except (VerificationError, MalformedInputError) as e:
            raise RegistryError(f"the stored log does not prove entry {index} under the "
                                f"checkpoint of size {signed.checkpoint.size} ({e}; damaged "
                                "storage): run claimkit registry audit") from None
        return receipt

    def _receipt_under(self, entry: LogEntry, index: int, signed: SignedCheckpoint) -> Receipt:
        proof = merkle.inclusion_proof(index, signed.checkpoint.size, self.store.read_nodes)
        return Receipt(entry, TlogProof(index, tuple(proof), signed, None))

    # -- audit ------------------------------------------------------------------------
    def audit(self, *, progress: Callable[[int], None] | None = None) -> AuditReport:
        """Recompute the whole log from its entries and check everything stored.

        Every entry parses in canonical form and carries a valid owner signature; times
        never decrease; its kind, ref and time_ms columns (which the registry's rules
        read) match it; every stored tree node equals the recomputed one and there are
        no others; every stored checkpoint is signed by the log key, cosigned by the time
        key at a time never before the previous one's nor its entries', and has the
        recomputed root; the latest covers the whole log; every claim intent names a
        real registration, has the next counter and the right spent items, and the spent
        table holds exactly what the challenges opened; no two trigger draws name the
        same verification key.
        """
        problems: list[str] = []
        frontier = merkle.Frontier(0)
        checkpoint_sizes = {size for size, _ in self.store.iter_checkpoints()}
        roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
        times: dict[int, int] = {0: 0}  # newest entry's time_ms under each checkpoint
        computed_nodes: dict[tuple[int, int], bytes] = {}
        counters: dict[int, int] = {}
        spent: dict[int, set[int]] = {}
        recorded = self.store.spent_rows()
        unreadable: set[int] = set()
        drawn: dict[bytes, int] = {}  # verification-key digest: index of its first draw
        last_time = registrations = claims = draws = 0
        try:
            for index, data, kind, ref, time_ms in self.store.iter_entries(-MAX_SQL_INT - 1):
                if index < 0:
                    problems.append(f"entry {index}: negative index")
                    continue
                if index != frontier.size:
                    problems.append(f"entry indices jump from {frontier.size - 1} to {index}")
                    break
                for node, value in frontier.append(merkle.leaf_hash(data)):
                    computed_nodes[node] = value
                if len(computed_nodes) >= 50_000:
                    self._compare_nodes(computed_nodes, problems)
                if progress and frontier.size % 1000 == 0:
                    progress(frontier.size)
                try:
                    entry: LogEntry | None = LogEntry.from_bytes(data)
                    entry.verify_signature()
                except (MalformedInputError, VerificationError) as e:
                    problems.append(f"entry {index}: {e}")
                    entry = None
                if entry is not None:
                    if entry.time_ms < last_time:
                        problems.append(f"entry {index}: time goes backwards")
                    last_time = max(last_time, entry.time_ms)
                    problems.extend(_column_problems(index, entry, kind, ref, time_ms))
                if frontier.size in checkpoint_sizes:
                    roots[frontier.size] = frontier.root()
                    times[frontier.size] = last_time
                if entry is None:
                    unreadable.add(index)
                elif isinstance(entry.request, Registration):
                    registrations += 1
                elif isinstance(entry.request, TriggerDraw):
                    draws += 1
                    vk = entry.request.verification_key
                    first = drawn.setdefault(vk.value, index)
                    if first != index:
                        problems.append(f"entry {index}: a second trigger draw of verification "
                                        f"key {vk.hex[:16]}… (first at entry {first})")
                else:
                    claims += 1
                    problems.extend(self._audit_intent(index, entry, counters, spent, recorded,
                                                       frontier))
        except RegistryError as e:  # a damaged row: the rest cannot be recomputed
            problems.append(str(e))
        if progress:
            progress(frontier.size)
        self._compare_nodes(computed_nodes, problems)
        problems.extend(self._audit_leftovers(frontier.size, checkpoint_sizes,
                                              recorded.keys() - unreadable))
        problems.extend(self._audit_checkpoints(roots, times))
        return AuditReport(size=frontier.size, checkpoints=len(checkpoint_sizes),
                           registrations=registrations, claims=claims, draws=draws,
                           root_hash=frontier.root(), problems=tuple(problems))

    def _audit_leftovers(self, size: int, checkpoint_sizes: set[int],
                         orphans: set[object]) -> list[str]:
        """Rows that no entry accounts for: nodes beyond the tree, spent rows of no claim
        intent, entries past the latest checkpoint (every write ends with one)."""
        out = []
        extra = self.store.count_nodes() - (2 * size - bin(size).count("1"))
        if extra > 0:
            out.append(f"the nodes table holds {extra} nodes beyond the tree of size {size}")
        for intent in sorted(orphans, key=str):
            out.append(f"spent table: rows name entry {intent!r}, which is no claim intent")
        log_size = self.store.size()
        latest = max(checkpoint_sizes, default=None)
        if latest is None:
            out.append("the registry has no checkpoint")
        elif latest < log_size:
            out.append(f"entries {latest} to {log_size - 1} are under no checkpoint")
        return out

    def _audit_checkpoints(self, roots: dict[int, bytes], times: dict[int, int]) -> list[str]:
        """Each checkpoint, and time cosignatures that never go back nor precede the
        second of the newest entry they cover (``times``: its time_ms per size)."""
        out: list[str] = []
        previous = 0
        for size, note in self.store.iter_checkpoints():
            found, cosigned = self._audit_checkpoint(size, note, roots)
            out.extend(found)
            if cosigned is None:
                continue
            if cosigned < previous:
                out.append(f"checkpoint {size}: time cosignature is earlier than the "
                           "previous checkpoint's")
            if cosigned < times.get(size, 0) // 1000:
                out.append(f"checkpoint {size}: time cosignature predates its entries")
            previous = max(previous, cosigned)
        return out

    def _compare_nodes(self, computed: dict[tuple[int, int], bytes], problems: list[str]) -> None:
        if not computed:
            return
        try:
            stored = self.store.read_nodes(list(computed))
        except RegistryError as e:
            problems.append(str(e))
            computed.clear()
            return
        for node, value in computed.items():
            if stored[node] != value:
                problems.append(f"stored tree node {node} differs from the recomputed one")
        computed.clear()

    def _audit_intent(self, index: int, entry: LogEntry, counters: dict[int, int],
                      spent: dict[int, set[int]], recorded: dict[object, set[tuple[object, object]]],
                      frontier: merkle.Frontier) -> list[str]:
        intent = entry.request
        assert isinstance(intent, ClaimIntent)
        ref = intent.registration_index
        rows = recorded.pop(index, set())
        try:
            if ref >= index:
                raise RegistryError("not earlier")
            reg_bytes = self.store.entry(ref)
            reg = LogEntry.from_bytes(reg_bytes).request
            if not isinstance(reg, Registration):
                raise RegistryError("not a registration")
        except (RegistryError, MalformedInputError):
            return [f"entry {index}: claim intent names no earlier registration"]
        out = []
        if not Digest.of(reg_bytes).matches(intent.registration_entry):
            out.append(f"entry {index}: registration digest mismatch")
        if reg.owner.public_key != intent.owner.public_key:
            out.append(f"entry {index}: claim by someone other than the owner")
        if intent.counter != counters.get(ref, 0):
            out.append(f"entry {index}: counter {intent.counter}, expected {counters.get(ref, 0)}")
        before = spent.setdefault(ref, set())
        if set(entry.spent or ()) != before:
            out.append(f"entry {index}: spent items differ from the earlier claims' openings")
        try:
            note = self.store.checkpoint(frontier.size)
            if note is None:
                raise MalformedInputError("no checkpoint ends with this claim intent")
            opened = opened_items(reg, entry, SignedCheckpoint.from_bytes(note), self.log_key)
        except (MalformedInputError, VerificationError) as e:
            # Its challenge cannot be recomputed; later claims are checked against the
            # items recorded as spent, so one damaged checkpoint is one problem.
            out.append(f"entry {index}: {e}")
            opened = tuple(sorted(item for registration, item in rows
                                  if registration == ref and isinstance(item, int)))
        else:
            if rows != {(ref, item) for item in opened}:
                out.append(f"entry {index}: spent rows differ from the items its challenge "
                           "opened")
        counters[ref] = counters.get(ref, 0) + 1
        before.update(opened)
        return out

    def _audit_checkpoint(self, size: int, note: bytes, roots: dict[int, bytes]
                          ) -> tuple[list[str], int | None]:
        """Problems with one stored checkpoint, and its time cosignature's time if valid."""
        try:
            signed = SignedCheckpoint.from_bytes(note)
            checkpoint = signed.verify(self.log_key)
            cosigned = verify_cosignature(signed, self.time_key)
        except (MalformedInputError, VerificationError) as e:
            return [f"checkpoint {size}: {e}"], None
        if checkpoint.size != size or size not in roots:
            return [f"checkpoint {size}: size beyond the log or mislabelled"], cosigned
        if not hmac.compare_digest(checkpoint.root_hash, roots[size]):
            return [f"checkpoint {size}: root hash differs from the recomputed tree"], cosigned
        return [], cosigned


def _column_problems(index: int, entry: LogEntry, kind: object, ref: object,
                     time_ms: object) -> list[str]:
    """The columns beside the leaf data must say what the entry says: the registry's
    rules read them (claim counters, spent items, drawn keys, the next entry's time), not
    the leaf."""
    wrong = [name for name, stored, want in (("kind", kind, entry.kind),
                                             ("ref", ref, _ref(entry.request)),
                                             ("time_ms", time_ms, entry.time_ms))
             if stored != want]
    return [f"entry {index}: its {', '.join(wrong)} column differs from the entry"] if wrong else []


def _ref(request: Request) -> int | None:
    """The ``ref`` column of a request's row: a claim intent's registration index, a
    trigger draw's :func:`~claimkit.registry.store.draw_ref`, none for a registration."""
    if isinstance(request, ClaimIntent):
        return request.registration_index
    if isinstance(request, TriggerDraw):
        return draw_ref(request.verification_key.value)
    return None
