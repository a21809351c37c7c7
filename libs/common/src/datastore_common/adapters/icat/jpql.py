"""JPQL for ICAT searches: literals, ``IN`` lists and the chunks they are sent in; the values
of search rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

#: Ids or names per ``IN (...)`` list: keeps queries and answers moderate.
IN_CHUNK = 500
#: Rows per page of a multi-row answer (``LIMIT start, PAGE``).
PAGE = 5000


def jpql_literal(value: str) -> str:
    """A JPQL string literal (quotes doubled, as ICAT's parser reads them)."""
    return "'" + value.replace("'", "''") + "'"


def in_list(values: Sequence[int] | Sequence[str]) -> str:
    """The inside of an ``IN (...)``: ids as numbers, names as literals."""
    return ", ".join(str(v) if isinstance(v, int) else jpql_literal(v) for v in values)


def chunks(values: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``values`` in consecutive slices of at most ``size``."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
