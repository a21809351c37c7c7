"""IcatSessions and the client pool against the ICAT emulator (python-icat over SOAP)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.adapters.icat.sessions import IcatSessions
from datastore_common.errors import AuthenticationError, CredentialError, PeerUnavailableError
from datastore_common.settings import IcatSettings
from tests.support.icat_fixtures import IcatEmulator, free_port
from tests.support.loop_relay import loop_relay


@pytest.fixture
async def pool(icat_emulator: IcatEmulator):
    pool = IcatClientPool(icat_emulator.url, size=2)
    yield pool
    await pool.close()


async def test_login_then_check_names_the_user(pool: IcatClientPool) -> None:
    sessions = IcatSessions(pool)
    session_id = await sessions.login("db", {"username": "alice", "password": "alice-pw"})
    user = await sessions.check(session_id)
    assert user.session_id == session_id
    assert user.user_name == "db/alice"


async def test_wrong_password_is_an_authentication_error(pool: IcatClientPool) -> None:
    with pytest.raises(AuthenticationError):
        await IcatSessions(pool).login("db", {"username": "alice", "password": "nope"})


async def test_a_refused_functional_account_is_our_credential_not_the_requests(
    icat_emulator: IcatEmulator,
) -> None:
    """A worker's own login refused: retried with an alarm (CredentialError), never a
    permanent error that would mark a user's files FAILED."""
    settings = IcatSettings(url=icat_emulator.url, password=SecretStr("wrong"))  # type: ignore[arg-type]
    catalogue = IcatCatalogue(settings, pool=IcatClientPool(icat_emulator.url, size=1))
    try:
        with pytest.raises(CredentialError, match="functional account simple/datastore"):
            await catalogue.datasets_by_id([1])
    finally:
        await catalogue.close()


async def test_unknown_or_logged_out_session_is_an_authentication_error(
    pool: IcatClientPool,
) -> None:
    sessions = IcatSessions(pool)
    with pytest.raises(AuthenticationError):
        await sessions.check("00000000-0000-0000-0000-000000000000")
    session_id = await sessions.login("db", {"username": "bob", "password": "bob-pw"})
    await sessions.logout(session_id)
    with pytest.raises(AuthenticationError):
        await sessions.check(session_id)


async def test_many_users_share_at_most_pool_size_clients(pool: IcatClientPool) -> None:
    sessions = IcatSessions(pool)
    logins = [
        sessions.login("db", {"username": name, "password": f"{name}-pw"})
        for name in ("alice", "bob") * 10
    ]
    session_ids = await asyncio.gather(*logins)
    users = await asyncio.gather(*(sessions.check(s) for s in session_ids))
    assert [u.user_name for u in users] == ["db/alice", "db/bob"] * 10
    assert pool.clients_built <= 2


async def test_the_event_loop_keeps_running_during_icat_calls(
    icat_emulator: IcatEmulator,
) -> None:
    # Every byte to and from ICAT (the WSDL too) passes through a relay that this test's event
    # loop serves: a call that blocked the loop while waiting for ICAT would never be answered.
    async with loop_relay("127.0.0.1", icat_emulator.port) as relay:
        pool = IcatClientPool(f"http://127.0.0.1:{relay.port}", size=2, timeout_seconds=20)
        try:
            sessions = IcatSessions(pool)
            logins = [
                sessions.login("db", {"username": name, "password": f"{name}-pw"})
                for name in ("alice", "bob") * 3
            ]
            users = [await sessions.check(s) for s in await asyncio.gather(*logins)]
        finally:
            await pool.close()

    assert [u.user_name for u in users] == ["db/alice", "db/bob"] * 3
    assert relay.connections >= 1 and relay.bytes_relayed > 0


async def test_unreachable_icat_is_a_transient_error() -> None:
    pool = IcatClientPool(f"http://127.0.0.1:{free_port()}", size=1, timeout_seconds=5)
    try:
        with pytest.raises(PeerUnavailableError):
            await IcatSessions(pool).check("any")
    finally:
        await pool.close()
