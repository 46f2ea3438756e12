"""The registry: an append-only, signed, timestamped log of registrations and claims.

The trust logic lives in :mod:`merkle` (hashing and proofs), :mod:`checkpoint` and
:mod:`note` (C2SP signed checkpoints); this module strings them together over a
:class:`~claimkit.registry.store.Store`::

    reg = Registry.init("reg", origin="example.org/claimkit", passphrase="…")
    receipt = reg.register(request, signature)        # owner-signed Registration
    receipt.verify(reg.log_key)                       # anyone, offline

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
from .entries import ClaimIntent, LogEntry, Registration, Request, opened_items
from .note import NoteSigner, VerifierKey, sign_note
from .store import Store
from .receipt import Receipt, load_vkey
from .tlog_proof import TlogProof

__all__ = ["Registry", "Appended", "AuditReport"]

DB_NAME = "registry.db"
KEY_NAME = "log.key"
VKEY_NAME = "log.vkey"
TIME_VKEY_NAME = "time.vkey"
_TIME_KEY_DOMAIN = b"claimkit/registry-time-key/v1\n"


def _time_signer(origin: str, seed: bytes) -> NoteSigner:
    """The time cosigner: its own key, derived from the log seed so one file is backed up."""
    derived = hashlib.sha256(_TIME_KEY_DOMAIN + seed).digest()
    return NoteSigner.cosigner(f"{origin}/time", derived)


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
    root_hash: bytes
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "size": self.size, "checkpoints": self.checkpoints,
                "registrations": self.registrations, "claims": self.claims,
                "root_hash": self.root_hash.hex(), "problems": list(self.problems)}


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

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def init(cls, directory: str | Path, *, origin: str, passphrase: str,
             clock: Callable[[], float] = time.time, key_strength: str = "interactive") -> Registry:
        """Create a new registry: database, encrypted log key, public verifier keys."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if (directory / DB_NAME).exists() or (directory / KEY_NAME).exists():
            raise RegistryError(f"{directory} already holds a registry")
        identity = Identity.generate("log")
        signer = NoteSigner(origin, identity.seed)
        time_signer = _time_signer(origin, identity.seed)
        identity.save(directory / KEY_NAME, passphrase, strength=key_strength)
        (directory / "log.pub").unlink(missing_ok=True)  # the vkey files are the public halves
        atomic_write(directory / VKEY_NAME, (signer.verifier_key.to_vkey() + "\n").encode())
        atomic_write(directory / TIME_VKEY_NAME,
                     (time_signer.verifier_key.to_vkey() + "\n").encode())
        store = Store(directory / DB_NAME, create=True)
        with store.transaction():
            store.set_meta("origin", origin)
        reg = cls(directory, store, signer.verifier_key, time_signer.verifier_key, signer,
                  time_signer, clock)
        with store.transaction():
            reg._sign_checkpoint(0, merkle.EMPTY_ROOT)
        return reg

    @classmethod
    def open(cls, directory: str | Path, *, passphrase: str | None = None,
             clock: Callable[[], float] = time.time) -> Registry:
        """Open a registry; without a passphrase it can read, prove and audit, not append."""
        directory = Path(directory)
        if not (directory / DB_NAME).exists():
            raise RegistryError(f"{directory}: no registry here (run `claimkit registry init`)")
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

    def _sign_checkpoint(self, size: int, root: bytes) -> SignedCheckpoint:
        if self._signer is None or self._time_signer is None:
            raise RegistryError("the registry was opened read-only (no passphrase for log.key)")
        checkpoint = Checkpoint(self.origin, size, root)
        signed = SignedCheckpoint(checkpoint, sign_note(checkpoint.to_text(), self._signer))
        timestamp = max(int(self._clock()), 0)
        signed = signed.with_signature(cosign(checkpoint, self._time_signer, timestamp))
        self.store.put_checkpoint(size, signed.to_bytes())
        return signed

    def _frontier_at(self, size: int) -> merkle.Frontier:
        """The tree's right edge at ``size``: from this process's cache when no other
        writer appended since (an append-only log of equal size is the same log),
        otherwise read from the store (popcount(size) nodes)."""
        cached = self._frontier
        if cached is not None and cached.size == size:
            return merkle.Frontier(size, cached.nodes)
        return merkle.Frontier.load(size, self.store.read_nodes)

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
        parallel, an import). Claim intents go through :meth:`announce_claim`.
        """
        appended, _, _ = self._append(requests, signatures_checked)
        return appended

    def _append(self, requests: Sequence[tuple[Request, bytes]], signatures_checked: bool
                ) -> tuple[Appended, LogEntry, merkle.Frontier]:
        if not requests:
            raise MalformedInputError("nothing to append")
        for request, _ in requests:
            if not isinstance(request, Registration):
                raise MalformedInputError("append takes registrations; use announce_claim")
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
            signed = self._sign_checkpoint(frontier.size, frontier.root())
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
            spent = self.store.spent(intent.registration_index)
            if intent.open > reg.items - len(spent):
                raise RegistryError(f"claim intent: only {reg.items - len(spent)} of "
                                    f"{reg.items} items remain unopened")
            entry = LogEntry(intent, signature, max(self._now_ms(), last_time), spent=spent)
            entry.verify_signature()
            data = entry.to_bytes()
            frontier = self._frontier_at(size)
            nodes = frontier.append(merkle.leaf_hash(data))
            self.store.append([(size, data, intent.kind, intent.registration_index,
                                entry.time_ms)], nodes)
            root = frontier.root()
            opened = opened_items(reg, entry, self.origin, size + 1, root)
            self.store.add_spent(intent.registration_index, opened, size)
            signed = self._sign_checkpoint(size + 1, root)
        self._frontier = frontier
        return self._last_receipt(entry, frontier, signed)

    def _registration(self, index: int) -> tuple[LogEntry, bytes]:
        if not 0 <= index < self.store.size():
            raise RegistryError(f"claim intent: the log has no entry {index}")
        data = self.store.entry(index)
        entry = LogEntry.from_bytes(data)
        if not isinstance(entry.request, Registration):
            raise RegistryError(f"claim intent: entry {index} is not a registration")
        return entry, data

    def add_cosignature(self, signed: SignedCheckpoint) -> None:
        """Store a witness's cosignatures on a checkpoint this registry signed."""
        with self.store.transaction():
            stored = self.store.checkpoint(signed.checkpoint.size)
            if stored is None:
                raise RegistryError(f"no checkpoint of size {signed.checkpoint.size} to cosign")
            current = SignedCheckpoint.from_bytes(stored)
            if current.checkpoint != signed.checkpoint:
                raise RegistryError("the cosigned checkpoint differs from the stored one")
            merged = current
            for sig in signed.note.signatures:
                if sig not in merged.note.signatures:
                    merged = merged.with_signature(sig)
            self.store.put_checkpoint(signed.checkpoint.size, merged.to_bytes())

    # -- reading ----------------------------------------------------------------------
    def claims_made(self, registration_index: int) -> int:
        """How many claim intents name this registration: the next claim's counter."""
        return self.store.intents_for(registration_index)

    def latest_checkpoint(self) -> SignedCheckpoint:
        data = self.store.checkpoint()
        if data is None:
            raise RegistryError("the registry has no checkpoint")
        return SignedCheckpoint.from_bytes(data)

    def checkpoint_at(self, size: int) -> SignedCheckpoint:
        data = self.store.checkpoint(size)
        if data is None:
            raise MalformedInputError(f"no checkpoint of size {size} was signed")
        return SignedCheckpoint.from_bytes(data)

    def entry(self, index: int) -> LogEntry:
        return LogEntry.from_bytes(self.store.entry(index))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        return merkle.inclusion_proof(index, size, self.store.read_nodes)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        self._check_size(size2)
        return merkle.consistency_proof(size1, size2, self.store.read_nodes)

    def root_at(self, size: int) -> bytes:
        self._check_size(size)
        return merkle.root_at(size, self.store.read_nodes)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.store.size():
            raise MalformedInputError(f"tree size {size} is beyond the log ({self.store.size()})")

    def receipt(self, index: int, size: int | None = None) -> Receipt:
        """A receipt for entry ``index`` under the checkpoint of ``size`` (default latest)."""
        signed = self.latest_checkpoint() if size is None else self.checkpoint_at(size)
        if not 0 <= index < signed.checkpoint.size:
            raise MalformedInputError(f"entry {index} is not under the checkpoint of size "
                                f"{signed.checkpoint.size}")
        return self._receipt_under(self.entry(index), index, signed)

    def _receipt_under(self, entry: LogEntry, index: int, signed: SignedCheckpoint) -> Receipt:
        proof = merkle.inclusion_proof(index, signed.checkpoint.size, self.store.read_nodes)
        return Receipt(entry, TlogProof(index, tuple(proof), signed, None))

    # -- audit ------------------------------------------------------------------------
    def audit(self, *, progress: Callable[[int], None] | None = None) -> AuditReport:
        """Recompute the whole log from its entries and check everything stored.

        Every entry parses in canonical form and carries a valid owner signature; times
        never decrease; every stored tree node equals the recomputed one; every stored
        checkpoint is signed by the log key, cosigned by the time key and has the
        recomputed root; every claim intent names a real registration, has the next
        counter and the right spent items, and its challenge opened what was recorded.
        """
        problems: list[str] = []
        frontier = merkle.Frontier(0)
        checkpoint_sizes = {size for size, _ in self.store.iter_checkpoints()}
        roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
        computed_nodes: dict[tuple[int, int], bytes] = {}
        counters: dict[int, int] = {}
        spent: dict[int, set[int]] = {}
        recorded = self.store.spent_by_intent()
        last_time = registrations = claims = 0
        for index, data in self.store.iter_entries():
            if index != frontier.size:
                problems.append(f"entry indices jump from {frontier.size - 1} to {index}")
                break
            for node, value in frontier.append(merkle.leaf_hash(data)):
                computed_nodes[node] = value
            if len(computed_nodes) >= 50_000:
                self._compare_nodes(computed_nodes, problems)
            if frontier.size in checkpoint_sizes:
                roots[frontier.size] = frontier.root()
            if progress and frontier.size % 1000 == 0:
                progress(frontier.size)
            try:
                entry = LogEntry.from_bytes(data)
                entry.verify_signature()
            except (MalformedInputError, VerificationError) as e:
                problems.append(f"entry {index}: {e}")
                continue
            if entry.time_ms < last_time:
                problems.append(f"entry {index}: time goes backwards")
            last_time = entry.time_ms
            if isinstance(entry.request, Registration):
                registrations += 1
                continue
            claims += 1
            problems.extend(self._audit_intent(index, entry, counters, spent, recorded, frontier))
        if progress:
            progress(frontier.size)
        self._compare_nodes(computed_nodes, problems)
        for size, note in self.store.iter_checkpoints():
            problems.extend(self._audit_checkpoint(size, note, roots))
        return AuditReport(frontier.size, len(checkpoint_sizes), registrations, claims,
                           frontier.root(), tuple(problems))

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
                      spent: dict[int, set[int]], recorded: dict[int, tuple[int, ...]],
                      frontier: merkle.Frontier) -> list[str]:
        intent = entry.request
        assert isinstance(intent, ClaimIntent)
        ref = intent.registration_index
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
            opened = opened_items(reg, entry, self.origin, frontier.size, frontier.root())
        except MalformedInputError as e:
            return out + [f"entry {index}: {e}"]
        if recorded.get(index) != opened:
            out.append(f"entry {index}: recorded opened items differ from the challenge")
        counters[ref] = counters.get(ref, 0) + 1
        before.update(opened)
        return out

    def _audit_checkpoint(self, size: int, note: bytes, roots: dict[int, bytes]) -> list[str]:
        try:
            signed = SignedCheckpoint.from_bytes(note)
            checkpoint = signed.verify(self.log_key)
            verify_cosignature(signed, self.time_key)
        except (MalformedInputError, VerificationError) as e:
            return [f"checkpoint {size}: {e}"]
        if checkpoint.size != size or size not in roots:
            return [f"checkpoint {size}: size beyond the log or mislabelled"]
        if not hmac.compare_digest(checkpoint.root_hash, roots[size]):
            return [f"checkpoint {size}: root hash differs from the recomputed tree"]
        return []

