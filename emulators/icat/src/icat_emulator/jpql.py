"""Parser for the JPQL dialect ICAT accepts in ``search``/``get``, as python-icat writes it.

Grammar (keywords case-insensitive)::

    query   := SELECT [DISTINCT] item {, item} FROM Bean alias {join} [WHERE cond]
               [GROUP BY expr {, expr}] [HAVING cond] [ORDER BY order {, order}]
               [INCLUDE includes] [LIMIT int, int]  (these two in any order)
    item    := path | FN '(' [DISTINCT] item ')'            FN: COUNT MIN MAX AVG SUM DISTINCT
    join    := [LEFT [OUTER] | INNER] JOIN path [AS] alias
    cond    := and {OR and};  and := not {AND not};  not := NOT not | '(' cond ')' | predicate
    predicate := expr (op (expr | (ANY|ALL|SOME) subquery) | [NOT] IN ('(' expr {, expr} ')'
                 | subquery) | [NOT] LIKE expr [ESCAPE expr] | IS [NOT] NULL
                 | [NOT] BETWEEN expr AND expr)  |  [NOT] EXISTS subquery   op: = <> != < <= > >=
    subquery := '(' SELECT [DISTINCT] item FROM ... [WHERE] [GROUP BY] [HAVING] ')'  (correlated:
               it may name the aliases of the query around it)
    expr    := term {(+|-) term};  term := factor {(*|/) factor};  factor := [-] primary
    primary := path | 'string' | number | TRUE | FALSE | NULL | {ts yyyy-mm-dd hh:mm:ss} | :user
               | CURRENT_TIMESTAMP | CURRENT_DATE | CURRENT_TIME
               | FN '(' expr {, expr} ')'          FN: UPPER LOWER LENGTH TRIM CONCAT ABS ...
               | COUNT|MIN|MAX|AVG|SUM '(' [DISTINCT] path ')'  (in HAVING and ORDER BY)
               | CASE [expr] WHEN cond|expr THEN expr {WHEN ...} [ELSE expr] END
               | subquery | '(' expr ')'
    (as icat.server, which passes WHERE, GROUP BY, HAVING and ORDER BY on to JPQL; CASE is not
    accepted in SELECT there either.)
    includes := '1' | path [[AS] alias] {, path [[AS] alias]}

The result is a small AST; :mod:`icat_emulator.store` compiles it to SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class QueryError(Exception):
    """A syntax or semantic error in a query; ``offset`` is the character position."""

    def __init__(self, message: str, offset: int = -1) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass
class Path:
    parts: list[str]  # first is an alias; e.g. ["o", "dataset", "name"]
    offset: int = -1


@dataclass
class Literal:
    value: object  # str, int, float, bool, None
    kind: str  # "string", "number", "bool", "null", "timestamp", "user"


@dataclass
class Func:
    name: str  # upper-case
    args: list[object]
    distinct: bool = False


@dataclass
class Compare:
    op: str
    left: object
    right: object


@dataclass
class InList:
    expr: object
    values: list[object]
    negated: bool = False


@dataclass
class Like:
    expr: object
    pattern: object
    negated: bool = False
    escape: object | None = None


@dataclass
class IsNull:
    expr: object
    negated: bool = False


@dataclass
class Between:
    expr: object
    low: object
    high: object
    negated: bool = False


@dataclass
class BoolOp:
    op: str  # AND / OR
    items: list[object]


@dataclass
class Not:
    item: object


@dataclass
class SubQuery:
    query: Query


@dataclass
class Exists:
    subquery: SubQuery
    negated: bool = False


@dataclass
class Quantified:
    quantifier: str  # ANY / ALL (SOME is ANY)
    subquery: SubQuery


@dataclass
class Arith:
    op: str  # + - * /
    left: object
    right: object


@dataclass
class Negate:
    item: object


@dataclass
class Case:
    operand: object | None  # CASE x WHEN v THEN ...: x; CASE WHEN cond THEN ...: None
    whens: list[tuple[object, object]]  # (condition or value, result)
    otherwise: object | None = None


@dataclass
class Join:
    kind: str  # INNER / LEFT
    path: Path
    alias: str


@dataclass
class Include:
    path: Path
    alias: str | None = None


@dataclass
class Query:
    bean: str
    alias: str
    select: list[object]  # Path / Func items
    distinct: bool = False
    joins: list[Join] = field(default_factory=list)
    where: object | None = None
    group_by: list[object] = field(default_factory=list)
    having: object | None = None
    order: list[tuple[object, bool]] = field(default_factory=list)  # (expr, descending)
    include_all_one: bool = False  # INCLUDE 1
    includes: list[Include] = field(default_factory=list)
    limit: tuple[int, int] | None = None
    bean_offset: int = -1


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<ts>\{\s*ts\s+[^}]*\})
    | (?P<str>'(?:[^']|'')*')
    | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<param>:\w+)
    | (?P<name>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)
    | (?P<op><>|!=|<=|>=|[=<>(),*+/-])
    )""",
    re.VERBOSE,
)

# JPQL's functions without parentheses: the time the query runs.
_NOW_FUNCTIONS = {"CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME"}
AGGREGATES = {"COUNT", "MIN", "MAX", "AVG", "SUM", "DISTINCT"}
_KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "ORDER",
    "BY",
    "INCLUDE",
    "LIMIT",
    "JOIN",
    "LEFT",
    "OUTER",
    "INNER",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "IS",
    "NULL",
    "BETWEEN",
    "ASC",
    "DESC",
    "ESCAPE",
    "TRUE",
    "FALSE",
    "DISTINCT",
    "FETCH",
    "GROUP",
    "HAVING",
    "EXISTS",
    "ANY",
    "ALL",
    "SOME",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
}


@dataclass
class _Tok:
    kind: str
    text: str
    offset: int

    @property
    def upper(self) -> str:
        return self.text.upper()


def tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise QueryError(f"Unexpected character at position {pos} in query {text!r}", pos)
        kind = m.lastgroup or ""
        tokens.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    # -- token helpers -------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> _Tok | None:
        j = self.i + ahead
        return self.toks[j] if j < len(self.toks) else None

    def text_at(self, ahead: int) -> str | None:
        tok = self.peek(ahead)
        return None if tok is None else tok.text

    def at_kw(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "name" and tok.upper in words

    def at_op(self, op: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "op" and tok.text == op

    def error(self, message: str) -> QueryError:
        tok = self.peek()
        offset = tok.offset if tok else len(self.text)
        found = repr(tok.text) if tok else "end of query"
        return QueryError(f"{message} but found {found} at offset {offset}", offset)

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise self.error("Unexpected end of query")
        self.i += 1
        return tok

    def expect_kw(self, word: str) -> None:
        if not self.at_kw(word):
            raise self.error(f"Expected {word}")
        self.i += 1

    def expect_op(self, op: str) -> None:
        if not self.at_op(op):
            raise self.error(f"Expected '{op}'")
        self.i += 1

    def name(self) -> _Tok:
        tok = self.peek()
        if tok is None or tok.kind != "name":
            raise self.error("Expected a name")
        self.i += 1
        return tok

    def integer(self) -> int:
        tok = self.peek()
        if tok is None or tok.kind != "num" or not re.fullmatch(r"-?\d+", tok.text):
            raise self.error("Expected an integer")
        self.i += 1
        return int(tok.text)

    # -- grammar -------------------------------------------------------------------------
    def query(self, sub: bool = False) -> Query:
        """A whole query; ``sub``: a subquery, which ends before its closing parenthesis."""
        self.expect_kw("SELECT")
        distinct = False
        if self.at_kw("DISTINCT") and self.text_at(1) != "(":
            self.i += 1
            distinct = True
        select = [self.select_item()]
        while self.at_op(","):
            self.i += 1
            select.append(self.select_item())
        self.expect_kw("FROM")
        bean_tok = self.name()
        if "." in bean_tok.text:
            raise QueryError(f"Bad entity name {bean_tok.text}", bean_tok.offset)
        alias = self.name().text
        q = Query(
            bean=bean_tok.text,
            alias=alias,
            select=select,
            distinct=distinct,
            bean_offset=bean_tok.offset,
        )
        while self.at_kw("JOIN", "LEFT", "INNER"):
            kind = "INNER"
            if self.at_kw("LEFT"):
                kind = "LEFT"
                self.i += 1
                if self.at_kw("OUTER"):
                    self.i += 1
            elif self.at_kw("INNER"):
                self.i += 1
            self.expect_kw("JOIN")
            if self.at_kw("FETCH"):
                self.i += 1
            path = self.path()
            if self.at_kw("AS"):
                self.i += 1
            q.joins.append(Join(kind, path, self.name().text))
        if self.at_kw("WHERE"):
            self.i += 1
            q.where = self.condition()
        if self.at_kw("GROUP"):
            self.i += 1
            self.expect_kw("BY")
            q.group_by.append(self.expr())
            while self.at_op(","):
                self.i += 1
                q.group_by.append(self.expr())
        if self.at_kw("HAVING"):
            self.i += 1
            q.having = self.condition()
        if sub:
            return q
        if self.at_kw("ORDER"):
            self.i += 1
            self.expect_kw("BY")
            while True:
                expr = self.expr()
                desc = False
                if self.at_kw("ASC", "DESC"):
                    desc = self.take().upper == "DESC"
                q.order.append((expr, desc))
                if not self.at_op(","):
                    break
                self.i += 1
        while self.at_kw("INCLUDE", "LIMIT"):
            if self.take().upper == "INCLUDE":
                self.include_clause(q)
            else:
                start = self.integer()
                self.expect_op(",")
                q.limit = (start, self.integer())
        if self.peek() is not None:
            raise self.error("Expected end of query")
        return q

    def select_item(self) -> object:
        tok = self.peek()
        if (
            tok is not None
            and tok.kind == "name"
            and tok.upper in AGGREGATES
            and self.text_at(1) == "("
        ):
            self.i += 2
            distinct = False
            if self.at_kw("DISTINCT") and self.text_at(1) != "(":
                self.i += 1
                distinct = True
            arg = self.select_item()
            self.expect_op(")")
            return Func(tok.upper, [arg], distinct)
        return self.path()

    def path(self) -> Path:
        tok = self.name()
        if tok.upper in _KEYWORDS:
            raise QueryError(f"Unexpected keyword {tok.text} at offset {tok.offset}", tok.offset)
        return Path(tok.text.split("."), tok.offset)

    def include_clause(self, q: Query) -> None:
        tok = self.peek()
        if tok is not None and tok.kind == "num" and tok.text == "1":
            self.i += 1
            q.include_all_one = True
            return
        while True:
            path = self.path()
            alias = None
            if self.at_kw("AS"):
                self.i += 1
                alias = self.name().text
            q.includes.append(Include(path, alias))
            if not self.at_op(","):
                break
            self.i += 1

    def condition(self) -> object:
        items = [self.conjunction()]
        while self.at_kw("OR"):
            self.i += 1
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else BoolOp("OR", items)

    def conjunction(self) -> object:
        items = [self.negation()]
        while self.at_kw("AND"):
            self.i += 1
            items.append(self.negation())
        return items[0] if len(items) == 1 else BoolOp("AND", items)

    def negation(self) -> object:
        after = self.peek(1)
        if self.at_kw("NOT") and after is not None and after.upper == "EXISTS":
            self.i += 2
            return Exists(self.subquery(), negated=True)
        if self.at_kw("NOT"):
            self.i += 1
            return Not(self.negation())
        if self.at_kw("EXISTS"):
            self.i += 1
            return Exists(self.subquery())
        if self.at_op("(") and not self._at_subquery() and self._paren_is_condition():
            # A parenthesised condition; an expression in parentheses is not needed by clients.
            self.i += 1
            inner = self.condition()
            self.expect_op(")")
            return inner
        return self.predicate()

    def predicate(self) -> object:
        left = self.expr()
        negated = False
        if self.at_kw("NOT"):
            self.i += 1
            negated = True
        if self.at_kw("IN"):
            self.i += 1
            if self._at_subquery():
                return InList(left, [self.subquery()], negated)
            self.expect_op("(")
            values = [self.expr()]
            while self.at_op(","):
                self.i += 1
                values.append(self.expr())
            self.expect_op(")")
            return InList(left, values, negated)
        if self.at_kw("LIKE"):
            self.i += 1
            pattern = self.expr()
            escape = None
            if self.at_kw("ESCAPE"):
                self.i += 1
                escape = self.expr()
            return Like(left, pattern, negated, escape)
        if self.at_kw("BETWEEN"):
            self.i += 1
            low = self.expr()
            self.expect_kw("AND")
            return Between(left, low, self.expr(), negated)
        if negated:
            raise self.error("Expected IN, LIKE or BETWEEN after NOT")
        if self.at_kw("IS"):
            self.i += 1
            is_not = False
            if self.at_kw("NOT"):
                self.i += 1
                is_not = True
            self.expect_kw("NULL")
            return IsNull(left, is_not)
        tok = self.peek()
        if (
            tok is not None
            and tok.kind == "op"
            and tok.text in ("=", "<>", "!=", "<", "<=", ">", ">=")
        ):
            self.i += 1
            op = "<>" if tok.text == "!=" else tok.text
            if self.at_kw("ANY", "ALL", "SOME"):
                quantifier = "ALL" if self.take().upper == "ALL" else "ANY"
                return Compare(op, left, Quantified(quantifier, self.subquery()))
            return Compare(op, left, self.expr())
        raise self.error("Expected a comparison operator")

    def _at_subquery(self) -> bool:
        tok = self.peek(1)
        return self.at_op("(") and tok is not None and tok.upper == "SELECT"

    def _paren_is_condition(self) -> bool:
        """At '(': does a condition start here (else an expression, as ``(a + b) > c``)? A
        condition when a comparison, AND/OR or a predicate keyword comes before its ')', at
        any depth (``((a = 1) OR b = 2)``) but not within a CASE ... END."""
        depth = 0
        in_case = 0
        for tok in self.toks[self.i :]:
            if tok.kind == "op" and tok.text == "(":
                depth += 1
            elif tok.kind == "op" and tok.text == ")":
                depth -= 1
                if depth == 0:
                    return False
            elif tok.kind == "name" and tok.upper == "CASE":
                in_case += 1
            elif tok.kind == "name" and tok.upper == "END" and in_case:
                in_case -= 1
            elif not in_case and (
                (tok.kind == "op" and tok.text in ("=", "<>", "!=", "<", "<=", ">", ">="))
                or (tok.kind == "name" and tok.upper in _PREDICATE_WORDS)
            ):
                return True
        return True

    def subquery(self) -> SubQuery:
        self.expect_op("(")
        inner = self.query(sub=True)
        self.expect_op(")")
        return SubQuery(inner)

    def expr(self) -> object:
        left = self.term()
        while True:
            tok = self.peek()
            if tok is not None and tok.kind == "op" and tok.text in ("+", "-"):
                self.i += 1
                left = Arith(tok.text, left, self.term())
            elif tok is not None and tok.kind == "num" and tok.text.startswith("-"):
                # "a -1": the tokenizer read a signed number; here it is a subtraction.
                self.i += 1
                left = Arith("-", left, _number(tok.text[1:]))
            else:
                return left

    def term(self) -> object:
        left = self.factor()
        while self.at_op("*") or self.at_op("/"):
            op = self.take().text
            left = Arith(op, left, self.factor())
        return left

    def factor(self) -> object:
        if self.at_op("-"):
            self.i += 1
            return Negate(self.factor())
        if self.at_op("+"):
            self.i += 1
            return self.factor()
        return self.primary()

    def case(self) -> Case:
        operand = None if self.at_kw("WHEN") else self.expr()
        whens: list[tuple[object, object]] = []
        while self.at_kw("WHEN"):
            self.i += 1
            test = self.condition() if operand is None else self.expr()
            self.expect_kw("THEN")
            whens.append((test, self.expr()))
        if not whens:
            raise self.error("Expected WHEN")
        otherwise = None
        if self.at_kw("ELSE"):
            self.i += 1
            otherwise = self.expr()
        self.expect_kw("END")
        return Case(operand, whens, otherwise)

    def primary(self) -> object:
        if self._at_subquery():
            return self.subquery()
        if self.at_op("("):
            self.i += 1
            inner = self.expr()
            self.expect_op(")")
            return inner
        tok = self.take()
        if tok.kind == "str":
            return Literal(tok.text[1:-1].replace("''", "'"), "string")
        if tok.kind == "num":
            return _number(tok.text)
        if tok.kind == "ts":
            return Literal(tok.text.strip("{}").strip()[2:].strip(), "timestamp")
        if tok.kind == "param":
            if tok.text.lower() != ":user":
                raise QueryError(f"Unknown parameter {tok.text} at offset {tok.offset}", tok.offset)
            return Literal(None, "user")
        if tok.kind == "name":
            upper = tok.upper
            if upper in ("TRUE", "FALSE"):
                return Literal(upper == "TRUE", "bool")
            if upper == "NULL":
                return Literal(None, "null")
            if upper in _NOW_FUNCTIONS:
                return Func(upper, [])
            if upper == "CASE":
                return self.case()
            if self.at_op("("):
                self.i += 1
                args: list[object] = []
                distinct = False
                if self.at_kw("DISTINCT"):
                    self.i += 1
                    distinct = True
                if not self.at_op(")"):
                    args.append(self.expr())
                    while self.at_op(","):
                        self.i += 1
                        args.append(self.expr())
                self.expect_op(")")
                return Func(upper, args, distinct)
            if upper in _KEYWORDS:
                raise QueryError(
                    f"Unexpected keyword {tok.text} at offset {tok.offset}", tok.offset
                )
            return Path(tok.text.split("."), tok.offset)
        raise QueryError(f"Unexpected {tok.text!r} at offset {tok.offset}", tok.offset)


_PREDICATE_WORDS = {"AND", "OR", "NOT", "IN", "LIKE", "IS", "BETWEEN", "EXISTS"}


def _number(text: str) -> Literal:
    is_int = re.fullmatch(r"-?\d+", text) is not None
    return Literal(int(text) if is_int else float(text), "number")


def parse(text: str) -> Query:
    """Parse one ICAT JPQL query; raises :class:`QueryError` with the offending offset."""
    return _Parser(text).query()
