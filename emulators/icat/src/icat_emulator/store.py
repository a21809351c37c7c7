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
from decimal import Decimal
from pathlib import Path

from . import concise, jpql
from .errors import IcatError
from .model import ATTRIBUTE, META_FIELDS, ONE, Entity, Model
from .rules import RULE_TABLES, Access, RuleCache, RuleSet, validate_rule
from .sqlgen import CompiledQuery, IncludeNode, Principal, compile_query
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
        self.rule_cache = RuleCache(model)
        self.rule_generation = 0  # bumped after each write that may change who may do what
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
    def write(self, affects_rules: bool = False) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction: all or nothing. ``affects_rules``: it may change who
        may do what (rules are reloaded after it)."""
        with self._write_lock, self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            if affects_rules:
                self.rule_generation += 1  # after COMMIT: a reload then sees the change

    def access(self, conn: sqlite3.Connection, principal: Principal) -> Access:
        """What ``principal`` may do, under the rules in force (read on ``conn``)."""
        if principal.is_root:
            return Access(_NO_RULES, principal)
        return Access(self.rule_cache.get(conn, self.rule_generation), principal)

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
    def create_many(
        self, principal: Principal, beans: list[BeanIn], dry_run: bool = False
    ) -> list[int]:
        """Create all beans (with their one-to-many children) in one transaction; each needs
        CREATE access, checked on the new row as icat.server does (``dry_run``: check, then
        roll back: isAccessAllowed CREATE)."""
        affects = any(b.entity.name in RULE_TABLES for b in beans)
        ids: list[int] = []
        try:
            with self.write(affects_rules=affects and not dry_run) as conn:
                (next_id,) = conn.execute("SELECT next_id FROM icat_sequence").fetchone()
                access = self.access(conn, principal)
                writer = _Writer(conn, self.model, principal, next_id)
                for offset, bean in enumerate(beans):
                    writer.offset = offset
                    new_id = writer.insert(bean, None)
                    if not principal.is_root:
                        try:
                            access.require(conn, bean.entity.name, "C", new_id)
                        except IcatError as exc:
                            exc.offset = offset
                            raise
                    ids.append(new_id)
                if dry_run:
                    raise _RollBack
                conn.execute("UPDATE icat_sequence SET next_id = ?", (writer.next_id,))
        except _RollBack:
            pass
        return ids

    def update(self, principal: Principal, bean: BeanIn) -> None:
        entity = bean.entity
        if bean.id is None:
            raise IcatError("BAD_PARAMETER", f"{entity.name}: id must be set to update")
        with self.write(affects_rules=entity.name in RULE_TABLES) as conn:
            writer = _Writer(conn, self.model, principal, 0)
            existing = conn.execute(
                f"SELECT * FROM {_q(entity.name)} WHERE id = ?", (bean.id,)
            ).fetchone()
            if existing is None:
                raise IcatError("NO_SUCH_OBJECT_FOUND", f"{entity.name}[id:{bean.id}] not found.")
            access = self.access(conn, principal)
            access.require(conn, entity.name, "U", bean.id)
            # As ICAT: every updatable field takes the bean's value, absent means null.
            row: dict[str, object] = {}
            for f in entity.fields.values():
                if f.name == "id" or f.name in META_FIELDS:
                    continue
                if f.rel_type == ATTRIBUTE:
                    row[f.name] = bean.values.get(f.name)
                elif f.rel_type == ONE:
                    row[f.name] = bean.ones.get(f.name)
            writer.validate(entity, row, None, creating=False)
            # Changing the identity (the uniqueness key) is a delete and a create, for ICAT.
            identity_change = any(row.get(k) != existing[k] for k in entity.constraint)
            if identity_change:
                access.require(conn, entity.name, "D", bean.id)
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
            if identity_change:
                access.require(conn, entity.name, "C", bean.id)

    def delete_many(self, principal: Principal, beans: list[BeanIn]) -> None:
        """Delete all beans (cascading) in one transaction; the principal needs DELETE access
        to each and to everything the delete cascades to, as in icat.server."""
        # Any delete may cascade to UserGroups or Rules: reload the rules after it.
        with self.write(affects_rules=True) as conn:
            access = self.access(conn, principal)
            for offset, bean in enumerate(beans):
                name = bean.entity.name
                if bean.id is None:
                    raise IcatError("BAD_PARAMETER", f"{name}: id must be set to delete", offset)
                if not principal.is_root and self._exists(conn, bean.entity, bean.id):
                    try:
                        self._require_delete(conn, access, bean.entity, [bean.id])
                    except IcatError as exc:
                        exc.offset = offset
                        raise
                cur = conn.execute(f"DELETE FROM {_q(name)} WHERE id = ?", (bean.id,))
                if cur.rowcount == 0:
                    raise IcatError(
                        "NO_SUCH_OBJECT_FOUND", f"{name}[id:{bean.id}] not found.", offset
                    )

    def _require_delete(
        self, conn: sqlite3.Connection, access: Access, entity: Entity, ids: list[int]
    ) -> None:
        """DELETE access to ``ids`` and, recursively, to their one-to-many dependents."""
        if not ids:
            return
        allowed = access.allowed_ids(conn, entity.name, "D", ids)
        if len(allowed) < len(set(ids)):
            raise IcatError(
                "INSUFFICIENT_PRIVILEGES", f"DELETE access to this {entity.name} is not allowed."
            )
        for f in entity.manies():
            target = self.model.entities[f.type]
            children: list[int] = []
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                children.extend(
                    r[0]
                    for r in conn.execute(
                        f"SELECT id FROM {_q(target.name)} WHERE {_q(f.mapped_by or '')} "
                        f"IN ({', '.join('?' * len(chunk))})",
                        chunk,
                    )
                )
            self._require_delete(conn, access, target, children)

    # -- reads -----------------------------------------------------------------------------
    def search(self, principal: Principal, text: str) -> SearchResult:
        """Run a query (JPQL or ICAT's concise syntax); rows filtered by the READ rules."""
        try:
            if concise.is_concise(text):
                text = concise.to_jpql(self.model, text)
            query = jpql.parse(text)
        except jpql.QueryError as exc:
            raise IcatError("BAD_PARAMETER", exc.message, exc.offset) from exc
        with self.connection() as conn:
            conn.execute("BEGIN")  # one consistent snapshot for the rows and their includes
            try:
                access = self.access(conn, principal)
                try:
                    compiled = compile_query(
                        self.model, query, principal, None if principal.is_root else access
                    )
                except jpql.QueryError as exc:
                    raise IcatError("BAD_PARAMETER", exc.message, exc.offset) from exc
                return self._run(conn, access, compiled)
            except sqlite3.Error as exc:
                raise IcatError("BAD_PARAMETER", f"Query failed: {exc}") from exc
            finally:
                conn.execute("COMMIT")

    def _run(
        self, conn: sqlite3.Connection, access: Access, compiled: CompiledQuery
    ) -> SearchResult:
        rows = conn.execute(compiled.sql, compiled.params).fetchall()
        if compiled.kind == "scalar":
            return SearchResult("scalar", [r[0] for r in rows], compiled.value_types)
        if compiled.kind == "fields":
            return SearchResult("fields", [tuple(r) for r in rows], compiled.value_types)
        assert compiled.entity is not None
        ids = [r[0] for r in rows]
        loaded = self.load(conn, compiled.entity, set(ids))  # already filtered by the rules
        objs: list[object] = [loaded[i] for i in ids if i in loaded]
        if compiled.includes is not None:
            self._include(conn, access, compiled.entity, list(loaded.values()), compiled.includes)
        return SearchResult("entity", objs, [])

    def load(
        self,
        conn: sqlite3.Connection,
        entity: Entity,
        ids: set[int],
        access: Access | None = None,
    ) -> dict[int, Obj]:
        """The rows of ``ids``; with ``access``, only those it may read."""
        out: dict[int, Obj] = {}
        id_list = sorted(i for i in ids if i is not None)
        for start in range(0, len(id_list), _CHUNK):
            chunk = id_list[start : start + _CHUNK]
            params: list[object] = list(chunk)
            sql = f"SELECT * FROM {_q(entity.name)} o WHERE o.id IN ({', '.join('?' * len(chunk))})"
            cond = access.condition(entity.name, "o.id", params) if access else None
            if cond:
                sql += f" AND {cond}"
            for row in conn.execute(sql, params):
                out[row["id"]] = Obj(entity, dict(row))
        return out

    def _include(
        self,
        conn: sqlite3.Connection,
        access: Access,
        entity: Entity,
        objs: list[Obj],
        node: IncludeNode,
    ) -> None:
        """Load the INCLUDEd relations, pruned to readable objects unless the step is public."""
        if not objs:
            return
        for rel, child in node.children.items():
            f = entity.fields[rel]
            target = self.model.entities[f.type]
            step_access = None if access.step_public(entity.name, rel, target.name) else access
            if f.rel_type == ONE:
                loaded = self.load(conn, target, {o.row[rel] for o in objs}, step_access)  # type: ignore[misc]
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
                    cond = (
                        step_access.condition(target.name, "c.id", params) if step_access else None
                    )
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
                self._include(conn, access, target, children, child)

    def is_allowed(self, principal: Principal, entity: Entity, flag: str, obj_id: int) -> bool:
        """isAccessAllowed for an existing object (READ, UPDATE or DELETE)."""
        with self.connection() as conn:
            conn.execute("BEGIN")
            try:
                return bool(
                    self.access(conn, principal).allowed_ids(conn, entity.name, flag, [obj_id])
                )
            finally:
                conn.execute("COMMIT")

    def exists(self, entity: Entity, obj_id: int) -> bool:
        with self.connection() as conn:
            return self._exists(conn, entity, obj_id)

    @staticmethod
    def _exists(conn: sqlite3.Connection, entity: Entity, obj_id: int) -> bool:
        sql = f"SELECT 1 FROM {_q(entity.name)} WHERE id = ?"
        return conn.execute(sql, (obj_id,)).fetchone() is not None


class _RollBack(Exception):
    """Raised inside a write transaction to undo it (isAccessAllowed CREATE)."""


_NO_RULES = RuleSet(rules=[], groups_of={}, public_tables=frozenset(), public_steps=frozenset())


def _field_problem(entity: Entity, row: dict[str, object], back_ref: str | None) -> str | None:
    """icat.server's isValid: the first mandatory field that is null or string that is too
    long (Java counts UTF-16 units), as its message; None when the bean is valid."""
    for name in _mandatory(entity):
        if name != back_ref and row.get(name) is None:
            return f"{entity.name}: {name} cannot be null."
    for name, length in _sized(entity):
        value = row.get(name)
        if isinstance(value, str) and len(value) * 2 > length and _utf16_length(value) > length:
            return f"{entity.name}: {name} cannot have length > {length}"
    return None


def _mandatory(entity: Entity) -> tuple[str, ...]:
    found = _MANDATORY.get(entity.name)
    if found is None:
        found = _MANDATORY[entity.name] = tuple(
            f.name
            for f in entity.fields.values()
            if f.not_nullable
            and f.rel_type in (ATTRIBUTE, ONE)
            and f.name != "id"
            and f.name not in META_FIELDS
        )
    return found


def _sized(entity: Entity) -> tuple[tuple[str, int], ...]:
    found = _SIZED.get(entity.name)
    if found is None:
        found = _SIZED[entity.name] = tuple(
            (f.name, f.string_length) for f in entity.fields.values() if f.string_length is not None
        )
    return found


# Per entity name (the model is one per process): the fields isValid looks at.
_MANDATORY: dict[str, tuple[str, ...]] = {}
_SIZED: dict[str, tuple[tuple[str, int], ...]] = {}


def _utf16_length(text: str) -> int:
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def java_double(value: object) -> str:
    """A double as Java's Double.toString writes it (5.0, 1.0E7, 1.5E-4), for ICAT's messages."""
    number = float(value)  # type: ignore[arg-type]
    if number == 0 or 1e-3 <= abs(number) < 1e7:
        return repr(number)
    shortest = Decimal(repr(number))
    digits = "".join(map(str, shortest.as_tuple().digits)).rstrip("0") or "0"
    sign = "-" if number < 0 else ""
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{shortest.adjusted()}"


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
        self.parameter_types: dict[int, sqlite3.Row | None] = {}

    def validate(
        self, entity: Entity, row: dict[str, object], back_ref: str | None, creating: bool = True
    ) -> None:
        """ICAT's checks of a bean about to be written, in icat.server's order: the entity's own
        (``preparePersist``: Rule, Parameter), then uniqueness (``isUnique``), then mandatory
        fields and string lengths (``isValid``); then that related objects exist."""
        try:
            if entity.name == "Rule":
                validate_rule(self.model, row.get("crudFlags"), row.get("what"))
            if entity.parent == "Parameter":
                self._check_parameter(entity, row, creating)
            problem = _field_problem(entity, row, back_ref)
            if problem is not None:
                if creating:  # an update's uniqueness is left to the UNIQUE index
                    self._require_unique(entity, row)
                raise IcatError("VALIDATION", problem)
        except IcatError as exc:
            exc.offset = self.offset
            raise
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

    def _require_unique(self, entity: Entity, row: dict[str, object]) -> None:
        """OBJECT_ALREADY_EXISTS when another object has this bean's key (icat.server's
        isUnique: ``o.f = :f`` for each key field, so a null key field matches nothing)."""
        if not entity.constraint or any(row.get(k) is None for k in entity.constraint):
            return
        where = " AND ".join(f"{_q(k)} = ?" for k in entity.constraint)
        sql = f"SELECT 1 FROM {_q(entity.name)} WHERE {where}"
        if self.conn.execute(sql, [row[k] for k in entity.constraint]).fetchone() is not None:
            raise self.exists_fault(entity, row)

    def _parameter_type(self, type_id: int) -> sqlite3.Row | None:
        if type_id not in self.parameter_types:
            self.parameter_types[type_id] = self.conn.execute(
                "SELECT name, valueType, enforced, minimumNumericValue, maximumNumericValue, "
                '"applicableToDataCollection", "applicableToDatafile", "applicableToDataset", '
                '"applicableToInvestigation", "applicableToSample" FROM "ParameterType" '
                "WHERE id = ?",
                (type_id,),
            ).fetchone()
        return self.parameter_types[type_id]

    def _check_parameter(self, entity: Entity, row: dict[str, object], creating: bool) -> None:
        """icat.server's Parameter.check and <X>Parameter.preparePersist: a type is set, it is
        applicable to the parent's entity (on create), and an *enforced* type's range (NUMERIC)
        or permissible values (STRING) hold."""
        type_id = row.get("type")
        if type_id is None:
            raise IcatError("VALIDATION", "Type of parameter is not set")
        ptype = self._parameter_type(type_id)  # type: ignore[arg-type]
        if ptype is None:
            return  # NO_SUCH_OBJECT_FOUND follows
        parent = entity.name.removesuffix("Parameter")  # Datafile, Dataset, ...
        if creating and not ptype[f"applicableTo{parent}"]:
            raise IcatError(
                "VALIDATION", f"Parameter of type {ptype['name']} is not applicable to a {parent}"
            )
        if not ptype["enforced"]:
            return
        if ptype["valueType"] == "NUMERIC":
            value = row.get("numericValue")
            low, high = ptype["minimumNumericValue"], ptype["maximumNumericValue"]
            if value is None:
                return  # icat.server fails with an internal error here
            if low is not None and value < low:
                raise IcatError(
                    "VALIDATION",
                    f"Parameter of type {ptype['name']} has value {java_double(value)} < "
                    f"{java_double(low)}",
                )
            if high is not None and value > high:
                raise IcatError(
                    "VALIDATION",
                    f"Parameter of type {ptype['name']} has value {java_double(value)} > "
                    f"{java_double(high)}",
                )
        elif ptype["valueType"] == "STRING":
            allowed = [
                r[0]
                for r in self.conn.execute(
                    'SELECT value FROM "PermissibleStringValue" WHERE type = ? ORDER BY id',
                    (type_id,),
                )
            ]
            value = row.get("stringValue")
            if allowed and value not in allowed:
                raise IcatError(
                    "VALIDATION",
                    f"Parameter of type {ptype['name']} has value "
                    f"{'null' if value is None else value} not in allowed set "
                    f"[{', '.join(allowed)}]",
                )

    def exists_fault(self, entity: Entity, row: dict[str, object]) -> IcatError:
        parts = []
        for name in entity.constraint:
            value = row.get(name)
            f = entity.fields[name]
            shown = f"id:{value}" if f.rel_type == ONE else value
            parts.append(f"{name} = '{shown}'")
        return IcatError(
            "OBJECT_ALREADY_EXISTS", f"{entity.name} exists with {', '.join(parts)}", self.offset
        )

    def integrity_fault(
        self, entity: Entity, row: dict[str, object], exc: sqlite3.IntegrityError
    ) -> IcatError:
        if "UNIQUE" in str(exc) and entity.constraint:
            return self.exists_fault(entity, row)
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
