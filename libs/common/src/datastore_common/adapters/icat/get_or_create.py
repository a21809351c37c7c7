"""Get-or-create by ICAT's uniqueness keys, safe when replicas race: of one entity, and of
many at once with createMany (on python-icat beans or on the SOAP wire alike)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import icat.exception as icat_errors

from datastore_common.adapters.icat.jpql import IN_CHUNK, chunks, in_list
from datastore_common.adapters.icat.pool import IcatClient
from datastore_common.adapters.icat.wire import CREATE_CHUNK

T = TypeVar("T")
B = TypeVar("B")


def get_or_create(
    client: IcatClient,
    query: str,
    make: Callable[[], Any],
    *,
    search_first: bool = True,
) -> tuple[int, bool]:
    """(id, created) of the one entity ``query`` (a ``SELECT o.id``) finds, creating it with
    ``make()`` when missing. A replica creating it first (OBJECT_ALREADY_EXISTS) is fine."""
    if search_first:
        found = client.search(query)
        if found:
            return int(found[0]), False
    try:
        return int(client.create(make())), True
    except icat_errors.ICATObjectExistsError:
        found = client.search(query)
        if not found:
            raise
        return int(found[0]), False


def ids_by_name(
    search: Callable[[str], Sequence[Any]], select: str, names: Sequence[str]
) -> dict[str, int]:
    """{name: id} of those ``names`` that exist: ``select`` is a ``SELECT o.id, o.name ... WHERE
    ...`` that ``AND o.name IN (...)`` extends for each chunk of names; ``search`` is
    python-icat's ``client.search`` or :meth:`SoapWire.search`."""
    found: dict[str, int] = {}
    for chunk in chunks(names, IN_CHUNK):
        query = f"{select} AND o.name IN ({in_list(chunk)})"
        found.update({str(name): int(i) for i, name in search(query)})
    return found


def get_or_create_many(
    items: Sequence[T],
    name_of: Callable[[T], str],
    search: Callable[[Sequence[str]], dict[str, int]],
    make: Callable[[T], B],
    *,
    create_many: Callable[[list[B]], Sequence[int]],
    create: Callable[[B], int],
) -> dict[str, int]:
    """Ids by name of every item, creating the missing ones ``CREATE_CHUNK`` at a time with
    ``create_many`` of the beans ``make`` builds. When a replica races (OBJECT_ALREADY_EXISTS)
    the chunk goes one by one with ``create``, keeping what the other made.

    ``search`` finds the ids of existing names; ``create_many``/``create`` are python-icat's
    ``client.createMany``/``client.create`` for entity beans, or :class:`SoapWire`'s
    ``create_many``/``create`` for beans rendered from templates."""
    names = [name_of(item) for item in items]
    ids = search(names)
    missing = [item for item in items if name_of(item) not in ids]
    for chunk in chunks(missing, CREATE_CHUNK):
        beans = [make(item) for item in chunk]
        try:
            created = create_many(beans)
            ids.update({name_of(item): int(i) for item, i in zip(chunk, created, strict=True)})
        except icat_errors.ICATObjectExistsError:
            for item, bean in zip(chunk, beans, strict=True):
                with contextlib.suppress(icat_errors.ICATObjectExistsError):
                    ids[name_of(item)] = int(create(bean))
            ids.update(search([name_of(item) for item in chunk if name_of(item) not in ids]))
    return {name: ids[name] for name in names}
