"""ICAT's older, concise query syntax, translated to JPQL exactly as icat.server does it.

icat.server (``org.icatproject.core.oldparser``) accepts, beside JPQL, queries such as::

    Facility [name='ESNF']
    0,3 User
    Datafile.name <-> Dataset <-> Investigation [name='x'] ORDER BY name
    COUNT(Datafile) <-> Dataset [name LIKE 'scan%']
    Investigation INCLUDE Dataset, Datafile [id = 7]

and rewrites them to JPQL before running them: the first entity is the result, every other entity
named after ``<->`` is JOINed along the one way the entity graph links them (a second way is an
error), ``[condition]`` applies to the entity before it, ``offset,number`` becomes LIMIT and
``INCLUDE Entity, ...`` becomes the include paths reaching those entities. This module does the
same rewrite; the JPQL then goes through :mod:`icat_emulator.jpql` like any other query.

Grammar (``OldSearchQuery``)::

    query   := ( [[int] ',' [int]] [DISTINCT] name (order [include] | [include] order)
               | FN '(' name ')' )                              FN: MIN MAX AVG COUNT SUM
               ['[' cond ']'] { '<->' name ['[' cond ']'] }
    cond    := term {OR term};  term := factor {AND factor};  factor := [NOT] (pred | '(' cond ')')
    pred    := value (COMPOP value | IN '(' value {, value} ')' | BETWEEN value AND value)
    include := INCLUDE ('1' | name {, name});  order := [ORDER BY name [ASC|DESC] {, ...}]

Names in conditions and ORDER BY are fields of their entity (``name``, ``dataset.name``); a name
that is not a field of the entity is a value (``TRUE``, an enum constant such as ``NUMERIC``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .jpql import QueryError
from .model import ATTRIBUTE, MANY, Entity, Model

# ICAT's maxEntities: "offset," without a number means "all the rest".
_ALL_ROWS = 1_000_000

_KEYWORDS = {
    "AND",
    "OR",
    "NOT",
    "DISTINCT",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "IN",
    "BETWEEN",
    "INCLUDE",
    "MIN",
    "MAX",
    "AVG",
    "COUNT",
    "SUM",
}
_FUNCTIONS = {"MIN", "MAX", "AVG", "COUNT", "SUM"}

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<STRING>'(?:[^']|'')*')
    | (?P<TIMESTAMP>\{[^}]*\})
    | (?P<ENTSEP><->)
    | (?P<COMPOP><>|<=|>=|!=|<|>|=)
    | (?P<BRA>\[) | (?P<KET>\]) | (?P<OPENPAREN>\() | (?P<CLOSEPAREN>\)) | (?P<COMMA>,)
    | (?P<REAL>-?\d+(?:\.\d*)?[eE][-+]?\d+|-?\d+\.\d*)
    | (?P<INTEGER>-?\d+)
    | (?P<PARAMETER>:\w+)
    | (?P<NAME>[A-Za-z][\w.]*)
    )""",
    re.VERBOSE,
)
_TIMESTAMP = re.compile(r"\{\s*ts\s+(\d{4}-\d{2}-\d{2})\s+(\d{2}:\d{2}:\d{2})\s*\}")


@dataclass
class _Tok:
    type: str  # NAME, STRING, INTEGER, ..., or a keyword (AND, ORDER, COUNT, ...)
    value: str
    offset: int


def tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            near = text[max(0, pos - 4) : pos + 5]
            raise QueryError(
                f"Unexpected character '{text[pos]}' near \"{near}\" for string: {text}", pos
            )
        kind = m.lastgroup or ""
        value = m.group(kind)
        start = m.start(kind)
        pos = m.end()
        if kind == "STRING":
            value = value[1:-1].replace("''", "'")
        elif kind == "TIMESTAMP":
            ts = _TIMESTAMP.fullmatch(value)
            if not ts:
                raise QueryError(
                    f"Timestamp {value} is not of form {{ts yyyy-mm-dd hh:mm:ss}}.", start
                )
            value = f"{{ts {ts.group(1)} {ts.group(2)}}}"
        elif kind == "NAME":
            upper = value.upper()
            if upper in _KEYWORDS:
                kind = value = upper
            elif upper == "LIKE":
                kind, value = "COMPOP", "LIKE"
        tokens.append(_Tok(kind, value, start))
    return tokens


# -- the condition tree ---------------------------------------------------------------------


@dataclass
class _Pred:
    left: _Tok
    op: str  # a COMPOP, IN or BETWEEN
    values: list[_Tok]


@dataclass
class _Bool:
    op: str  # AND / OR
    items: list[object]


@dataclass
class _Not:
    item: object


@dataclass
class _Paren:
    item: object


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> _Tok | None:
        j = self.i + ahead
        return self.toks[j] if 0 <= j < len(self.toks) else None

    def peek_type(self) -> str | None:
        tok = self.peek()
        return tok.type if tok else None

    def consume(self, *types: str) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise QueryError("Attempt to read beyond end", len(self.text))
        if tok.type not in types:
            before = " ".join(t.value for t in self.toks[max(0, self.i - 2) : self.i])
            after = " ".join(t.value for t in self.toks[self.i + 1 : self.i + 3])
            raise QueryError(
                f"Expected token from types [{', '.join(types)}] at token {tok.value} in "
                f"{before} < {tok.value} > {after}".replace("  ", " ").rstrip(),
                tok.offset,
            )
        self.i += 1
        return tok

    # -- conditions ---------------------------------------------------------------------
    _VALUES = ("NAME", "STRING", "INTEGER", "REAL", "PARAMETER", "TIMESTAMP")

    def condition(self) -> object:
        items = [self.term()]
        while self.peek_type() == "OR":
            self.i += 1
            items.append(self.term())
        return items[0] if len(items) == 1 else _Bool("OR", items)

    def term(self) -> object:
        items = [self.factor()]
        while self.peek_type() == "AND":
            self.i += 1
            items.append(self.factor())
        return items[0] if len(items) == 1 else _Bool("AND", items)

    def factor(self) -> object:
        negated = False
        if self.peek_type() == "NOT":
            self.i += 1
            negated = True
        if self.peek_type() == "OPENPAREN":
            self.i += 1
            item: object = _Paren(self.condition())
            self.consume("CLOSEPAREN")
        else:
            item = self.predicate()
        return _Not(item) if negated else item

    def predicate(self) -> _Pred:
        left = self.consume(*self._VALUES)
        op = self.consume("COMPOP", "IN", "BETWEEN")
        if op.type == "COMPOP":
            return _Pred(left, op.value, [self.consume(*self._VALUES)])
        if op.type == "IN":
            self.consume("OPENPAREN")
            values = [self.consume(*self._VALUES[1:])]
            while self.consume("COMMA", "CLOSEPAREN").type == "COMMA":
                values.append(self.consume(*self._VALUES[1:]))
            return _Pred(left, "IN", values)
        low = self.consume(*self._VALUES)
        self.consume("AND")
        return _Pred(left, "BETWEEN", [low, self.consume(*self._VALUES)])

    def order(self) -> list[tuple[str, bool]]:
        specs: list[tuple[str, bool]] = []
        if self.peek_type() != "ORDER":
            return specs
        self.i += 1
        self.consume("BY")
        while True:
            name = self.consume("NAME").value
            descending = False
            if self.peek_type() in ("ASC", "DESC"):
                descending = self.consume("ASC", "DESC").type == "DESC"
            specs.append((name, descending))
            if self.peek_type() != "COMMA":
                return specs
            self.i += 1

    def include(self) -> list[_Tok] | None:
        """``INCLUDE 1`` -> []; ``INCLUDE A, B`` -> the names."""
        self.consume("INCLUDE")
        first = self.consume("NAME", "INTEGER")
        if first.type == "INTEGER":
            if first.value != "1":
                raise QueryError(
                    "Only integer value allowed in the INCLUDE list is 1", first.offset
                )
            return []
        names = [first]
        while self.peek_type() == "COMMA":
            self.i += 1
            names.append(self.consume("NAME"))
        return names


@dataclass
class _Step:
    """One JOIN of icat.server's DagHandler tree: ``field`` of the entity before, to ``target``."""

    field: str
    target: Entity
    steps: list[_Step]


class _Translator:
    """Turns a parsed concise query into JPQL text (what icat.server's getNewQuery builds)."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def entity(self, tok: _Tok) -> Entity:
        entity = self.model.entities.get(tok.value)
        if entity is None or entity.abstract:
            raise QueryError(f"{tok.value} is not an EntityBaseBean", tok.offset)
        return entity

    # -- conditions ---------------------------------------------------------------------
    @staticmethod
    def is_field(entity: Entity, tok: _Tok) -> bool:
        return tok.type == "NAME" and tok.value.split(".")[0] in entity.fields

    def value(self, tok: _Tok) -> str:
        if tok.type == "STRING":
            return "'" + tok.value.replace("'", "''") + "'"
        if tok.type == "NAME" and tok.value.upper() not in ("TRUE", "FALSE"):
            # An enum constant (ICAT writes its Java name); python-icat's values are strings.
            return "'" + tok.value.rsplit(".", 1)[-1] + "'"
        return tok.value

    def condition(self, node: object, entity: Entity) -> str:
        alias = entity.name + "$"
        if isinstance(node, _Bool):
            return f" {node.op} ".join(self.condition(i, entity) for i in node.items)
        if isinstance(node, _Not):
            return "NOT " + self.condition(node.item, entity)
        if isinstance(node, _Paren):
            return "(" + self.condition(node.item, entity) + ")"
        assert isinstance(node, _Pred)
        if node.op in ("IN", "BETWEEN"):
            if not self.is_field(entity, node.left):
                kind = "a name" if node.left.type == "NAME" else node.left.type
                raise QueryError(
                    f'"{node.op}" comparisons require a field of {entity.name} on the LHS '
                    f"rather than {kind} {node.left.value}",
                    node.left.offset,
                )
            name = f"{alias}.{node.left.value}"
            if node.op == "IN":
                return f"{name} IN ({', '.join(self.value(v) for v in node.values)})"
            low, high = node.values
            return f"{name} BETWEEN {self.value(low)} AND {self.value(high)}"
        right = node.values[0]
        if self.is_field(entity, node.left):
            name_tok, value_tok = node.left, right
        elif self.is_field(entity, right):
            name_tok, value_tok = right, node.left
        else:
            raise QueryError(
                "Attribute comparisons require one attribute name and one value: "
                f"{node.left.value} {node.op} {right.value}",
                node.left.offset,
            )
        return f"{alias}.{name_tok.value} {node.op} {self.value(value_tok)}"

    # -- the entity graph ---------------------------------------------------------------
    def follow(
        self,
        predecessor: str | None,
        current: Entity,
        wanted: set[str],
        used: set[str],
        follow_many: bool = True,
        suffix: str = "",
    ) -> list[_Step]:
        """icat.server's DagHandler: the tree of relations linking ``wanted``."""
        steps: list[_Step] = []
        for f in current.fields.values():
            if f.rel_type == ATTRIBUTE or (f.rel_type == MANY and not follow_many):
                continue
            if f.type not in wanted or f.type == predecessor:
                continue
            if f.type in used:
                came = f"{predecessor} -> " if predecessor else ""
                raise QueryError(
                    f"Can't have loop in graph of entities. '{f.type}' was encountered twice "
                    f"following {came}{current.name} -> {f.type}{suffix}"
                )
            used.add(f.type)
            target = self.model.entities[f.type]
            sub = self.follow(
                current.name,
                target,
                wanted,
                used,
                follow_many=True if suffix == "" else f.rel_type == MANY,
                suffix=suffix,
            )
            steps.append(_Step(f.name, target, sub))
        return steps

    def link(self, start: Entity, names: set[str], suffix: str = "") -> list[_Step]:
        used = {start.name}
        steps = self.follow(None, start, names | {start.name}, used, True, suffix)
        missing = sorted(names - used)
        if missing:
            raise QueryError(f"Unable to reach {', '.join(missing)}{suffix}")
        return steps

    def joins(self, alias: str, steps: list[_Step]) -> str:
        out = []
        for step in steps:
            out.append(f"JOIN {alias}.{step.field} {step.target.name}$")
            out.append(self.joins(f"{step.target.name}$", step.steps))
        return " ".join(o for o in out if o)

    def includes(self, root: Entity, names: list[_Tok]) -> str:
        """``INCLUDE A, B`` -> ``INCLUDE Root$.as AS A_$, A_$.bs AS B_$`` (OldInclude)."""
        wanted: set[str] = set()
        relations: list[str] = []
        for tok in names:
            entity = self.model.entities.get(tok.value)
            if entity is not None:
                wanted.add(entity.name)
                continue
            if tok.value in root.fields and root.fields[tok.value].rel_type != ATTRIBUTE:
                # Emulator leniency (kept from earlier versions): a relation of the root.
                relations.append(f"{root.name}$.{tok.value}")
                continue
            raise QueryError(f"{tok.value} is not an EntityBaseBean", tok.offset)
        self.check_includes(root, wanted)
        paths: list[str] = []
        self.add_includes(paths, root, wanted, True, True)
        return "INCLUDE " + ", ".join(paths + relations)

    def check_includes(self, root: Entity, wanted: set[str]) -> None:
        used = {root.name}
        self.follow(None, root, wanted | {root.name}, used, True, " in list of INCLUDES.")
        missing = sorted(wanted - used)
        if missing:
            raise QueryError(f"Unable to reach {', '.join(missing)} in list of INCLUDES.")

    def add_includes(
        self, out: list[str], entity: Entity, wanted: set[str], follow_many: bool, first: bool
    ) -> None:
        alias = entity.name + ("$" if first else "_$")
        for f in entity.fields.values():
            if f.rel_type == ATTRIBUTE or (f.rel_type == MANY and not follow_many):
                continue
            if f.type in wanted:
                out.append(f"{alias}.{f.name} AS {f.type}_$")
                target = self.model.entities[f.type]
                self.add_includes(out, target, wanted - {f.type}, f.rel_type == MANY, False)


def is_concise(query: str) -> bool:
    """icat.server's test: a search that does not start with SELECT is in the concise syntax."""
    return not query.strip().upper().startswith("SELECT")


def to_jpql(model: Model, query: str) -> str:
    """Rewrite a concise search query to the JPQL icat.server would run for it."""
    p = _Parser(query)
    tr = _Translator(model)
    offset: int | None = None
    number: int | None = None
    distinct = False
    aggregate: str | None = None
    order: list[tuple[str, bool]] = []
    include: list[_Tok] | None = None
    start = p.consume("NAME", "DISTINCT", "INTEGER", "COMMA", *_FUNCTIONS)
    if start.type in _FUNCTIONS:
        aggregate = start.type
        p.consume("OPENPAREN")
        result = p.consume("NAME")
        p.consume("CLOSEPAREN")
    else:
        tok = start
        if tok.type in ("INTEGER", "COMMA"):
            if tok.type == "INTEGER":
                offset = int(tok.value)
                p.consume("COMMA")
            tok = p.consume("NAME", "DISTINCT", "INTEGER")
            if tok.type == "INTEGER":
                number = int(tok.value)
                tok = p.consume("NAME", "DISTINCT")
        if tok.type == "DISTINCT":
            distinct = True
            tok = p.consume("NAME")
        result = tok
        simple = "." not in result.value
        if p.peek_type() == "ORDER":
            order = p.order()
            if simple and p.peek_type() == "INCLUDE":
                include = p.include()
        else:
            if simple and p.peek_type() == "INCLUDE":
                include = p.include()
            order = p.order()
    bean_name, _, attribute = result.value.partition(".")
    first = tr.entity(_Tok("NAME", bean_name, result.offset))
    conditions: list[str] = []
    if p.peek_type() == "BRA":
        p.i += 1
        conditions.append(tr.condition(p.condition(), first))
        p.consume("KET")
    others: list[Entity] = []
    while p.peek() is not None:
        p.consume("ENTSEP")
        other = tr.entity(p.consume("NAME"))
        others.append(other)
        if p.peek_type() == "BRA":
            p.i += 1
            conditions.append(tr.condition(p.condition(), other))
            p.consume("KET")
    steps = tr.link(first, {o.name for o in others})

    alias = first.name + "$"
    selected = f"{alias}.{attribute}" if attribute else alias
    if aggregate:
        selected = f"{aggregate}({selected})"
    parts = [f"SELECT {'DISTINCT ' if distinct else ''}{selected} FROM {first.name} {alias}"]
    joins = tr.joins(alias, steps)
    if joins:
        parts.append(joins)
    if conditions:
        parts.append("WHERE " + " AND ".join(f"({c})" for c in conditions))
    if order:
        specs = ", ".join(f"{alias}.{name}{' DESC' if desc else ''}" for name, desc in order)
        parts.append(f"ORDER BY {specs}")
    if include is not None:
        parts.append(tr.includes(first, include) if include else "INCLUDE 1")
    if offset is not None or number is not None:
        parts.append(f"LIMIT {offset or 0}, {_ALL_ROWS if number is None else number}")
    return " ".join(parts)


def get_to_jpql(model: Model, query: str) -> str:
    """A concise ``get`` query (``Investigation INCLUDE Dataset``) -> ``Bean Bean$ INCLUDE ...``."""
    p = _Parser(query)
    tr = _Translator(model)
    bean = tr.entity(p.consume("NAME"))
    text = f"{bean.name} {bean.name}$"
    if p.peek_type() == "INCLUDE":
        names = p.include()
        text += " " + (tr.includes(bean, names) if names else "INCLUDE 1")
    tok = p.peek()
    if tok is not None:
        raise QueryError(f"Trailing tokens at end of query {tok.value}...", tok.offset)
    return text
