"""Port for restores: what a user's selection in ICAT means, resolved with *their* session.

The gateway asks ICAT as the user (their bearer session), so ICAT's own authorization decides
what they may restore: an id they may not read is indistinguishable from one that does not
exist, and both are refused by name. Kept apart from ``ports.py`` so the restore side can grow
without touching the archive ports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from datastore_common.domain.plan import RestoreItem
from datastore_common.errors import NotFoundError, PermanentError

__all__ = ["NotArchivedError", "NotFoundError", "RestoreItem", "Selections", "describe_ids"]


class NotArchivedError(PermanentError):
    """Some selected datafiles are not (yet) safely on tape: their "Archival state" is not
    FINISHED (or they have no location). ``states`` maps datafile id -> state (None = none)."""

    def __init__(self, states: Mapping[int, str | None]) -> None:
        self.states = dict(states)
        shown = sorted(self.states.items())[:20]
        listed = ", ".join(f"{i} ({s or 'never archived'})" for i, s in shown)
        more = f" and {len(self.states) - len(shown)} more" if len(self.states) > len(shown) else ""
        super().__init__(
            f"{len(self.states)} selected datafile(s) cannot be restored: their "
            f'"Archival state" is not FINISHED: {listed}{more}'
        )


def describe_ids(missing: Mapping[str, Sequence[int]]) -> str:
    """``"Investigation 4, 5; Dataset 9"`` for {entity: ids} (entities without ids left out)."""
    return "; ".join(
        f"{entity} {', '.join(str(i) for i in sorted(ids))}"
        for entity, ids in missing.items()
        if ids
    )


class Selections(ABC):
    """ICAT as the *user* sees it, for restore requests (gateway)."""

    @abstractmethod
    async def resolve(
        self,
        session_id: str,
        investigation_ids: Sequence[int],
        dataset_ids: Sequence[int],
        datafile_ids: Sequence[int],
    ) -> list[RestoreItem]:
        """Every datafile named directly or through its dataset or investigation, once each,
        ordered by (dataset id, location).

        Raises NotFoundError naming the ids the user cannot read (or that do not exist),
        NotArchivedError when any resolved datafile's "Archival state" is not FINISHED,
        AuthenticationError when the session is refused.
        """
