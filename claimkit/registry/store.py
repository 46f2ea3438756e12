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
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from ..errors import RegistryError
from .merkle import NodeId

__all__ = ["Store", "node_key"]

SCHEMA_VERSION = "1"
_LEVEL_SHIFT = 56


def node_key(node: NodeId) -> int:
    level, index = node
    return level << _LEVEL_SHIFT | index


class Store:
    """One registry database file. Use :meth:`transaction` around every write."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        path = Path(path)
        if not create and not path.exists():
            raise RegistryError(f"no registry database at {path}")
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=60.0,
                               check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self.conn = conn
        conn.execute("PRAGMA busy_timeout = 60000")
        if create:
            self.db.enable_wal()
            self._create_tables()
        elif self.meta("schema") != SCHEMA_VERSION:
            raise RegistryError(f"{path}: not a claimkit registry (schema {self.meta('schema')!r})")
        conn.execute("PRAGMA synchronous = FULL")

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

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction holding the database's write lock from its first statement."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- meta -------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return None
            raise RegistryError(f"registry database: {e}") from None
        except sqlite3.DatabaseError as e:
            raise RegistryError(f"not a registry database ({e})") from None
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- entries and nodes ------------------------------------------------------------
    def size(self) -> int:
        row = self.conn.execute("SELECT max(idx) FROM entries").fetchone()
        return 0 if row[0] is None else row[0] + 1

    def head(self) -> tuple[int, int]:
        """(size, time_ms of the newest entry) in one lookup; (0, 0) for an empty log."""
        row = self.conn.execute(
            "SELECT idx, time_ms FROM entries ORDER BY idx DESC LIMIT 1").fetchone()
        return (0, 0) if row is None else (row[0] + 1, row[1])

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
            for key, value in self.conn.execute(
                    f"SELECT id, hash FROM nodes WHERE id IN ({marks})", chunk):
                found[keys[key]] = value
        if len(found) != len(keys):
            missing = next(n for n in ids if n not in found)
            raise RegistryError(f"registry database is missing tree node {missing}")
        return found

    def append(self, entries: Sequence[tuple[int, bytes, str, int | None, int]],
               nodes: Sequence[tuple[NodeId, bytes]]) -> None:
        """Insert entry rows ``(idx, data, kind, ref, time_ms)`` and completed nodes."""
        self.conn.executemany(
            "INSERT INTO entries (idx, data, kind, ref, time_ms) VALUES (?, ?, ?, ?, ?)", entries)
        self.conn.executemany("INSERT INTO nodes (id, hash) VALUES (?, ?)",
                              [(node_key(n), h) for n, h in nodes])

    def entry(self, index: int) -> bytes:
        row = self.conn.execute("SELECT data FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise RegistryError(f"the log has no entry {index}")
        return row[0]

    def iter_entries(self, start: int = 0, chunk: int = 2000) -> Iterator[tuple[int, bytes]]:
        while True:
            rows = self.conn.execute(
                "SELECT idx, data FROM entries WHERE idx >= ? ORDER BY idx LIMIT ?",
                (start, chunk)).fetchall()
            if not rows:
                return
            yield from rows
            start = rows[-1][0] + 1

    def iter_nodes(self) -> Iterator[tuple[NodeId, bytes]]:
        mask = (1 << _LEVEL_SHIFT) - 1
        for key, value in self.conn.execute("SELECT id, hash FROM nodes"):
            yield (key >> _LEVEL_SHIFT, key & mask), value

    def intents_for(self, registration: int) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM entries WHERE ref = ? AND kind = 'claim-intent'",
            (registration,)).fetchone()
        return row[0]

    # -- cut-and-choose bookkeeping ---------------------------------------------------
    def spent(self, registration: int) -> tuple[int, ...]:
        rows = self.conn.execute(
            "SELECT item FROM spent WHERE registration = ? ORDER BY item", (registration,))
        return tuple(r[0] for r in rows)

    def add_spent(self, registration: int, items: Sequence[int], intent: int) -> None:
        self.conn.executemany(
            "INSERT INTO spent (registration, item, intent) VALUES (?, ?, ?)",
            [(registration, i, intent) for i in items])

    def spent_by_intent(self) -> dict[int, tuple[int, ...]]:
        out: dict[int, list[int]] = {}
        for item, intent in self.conn.execute("SELECT item, intent FROM spent ORDER BY item"):
            out.setdefault(intent, []).append(item)
        return {k: tuple(v) for k, v in out.items()}

    # -- checkpoints ------------------------------------------------------------------
    def put_checkpoint(self, size: int, note: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO checkpoints (size, note) VALUES (?, ?)",
                          (size, note))

    def checkpoint(self, size: int | None = None) -> bytes | None:
        if size is None:
            row = self.conn.execute(
                "SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        else:
            row = self.conn.execute("SELECT note FROM checkpoints WHERE size = ?",
                                    (size,)).fetchone()
        return None if row is None else row[0]

    def iter_checkpoints(self) -> Iterator[tuple[int, bytes]]:
        yield from self.conn.execute("SELECT size, note FROM checkpoints ORDER BY size")
