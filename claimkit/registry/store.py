"""SQLite persistence for the registry log: entries, perfect-subtree hashes, checkpoints.

This layer stores bytes and answers lookups; it decides nothing about trust (that is
``merkle`` and ``log``). The tables are made with sqlite-utils; the one hot path,
appending a batch, uses ``executemany`` on the same connection.

Durability: WAL journal with ``synchronous=FULL``, so a transaction that returned is on
disk, and a writer killed at any point leaves the last committed state. Writers take
the write lock up front (``BEGIN IMMEDIATE``) so concurrent processes append one after
another to a single linear log.

Node ids pack (level, index) of a perfect subtree into one integer primary key:
``level << 56 | index``, so a proof's O(log n) nodes are fetched by rowid in one query.

The indexed ``ref`` column of an entry row is what the registry's rules look up: for a
claim intent the index of its registration; for a trigger draw :func:`draw_ref` of its
verification-key digest (the first 8 bytes as a signed big-endian int64, so it fits an
SQLite INTEGER and no schema change was needed); NULL for a registration. A draw's ref
only narrows the search: prefixes can collide, so callers compare the full digest.

Errors: every query runs under :func:`_guard`, so a damaged file, a dropped table or an
integer SQLite cannot hold becomes a one-line claimkit error, never a traceback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from ..errors import MalformedInputError, RegistryError
from .merkle import NodeId

__all__ = ["Store", "node_key", "draw_ref"]

SCHEMA_VERSION = "1"
_LEVEL_SHIFT = 56


MAX_SQL_INT = (1 << 63) - 1
"""The largest integer SQLite stores; larger indices and sizes are malformed input."""


@contextmanager
def _guard() -> Iterator[None]:
    """Report what sqlite3 raises as claimkit errors (house rule: one line, no traceback).

    sqlite3 raises OverflowError for a Python int beyond 64 bits (a huge index from the
    command line) and sqlite3.Error for a corrupted page, a dropped table or a lock.
    """
    try:
        yield
    except OverflowError:
        raise MalformedInputError(f"an index or size above {MAX_SQL_INT} (2^63-1)") from None
    except sqlite3.Error as e:
        raise RegistryError(f"registry database: {e}") from None


def _blob(value: object, what: str) -> bytes:
    """Stored bytes must come back as bytes: a TEXT value means the file was edited."""
    if not isinstance(value, bytes):
        raise RegistryError(f"registry database: {what} is stored as "
                            f"{type(value).__name__}, not a blob")
    return value


def node_key(node: NodeId) -> int:
    level, index = node
    return level << _LEVEL_SHIFT | index


def draw_ref(verification_key: bytes) -> int:
    """The ``ref`` column of a trigger draw: its verification-key digest's first 8 bytes,
    read as a signed big-endian int64 (an SQLite INTEGER)."""
    return int.from_bytes(verification_key[:8], "big", signed=True)


class Store:
    """One registry database file. Use :meth:`transaction` around every write."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        path = Path(path)
        if not create and not path.exists():
            raise RegistryError(f"no registry database at {path}")
        with _guard():
            conn = sqlite3.connect(str(path), isolation_level=None, timeout=60.0,
                                   check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
            self.conn = conn
            conn.execute("PRAGMA busy_timeout = 60000")
            if create:
                self.db.enable_wal()
                self._create_tables()
        schema = SCHEMA_VERSION if create else self.meta("schema")
        if schema != SCHEMA_VERSION:
            conn.close()
            raise RegistryError(f"{path}: not a claimkit registry (schema {schema!r})")
        self._run("PRAGMA synchronous = FULL")

    def _create_tables(self) -> None:
        db = self.db
        with self.transaction():
            db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
            db["entries"].create({"idx": int, "data": bytes, "kind": str, "ref": int, "time_ms": int},
                                 pk="idx", if_not_exists=True)
            db["entries"].create_index(["ref"], if_not_exists=True)
            db["nodes"].create({"id": int, "hash": bytes}, pk="id", if_not_exists=True)
            db["checkpoints"].create({"size": int, "note": bytes}, pk="size", if_not_exists=True)
            db["spent"].create({"registration": int, "item": int, "intent": int},
                               pk=("registration", "item"), if_not_exists=True)
            self.set_meta("schema", SCHEMA_VERSION)

    def close(self) -> None:
        self.conn.close()

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Run one query and fetch all its rows, errors reported as claimkit errors."""
        with _guard():
            return self.conn.execute(sql, params).fetchall()

    def _run(self, sql: str, params: Sequence[object] = ()) -> None:
        with _guard():
            self.conn.execute(sql, params)

    def _run_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with _guard():
            self.conn.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction holding the database's write lock from its first statement."""
        self._run("BEGIN IMMEDIATE")
        try:
            yield
            self._run("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # SQLite may have rolled back already (disk full)
                self._run("ROLLBACK")
            raise

    # -- meta -------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return None
            raise RegistryError(f"registry database: {e}") from None
        except sqlite3.Error as e:
            raise RegistryError(f"not a registry database ({e})") from None
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._run("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- entries and nodes ------------------------------------------------------------
    def size(self) -> int:
        (top,), = self._rows("SELECT max(idx) FROM entries")
        return 0 if top is None else top + 1

    def head(self) -> tuple[int, int]:
        """(size, time_ms of the newest entry) in one lookup; (0, 0) for an empty log."""
        rows = self._rows("SELECT idx, time_ms FROM entries ORDER BY idx DESC LIMIT 1")
        if not rows:
            return 0, 0
        index, time_ms = rows[0]
        if not isinstance(time_ms, int):  # the next entry's time is derived from it
            raise RegistryError(f"registry database: entry {index} has a damaged time_ms column")
        return index + 1, time_ms

    def read_nodes(self, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """Batch read; raises if a requested node is absent (the store is damaged)."""
        if not ids:
            return {}
        keys = {node_key(n): n for n in ids}
        found: dict[NodeId, bytes] = {}
        key_list = list(keys)
        for start in range(0, len(key_list), 500):
            chunk = key_list[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self._rows(f"SELECT id, hash FROM nodes WHERE id IN ({marks})",
                                         chunk):
                found[keys[key]] = _blob(value, f"tree node {keys[key]}")
        if len(found) != len(keys):
            missing = next(n for n in ids if n not in found)
            raise RegistryError(f"registry database is missing tree node {missing}")
        return found

    def count_nodes(self) -> int:
        (count,), = self._rows("SELECT count(*) FROM nodes")
        return count

    def append(self, entries: Sequence[tuple[int, bytes, str, int | None, int]],
               nodes: Sequence[tuple[NodeId, bytes]]) -> None:
        """Insert entry rows ``(idx, data, kind, ref, time_ms)`` and completed nodes."""
        self._run_many(
            "INSERT INTO entries (idx, data, kind, ref, time_ms) VALUES (?, ?, ?, ?, ?)", entries)
        self._run_many("INSERT INTO nodes (id, hash) VALUES (?, ?)",
                       [(node_key(n), h) for n, h in nodes])

    def entry(self, index: int) -> bytes:
        rows = self._rows("SELECT data FROM entries WHERE idx = ?", (index,))
        if not rows:
            raise RegistryError(f"the log has no entry {index}")
        return _blob(rows[0][0], f"entry {index}")

    def iter_entries(self, start: int = 0) -> Iterator[tuple[int, bytes, object, object, object]]:
        """Rows ``(idx, data, kind, ref, time_ms)`` from index ``start`` on, in order.

        The kind, ref and time_ms columns come back as stored, for audit to compare
        with the entry they describe; the leaf data is checked to be a blob.
        """
        for index, data, kind, ref, time_ms in self._iter(
                "entries", "idx", "data, kind, ref, time_ms", start):
            yield index, _blob(data, f"entry {index}"), kind, ref, time_ms

    def iter_nodes(self) -> Iterator[tuple[NodeId, bytes]]:
        mask = (1 << _LEVEL_SHIFT) - 1
        for key, value in self._iter("nodes", "id", "hash"):
            yield (key >> _LEVEL_SHIFT, key & mask), value

    def intents_for(self, registration: int) -> int:
        (count,), = self._rows(
            "SELECT count(*) FROM entries WHERE ref = ? AND kind = 'claim-intent'",
            (registration,))
        return count

    def trigger_draws(self, verification_key: bytes) -> list[tuple[int, bytes]]:
        """Rows ``(idx, data)`` of the trigger draws that may name this verification-key
        digest: those with its :func:`draw_ref`. The caller compares the full digest."""
        rows = self._rows("SELECT idx, data FROM entries WHERE ref = ? AND kind = 'trigger-draw' "
                          "ORDER BY idx", (draw_ref(verification_key),))
        return [(index, _blob(data, f"entry {index}")) for index, data in rows]

    # -- cut-and-choose bookkeeping ---------------------------------------------------
    def spent(self, registration: int) -> tuple[int, ...]:
        rows = self._rows("SELECT item FROM spent WHERE registration = ? ORDER BY item",
                          (registration,))
        items = tuple(r[0] for r in rows)
        if not all(type(i) is int for i in items):
            raise RegistryError(f"the spent table holds an item of registration {registration} "
                                "that is no integer (damaged storage): run claimkit registry audit")
        return items

    def last_intent(self, registration: int) -> int | None:
        """The index of the newest claim intent naming ``registration``, if any."""
        rows = self._rows("SELECT max(idx) FROM entries WHERE ref = ? AND kind = 'claim-intent'",
                          (registration,))
        return rows[0][0] if rows else None

    def add_spent(self, registration: int, items: Sequence[int], intent: int) -> None:
        self._run_many("INSERT INTO spent (registration, item, intent) VALUES (?, ?, ?)",
                       [(registration, i, intent) for i in items])

    def spent_rows(self) -> dict[object, set[tuple[object, object]]]:
        """Every spent row as ``{intent: {(registration, item), ...}}``, values as stored."""
        out: dict[object, set[tuple[object, object]]] = {}
        for registration, item, intent in self._rows(
                "SELECT registration, item, intent FROM spent"):
            out.setdefault(intent, set()).add((registration, item))
        return out

    # -- checkpoints ------------------------------------------------------------------
    def put_checkpoint(self, size: int, note: bytes) -> None:
        self._run("INSERT OR REPLACE INTO checkpoints (size, note) VALUES (?, ?)", (size, note))

    def checkpoint(self, size: int | None = None) -> bytes | None:
        if size is None:
            rows = self._rows("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1")
        else:
            rows = self._rows("SELECT note FROM checkpoints WHERE size = ?", (size,))
        return rows[0][0] if rows else None

    def latest(self) -> tuple[int, bytes | None]:
        """(log size, newest checkpoint note) in one statement, so one snapshot: read
        apart, an append committed between the two reads looks like a damaged head."""
        (top, note), = self._rows("SELECT (SELECT max(idx) FROM entries), "
                                  "(SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1)")
        return 0 if top is None else top + 1, note

    def iter_checkpoints(self) -> Iterator[tuple[int, bytes]]:
        yield from self._iter("checkpoints", "size", "note")

    def _iter(self, table: str, key: str, columns: str, start: int = -MAX_SQL_INT - 1,
              chunk: int = 2000) -> Iterator[tuple]:
        """Rows ``(key, *columns)`` of a table keyed by an integer rowid, from ``start`` on,
        read in chunks so that no cursor stays open and a damaged page meets _guard."""
        while True:
            rows = self._rows(f"SELECT {key}, {columns} FROM {table} WHERE {key} >= ? "
                              f"ORDER BY {key} LIMIT ?", (start, chunk))
            yield from rows
            if len(rows) < chunk or rows[-1][0] == MAX_SQL_INT:
                return
            start = rows[-1][0] + 1
