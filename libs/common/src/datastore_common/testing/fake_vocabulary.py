"""An in-memory ``Vocabulary``: the names ICAT knows, in a dict tests can change."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from datastore_common.ports import Term, Vocabulary, VocabularyKind

#: What deploy/local/icat/example.yaml puts in ICAT (and the seed body uses).
SEED_VOCABULARY: dict[VocabularyKind, set[Term]] = {
    "facility": {"facility"},
    "investigationType": {"type"},
    "instrument": {"instrument"},
    "facilityCycle": {"20XX"},
    "datasetType": {"scan"},
    "datafileFormat": {("nexus", "3")},
}


class FakeVocabulary(Vocabulary):
    """Knows ``known`` (default: the seed's) in ``facility``; ``calls`` keeps every question
    asked, ``fail_with`` makes the next questions raise."""

    def __init__(
        self,
        known: Mapping[VocabularyKind, Collection[Term]] | None = None,
        *,
        facility: str = "facility",
    ) -> None:
        self.facility = facility
        source = SEED_VOCABULARY if known is None else known
        self.known: dict[VocabularyKind, set[Term]] = {k: set(v) for k, v in source.items()}
        self.calls: list[dict[VocabularyKind, set[Term]]] = []
        self.fail_with: Exception | None = None

    async def unknown(
        self, terms: Mapping[VocabularyKind, Collection[Term]]
    ) -> dict[VocabularyKind, set[Term]]:
        self.calls.append({kind: set(names) for kind, names in terms.items()})
        if self.fail_with is not None:
            raise self.fail_with
        unknown: dict[VocabularyKind, set[Term]] = {}
        for kind, names in terms.items():
            known = self.known.get(kind, set())
            if kind == "facility":
                known = known & {self.facility}  # only the served facility is known
            missing = set(names) - known
            if missing:
                unknown[kind] = missing
        return unknown
