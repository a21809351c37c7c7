"""Compile a parsed ICAT JPQL query (:mod:`icat_emulator.jpql`) into one SQLite statement.

Tables are one per entity, named like the entity; attribute columns are named like the field,
a many-to-one relation is a column of the same name holding the related id. Implicit path
navigation (``o.dataset.investigation.name``) becomes INNER JOINs, as in JPQL. Read authorisation
is a condition per entity the SELECT names, given by a :class:`ReadFilter` (rules.py), as
icat.server adds its rules' queries to the WHERE clause.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Protocol

from . import jpql
from .jpql import QueryError
from .model import ATTRIBUTE, MANY, ONE, Entity, Field, Model
from .values import ValueError_, to_db


@dataclass(frozen=True)
class Principal:
    """Who is asking: the ICAT user name (``plugin/name``) and whether it is a root user."""

    name: str
    is_root: bool


# Stands for ``:user`` among the parameters of a compiled rule; bound to the caller's name.
USER_PARAM = "\x00:user"


class ReadFilter(Protocol):
    """Who may read what (:class:`icat_emulator.rules.Access`); ``None`` filters nothing."""

    def condition(self, entity: str, id_sql: str, params: list[object]) -> str | None:
        """SQL keeping rows whose ``id_sql`` (an object of ``entity``) may be read, or None."""
        ...


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

# Stored dates are UTC text ``YYYY-MM-DDTHH:MM:SS.ffffff`` (values.py): "now" in the same form,
# evaluated when the statement runs (a cached rule stays current).
_NOW_SQL = {
    "CURRENT_TIMESTAMP": "strftime('%Y-%m-%dT%H:%M:%f', 'now')",
    "CURRENT_DATE": "strftime('%Y-%m-%dT00:00:00.000', 'now')",
    "CURRENT_TIME": "strftime('%Y-%m-%dT%H:%M:%f', 'now')",
}


class _Compiler:
    def __init__(
        self,
        model: Model,
        query: jpql.Query,
        user: str,
        reads: ReadFilter | None = None,
        prefix: str = "t",
    ) -> None:
        self.model = model
        self.q = query
        self.user = user  # what :user stands for
        self.reads = reads
        self.prefix = prefix
        self.params: list[object] = []
        self.joins: list[str] = []
        self.implicit: dict[tuple[str, str], str] = {}
        self.aliases: dict[str, tuple[str, Entity]] = {}
        self.counter = 0

    def new_alias(self) -> str:
        self.counter += 1
        return f"{self.prefix}{self.counter}"

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
        value: object = self.user if lit.kind == "user" else lit.value
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
        if isinstance(node, jpql.SubQuery):
            sql, value_type = self.subquery(node)
            return f"({sql})", value_type
        if isinstance(node, jpql.Arith):
            left_type, right_type = self.expr_type(node.left), self.expr_type(node.right)
            lsql, ltype = self.expr(node.left, right_type or hint)
            rsql, rtype = self.expr(node.right, left_type or hint)
            types = {ltype, rtype}
            return f"({lsql} {node.op} {rsql})", "Double" if "Double" in types else (ltype or rtype)
        if isinstance(node, jpql.Negate):
            sql, value_type = self.expr(node.item, hint)
            return f"(-{sql})", value_type
        if isinstance(node, jpql.Case):
            return self.case(node, hint)
        if isinstance(node, jpql.Func) and node.name in _AGGREGATE_NAMES:
            if len(node.args) != 1:
                raise QueryError(f"{node.name} takes one argument")
            sql, value_type, _ = self.select_item(node)
            return sql, value_type
        if isinstance(node, jpql.Func):
            if node.name in _NOW_SQL:
                return _NOW_SQL[node.name], "Date"
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

    def case(self, node: jpql.Case, hint: str | None) -> tuple[str, str | None]:
        parts = ["CASE"]
        operand_type = None
        if node.operand is not None:
            operand_type = self.expr_type(node.operand)
            parts.append(self.expr(node.operand)[0])
        result_type: str | None = None
        for test, result in node.whens:
            when = (
                self.condition(test) if node.operand is None else self.expr(test, operand_type)[0]
            )
            then, then_type = self.expr(result, hint)
            result_type = result_type or then_type
            parts.append(f"WHEN {when} THEN {then}")
        if node.otherwise is not None:
            otherwise, other_type = self.expr(node.otherwise, hint)
            result_type = result_type or other_type
            parts.append(f"ELSE {otherwise}")
        parts.append("END")
        return "(" + " ".join(parts) + ")", result_type

    def subquery(
        self, node: jpql.SubQuery, extra: tuple[str, list[object]] | None = None
    ) -> tuple[str, str | None]:
        """A subquery's SQL (its parameters appended to ours) and the Java type of its one
        item. It sees our aliases (correlated) and, as in icat.server, which passes subqueries
        on to JPQL as written, no rule filters it. ``extra``: ``(SQL with {item} for the
        selected value, its parameters)``, a condition added to its WHERE (or HAVING, when it
        aggregates)."""
        if len(node.query.select) != 1:
            raise QueryError("A subquery selects one item")
        self.counter += 1
        inner = _Compiler(self.model, node.query, self.user, None, f"{self.prefix}q{self.counter}_")
        inner.aliases = dict(self.aliases)
        sql, params, value_type = inner.compile_sub(extra)
        self.params.extend(params)
        return sql, value_type

    def compile_sub(
        self, extra: tuple[str, list[object]] | None
    ) -> tuple[str, list[object], str | None]:
        q = self.q
        root = self.entity(q.bean, q.bean_offset)
        self.aliases[q.alias] = (f"{self.prefix}0", root)
        for join in q.joins:
            self.join(join)
        where = [self.condition(q.where)] if q.where is not None else []
        item_sql, java_type, kind = self.select_item(q.select[0])
        distinct = q.distinct or kind.endswith("+distinct")
        groups = [self.expr(g)[0] for g in q.group_by]
        having = [self.condition(q.having)] if q.having is not None else []
        aggregated = bool(groups) or kind == "aggregate"
        if extra is not None:
            condition = "(" + extra[0].replace("{item}", item_sql) + ")"
            if aggregated:
                having.append(condition)
            else:
                where.append(condition)
            self.params.extend(extra[1])  # last in its clause, so its parameters come last
        sql = (
            f'SELECT {"DISTINCT " if distinct else ""}{item_sql} FROM "{root.name}" {self.prefix}0'
        )
        if self.joins:
            sql += " " + " ".join(self.joins)
        if where:
            sql += " WHERE " + " AND ".join(where)
        if groups:
            sql += " GROUP BY " + ", ".join(groups)
        if having:
            sql += " HAVING " + " AND ".join(having)
        entity = self.model.entities.get(java_type)
        return sql, self.params, "Long" if entity is not None else java_type

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
        if isinstance(node, jpql.Exists):
            sql, _ = self.subquery(node.subquery)
            return f"({'NOT ' if node.negated else ''}EXISTS ({sql}))"
        if isinstance(node, jpql.Compare) and isinstance(node.right, jpql.Quantified):
            # SQLite has no ANY/ALL: x > ANY (sub) is EXISTS (sub AND x > item), x > ALL (sub)
            # is NOT EXISTS (sub AND NOT x > item).
            saved, self.params = self.params, []
            lsql, _ = self.expr(node.left)
            left_params, self.params = self.params, saved
            compare = f"{lsql} {node.op} {{item}}"
            quantified = node.right
            if quantified.quantifier == "ALL":
                sql, _ = self.subquery(
                    quantified.subquery, (f"NOT ({compare}) OR {{item}} IS NULL", left_params)
                )
                return f"(NOT EXISTS ({sql}))"
            sql, _ = self.subquery(quantified.subquery, (compare, left_params))
            return f"(EXISTS ({sql}))"
        if isinstance(node, jpql.Compare):
            lsql, rsql = self.pair(node.left, node.right)
            return f"{lsql} {node.op} {rsql}"
        if (
            isinstance(node, jpql.InList)
            and node.values
            and isinstance(node.values[0], jpql.SubQuery)
        ):
            lsql, _ = self.expr(node.expr)
            sql, _ = self.subquery(node.values[0])
            return f"{lsql} {'NOT ' if node.negated else ''}IN ({sql})"
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

    def authz_targets(self, items: list[object]) -> list[tuple[str, Entity]]:
        """(SQL of an object id, its entity) per entity a SELECT item names, as icat.server's
        FromClause: ``o`` -> o; ``o.name`` -> o; ``o.dataset``, ``o.dataset.id`` and
        ``o.dataset.name`` -> the dataset. Aggregates and DISTINCT look at their argument."""
        out: list[tuple[str, Entity]] = []
        for item in items:
            while isinstance(item, jpql.Func):
                item = item.args[0]
            if not isinstance(item, jpql.Path):
                continue
            sql_alias, entity = self.start(item)
            parts = item.parts[1:]
            target = (f"{sql_alias}.id", entity)
            for i, part in enumerate(parts):
                f = entity.fields[part]
                if f.rel_type != ONE:
                    break
                related = self.model.entities[f.type]
                if i == len(parts) - 1 or (i == len(parts) - 2 and parts[-1] == "id"):
                    target = (f'{sql_alias}."{part}"', related)
                    break
                sql_alias, entity = self.navigate_one(sql_alias, entity, part)
                target = (f"{sql_alias}.id", entity)
            out.append(target)
        return out

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
        self.aliases[q.alias] = (f"{self.prefix}0", root)
        for join in q.joins:
            self.join(join)
        where = [self.condition(q.where)] if q.where is not None else []
        items = [self.select_item(i) for i in q.select]
        groups = [self.expr(g)[0] for g in q.group_by]
        having = self.condition(q.having) if q.having is not None else None
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

        # Authorisation as icat.server: every entity the SELECT names (o, the owner of o.name,
        # o.dataset) must be readable. These conditions come first in WHERE, so their
        # parameters come first too.
        auth_params: list[object] = []
        auth_conds: list[str] = []
        if result_entity is not None and sql_item != f"{self.prefix}0.id":
            auth_conds.append(f"{sql_item} IS NOT NULL")  # a selected relation must be set
        if self.reads is not None:
            seen: set[str] = set()
            for id_sql, entity in self.authz_targets(q.select):
                if id_sql in seen:
                    continue
                seen.add(id_sql)
                cond = self.reads.condition(entity.name, id_sql, auth_params)
                if cond:
                    auth_conds.append(cond)
        where = auth_conds + where

        select_sql = ", ".join(i[0] for i in items)
        sql = (
            f"SELECT {'DISTINCT ' if distinct else ''}{select_sql} "
            f'FROM "{root.name}" {self.prefix}0'
        )
        if self.joins:
            sql += " " + " ".join(self.joins)
        if where:
            sql += " WHERE " + " AND ".join(where)
        if groups:
            sql += " GROUP BY " + ", ".join(groups)
        if having is not None:
            sql += f" HAVING {having}"
        if order and not (out_kind == "scalar" and kind == "aggregate" and not groups):
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


def compile_query(
    model: Model, query: jpql.Query, principal: Principal, reads: ReadFilter | None = None
) -> CompiledQuery:
    """``reads`` restricts the rows to what the principal may read (None: everything)."""
    return _Compiler(model, query, principal.name, reads).compile()


_AGGREGATE_NAMES = frozenset({"COUNT", "MIN", "MAX", "AVG", "SUM"})
_RULE_PREFIXES = iter(range(1, 1 << 62))


def compile_rule_what(
    model: Model, query: jpql.Query
) -> tuple[str, str | None, str, list[object], bool]:
    """A Rule's ``what`` (``SELECT x[.attr] FROM ... [WHERE ...]``, icat.server's RuleWhat) ->
    (entity, attribute, ``SELECT <ids of x> ...`` SQL, its parameters, restricted). ``:user`` is
    :data:`USER_PARAM` among the parameters."""
    if len(query.select) != 1 or not isinstance(query.select[0], jpql.Path):
        raise QueryError("Rule must have an entity reference in the SELECT clause")
    if (
        query.order
        or query.includes
        or query.include_all_one
        or query.limit
        or query.distinct
        or query.group_by
        or query.having is not None
    ):
        raise QueryError("A rule may only have SELECT, FROM and WHERE clauses")
    path = query.select[0]
    if len(path.parts) > 2:
        raise QueryError(
            "Rule must have an entity reference possibly followed by an attribute in the "
            f"SELECT clause rather than {'.'.join(path.parts)}",
            path.offset,
        )
    # Unique aliases, so a rule's subquery never captures an alias of the query around it.
    compiler = _Compiler(model, query, USER_PARAM, None, prefix=f"r{next(_RULE_PREFIXES)}_")
    id_path = jpql.Path(path.parts[:1], path.offset)
    compiler.q = jpql.Query(
        bean=query.bean,
        alias=query.alias,
        select=[id_path],
        joins=query.joins,
        where=query.where,
        bean_offset=query.bean_offset,
    )
    compiled = compiler.compile()
    if compiled.entity is None:
        raise QueryError("Rule must select an entity")
    attribute = path.parts[1] if len(path.parts) == 2 else None
    if attribute is not None and attribute not in compiled.entity.fields:
        raise QueryError(f"{compiled.entity.name} does not have attribute {attribute}")
    sql = compiled.sql.rsplit(" ORDER BY ", 1)[0]
    return compiled.entity.name, attribute, sql, compiled.params, query.where is not None
