"""The ICAT adapter against an ICAT that drops calls (the emulator's injected faults): a
client can still be built, and every failure is a Datastore error (a 503, never a crash)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from datastore_common.adapters.icat.errors import translate_icat_error
from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.adapters.icat.sessions import IcatSessions
from datastore_common.errors import InvalidRequestError, PeerUnavailableError
from tests.support.icat_fixtures import IcatEmulator


def test_a_bare_suds_http_error_is_a_peer_failure() -> None:
    error = translate_icat_error(Exception((503, "Service Unavailable")), operation="login")
    assert isinstance(error, PeerUnavailableError)
    assert isinstance(
        translate_icat_error(Exception((404, "Nope")), operation="x"), InvalidRequestError
    )
    assert translate_icat_error(Exception("a bug"), operation="x") is None


async def test_clients_are_built_and_calls_get_through_while_icat_drops_calls(
    icat_emulator_factory: Callable[[], IcatEmulator],
) -> None:
    emulator = icat_emulator_factory()  # its own: the faults stay here

    async def faults(**rates: float) -> None:
        async with httpx.AsyncClient() as client:
            answer = await client.put(f"{emulator.url}/emulator/faults", json=rates)
        assert answer.status_code == 200

    pool = IcatClientPool(emulator.url, size=1)
    sessions = IcatSessions(pool)
    credentials = {"username": "root", "password": "pw"}
    try:
        # Building a client asks ~55 questions; each one answered 503 a few times still gets
        # through (the build retries every call up to 8 times).
        await faults(fail_next=5)
        assert await sessions.login("simple", credentials)
        assert pool.clients_built == 1
        # A call answered 503 three times gets through on its fourth attempt ...
        await faults(fail_next=3)
        assert await sessions.login("simple", credentials)
        # ... a fourth time is a PeerUnavailableError (a 503 for a user, a retry for a
        # worker), never anything else.
        await faults(fail_next=4)
        with pytest.raises(PeerUnavailableError, match="Service Unavailable"):
            await sessions.login("simple", credentials)
        await faults(fail_next=0)
        assert await sessions.login("simple", credentials)
    finally:
        await pool.close()
