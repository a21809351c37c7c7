"""Compile a parsed ICAT JPQL query (:mod:`icat_emulator.jpql`) into one SQLite statement.

Tables are one per entity, named like the entity; attribute columns are named like the field,
a many-to-one relation is a column of the same name holding the related id. Implicit path
navigation (``o.dataset.investigation.name``) becomes INNER JOINs, as in JPQL. Read authorisation
for ordinary users is a condition on the selected alias (see :func:`read_condition`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from . import jpql
from .jpql import QueryError
from .model import ATTRIBUTE, MANY, ONE, Entity, Field, Model
from .values import ValueError_, to_db


@dataclass(frozen=True)
class Principal:
    """Who is asking: the ICAT user name (``plugin/name``) and whether it is a root user."""

    name: str
    is_root: bool


# Entities every authenticated user may read (what ICAT sites usually grant via PublicTables rules).
PUBLIC_ENTITIES = frozenset(
    {
        "Application",
        "DataPublicationType",
        "DatafileFormat",
        "DatasetType",
        "Facility",
        "FacilityCycle",
        "FundingReference",
        "Instrument",
        "InvestigationType",
        "ParameterType",
        "PermissibleStringValue",
        "SampleType",
        "Technique",
        "User",
    }
)

# Entities readable through an investigation: the chain of many-to-one fields leading to it.
INVESTIGATION_PATHS: dict[str, list[str]] = {
    "Investigation": [],
    "Dataset": ["investigation"],
    "Datafile": ["dataset", "investigation"],
    "DatasetParameter": ["dataset", "investigation"],
    "DatafileParameter": ["datafile", "dataset", "investigation"],
    "SampleParameter": ["sample", "investigation"],
    "DatasetInstrument": ["dataset", "investigation"],
    "DatasetTechnique": ["dataset", "investigation"],
    "RelatedDatafile": ["sourceDatafile", "dataset", "investigation"],
    **{
        name: ["investigation"]
        for name in (
            "InvestigationParameter",
            "InvestigationUser",
            "InvestigationInstrument",
            "InvestigationFacilityCycle",
            "InvestigationGroup",
            "InvestigationFunding",
            "Keyword",
            "Publication",
            "Sample",
            "Shift",
            "StudyInvestigation",
        )
    },
}


def read_condition(
    model: Model, entity: Entity, alias: str, principal: Principal, params: list[object]
) -> str | None:
    """SQL condition restricting ``alias`` (a row of ``entity``) to what ``principal`` may read.

    Ordinary users read the public catalogue entities, and investigations they are an
    InvestigationUser of (matched on User.name == their ``plugin/name``) with everything below.
    """
    if principal.is_root or entity.name in PUBLIC_ENTITIES:
        return None
    chain = INVESTIGATION_PATHS.get(entity.name)
    if chain is None:
        return "0"
    expr = f"{alias}.id"
    current = entity
    for step in chain:
        f = current.fields[step]
        if expr == f"{alias}.id":
            expr = f'{alias}."{step}"'
        else:
            expr = f'(SELECT x."{step}" FROM "{current.name}" x WHERE x.id = {expr})'
        current = model.entities[f.type]
    params.append(principal.name)
    return (
        f'{expr} IN (SELECT iu."investigation" FROM "InvestigationUser" iu '
        f'JOIN "User" u ON u.id = iu."user" WHERE u."name" = ?)'
    )


@dataclass
class IncludeNode:
    """Relations to load with each result object, recursively."""

    children: dict[str, IncludeNode] = field(default_factory=dict)


@dataclass
class CompiledQuery:
    sql: str
    params: list[object]
    kind: str  # "entity" (ids of `entity`), "scalar" (one typed value) or "fields" (fieldSet)
    entity: Entity | None = None
    value_types: list[str] = field(default_factory=list)  # Java type per selected value
    includes: IncludeNode | None = None


_SQL_FUNCTIONS = {
    "UPPER": "upper",
    "LOWER": "lower",
    "LENGTH": "length",
    "TRIM": "trim",
    "ABS": "abs",
    "SQRT": "sqrt",
    "SUBSTRING": "substr",
    "LOCATE": "instr",
    "MOD": "mod",
}


class _Compiler:
    def __init__(self, model: Model, query: jpql.Query, principal: Principal) -> None:
        self.model = model
        self.q = query
        self.principal = principal
        self.params: list[object] = []
        self.joins: list[str] = []
        self.implicit: dict[tuple[str, str], str] = {}
        self.aliases: dict[str, tuple[str, Entity]] = {}
        self.counter = 0

    def new_alias(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    def entity(self, name: str, offset: int = -1) -> Entity:
        entity = self.model.entities.get(name)
        if entity is None or entity.abstract:
            raise QueryError(f"{name} is not a known entity", offset)
        return entity

    # -- paths ----------------------------------------------------------------------------
    def start(self, path: jpql.Path) -> tuple[str, Entity]:
        alias = path.parts[0]
        if alias not in self.aliases:
            raise QueryError(
                f"Unknown identifier '{alias}' in '{'.'.join(path.parts)}'", path.offset
            )
        return self.aliases[alias]

    def field_of(self, entity: Entity, name: str, path: jpql.Path) -> Field:
        f = entity.fields.get(name)
        if f is None:
            raise QueryError(
                f"'{name}' is not a field of {entity.name} in '{'.'.join(path.parts)}'", path.offset
            )
        return f

    def navigate_one(self, sql_alias: str, entity: Entity, rel: str) -> tuple[str, Entity]:
        key = (sql_alias, rel)
        target = self.model.entities[entity.fields[rel].type]
        if key not in self.implicit:
            new = self.new_alias()
            self.joins.append(f'JOIN "{target.name}" {new} ON {new}.id = {sql_alias}."{rel}"')
            self.implicit[key] = new
        return self.implicit[key], target

    def resolve(self, path: jpql.Path) -> tuple[str, str, str]:
        """Path -> (SQL expression, Java type or entity name, kind: attr|entity)."""
        sql_alias, entity = self.start(path)
        parts = path.parts[1:]
        if not parts:
            return f"{sql_alias}.id", entity.name, "entity"
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            f = self.field_of(entity, part, path)
            if f.rel_type == ATTRIBUTE:
                if not last:
                    raise QueryError(
                        f"'{part}' is not a relation in '{'.'.join(path.parts)}'", path.offset
                    )
                column = "id" if part == "id" else f'"{part}"'
                return f"{sql_alias}.{column}", f.type, "attr"
            if f.rel_type == MANY:
                raise QueryError(
                    f"Collection '{part}' cannot be navigated in '{'.'.join(path.parts)}'; "
                    "use a JOIN",
                    path.offset,
                )
            if last:
                return f'{sql_alias}."{part}"', f.type, "entity"
            if i == len(parts) - 2 and parts[-1] == "id":
                return f'{sql_alias}."{part}"', "Long", "attr"
            sql_alias, entity = self.navigate_one(sql_alias, entity, part)
        raise AssertionError("unreachable")

    def join(self, join: jpql.Join) -> None:
        path = join.path
        if len(path.parts) < 2:
            raise QueryError("A JOIN needs a relation path", path.offset)
        sql_alias, entity = self.start(path)
        for part in path.parts[1:-1]:
            f = self.field_of(entity, part, path)
            if f.rel_type != ONE:
                raise QueryError(f"'{part}' is not a many-to-one relation", path.offset)
            sql_alias, entity = self.navigate_one(sql_alias, entity, part)
        f = self.field_of(entity, path.parts[-1], path)
        kind = "LEFT JOIN" if join.kind == "LEFT" else "JOIN"
        new = self.new_alias()
        target = self.model.entities.get(f.type)
        if f.rel_type == ONE and target:
            self.joins.append(f'{kind} "{target.name}" {new} ON {new}.id = {sql_alias}."{f.name}"')
        elif f.rel_type == MANY and target:
            self.joins.append(
                f'{kind} "{target.name}" {new} ON {new}."{f.mapped_by}" = {sql_alias}.id'
            )
        else:
            raise QueryError(f"'{f.name}' is not a relation of {entity.name}", path.offset)
        if join.alias in self.aliases:
            raise QueryError(f"Duplicate identifier '{join.alias}'", path.offset)
        self.aliases[join.alias] = (new, target)

    # -- expressions -----------------------------------------------------------------------
    def literal(self, lit: jpql.Literal, java_type: str | None) -> str:
        if lit.kind == "null":
            return "NULL"
        value: object = self.principal.name if lit.kind == "user" else lit.value
        if java_type is not None and java_type not in self.model.entities:
            with contextlib.suppress(ValueError_):  # else compare as given: it will not match
                value = to_db(java_type, value)
        elif java_type is not None:
            with contextlib.suppress(ValueError):
                value = int(str(value))
        elif lit.kind == "bool":
            value = int(bool(value))
        elif lit.kind == "timestamp":
            value = to_db("Date", value)
        self.params.append(value)
        return "?"

    def expr(self, node: object, hint: str | None = None) -> tuple[str, str | None]:
        if isinstance(node, jpql.Path):
            sql, java_type, _ = self.resolve(node)
            return sql, java_type
        if isinstance(node, jpql.Literal):
            return self.literal(node, hint), hint
        if isinstance(node, jpql.Func):
            if node.name == "CONCAT":
                parts = [self.expr(a)[0] for a in node.args]
                return "(" + " || ".join(parts) + ")", "String"
            fn = _SQL_FUNCTIONS.get(node.name)
            if fn is None:
                raise QueryError(f"Function {node.name} is not supported by this emulator")
            args = [self.expr(a)[0] for a in node.args]
            result_type = (
                "Long"
                if node.name in ("LENGTH", "LOCATE")
                else (self.expr_type(node.args[0]) if node.args else None)
            )
            return f"{fn}({', '.join(args)})", result_type
        raise QueryError(f"Unsupported expression {node!r}")

    def expr_type(self, node: object) -> str | None:
        if isinstance(node, jpql.Path):
            saved = (list(self.joins), dict(self.implicit), self.counter)
            _, java_type, _ = self.resolve(node)
            self.joins, self.implicit, self.counter = saved
            return java_type
        return None

    def pair(self, left: object, right: object) -> tuple[str, str]:
        left_type = self.expr_type(left)
        right_type = self.expr_type(right)
        lsql, _ = self.expr(left, right_type)
        rsql, _ = self.expr(right, left_type)
        return lsql, rsql

    def condition(self, node: object) -> str:
        if isinstance(node, jpql.BoolOp):
            return "(" + f" {node.op} ".join(self.condition(i) for i in node.items) + ")"
        if isinstance(node, jpql.Not):
            return f"(NOT {self.condition(node.item)})"
        if isinstance(node, jpql.Compare):
            lsql, rsql = self.pair(node.left, node.right)
            return f"{lsql} {node.op} {rsql}"
        if isinstance(node, jpql.InList):
            java_type = self.expr_type(node.expr)
            lsql, _ = self.expr(node.expr)
            values = ", ".join(self.expr(v, java_type)[0] for v in node.values)
            return f"{lsql} {'NOT ' if node.negated else ''}IN ({values})"
        if isinstance(node, jpql.Like):
            lsql, _ = self.expr(node.expr)
            psql, _ = self.expr(node.pattern, "String")
            escape = f" ESCAPE {self.expr(node.escape, 'String')[0]}" if node.escape else ""
            return f"{lsql} {'NOT ' if node.negated else ''}LIKE {psql}{escape}"
        if isinstance(node, jpql.IsNull):
            lsql, _ = self.expr(node.expr)
            return f"{lsql} IS {'NOT ' if node.negated else ''}NULL"
        if isinstance(node, jpql.Between):
            java_type = self.expr_type(node.expr)
            lsql, _ = self.expr(node.expr)
            low, _ = self.expr(node.low, java_type)
            high, _ = self.expr(node.high, java_type)
            return f"{lsql} {'NOT ' if node.negated else ''}BETWEEN {low} AND {high}"
        raise QueryError(f"Unsupported condition {node!r}")

    # -- select ------------------------------------------------------------------------------
    def select_item(self, item: object) -> tuple[str, str, str]:
        """-> (SQL, Java type or entity name, kind: entity|attr|aggregate)."""
        if isinstance(item, jpql.Path):
            return self.resolve(item)
        assert isinstance(item, jpql.Func)
        inner = item.args[0]
        distinct = item.distinct
        if isinstance(inner, jpql.Func) and inner.name == "DISTINCT":
            distinct = True
            inner = inner.args[0]
        sql, java_type, kind = self.select_item(inner)
        prefix = "DISTINCT " if distinct else ""
        if item.name == "DISTINCT":
            return sql, java_type, kind + "+distinct"
        if item.name == "COUNT":
            return f"COUNT({prefix}{sql})", "Long", "aggregate"
        if kind == "entity" and item.name in ("MIN", "MAX", "AVG", "SUM"):
            raise QueryError(f"{item.name} needs an attribute, not an entity")
        if item.name == "AVG":
            return f"AVG({prefix}{sql})", "Double", "aggregate"
        if item.name == "SUM":
            out_type = "Double" if java_type == "Double" else "Long"
            return f"SUM({prefix}{sql})", out_type, "aggregate"
        return f"{item.name}({prefix}{sql})", java_type, "aggregate"

    def includes(self, root: Entity) -> IncludeNode | None:
        q = self.q
        if not q.includes and not q.include_all_one:
            return None
        root_node = IncludeNode()
        if q.include_all_one:
            for f in root.ones():
                root_node.children[f.name] = IncludeNode()
            return root_node
        nodes: dict[str, tuple[IncludeNode, Entity]] = {q.alias: (root_node, root)}
        for inc in q.includes:
            first = inc.path.parts[0]
            if first not in nodes and first in root.fields:
                # Lenient: "Dataset INCLUDE datafiles" means the root's relation.
                inc = jpql.Include(
                    jpql.Path([q.alias, *inc.path.parts], inc.path.offset), inc.alias
                )
                first = q.alias
            if first not in nodes:
                raise QueryError(f"Unknown identifier '{first}' in INCLUDE", inc.path.offset)
            node, entity = nodes[first]
            if len(inc.path.parts) < 2:
                raise QueryError("INCLUDE needs a relation path", inc.path.offset)
            for part in inc.path.parts[1:]:
                f = self.field_of(entity, part, inc.path)
                if f.rel_type == ATTRIBUTE:
                    raise QueryError(f"'{part}' in INCLUDE is not a relation", inc.path.offset)
                node = node.children.setdefault(part, IncludeNode())
                entity = self.model.entities[f.type]
            if inc.alias:
                nodes[inc.alias] = (node, entity)
        return root_node

    def compile(self) -> CompiledQuery:
        q = self.q
        root = self.entity(q.bean, q.bean_offset)
        self.aliases[q.alias] = ("t0", root)
        for join in q.joins:
            self.join(join)
        where = [self.condition(q.where)] if q.where is not None else []
        items = [self.select_item(i) for i in q.select]
        order = []
        for expr, desc in q.order:
            sql, _ = self.expr(expr)
            order.append(f"{sql} {'DESC' if desc else 'ASC'}")

        distinct = q.distinct
        if len(items) == 1 and items[0][2].endswith("+distinct"):
            distinct = True
            items = [(items[0][0], items[0][1], items[0][2].removesuffix("+distinct"))]
        sql_item, java_type, kind = items[0]
        result_entity: Entity | None = None
        if len(items) == 1 and kind == "entity":
            result_entity = self.model.entities[java_type]
            out_kind = "entity"
            if not order:
                order.append(f"{sql_item} ASC")
        elif len(items) == 1:
            out_kind = "scalar"
        else:
            if any(k == "entity" for _, _, k in items):
                raise QueryError("A multi-item SELECT may only list attributes")
            out_kind = "fields"
        if (q.includes or q.include_all_one) and out_kind != "entity":
            raise QueryError("INCLUDE may only be used when selecting entities")

        # Authorisation: only rows the principal may read take part. These conditions come
        # first in WHERE, so their parameters come first too.
        auth_params: list[object] = []
        auth_conds: list[str] = []
        root_cond = read_condition(self.model, root, "t0", self.principal, auth_params)
        if root_cond:
            auth_conds.append(root_cond)
        if result_entity is not None and sql_item != "t0.id":
            # Selecting a joined/related entity: it must exist and be readable too.
            auth_conds.append(f"{sql_item} IS NOT NULL")
            sel_cond = read_condition(self.model, result_entity, "r", self.principal, auth_params)
            if sel_cond:
                auth_conds.append(
                    f'{sql_item} IN (SELECT r.id FROM "{result_entity.name}" r WHERE {sel_cond})'
                )
        where = auth_conds + where

        select_sql = ", ".join(i[0] for i in items)
        sql = f'SELECT {"DISTINCT " if distinct else ""}{select_sql} FROM "{root.name}" t0'
        if self.joins:
            sql += " " + " ".join(self.joins)
        if where:
            sql += " WHERE " + " AND ".join(where)
        if order and not (out_kind == "scalar" and kind == "aggregate"):
            sql += " ORDER BY " + ", ".join(order)
        if q.limit is not None:
            sql += f" LIMIT {int(q.limit[1])} OFFSET {int(q.limit[0])}"
        return CompiledQuery(
            sql=sql,
            params=[*auth_params, *self.params],
            kind=out_kind,
            entity=result_entity,
            value_types=[i[1] for i in items],
            includes=self.includes(root) if out_kind == "entity" else None,
        )


def compile_query(model: Model, query: jpql.Query, principal: Principal) -> CompiledQuery:
    return _Compiler(model, query, principal).compile()
