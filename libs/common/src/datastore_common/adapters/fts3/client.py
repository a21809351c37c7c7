"""Async client for the FTS3 REST API (cern-fts/fts-rest-flask), as the official client speaks it.

Why our own: the published ``fts3`` client is synchronous, needs M2Crypto and turns a 207 answer
(some ids unknown) into an error, dropping the good results. This client keeps one
``httpx.AsyncClient`` open and turns every wire failure into an ``errors`` type, so callers
never look at status codes:

* connection errors, 5xx -> ``PeerUnavailableError``; time-outs -> ``PeerTimeoutError``
* an answer that is not the JSON we expect -> ``PeerUnavailableError("wrong answer ...")``
* 400 -> ``InvalidRequestError``; 401 / 403 -> ``CredentialError`` (ours was refused);
  404 -> ``NotFoundError``; 409 -> ``AlreadyExistsError``, which ``submit`` turns into success
  (the deterministic job already exists);
  419 on submit -> delegate a proxy once and submit again.

A call is sent once: FTS failures are retried by the layer above (architecture.md, "Retries":
the bus's ladder for the submitter, the next poll for the poller, the HTTP caller for the
gateway), since redoing a message's few FTS calls costs what redoing one would.
``retry_attempts`` > 1 retries transient failures here with exponential backoff, for a caller
that has no such layer; no service does.

Authentication is an X.509 user certificate (or RFC 3820 proxy) and key, or a bearer token.
With a certificate, FTS needs a delegated proxy before it accepts a job: ``delegate()`` signs one
from the CSR FTS hands out (see ``proxy.build_proxy``), as the official client does.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import structlog
from cryptography import x509
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from datastore_common.adapters.fts3.proxy import (
    build_proxy,
    chain_expiry,
    load_credentials,
    proxy_chain_pem,
    require_private_key_file,
)
from datastore_common.adapters.fts3.wire import (
    DelegationRequiredError,
    FileStatus,
    JobParams,
    JobStatus,
    TransferSpec,
    WhoAmI,
    job_body,
    parse_bulk_status,
    parse_file,
    parse_job,
    parse_time,
    raise_for_status,
)
from datastore_common.domain.job_ids import fts_job_id
from datastore_common.errors import (
    AlreadyExistsError,
    ConfigurationError,
    CredentialError,
    NotFoundError,
    PeerTimeoutError,
    PeerUnavailableError,
    TransientError,
)
from datastore_common.metrics import CREDENTIAL_EXPIRY, peer_call

log = structlog.get_logger(__name__)

#: At most this many job ids go into one bulk status request (as rucio's ``--fts-bulk``).
STATUS_CHUNK = 100
#: File fields asked for in a bulk status request.
FILE_FIELDS = (
    "file_id",
    "file_state",
    "source_surl",
    "dest_surl",
    "reason",
    "filesize",
    "checksum",
    "start_time",
    "finish_time",
    "file_metadata",
)


def chunked(items: Sequence[str], size: int) -> list[list[str]]:
    """``items`` split into consecutive lists of at most ``size``."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _ssl_context(
    *, ca: Path | None, verify: bool, cert: Path | None, key: Path | None
) -> ssl.SSLContext:
    if verify:
        if ca is not None and ca.is_dir():
            ctx = ssl.create_default_context(capath=str(ca))
        else:
            ctx = ssl.create_default_context(cafile=None if ca is None else str(ca))
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        try:
            ctx.load_cert_chain(str(cert), None if key is None else str(key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"cannot load X.509 client certificate: {exc}") from exc
    return ctx


#: The ``credential`` label of our X.509 certificate (or proxy) in CREDENTIAL_EXPIRY.
X509_CREDENTIAL = "fts3_x509"


def record_credential_expiry(cert: Path) -> None:
    """Export when the certificate file's chain expires; a file that cannot be read is left to
    whoever loads it to report (the TLS context, the delegation)."""
    try:
        chain = x509.load_pem_x509_certificates(cert.read_bytes())
        expiry = chain_expiry(chain)
    except (OSError, ValueError, ConfigurationError):
        return
    CREDENTIAL_EXPIRY.labels(credential=X509_CREDENTIAL).set(expiry.timestamp())


# --- the client -------------------------------------------------------------------------------


class Fts3Client:
    """One FTS3 endpoint, one open HTTP connection pool. Use ``async with`` or ``aclose()``."""

    def __init__(
        self,
        endpoint: str,
        *,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        token: str | None = None,
        ca: str | Path | None = None,
        verify: bool = True,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        retry_attempts: int = 1,
        retry_backoff: float = 0.5,
        retry_max_wait: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        event_hooks: Mapping[str, list[Any]] | None = None,
    ) -> None:
        if cert is None and token is None:
            raise ConfigurationError("FTS3 client needs an X.509 certificate or a bearer token")
        if retry_attempts < 1:
            raise ConfigurationError("retry_attempts must be >= 1")
        self.endpoint = endpoint.rstrip("/")
        self._cert = None if cert is None else Path(cert)
        self._key = None if key is None else Path(key)
        if self._cert is not None and self._key is None:
            self._key = self._cert  # a proxy file holds certificate and key together
        if self._cert is not None and self._key is not None:
            require_private_key_file(self._key)
            record_credential_expiry(self._cert)
        self._token = token
        self._retry_attempts = retry_attempts
        self._retry_backoff = retry_backoff
        self._retry_max_wait = retry_max_wait
        self._whoami: WhoAmI | None = None
        headers = {"Accept": "application/json", "User-Agent": "datastore-fts3-client/1"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        verify_ctx = (
            True
            if transport is not None
            else _ssl_context(ca=_path(ca), verify=verify, cert=self._cert, key=self._key)
        )
        self._http = httpx.AsyncClient(
            base_url=self.endpoint,
            headers=headers,
            verify=verify_ctx,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
            event_hooks=dict(event_hooks or {}),
            follow_redirects=False,
        )

    @property
    def uses_token(self) -> bool:
        return self._token is not None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- wire ---------------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, *, json_body: Any = None, content: bytes | None = None
    ) -> httpx.Response:
        """Send (``retry_attempts`` times on transient failures); a 2xx response or raise."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry_attempts),
            wait=wait_exponential(multiplier=self._retry_backoff, max=self._retry_max_wait),
            # A refused credential will not be accepted a second later: the caller decides.
            retry=retry_if_exception_type(TransientError)
            & retry_if_not_exception_type(CredentialError),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_once(method, path, json_body=json_body, content=content)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_once(
        self, method: str, path: str, *, json_body: Any, content: bytes | None
    ) -> httpx.Response:
        try:
            response = await self._http.request(method, path, json=json_body, content=content)
        except httpx.TimeoutException as exc:
            peer_call("fts3", failed=True)
            raise PeerTimeoutError(f"FTS3 {method} {path}: timed out ({exc!r})") from exc
        except httpx.TransportError as exc:
            peer_call("fts3", failed=True)
            raise PeerUnavailableError(f"FTS3 {method} {path}: {exc!r}") from exc
        if response.status_code >= 500:
            log.warning("fts3.server_error", method=method, path=path, status=response.status_code)
        try:
            raise_for_status(response)
        except TransientError:
            peer_call("fts3", failed=True)
            raise
        except Exception:
            peer_call("fts3", failed=False)  # it answered: the request itself was refused
            raise
        peer_call("fts3", failed=False)
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise PeerUnavailableError(
                f"wrong answer: FTS3 {response.request.url.path} is not JSON"
            ) from exc

    async def _get_json(self, path: str) -> Any:
        return self._json(await self._request("GET", path))

    # --- API ----------------------------------------------------------------------------------

    async def whoami(self) -> WhoAmI:
        """``GET /whoami``; the answer is cached for the client's lifetime."""
        if self._whoami is None:
            body = await self._get_json("/whoami")
            try:
                self._whoami = WhoAmI(
                    user_dn=str(body.get("user_dn") or ""),
                    delegation_id=str(body["delegation_id"]),
                    vos=tuple(str(v) for v in body.get("vos") or ()),
                    method=str(body.get("method") or ""),
                )
            except (KeyError, TypeError, AttributeError) as exc:
                raise PeerUnavailableError(f"wrong answer: /whoami: {exc!r}") from exc
        return self._whoami

    async def delegation_remaining(self, delegation_id: str) -> timedelta | None:
        """Time left on the proxy FTS holds for us, or ``None`` if it holds none."""
        info = await self._get_json(f"/delegation/{delegation_id}")
        if not info:
            return None
        try:
            until = parse_time(info["termination_time"])
        except (KeyError, TypeError) as exc:
            raise PeerUnavailableError(f"wrong answer: delegation info: {exc!r}") from exc
        return None if until is None else until - datetime.now(UTC)

    async def delegate(
        self,
        lifetime: timedelta = timedelta(hours=7),
        *,
        force: bool = False,
        renew_below: timedelta = timedelta(hours=2),
    ) -> str | None:
        """Make sure FTS holds a proxy of ours; return the delegation id (``None`` for tokens)."""
        if self.uses_token:
            return None
        assert self._cert is not None and self._key is not None
        delegation_id = (await self.whoami()).delegation_id
        remaining = await self.delegation_remaining(delegation_id)
        if not force and remaining is not None and remaining >= renew_below:
            return delegation_id
        response = await self._request("GET", f"/delegation/{delegation_id}/request")
        try:
            csr = x509.load_pem_x509_csr(response.content)
        except ValueError as exc:
            raise PeerUnavailableError("wrong answer: delegation request is not a PEM CSR") from exc
        chain, key = load_credentials(self._cert, self._key)  # as rotated on disk, if it was
        CREDENTIAL_EXPIRY.labels(credential=X509_CREDENTIAL).set(chain_expiry(chain).timestamp())
        proxy = build_proxy(csr, chain, key, lifetime=lifetime)
        await self._request(
            "PUT",
            f"/delegation/{delegation_id}/credential",
            content=proxy_chain_pem(proxy, chain),
        )
        log.info("fts3.delegated", delegation_id=delegation_id, until=proxy.not_valid_after_utc)
        return delegation_id

    async def submit(self, transfers: Sequence[TransferSpec], params: JobParams, sid: str) -> str:
        """Submit one deterministic job named by ``sid``; return its job id.

        Resubmitting the same ``sid`` is harmless: FTS answers 409 and we return the id FTS gave
        the first submission. A 419 (no delegated proxy) makes us delegate once and try again.
        """
        if not transfers:
            raise ValueError("a job needs at least one transfer")
        body = job_body(transfers, params, sid)
        try:
            try:
                response = await self._request("POST", "/jobs", json_body=body)
            except DelegationRequiredError:
                if self.uses_token:
                    raise
                await self.delegate(force=True)
                response = await self._request("POST", "/jobs", json_body=body)
        except AlreadyExistsError:
            return fts_job_id((await self.whoami()).vo, sid)
        answer = self._json(response)
        if not isinstance(answer, dict) or not answer.get("job_id"):
            raise PeerUnavailableError("wrong answer: POST /jobs gave no job_id")
        return str(answer["job_id"])

    async def status(
        self, job_ids: Iterable[str], *, with_files: bool = True
    ) -> dict[str, JobStatus | None]:
        """Bulk status, ≤ 100 ids per request; an id FTS does not know (or hides) maps to None."""
        ids = list(dict.fromkeys(job_ids))
        query = f"?files={','.join(FILE_FIELDS)}" if with_files else ""
        result: dict[str, JobStatus | None] = {}
        for chunk in chunked(ids, STATUS_CHUNK):
            try:
                body = await self._get_json(f"/jobs/{','.join(chunk)}{query}")
            except NotFoundError:
                if len(chunk) > 1:
                    raise
                body = {"job_id": chunk[0], "http_status": "404 Not Found"}
            result.update(parse_bulk_status(chunk, body))
        return result

    async def files(self, job_id: str) -> list[FileStatus]:
        """``GET /jobs/{id}/files``: every file of the job, all fields."""
        body = await self._get_json(f"/jobs/{job_id}/files")
        if not isinstance(body, list):
            raise PeerUnavailableError("wrong answer: job files is not a list")
        return [parse_file(f) for f in body]

    async def cancel(self, job_id: str) -> JobStatus:
        """Cancel a job; a job already terminal comes back unchanged."""
        return parse_job(self._json(await self._request("DELETE", f"/jobs/{job_id}")))

    async def cancel_files(self, job_id: str, file_ids: Sequence[int]) -> list[str]:
        """Cancel some files of a job; returns each file's resulting state (or FTS's remark)."""
        if not file_ids:
            return []
        fids = ",".join(str(f) for f in file_ids)
        body = self._json(await self._request("DELETE", f"/jobs/{job_id}/files/{fids}"))
        return [str(s) for s in body] if isinstance(body, list) else [str(body)]


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)
