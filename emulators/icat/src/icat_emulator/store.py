"""SQLite persistence of ICAT entities, with ICAT's validation, uniqueness and cascade rules.

One table per entity (columns = attributes + one id column per many-to-one relation). ICAT's
uniqueness constraints are UNIQUE indexes, so concurrent get-or-create can never duplicate;
every one-to-many relation is a foreign key with ON DELETE CASCADE, as ICAT cascades deletes.
Writes are serialised (one lock + ``BEGIN IMMEDIATE``); reads use WAL snapshots. Ids come from
one sequence shared by all entities, as in ICAT.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import jpql
from .errors import IcatError
from .model import ATTRIBUTE, META_FIELDS, ONE, Entity, Model
from .sqlgen import CompiledQuery, IncludeNode, Principal, compile_query, read_condition
from .values import now_db

_SQL_TYPES = {"Long": "INTEGER", "Integer": "INTEGER", "Double": "REAL", "boolean": "INTEGER"}
_CHUNK = 500


@dataclass
class BeanIn:
    """An entity as received from a client (values already converted to column values)."""

    entity: Entity
    id: int | None = None
    values: dict[str, object] = field(default_factory=dict)  # attributes present in the request
    ones: dict[str, int | None] = field(default_factory=dict)  # many-to-one relation -> id
    manies: dict[str, list[BeanIn]] = field(default_factory=dict)


@dataclass
class Obj:
    """An entity row as read from the store, with the relations loaded by INCLUDE."""

    entity: Entity
    row: dict[str, object]
    related: dict[str, Obj | list[Obj] | None] = field(default_factory=dict)


@dataclass
class SearchResult:
    kind: str  # entity | scalar | fields
    items: list[object]
    value_types: list[str]


def _q(name: str) -> str:
    return f'"{name}"'


class Store:
    def __init__(self, path: str | Path, model: Model, pool_size: int = 8) -> None:
        self.path = str(path)
        self.model = model
        self._pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._write_lock = threading.Lock()
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._create_schema()
        for _ in range(pool_size):
            self._pool.put(self._connect())

    # -- connections -----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA case_sensitive_like = ON")
        conn.row_factory = sqlite3.Row
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        conn = self._pool.get()
        try:
            yield conn
        finally:
            self._pool.put(conn)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction: all or nothing."""
        with self._write_lock, self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _create_schema(self) -> None:
        conn = self._connect()
        conn.execute("PRAGMA journal_mode = WAL")
        statements = [
            "CREATE TABLE IF NOT EXISTS icat_sequence (id INTEGER PRIMARY KEY CHECK (id = 1), "
            "next_id INTEGER NOT NULL)",
            "INSERT OR IGNORE INTO icat_sequence (id, next_id) VALUES (1, 1)",
            "CREATE TABLE IF NOT EXISTS icat_session (id TEXT PRIMARY KEY, user_name TEXT NOT NULL,"
            " expires REAL NOT NULL)",
        ]
        inverse = {(f.type, f.mapped_by) for e in self.model.entities.values() for f in e.manies()}
        for entity in self.model.entities.values():
            if entity.abstract:
                continue
            cols = ["id INTEGER PRIMARY KEY"]
            for f in entity.fields.values():
                if f.name == "id":
                    continue
                if f.rel_type == ATTRIBUTE:
                    cols.append(f"{_q(f.name)} {_SQL_TYPES.get(f.type, 'TEXT')}")
                elif f.rel_type == ONE:
                    on_delete = (
                        "CASCADE"
                        if (entity.name, f.name) in inverse or f.not_nullable
                        else "SET NULL"
                    )
                    cols.append(
                        f"{_q(f.name)} INTEGER REFERENCES {_q(f.type)}(id) ON DELETE {on_delete}"
                    )
            statements.append(f"CREATE TABLE IF NOT EXISTS {_q(entity.name)} ({', '.join(cols)})")
            if entity.constraint:
                statements.append(
                    f"CREATE UNIQUE INDEX IF NOT EXISTS {_q('uq_' + entity.name)} ON "
                    f"{_q(entity.name)} ({', '.join(_q(c) for c in entity.constraint)})"
                )
            for f in entity.ones():
                statements.append(
                    f"CREATE INDEX IF NOT EXISTS {_q('ix_' + entity.name + '_' + f.name)} ON "
                    f"{_q(entity.name)} ({_q(f.name)})"
                )
            if "name" in entity.fields:
                statements.append(
                    f"CREATE INDEX IF NOT EXISTS {_q('ix_' + entity.name + '_name')} ON "
                    f'{_q(entity.name)} ("name")'
                )
        with conn:
            for stmt in statements:
                conn.execute(stmt)
        conn.close()

    # -- sessions --------------------------------------------------------------------------
    def save_session(self, session_id: str, user_name: str, expires: float) -> None:
        with self.write() as conn:
            conn.execute("DELETE FROM icat_session WHERE expires < ?", (time.time(),))
            conn.execute(
                "INSERT OR REPLACE INTO icat_session VALUES (?, ?, ?)",
                (session_id, user_name, expires),
            )

    def load_session(self, session_id: str) -> tuple[str, float] | None:
        with self.connection() as conn:
            row = conn.execute(
                "SELECT user_name, expires FROM icat_session WHERE id = ?", (session_id,)
            ).fetchone()
        return (row[0], row[1]) if row else None

    def drop_session(self, session_id: str) -> None:
        with self.write() as conn:
            conn.execute("DELETE FROM icat_session WHERE id = ?", (session_id,))

    # -- writes ----------------------------------------------------------------------------
    def create_many(self, principal: Principal, beans: list[BeanIn]) -> list[int]:
        """Create all beans (with their one-to-many children) in one transaction."""
        with self.write() as conn:
            (next_id,) = conn.execute("SELECT next_id FROM icat_sequence").fetchone()
            writer = _Writer(conn, self.model, principal, next_id)
            ids = []
            for offset, bean in enumerate(beans):
                writer.offset = offset
                ids.append(writer.insert(bean, None))
            conn.execute("UPDATE icat_sequence SET next_id = ?", (writer.next_id,))
        return ids

    def update(self, principal: Principal, bean: BeanIn) -> None:
        entity = bean.entity
        if bean.id is None:
            raise IcatError("BAD_PARAMETER", f"{entity.name}: id must be set to update")
        with self.write() as conn:
            writer = _Writer(conn, self.model, principal, 0)
            existing = conn.execute(
                f"SELECT * FROM {_q(entity.name)} WHERE id = ?", (bean.id,)
            ).fetchone()
            if existing is None:
                raise IcatError("NO_SUCH_OBJECT_FOUND", f"{entity.name}[id:{bean.id}] not found.")
            # As ICAT: every updatable field takes the bean's value, absent means null.
            row: dict[str, object] = {}
            for f in entity.fields.values():
                if f.name == "id" or f.name in META_FIELDS:
                    continue
                if f.rel_type == ATTRIBUTE:
                    row[f.name] = bean.values.get(f.name)
                elif f.rel_type == ONE:
                    row[f.name] = bean.ones.get(f.name)
            writer.validate(entity, row, None)
            row["modId"] = principal.name
            row["modTime"] = now_db()
            assignments = ", ".join(f"{_q(k)} = ?" for k in row)
            try:
                conn.execute(
                    f"UPDATE {_q(entity.name)} SET {assignments} WHERE id = ?",
                    [*row.values(), bean.id],
                )
            except sqlite3.IntegrityError as exc:
                raise writer.integrity_fault(entity, row, exc) from exc

    def delete_many(self, beans: list[BeanIn]) -> None:
        with self.write() as conn:
            for bean in beans:
                name = bean.entity.name
                if bean.id is None:
                    raise IcatError("BAD_PARAMETER", f"{name}: id must be set to delete")
                cur = conn.execute(f"DELETE FROM {_q(name)} WHERE id = ?", (bean.id,))
                if cur.rowcount == 0:
                    raise IcatError("NO_SUCH_OBJECT_FOUND", f"{name}[id:{bean.id}] not found.")

    # -- reads -----------------------------------------------------------------------------
    def search(self, principal: Principal, text: str) -> SearchResult:
        try:
            compiled = compile_query(self.model, jpql.parse(text), principal)
        except jpql.QueryError as exc:
            raise IcatError("BAD_PARAMETER", exc.message, exc.offset) from exc
        with self.connection() as conn:
            conn.execute("BEGIN")  # one consistent snapshot for the rows and their includes
            try:
                return self._run(conn, principal, compiled)
            except sqlite3.Error as exc:
                raise IcatError("BAD_PARAMETER", f"Query failed: {exc}") from exc
            finally:
                conn.execute("COMMIT")

    def _run(
        self, conn: sqlite3.Connection, principal: Principal, compiled: CompiledQuery
    ) -> SearchResult:
        rows = conn.execute(compiled.sql, compiled.params).fetchall()
        if compiled.kind == "scalar":
            return SearchResult("scalar", [r[0] for r in rows], compiled.value_types)
        if compiled.kind == "fields":
            return SearchResult("fields", [tuple(r) for r in rows], compiled.value_types)
        assert compiled.entity is not None
        ids = [r[0] for r in rows]
        loaded = self.load(conn, principal, compiled.entity, set(ids))
        objs: list[object] = [loaded[i] for i in ids if i in loaded]
        if compiled.includes is not None:
            self._include(
                conn, principal, compiled.entity, list(loaded.values()), compiled.includes
            )
        return SearchResult("entity", objs, [])

    def load(
        self, conn: sqlite3.Connection, principal: Principal, entity: Entity, ids: set[int]
    ) -> dict[int, Obj]:
        out: dict[int, Obj] = {}
        id_list = sorted(i for i in ids if i is not None)
        for start in range(0, len(id_list), _CHUNK):
            chunk = id_list[start : start + _CHUNK]
            params: list[object] = []
            cond = read_condition(self.model, entity, "o", principal, params)
            sql = f"SELECT * FROM {_q(entity.name)} o WHERE o.id IN ({', '.join('?' * len(chunk))})"
            if cond:
                sql += f" AND {cond}"
            for row in conn.execute(sql, [*chunk, *params]):
                out[row["id"]] = Obj(entity, dict(row))
        return out

    def _include(
        self,
        conn: sqlite3.Connection,
        principal: Principal,
        entity: Entity,
        objs: list[Obj],
        node: IncludeNode,
    ) -> None:
        if not objs:
            return
        for rel, child in node.children.items():
            f = entity.fields[rel]
            target = self.model.entities[f.type]
            if f.rel_type == ONE:
                loaded = self.load(conn, principal, target, {o.row[rel] for o in objs})  # type: ignore[misc]
                for o in objs:
                    ref = o.row[rel]
                    o.related[rel] = loaded.get(ref) if isinstance(ref, int) else None
                children = list(loaded.values())
            else:
                by_parent: dict[int, list[Obj]] = {o.row["id"]: [] for o in objs}  # type: ignore[misc]
                parent_ids = list(by_parent)
                children = []
                for start in range(0, len(parent_ids), _CHUNK):
                    chunk = parent_ids[start : start + _CHUNK]
                    params: list[object] = list(chunk)
                    cond = read_condition(self.model, target, "c", principal, params)
                    sql = (
                        f"SELECT * FROM {_q(target.name)} c WHERE c.{_q(f.mapped_by or '')} "
                        f"IN ({', '.join('?' * len(chunk))})"
                    )
                    if cond:
                        sql += f" AND {cond}"
                    for row in conn.execute(sql + " ORDER BY c.id", params):
                        obj = Obj(target, dict(row))
                        by_parent[row[f.mapped_by]].append(obj)
                        children.append(obj)
                for o in objs:
                    o.related[rel] = by_parent[o.row["id"]]  # type: ignore[index]
            if child.children:
                self._include(conn, principal, target, children, child)

    def is_readable(self, principal: Principal, entity: Entity, obj_id: int) -> bool:
        with self.connection() as conn:
            return bool(self.load(conn, principal, entity, {obj_id}))

    def exists(self, entity: Entity, obj_id: int) -> bool:
        with self.connection() as conn:
            return (
                conn.execute(f"SELECT 1 FROM {_q(entity.name)} WHERE id = ?", (obj_id,)).fetchone()
                is not None
            )


class _Writer:
    """Inserts within one transaction; ``offset`` is the index of the bean in createMany."""

    def __init__(
        self, conn: sqlite3.Connection, model: Model, principal: Principal, next_id: int
    ) -> None:
        self.conn = conn
        self.model = model
        self.principal = principal
        self.next_id = next_id
        self.offset = -1
        self.now = now_db()
        self.known: set[tuple[str, int]] = set()  # (entity, id) checked to exist
        self.sql_cache: dict[tuple[str, tuple[str, ...]], str] = {}

    def validate(self, entity: Entity, row: dict[str, object], back_ref: str | None) -> None:
        for f in entity.fields.values():
            if f.name == "id" or f.name in META_FIELDS or f.name == back_ref:
                continue
            if f.not_nullable and f.rel_type in (ATTRIBUTE, ONE) and row.get(f.name) is None:
                raise IcatError(
                    "VALIDATION", f"{entity.name}: {f.name} cannot be null.", self.offset
                )
        for f in entity.ones():
            target_id = row.get(f.name)
            if target_id is None or f.name == back_ref:
                continue
            key = (f.type, target_id)
            if key in self.known:
                continue
            found = self.conn.execute(
                f"SELECT 1 FROM {_q(f.type)} WHERE id = ?", (target_id,)
            ).fetchone()
            if found is None:
                raise IcatError(
                    "NO_SUCH_OBJECT_FOUND", f"{f.type}[id:{target_id}] not found.", self.offset
                )
            self.known.add(key)  # type: ignore[arg-type]

    def integrity_fault(
        self, entity: Entity, row: dict[str, object], exc: sqlite3.IntegrityError
    ) -> IcatError:
        if "UNIQUE" in str(exc) and entity.constraint:
            parts = []
            for name in entity.constraint:
                value = row.get(name)
                f = entity.fields[name]
                shown = f"id:{value}" if f.rel_type == ONE else value
                parts.append(f"{name} = '{shown}'")
            return IcatError(
                "OBJECT_ALREADY_EXISTS",
                f"{entity.name} exists with {', '.join(parts)}",
                self.offset,
            )
        return IcatError("VALIDATION", f"{entity.name}: {exc}", self.offset)

    def insert(self, bean: BeanIn, back_ref: str | None) -> int:
        entity = bean.entity
        if entity.abstract:
            raise IcatError("BAD_PARAMETER", f"{entity.name} is abstract", self.offset)
        row: dict[str, object] = {}
        for name, value in bean.values.items():
            if name != "id" and name not in META_FIELDS:
                row[name] = value
        row.update(bean.ones)
        self.validate(entity, row, back_ref)
        new_id = self.next_id
        self.next_id += 1
        row["id"] = new_id
        row["createId"] = row["modId"] = self.principal.name
        row["createTime"] = row["modTime"] = self.now
        columns = tuple(row)
        sql = self.sql_cache.get((entity.name, columns))
        if sql is None:
            sql = (
                f"INSERT INTO {_q(entity.name)} ({', '.join(_q(c) for c in columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})"
            )
            self.sql_cache[(entity.name, columns)] = sql
        try:
            self.conn.execute(sql, list(row.values()))
        except sqlite3.IntegrityError as exc:
            raise self.integrity_fault(entity, row, exc) from exc
        self.known.add((entity.name, new_id))
        for rel, children in bean.manies.items():
            mapped_by = entity.fields[rel].mapped_by
            assert mapped_by is not None
            for child in children:
                child.ones[mapped_by] = new_id
                self.insert(child, mapped_by)
        return new_id
