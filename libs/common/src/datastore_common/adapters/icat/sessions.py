"""``Sessions`` on ICAT: users' logins and session checks (gateway)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from datastore_common.adapters.icat.pool import IcatClient, IcatClientPool, raw_call
from datastore_common.errors import AuthenticationError, SessionRefusedError
from datastore_common.ports import Sessions, UserSession

T = TypeVar("T")


async def as_the_user(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, made with a *user's* session or credentials: ICAT refusing them (a SESSION
    fault) is the user's ``SessionRefusedError``, not a peer refusing us."""
    try:
        return await call()
    except SessionRefusedError:
        raise
    except AuthenticationError as exc:
        raise SessionRefusedError(str(exc)) from exc


class IcatSessions(Sessions):
    """Login and session checks for *users* (gateway). Works on the raw suds service, so one
    shared client serves every user and no per-user client (55 calls) is ever built."""

    def __init__(self, pool: IcatClientPool) -> None:
        self._pool = pool

    async def login(self, auth: str, credentials: Mapping[str, str]) -> str:
        def work(client: IcatClient) -> str:
            entries = client.factory.create("credentials")
            for key, value in credentials.items():
                entries.entry.append({"key": key, "value": value})
            return str(raw_call(client, "login", auth, entries))

        return await as_the_user(lambda: self._pool.call("login", work))

    async def check(self, session_id: str) -> UserSession:
        if not session_id:
            raise SessionRefusedError("icat getUserName: empty session id")
        name = await as_the_user(
            lambda: self._pool.call(
                "getUserName", lambda client: str(raw_call(client, "getUserName", session_id))
            )
        )
        return UserSession(session_id=session_id, user_name=name)

    async def logout(self, session_id: str) -> None:
        await self._pool.call("logout", lambda client: raw_call(client, "logout", session_id))
