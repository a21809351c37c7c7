"""Async client for the FTS3 REST API (cern-fts/fts-rest-flask), as the official client speaks it.

Why our own: the published ``fts3`` client is synchronous, needs M2Crypto and turns a 207 answer
(some ids unknown) into an error, dropping the good results. This client keeps one
``httpx.AsyncClient`` open, retries transient failures with exponential backoff and turns every
wire failure into an ``errors`` type, so callers never look at status codes:

* connection errors, 5xx (after retries) -> ``PeerUnavailableError``;
  time-outs (after retries) -> ``PeerTimeoutError``
* an answer that is not the JSON we expect -> ``PeerUnavailableError("wrong answer ...")``
* 400 -> ``InvalidRequestError``; 401 / 403 -> ``CredentialError`` (ours was refused);
  404 -> ``NotFoundError``; 409 -> ``AlreadyExistsError``, which ``submit`` turns into success
  (the deterministic job already exists);
  419 on submit -> delegate a proxy once and submit again.

Authentication is an X.509 user certificate (or RFC 3820 proxy) and key, or a bearer token.
With a certificate, FTS needs a delegated proxy before it accepts a job: ``delegate()`` signs one
from the CSR FTS hands out (see ``build_proxy``), as the official client does.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import httpx
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from datastore_common.domain.job_ids import fts_job_id
from datastore_common.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConfigurationError,
    CredentialError,
    InvalidRequestError,
    NotFoundError,
    PeerTimeoutError,
    PeerUnavailableError,
    TransientError,
)

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
#: RFC 3820 proxyCertInfo extension and its "inherit all" policy language.
PROXY_CERT_INFO_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.14")
INHERIT_ALL_OID = "1.3.6.1.5.5.7.21.1"
#: DER of ProxyCertInfo ::= SEQUENCE { proxyPolicy SEQUENCE { policyLanguage inheritAll } }.
_PROXY_CERT_INFO_INHERIT_ALL = bytes.fromhex("300c300a06082b06010505071501")

VerifyChecksum = bool | Literal["both", "source", "target", "none"]


class DelegationRequiredError(AuthenticationError):
    """FTS answered 419: it holds no (or too short a) delegated proxy for us."""


# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferSpec:
    """One file to copy: ``source`` -> ``destination`` (URLs FTS understands, e.g. root://)."""

    source: str
    destination: str
    checksum: str | None = None  # "adler32:0a1b2c3d"
    filesize: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobParams:
    """Parameters shared by every file of one FTS job (``None`` = FTS's default)."""

    verify_checksum: VerifyChecksum = "both"
    overwrite: bool = False
    retry: int = 0
    priority: int | None = None
    bring_online: int | None = None  # seconds; restore from tape
    copy_pin_lifetime: int | None = None  # seconds; restore from tape
    archive_timeout: int | None = None  # seconds; archive to tape
    job_metadata: Mapping[str, Any] | None = None


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhoAmI:
    """Who FTS thinks we are. ``vo`` is what deterministic job ids are derived from."""

    user_dn: str
    delegation_id: str
    vos: tuple[str, ...]
    method: str

    @property
    def vo(self) -> str:
        return self.vos[0] if self.vos else self.delegation_id


@dataclass(frozen=True)
class FileStatus:
    file_id: int
    file_state: str
    source_surl: str
    dest_surl: str
    reason: str | None = None
    filesize: int | None = None
    checksum: str | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None
    file_metadata: Any = None


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    job_state: str
    reason: str | None = None
    submit_time: datetime | None = None
    job_finished: datetime | None = None
    files: list[FileStatus] = field(default_factory=list)


# --- pure helpers -----------------------------------------------------------------------------


def chunked(items: Sequence[str], size: int) -> list[list[str]]:
    """``items`` split into consecutive lists of at most ``size``."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def parse_time(value: Any) -> datetime | None:
    """FTS's naive-UTC ``YYYY-MM-DDTHH:MM:SS`` (or ``None``) as an aware UTC datetime."""
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise PeerUnavailableError(f"wrong answer: bad timestamp {value!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(float(value))


def parse_file(data: Any) -> FileStatus:
    """A file object from FTS; raises ``PeerUnavailableError`` if it is not one."""
    try:
        return FileStatus(
            file_id=int(data["file_id"]),
            file_state=str(data["file_state"]),
            source_surl=str(data.get("source_surl") or ""),
            dest_surl=str(data.get("dest_surl") or ""),
            reason=_opt_str(data.get("reason")) or None,
            filesize=_opt_int(data.get("filesize")),
            checksum=_opt_str(data.get("checksum")),
            start_time=parse_time(data.get("start_time")),
            finish_time=parse_time(data.get("finish_time")),
            file_metadata=data.get("file_metadata"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PeerUnavailableError(f"wrong answer: not a file object: {exc!r}") from exc


def parse_job(data: Any) -> JobStatus:
    """A job object from FTS (with ``files`` if asked for)."""
    try:
        files = [parse_file(f) for f in data.get("files") or []]
        return JobStatus(
            job_id=str(data["job_id"]),
            job_state=str(data["job_state"]),
            reason=_opt_str(data.get("reason")) or None,
            submit_time=parse_time(data.get("submit_time")),
            job_finished=parse_time(data.get("job_finished")),
            files=files,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise PeerUnavailableError(f"wrong answer: not a job object: {exc!r}") from exc


def _entry_ok(entry: Mapping[str, Any]) -> bool:
    """True if a bulk-status entry is a job (``http_status`` absent or 2xx), not an error."""
    return str(entry.get("http_status") or "200")[:1] == "2"


def parse_bulk_status(ids: Sequence[str], body: Any) -> dict[str, JobStatus | None]:
    """Match a bulk-status answer (list, or one object for one id) to ``ids``; errors -> None."""
    entries = body if isinstance(body, list) else [body]
    result: dict[str, JobStatus | None] = dict.fromkeys(ids)
    for entry in entries:
        if not isinstance(entry, dict):
            raise PeerUnavailableError("wrong answer: bulk status entry is not an object")
        job_id = entry.get("job_id")
        if job_id in result and _entry_ok(entry):
            result[job_id] = parse_job(entry)
    return result


def job_body(transfers: Sequence[TransferSpec], params: JobParams, sid: str) -> dict[str, Any]:
    """The JSON FTS expects on ``POST /jobs`` for a deterministic job named by ``sid``."""
    files: list[dict[str, Any]] = []
    for t in transfers:
        entry: dict[str, Any] = {
            "sources": [t.source],
            "destinations": [t.destination],
            "selection_strategy": "auto",
        }
        if t.checksum is not None:
            entry["checksum"] = t.checksum
        if t.filesize is not None:
            entry["filesize"] = t.filesize
        if t.metadata:
            entry["metadata"] = dict(t.metadata)
        files.append(entry)
    return {
        "files": files,
        "params": {
            "verify_checksum": params.verify_checksum,
            "overwrite": params.overwrite,
            "retry": params.retry,
            "priority": params.priority,
            "bring_online": params.bring_online,
            "copy_pin_lifetime": params.copy_pin_lifetime,
            "archive_timeout": params.archive_timeout,
            "job_metadata": dict(params.job_metadata) if params.job_metadata else None,
            "id_generator": "deterministic",
            "sid": sid,
        },
    }


def error_message(response: httpx.Response) -> str:
    """FTS's error text: the JSON body's ``message`` if there is one, else the raw body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.text.strip() or response.reason_phrase


def raise_for_status(response: httpx.Response) -> None:
    """Translate a failed FTS answer into an ``errors`` type (2xx returns quietly)."""
    code = response.status_code
    if code < 300:
        return
    what = f"FTS3 {response.request.method} {response.request.url.path}"
    if code >= 500:
        raise PeerUnavailableError(f"{what}: {code} {error_message(response)}")
    message = f"{what}: {error_message(response)}"
    if code == 400:
        raise InvalidRequestError(message)
    if code in (401, 403):
        # Our certificate, proxy or token: not the request's fault (retried, alarmed).
        raise CredentialError(f"{message} ({code}: our FTS credential was refused)")
    if code == 404:
        raise NotFoundError(message)
    if code == 409:
        raise AlreadyExistsError(message)
    if code == 419:
        raise DelegationRequiredError(message)
    if code < 400:
        raise PeerUnavailableError(f"wrong answer: {what}: unexpected {code}")
    raise InvalidRequestError(f"{what}: {code} {error_message(response)}")


# --- proxy delegation (pure crypto) -----------------------------------------------------------

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def load_credentials(cert_path: Path, key_path: Path) -> tuple[list[x509.Certificate], SigningKey]:
    """The certificate chain (signing certificate first) and its private key, from PEM files."""
    try:
        chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot load X.509 credentials: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"unsupported private key type {type(key).__name__}")
    return chain, key


def build_proxy(
    csr: x509.CertificateSigningRequest,
    chain: Sequence[x509.Certificate],
    key: SigningKey,
    *,
    lifetime: timedelta = timedelta(hours=7),
    now: datetime | None = None,
) -> x509.Certificate:
    """An RFC 3820 proxy for ``csr``'s key, signed by ``key`` (the key of ``chain[0]``).

    Subject = issuer's subject + ``CN=<serial>``; it never outlives any certificate in
    ``chain``; proxyCertInfo (critical, inheritAll), as FTS checks on ``PUT .../credential``.
    """
    if not csr.is_signature_valid:
        raise PeerUnavailableError("wrong answer: delegation request has a bad signature")
    issuer = chain[0]
    now = now or datetime.now(UTC)
    not_after = min([now + lifetime, *(c.not_valid_after_utc for c in chain)])
    serial = secrets.randbits(62) | 1
    subject = x509.Name(
        [
            *issuer.subject.rdns,
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, str(serial))]),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(csr.public_key())
        .serial_number(serial)
        .not_valid_before(max(now - timedelta(minutes=5), issuer.not_valid_before_utc))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .add_extension(
            x509.UnrecognizedExtension(PROXY_CERT_INFO_OID, _PROXY_CERT_INFO_INHERIT_ALL),
            critical=True,
        )
    )
    return builder.sign(key, hashes.SHA256())


def proxy_chain_pem(proxy: x509.Certificate, chain: Iterable[x509.Certificate]) -> bytes:
    """What ``PUT /delegation/{id}/credential`` carries: the proxy, then the chain, no key."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [proxy, *chain])


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
        retry_attempts: int = 4,
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
        """Send with retries on transient failures; return a 2xx response or raise."""
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
            raise PeerTimeoutError(f"FTS3 {method} {path}: timed out ({exc!r})") from exc
        except httpx.TransportError as exc:
            raise PeerUnavailableError(f"FTS3 {method} {path}: {exc!r}") from exc
        if response.status_code >= 500:
            log.warning("fts3.server_error", method=method, path=path, status=response.status_code)
        raise_for_status(response)
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
        chain, key = load_credentials(self._cert, self._key)
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
