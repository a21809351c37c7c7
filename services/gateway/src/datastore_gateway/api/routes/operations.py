"""GET /operations: the operators' view (``gateway.admins`` only; anyone else: 404)."""

from __future__ import annotations

import time

from fastapi import APIRouter

from datastore_common.worker import topology_from
from datastore_gateway import operations
from datastore_gateway.api.deps import CurrentUser, LedgerDep, QueueDepthsDep, SettingsDep
from datastore_gateway.api.problems import UNAUTHENTICATED, Responses, problem
from datastore_gateway.schemas import OperationsView

router = APIRouter(tags=["Operations"])

RESPONSES: Responses = {
    401: UNAUTHENTICATED,
    404: problem(
        "Not one of gateway.admins",
        "no such page for you: the operators' view is gateway.admins' only",
    ),
    503: problem(
        "The ledger's database is unavailable",
        'request ledger (operations): connection to server at "127.0.0.1", port 5432 failed',
    ),
}


@router.get("/operations", responses=RESPONSES)
async def operations_view(
    user: CurrentUser, settings: SettingsDep, ledger: LedgerDep, queue_depths: QueueDepthsDep
) -> OperationsView:
    """The broker's queues (messages ready, consumers, retrying, dead letters: counted
    without touching a message), requests that ended with failures in the last day by
    failure class and the latest of them, the requests and FTS jobs still going, and the
    oldest request not ended. gateway.admins only.

    When the broker cannot be asked, `queues` is empty and `broker` says why; the rest is
    still answered from the ledger.
    """
    return await operations.operations_view(
        user=user,
        settings=settings,
        ledger=ledger,
        queue_depths=queue_depths,
        topology=topology_from(settings),
        now=time.time(),
    )
