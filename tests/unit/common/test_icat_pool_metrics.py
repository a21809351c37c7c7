"""ICAT calls are counted ok or error: the source of the ICAT error-ratio alert."""

from __future__ import annotations

from typing import Any

import pytest
import suds.transport

from datastore_common.adapters.icat.pool import CALL_ATTEMPTS, IcatClientPool
from datastore_common.errors import InvalidRequestError, PeerUnavailableError
from datastore_common.metrics import PEER_CALLS


def counts() -> tuple[float, float]:
    return tuple(  # type: ignore[return-value]
        PEER_CALLS.labels(peer="icat", outcome=o)._value.get() for o in ("ok", "error")
    )


async def test_answers_count_ok_and_failures_to_answer_count_error() -> None:
    pool = IcatClientPool("https://icat.invalid", size=1)
    pool._idle.append(object())  # type: ignore[arg-type]  # the work below never touches it

    def answers(_: Any) -> int:
        return 42

    def refuses_the_request(_: Any) -> int:
        raise suds.transport.TransportError("bad request", 400)

    def is_down(_: Any) -> int:
        raise ConnectionRefusedError("connection refused")

    ok, failed = counts()
    assert await pool.call("search", answers) == 42
    with pytest.raises(InvalidRequestError):
        await pool.call("search", refuses_the_request)
    assert counts() == (ok + 2, failed)
    with pytest.raises(PeerUnavailableError):
        await pool.call("search", is_down)
    assert counts() == (ok + 2, failed + CALL_ATTEMPTS)  # each attempt at once is a call
    await pool.close()
