"""A short-lived cache in front of ``Vocabulary.unknown``: known names cost no ICAT call.

Every archive request names a facility, types, an instrument, a cycle and maybe formats; they
change rarely, so a name ICAT knew is trusted for ``ttl`` seconds
(``gateway.vocabulary_cache_seconds``). A name ICAT did not know is never cached: it is asked
again on the next request, so a type added to ICAT is usable at once. Only names ICAT knows
are kept, so the cache is no larger than ICAT's vocabulary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping

from datastore_common.ports import Term, Vocabulary, VocabularyKind


class CachedVocabulary(Vocabulary):
    def __init__(
        self,
        inner: Vocabulary,
        *,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.facility = inner.facility
        self.ttl = ttl
        self._clock = clock
        self._known: dict[tuple[VocabularyKind, Term], float] = {}

    async def unknown(
        self, terms: Mapping[VocabularyKind, Collection[Term]]
    ) -> dict[VocabularyKind, set[Term]]:
        now = self._clock()
        ask: dict[VocabularyKind, set[Term]] = {}
        for kind, names in terms.items():
            for term in names:
                expires = self._known.get((kind, term))
                if expires is not None and expires > now:
                    continue
                if expires is not None:
                    del self._known[(kind, term)]
                ask.setdefault(kind, set()).add(term)
        if not ask:
            return {}
        unknown = await self.inner.unknown(ask)
        if self.ttl > 0:
            expires = self._clock() + self.ttl
            for kind, names in ask.items():
                for term in names - unknown.get(kind, set()):
                    self._known[(kind, term)] = expires
        return unknown
