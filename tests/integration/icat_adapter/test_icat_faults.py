"""The ICAT adapter against an ICAT that drops calls (the emulator's injected faults): a
client can still be built, and every failure is a Datastore error (a 503, never a crash)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from datastore_common.adapters.icat import IcatClientPool, IcatSessions, translate_icat_error
from datastore_common.errors import InvalidRequestError, PeerUnavailableError
from tests.support.icat_fixtures import IcatEmulator


def test_a_bare_suds_http_error_is_a_peer_failure() -> None:
    error = translate_icat_error(Exception((503, "Service Unavailable")), operation="login")
    assert isinstance(error, PeerUnavailableError)
    assert isinstance(
        translate_icat_error(Exception((404, "Nope")), operation="x"), InvalidRequestError
    )
    assert translate_icat_error(Exception("a bug"), operation="x") is None


async def test_clients_are_built_and_calls_fail_cleanly_while_icat_drops_calls(
    icat_emulator_factory: Callable[[], IcatEmulator],
) -> None:
    emulator = icat_emulator_factory()  # its own: the faults stay here
    async with httpx.AsyncClient() as client:
        answer = await client.put(f"{emulator.url}/emulator/faults", json={"error_rate": 0.3})
    assert answer.status_code == 200
    pool = IcatClientPool(emulator.url, size=2)
    sessions = IcatSessions(pool)
    outcomes: dict[str, int] = {"ok": 0, "unavailable": 0}
    try:
        for _ in range(20):
            try:
                await sessions.login("simple", {"username": "root", "password": "pw"})
                outcomes["ok"] += 1
            except PeerUnavailableError:
                outcomes["unavailable"] += 1
    finally:
        await pool.close()
    # Built despite ~55 calls at a 30 % loss each; logins then fail ~30 % of the time, as
    # PeerUnavailableError (a 503 for a user, a retry for a worker), never anything else.
    assert pool.clients_built >= 1
    assert outcomes["ok"] >= 5 and outcomes["unavailable"] >= 1, outcomes
