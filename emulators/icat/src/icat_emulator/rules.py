"""ICAT's rule-based authorisation (icat.server's GateKeeper), evaluated in SQL.

A ``Rule`` grants the CRUD flags in ``crudFlags`` on the objects ``what`` selects to the members
of its ``Grouping`` (``UserGroup`` -> ``User.name`` = the caller's ``<plugin>/<name>``), or to
everyone when it has no grouping. ``what`` is an entity name or a query, JPQL
(``SELECT i FROM Investigation i JOIN i.investigationUsers iu JOIN iu.user u WHERE u.name =
:user``) or concise (``Investigation <-> InvestigationUser <-> User [name = :user]``); it is
*restricted* when it has a WHERE condition (icat.server's own test: a JOIN alone restricts
nothing). Root users (configuration) bypass every rule. As in icat.server:

* a search keeps only rows whose selected objects (each entity a SELECT item names: ``o``,
  the owner of ``o.name``, ``o.dataset``) some READ rule accepts; no READ rule at all means an
  empty result (``COUNT`` gives 0);
* tables with an unrestricted rule without grouping (any flags) are *public*: readable by all;
* INCLUDEd objects are pruned to readable ones, unless the target table is public or a
  ``PublicStep`` (origin entity, field) makes that step public;
* get / update / delete / create need READ / UPDATE / DELETE / CREATE on the object
  (CREATE is checked on the new row, so ``what`` can look at what it links to).

Rules, memberships and public steps are read once per change of those tables (the store bumps
a generation) and each rule is compiled to one SQL ``SELECT id ...`` once; checks are then a
subquery in the statement that runs anyway, so rules cost little.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field

from . import concise, jpql
from .errors import IcatError
from .model import Model
from .sqlgen import USER_PARAM, Principal, compile_rule_what

# Writes to these tables change who may do what.
RULE_TABLES = frozenset({"Rule", "Grouping", "UserGroup", "User", "PublicStep"})
_FLAGS = frozenset("CRUD")


@dataclass(frozen=True)
class CompiledRule:
    bean: str  # the entity the rule is about
    attribute: str | None  # "SELECT o.attr ...": an UPDATE rule for one field (REST API only)
    restricted: bool
    ids_sql: str  # SELECT <ids of bean objects allowed> ...  (parameters: params)
    params: tuple[object, ...]


def compile_what(model: Model, what: str) -> CompiledRule:
    """Parse and compile ``Rule.what``; BAD_PARAMETER as icat.server when it is not valid."""
    text = what
    try:
        if concise.is_concise(text):
            text = concise.to_jpql(model, text)
        query = jpql.parse(text)
        bean, attribute, ids_sql, params, restricted = compile_rule_what(model, query)
    except jpql.QueryError as exc:
        raise IcatError("BAD_PARAMETER", f"Rule what '{what}': {exc.message}", exc.offset) from exc
    return CompiledRule(bean, attribute, restricted, ids_sql, tuple(params))


def check_crud_flags(flags: object) -> frozenset[str]:
    text = str(flags or "").upper().strip()
    bad = [ch for ch in text if ch not in _FLAGS]
    if bad or not text:
        raise IcatError("BAD_PARAMETER", f"CRUD value {flags} contains {''.join(bad) or 'nothing'}")
    return frozenset(text)


def validate_rule(model: Model, crud_flags: object, what: object) -> None:
    """What icat.server checks when a Rule is created or updated."""
    flags = check_crud_flags(crud_flags)
    if what is None:
        raise IcatError("BAD_PARAMETER", "'what' must not be null")
    rule = compile_what(model, str(what))
    if rule.attribute is not None and flags & {"C", "R", "D"}:
        raise IcatError("BAD_PARAMETER", "Attribute selection in rules is only allowed for Update")


# (sql, params) of one restriction: ids of allowed objects
Restriction = tuple[str, tuple[object, ...]]


@dataclass
class RuleSet:
    """The rules in force at one generation, with per-user answers memoised."""

    rules: list[tuple[CompiledRule, frozenset[str], int | None]]  # rule, flags, grouping id
    groups_of: dict[str, frozenset[int]]
    public_tables: frozenset[str]
    public_steps: frozenset[tuple[str, str]]
    _memo: dict[tuple[str, str, str], list[Restriction] | None] = field(default_factory=dict)

    def restrictions(self, user: str, bean: str, flag: str) -> list[Restriction] | None:
        """None: every object allowed; otherwise the allowed-id queries (empty: none allowed)."""
        key = (user, bean, flag)
        if key in self._memo:
            return self._memo[key]
        groups = self.groups_of.get(user, frozenset())
        found: list[Restriction] = []
        result: list[Restriction] | None = found
        for rule, flags, grouping in self.rules:
            if rule.bean != bean or flag not in flags or rule.attribute is not None:
                continue
            if grouping is not None and grouping not in groups:
                continue
            if not rule.restricted:
                result = None
                break
            item = (rule.ids_sql, rule.params)
            if item not in found:
                found.append(item)
        self._memo[key] = result
        return result


def _bind(params: tuple[object, ...], user: str) -> list[object]:
    return [user if p == USER_PARAM else p for p in params]


class Access:
    """What one principal may do, under one :class:`RuleSet` (also a search's read filter)."""

    def __init__(self, rules: RuleSet, principal: Principal) -> None:
        self.rules = rules
        self.principal = principal

    def read_unrestricted(self, entity: str) -> bool:
        return self.principal.is_root or entity in self.rules.public_tables

    def step_public(self, origin: str, field_name: str, target: str) -> bool:
        return (
            self.principal.is_root
            or target in self.rules.public_tables
            or (origin, field_name) in self.rules.public_steps
        )

    def condition(self, entity: str, id_sql: str, params: list[object]) -> str | None:
        """SQL keeping rows whose ``id_sql`` (an object of ``entity``) may be read."""
        if self.read_unrestricted(entity):
            return None
        restrictions = self.rules.restrictions(self.principal.name, entity, "R")
        if restrictions is None:
            return None
        if not restrictions:
            return "0"
        parts = []
        for sql, rule_params in restrictions:
            parts.append(f"{id_sql} IN ({sql})")
            params.extend(_bind(rule_params, self.principal.name))
        return "(" + " OR ".join(parts) + ")"

    def allowed_ids(
        self, conn: sqlite3.Connection, entity: str, flag: str, ids: list[int]
    ) -> set[int]:
        """The subset of ``ids`` (objects of ``entity``) on which ``flag`` is granted."""
        if self.principal.is_root or not ids:
            return set(ids)
        if flag == "R" and entity in self.rules.public_tables:
            return set(ids)
        restrictions = self.rules.restrictions(self.principal.name, entity, flag)
        if restrictions is None:
            return set(ids)
        allowed: set[int] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            # Shorter rules first, as icat.server: they are usually cheaper.
            for sql, rule_params in sorted(restrictions, key=lambda r: len(r[0])):
                left = [i for i in chunk if i not in allowed]
                if not left:
                    break
                marks = ", ".join("?" * len(left))
                rows = conn.execute(
                    f"SELECT a.id FROM ({sql}) a WHERE a.id IN ({marks})",
                    [*_bind(rule_params, self.principal.name), *left],
                )
                allowed.update(r[0] for r in rows)
        return allowed

    def require(self, conn: sqlite3.Connection, entity: str, flag: str, obj_id: int) -> None:
        if not self.allowed_ids(conn, entity, flag, [obj_id]):
            raise IcatError(
                "INSUFFICIENT_PRIVILEGES",
                f"{_ACCESS[flag]} access to this {entity} is not allowed.",
            )


_ACCESS = {"C": "CREATE", "R": "READ", "U": "UPDATE", "D": "DELETE"}


class RuleCache:
    """The current :class:`RuleSet`, reloaded when the store's rule generation changes."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self._lock = threading.Lock()
        self._current: tuple[int, RuleSet] | None = None
        self._compiled: dict[str, CompiledRule | None] = {}

    def get(self, conn: sqlite3.Connection, generation: int) -> RuleSet:
        current = self._current
        if current is not None and current[0] == generation:
            return current[1]
        with self._lock:
            current = self._current
            if current is not None and current[0] == generation:
                return current[1]
            ruleset = self._load(conn)
            self._current = (generation, ruleset)
            return ruleset

    def _compile(self, what: str) -> CompiledRule | None:
        if what not in self._compiled:
            try:
                self._compiled[what] = compile_what(self.model, what)
            except IcatError:
                self._compiled[what] = None  # refused on create; never grants anything
        return self._compiled[what]

    def _load(self, conn: sqlite3.Connection) -> RuleSet:
        rules: list[tuple[CompiledRule, frozenset[str], int | None]] = []
        public: set[str] = set()
        for crud, what, grouping in conn.execute('SELECT crudFlags, what, "grouping" FROM "Rule"'):
            compiled = self._compile(str(what))
            if compiled is None:
                continue
            flags = frozenset(str(crud or "").upper().strip()) & _FLAGS
            rules.append((compiled, flags, grouping))
            if grouping is None and not compiled.restricted:
                public.add(compiled.bean)
        groups: dict[str, set[int]] = {}
        for name, grouping in conn.execute(
            'SELECT u.name, ug."grouping" FROM "UserGroup" ug JOIN "User" u ON u.id = ug."user"'
        ):
            groups.setdefault(name, set()).add(grouping)
        steps = frozenset(
            (str(o), str(f)) for o, f in conn.execute('SELECT origin, field FROM "PublicStep"')
        )
        return RuleSet(
            rules=rules,
            groups_of={k: frozenset(v) for k, v in groups.items()},
            public_tables=frozenset(public),
            public_steps=steps,
        )
