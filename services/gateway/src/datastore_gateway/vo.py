"""The FTS VO our deterministic job ids derive from: configured, or asked of FTS once.

FTS names a deterministic job ``uuid5(uuid5(BASE_ID, vo), sid)``, so the gateway must know
the VO of the credential the fts-submitter uses. ``fts3.vo`` sets it; otherwise the gateway's
one FTS port (``TransferService.vo``: FTS ``/whoami``, same settings and credential as the
fts-submitter's) is asked at start-up and the answer kept for the life of the process. If FTS
cannot be reached at start-up, the gateway still starts and asks again on the next archive
request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from datastore_common.errors import ConfigurationError, DatastoreError, PeerUnavailableError
from datastore_common.logging import get_logger
from datastore_common.ports import TransferService
from datastore_common.settings import DatastoreSettings

log = get_logger(__name__)


class VoSource:
    def __init__(
        self, *, vo: str | None = None, fetch: Callable[[], Awaitable[str]] | None = None
    ) -> None:
        if vo is None and fetch is None:
            raise ValueError("a VO or a way to fetch it is needed")
        self._vo = vo
        self._fetch = fetch
        self._lock = asyncio.Lock()

    @property
    def known(self) -> str | None:
        return self._vo

    async def get(self) -> str:
        if self._vo is not None:
            return self._vo
        assert self._fetch is not None
        async with self._lock:  # one FTS call, however many requests wait for it
            if self._vo is None:
                try:
                    self._vo = await self._fetch()
                except DatastoreError as exc:
                    raise PeerUnavailableError(
                        f"FTS VO unknown (set fts3.vo, or FTS /whoami must answer): {exc}"
                    ) from exc
                log.info("fts_vo_learned", vo=self._vo)
            return self._vo


def vo_source(settings: DatastoreSettings, transfers: TransferService | None) -> VoSource:
    """``fts3.vo`` when set, else what the gateway's FTS port says (asked when first needed)."""
    if settings.fts3.vo:
        return VoSource(vo=settings.fts3.vo)
    if transfers is None:
        return VoSource(fetch=_no_fts)
    return VoSource(fetch=transfers.vo)


async def _no_fts() -> str:
    raise ConfigurationError("no FTS3 credential: set fts3.token or x509_user_cert")
