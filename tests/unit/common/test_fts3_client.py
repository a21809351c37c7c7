"""Fts3Client at the wire: httpx.MockTransport plays FTS3, no network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from datastore_common.adapters.fts3.client import X509_CREDENTIAL, Fts3Client
from datastore_common.adapters.fts3.proxy import PROXY_CERT_INFO_OID, build_proxy
from datastore_common.adapters.fts3.wire import JobParams, JobStatus, TransferSpec, job_body
from datastore_common.domain.job_ids import fts_job_id
from datastore_common.errors import (
    AuthenticationError,
    ConfigurationError,
    CredentialError,
    InsecureKeyFileError,
    InvalidRequestError,
    NotFoundError,
    PeerTimeoutError,
    PeerUnavailableError,
    TransientError,
)
from datastore_common.metrics import CREDENTIAL_EXPIRY, PEER_CALLS

ENDPOINT = "https://fts.test:8446"
WHOAMI = {
    "user_dn": "/C=XX/O=Test/CN=Alice",
    "delegation_id": "0123456789abcdef",
    "vos": ["0123456789abcdef"],
    "method": "certificate",
}

Handler = Callable[[httpx.Request], httpx.Response]


def job_json(job_id: str, state: str = "ACTIVE", files: int = 0) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "job_state": state,
        "reason": None,
        "submit_time": "2024-05-01T10:00:00",
        "job_finished": None,
        "http_status": "200 Ok",
        "files": [
            {
                "file_id": i + 1,
                "file_state": "SUBMITTED",
                "source_surl": f"root://idc//a/{i}",
                "dest_surl": f"root://tape//a/{i}",
                "reason": "",
                "filesize": 10,
                "checksum": "adler32:00000001",
                "start_time": None,
                "finish_time": None,
                "file_metadata": {"n": i},
            }
            for i in range(files)
        ],
    }


class Recorder:
    """Routes requests to a handler and keeps every request it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.raw_path.decode()}" for r in self.requests]


def make_client(handler: Handler, **kwargs: Any) -> tuple[Fts3Client, Recorder]:
    recorder = Recorder(handler)
    kwargs.setdefault("token", "tok")
    kwargs.setdefault("retry_backoff", 0.0)
    kwargs.setdefault("retry_attempts", 3)
    client = Fts3Client(ENDPOINT, transport=httpx.MockTransport(recorder), **kwargs)
    return client, recorder


def error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"status": f"{status} X", "message": message})


SPEC = [TransferSpec("root://idc//d/f1", "root://tape//d/f1", "adler32:0a1b2c3d", 42, {"k": 1})]
PARAMS = JobParams(archive_timeout=3600, job_metadata={"request_id": "r1"})


# --- status -----------------------------------------------------------------------------------


async def test_status_chunks_250_ids_into_3_requests() -> None:
    ids = [f"job-{i:03d}" for i in range(250)]

    def handler(request: httpx.Request) -> httpx.Response:
        asked = request.url.path.removeprefix("/jobs/").split(",")
        return httpx.Response(200, json=[job_json(i) for i in asked])

    client, rec = make_client(handler)
    async with client:
        result = await client.status(ids)
    assert len(rec.requests) == 3
    assert [len(r.url.path.split(",")) for r in rec.requests] == [100, 100, 50]
    assert list(result) == ids
    assert all(isinstance(v, JobStatus) and v.job_state == "ACTIVE" for v in result.values())
    query = rec.requests[0].url.raw_path.decode().split("?", 1)[1]
    assert query.startswith("files=file_id,file_state,")  # commas as the official client sends


async def test_status_207_keeps_good_entries() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            207,
            json=[
                job_json("a", "FINISHED", files=2),
                {"job_id": "b", "http_status": "404 Not Found", "http_message": "No job"},
                {"job_id": "c", "http_status": "403 Forbidden", "http_message": "Not yours"},
            ],
        )

    client, _ = make_client(handler)
    async with client:
        result = await client.status(["a", "b", "c"])
    a = result["a"]
    assert a is not None and a.job_state == "FINISHED"
    assert [f.file_id for f in a.files] == [1, 2]
    assert a.files[0].file_metadata == {"n": 0}
    assert a.files[0].reason is None  # FTS's "" means no reason
    assert a.submit_time == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert result["b"] is None and result["c"] is None


async def test_status_single_id_answer_is_an_object() -> None:
    client, rec = make_client(lambda r: httpx.Response(200, json=job_json("solo", files=1)))
    async with client:
        result = await client.status(["solo"], with_files=False)
    solo = result["solo"]
    assert solo is not None and solo.files[0].dest_surl == "root://tape//a/0"
    assert rec.paths() == ["GET /jobs/solo"]


async def test_status_single_unknown_id_is_none() -> None:
    client, _ = make_client(lambda r: error(404, 'No job with the id "x" has been found'))
    async with client:
        assert await client.status(["x"]) == {"x": None}


async def test_status_of_nothing_asks_nothing() -> None:
    client, rec = make_client(lambda r: httpx.Response(500))
    async with client:
        assert await client.status([]) == {}
    assert rec.requests == []


async def test_status_malformed_json_is_wrong_answer() -> None:
    client, _ = make_client(lambda r: httpx.Response(200, content=b"<html>oops</html>"))
    async with client:
        with pytest.raises(PeerUnavailableError, match="wrong answer"):
            await client.status(["a", "b"])


async def test_status_entry_without_state_is_wrong_answer() -> None:
    client, _ = make_client(lambda r: httpx.Response(200, json=[{"job_id": "a", "files": 3}]))
    async with client:
        with pytest.raises(PeerUnavailableError, match="wrong answer"):
            await client.status(["a", "b"])


# --- submit -----------------------------------------------------------------------------------


async def test_submit_posts_a_deterministic_job() -> None:
    client, rec = make_client(lambda r: httpx.Response(200, json={"job_id": "j-1"}))
    async with client:
        assert await client.submit(SPEC, PARAMS, "r1:0") == "j-1"
    (request,) = rec.requests
    assert request.method == "POST" and request.url.path == "/jobs"
    assert request.headers["Authorization"] == "Bearer tok"
    body = json.loads(request.content)
    assert body == job_body(SPEC, PARAMS, "r1:0")
    assert body["params"]["id_generator"] == "deterministic"
    assert body["params"]["sid"] == "r1:0"
    assert body["params"]["archive_timeout"] == 3600
    assert body["files"] == [
        {
            "sources": ["root://idc//d/f1"],
            "destinations": ["root://tape//d/f1"],
            "selection_strategy": "auto",
            "checksum": "adler32:0a1b2c3d",
            "filesize": 42,
            "metadata": {"k": 1},
        }
    ]


async def test_submit_409_returns_the_deterministic_id() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/whoami":
            return httpx.Response(200, json=WHOAMI)
        return error(409, "The sid provided by the user is duplicated")

    client, rec = make_client(handler)
    async with client:
        job_id = await client.submit(SPEC, PARAMS, "r1:0")
    assert job_id == fts_job_id("0123456789abcdef", "r1:0")
    assert rec.paths() == ["POST /jobs", "GET /whoami"]


async def test_submit_retries_5xx_then_succeeds() -> None:
    answers = iter(
        [httpx.Response(503), httpx.Response(500), httpx.Response(200, json={"job_id": "j"})]
    )
    client, rec = make_client(lambda r: next(answers))
    async with client:
        assert await client.submit(SPEC, PARAMS, "s") == "j"
    assert len(rec.requests) == 3


async def test_submit_without_transfers_is_refused() -> None:
    client, _ = make_client(lambda r: httpx.Response(500))
    async with client:
        with pytest.raises(ValueError):
            await client.submit([], PARAMS, "s")


async def test_submit_419_with_token_is_an_authentication_error() -> None:
    client, rec = make_client(lambda r: error(419, "need delegation"))
    async with client:
        with pytest.raises(AuthenticationError):
            await client.submit(SPEC, PARAMS, "s")
    assert len(rec.requests) == 1


# --- errors -----------------------------------------------------------------------------------


async def test_5xx_retried_then_peer_unavailable() -> None:
    client, rec = make_client(lambda r: error(503, "busy"), retry_attempts=4)
    async with client:
        with pytest.raises(PeerUnavailableError, match="503"):
            await client.whoami()
    assert len(rec.requests) == 4


async def test_connection_error_retried_then_peer_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, rec = make_client(handler)
    async with client:
        with pytest.raises(PeerUnavailableError):
            await client.status(["a", "b"])
    assert len(rec.requests) == 3


async def test_read_timeout_retried_then_peer_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client, rec = make_client(handler)
    async with client:
        with pytest.raises(PeerTimeoutError):
            await client.files("j")
    assert len(rec.requests) == 3


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, InvalidRequestError),
        (401, CredentialError),
        (403, CredentialError),
        (404, NotFoundError),
        (405, InvalidRequestError),
    ],
)
async def test_4xx_mapping_without_retry(status: int, exc: type[Exception]) -> None:
    client, rec = make_client(lambda r: error(status, "FTS says no"))
    async with client:
        with pytest.raises(exc, match="FTS says no"):
            await client.cancel("j")
    assert len(rec.requests) == 1


async def test_400_carries_ftss_message() -> None:
    client, _ = make_client(lambda r: error(400, "Need sid for deterministic job id generation"))
    async with client:
        with pytest.raises(InvalidRequestError, match="Need sid"):
            await client.submit(SPEC, PARAMS, "s")


def test_client_needs_credentials() -> None:
    with pytest.raises(ConfigurationError):
        Fts3Client(ENDPOINT)


# --- other calls ------------------------------------------------------------------------------


async def test_files_cancel_and_cancel_files() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=job_json("j", files=2)["files"])
        if request.url.path == "/jobs/j":
            return httpx.Response(200, json=job_json("j", "CANCELED"))
        return httpx.Response(200, json=["CANCELED", "FINISHED"])

    client, rec = make_client(handler)
    async with client:
        files = await client.files("j")
        canceled = await client.cancel("j")
        states = await client.cancel_files("j", [1, 2])
    assert [f.file_id for f in files] == [1, 2]
    assert canceled.job_state == "CANCELED"
    assert states == ["CANCELED", "FINISHED"]
    assert rec.paths() == ["GET /jobs/j/files", "DELETE /jobs/j", "DELETE /jobs/j/files/1,2"]


async def test_endpoint_trailing_slash_gives_single_slash_paths() -> None:
    recorder = Recorder(lambda r: httpx.Response(200, json=WHOAMI))
    async with Fts3Client(
        ENDPOINT + "/", token="t", transport=httpx.MockTransport(recorder)
    ) as client:
        who = await client.whoami()
        await client.whoami()  # cached
    assert who.vo == "0123456789abcdef"
    assert recorder.paths() == ["GET /whoami"]


# --- delegation -------------------------------------------------------------------------------


def write_private(path: Path, data: bytes) -> None:
    """A key file as ssh and our services want it: mode 0600 from its creation."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def _name(*cns: str) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "XX"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test"),
    ]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in cns])


@pytest.fixture(scope="module")
def user_credentials(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A CA, a user certificate it signed and the user's key, as PEM files."""
    folder = tmp_path_factory.mktemp("pki")
    now = datetime.now(UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Test CA"))
        .issuer_name(_name("Test CA"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    user_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    user = (
        x509.CertificateBuilder()
        .subject_name(_name("Alice"))
        .issuer_name(ca.subject)
        .public_key(user_key.public_key())
        .serial_number(4242)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=10))
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path, ca_path = folder / "user.pem", folder / "user.key", folder / "ca.pem"
    cert_path.write_bytes(user.public_bytes(serialization.Encoding.PEM))
    write_private(
        key_path,
        user_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, ca_path


def _csr() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "proxy")]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM)


class FakeDelegation:
    """Just enough of FTS's delegation endpoints, plus POST /jobs needing a delegation."""

    def __init__(self, termination: str | None = None) -> None:
        self.termination = termination
        self.csr_key, self.csr_pem = _csr()
        self.uploaded: bytes | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, dlg = request.url.path, WHOAMI["delegation_id"]
        if path == "/whoami":
            return httpx.Response(200, json=WHOAMI)
        if path == f"/delegation/{dlg}":
            info = {"termination_time": self.termination} if self.termination else []
            return httpx.Response(200, json=info)
        if path == f"/delegation/{dlg}/request":
            return httpx.Response(200, content=self.csr_pem, headers={"X-Delegation-ID": dlg})
        if path == f"/delegation/{dlg}/credential" and request.method == "PUT":
            self.uploaded = request.content
            self.termination = "2999-01-01T00:00:00"
            return httpx.Response(201)
        if path == "/jobs" and request.method == "POST":
            if not self.termination:
                return error(419, "No delegation found")
            return httpx.Response(200, json={"job_id": "j-after-delegation"})
        return error(404, "no route")


def _cert_client(
    fake: FakeDelegation, creds: tuple[Path, Path, Path]
) -> tuple[Fts3Client, Recorder]:
    cert, key, ca = creds
    return make_client(fake, token=None, cert=cert, key=key, ca=ca)


async def test_delegate_builds_a_proxy_fts_accepts(
    user_credentials: tuple[Path, Path, Path],
) -> None:
    fake = FakeDelegation()
    client, rec = _cert_client(fake, user_credentials)
    async with client:
        assert await client.delegate() == WHOAMI["delegation_id"]
    dlg = WHOAMI["delegation_id"]
    assert rec.paths() == [
        "GET /whoami",
        f"GET /delegation/{dlg}",
        f"GET /delegation/{dlg}/request",
        f"PUT /delegation/{dlg}/credential",
    ]
    assert "content-type" not in rec.requests[-1].headers
    assert fake.uploaded is not None
    chain = x509.load_pem_x509_certificates(fake.uploaded)
    assert b"PRIVATE KEY" not in fake.uploaded
    assert len(chain) == 2
    proxy, user = chain
    assert user.public_bytes(serialization.Encoding.PEM) == user_credentials[0].read_bytes()
    # signed by the user's key
    user_pub = user.public_key()
    assert isinstance(user_pub, rsa.RSAPublicKey)
    assert proxy.signature_hash_algorithm is not None
    user_pub.verify(
        proxy.signature,
        proxy.tbs_certificate_bytes,
        padding.PKCS1v15(),
        proxy.signature_hash_algorithm,
    )
    # the key FTS asked us to certify
    proxy_pub = proxy.public_key()
    assert isinstance(proxy_pub, rsa.RSAPublicKey)
    assert proxy_pub.public_numbers().n == fake.csr_key.public_key().public_numbers().n
    # subject = issuer + CN=<serial>
    assert proxy.issuer == user.subject
    assert list(proxy.subject.rdns)[:-1] == list(user.subject.rdns)
    last = list(proxy.subject.rdns)[-1].get_attributes_for_oid(NameOID.COMMON_NAME)
    assert last[0].value == str(proxy.serial_number)
    # RFC 3820 proxyCertInfo, critical, inheritAll; not a CA; never outlives the user cert
    ext = proxy.extensions.get_extension_for_oid(PROXY_CERT_INFO_OID)
    assert ext.critical
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    assert ext.value.value == bytes.fromhex("300c300a06082b06010505071501")
    assert proxy.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert proxy.not_valid_after_utc <= user.not_valid_after_utc
    lifetime = proxy.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(hours=6) < lifetime <= timedelta(hours=7)


async def test_delegate_skips_when_enough_time_left(
    user_credentials: tuple[Path, Path, Path],
) -> None:
    until = (datetime.now(UTC) + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S")
    fake = FakeDelegation(termination=until)
    client, rec = _cert_client(fake, user_credentials)
    async with client:
        await client.delegate()
    assert len(rec.requests) == 2 and fake.uploaded is None


async def test_delegate_renews_when_short(user_credentials: tuple[Path, Path, Path]) -> None:
    until = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S")
    fake = FakeDelegation(termination=until)
    client, _ = _cert_client(fake, user_credentials)
    async with client:
        await client.delegate()
    assert fake.uploaded is not None


async def test_submit_419_delegates_once_and_retries(
    user_credentials: tuple[Path, Path, Path],
) -> None:
    fake = FakeDelegation()
    client, rec = _cert_client(fake, user_credentials)
    async with client:
        assert await client.submit(SPEC, PARAMS, "s") == "j-after-delegation"
    assert [p.split(" ")[0] for p in rec.paths()] == ["POST", "GET", "GET", "GET", "PUT", "POST"]


async def test_delegate_is_a_no_op_for_tokens() -> None:
    client, rec = make_client(lambda r: httpx.Response(500))
    async with client:
        assert await client.delegate() is None
    assert rec.requests == []


def test_build_proxy_refuses_a_forged_csr(user_credentials: tuple[Path, Path, Path]) -> None:
    _, pem = _csr()
    # flip a byte inside the signature of the DER form
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF
    forged = x509.load_der_x509_csr(bytes(der))
    chain = x509.load_pem_x509_certificates(user_credentials[0].read_bytes())
    key = serialization.load_pem_private_key(user_credentials[1].read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    with pytest.raises(PeerUnavailableError):
        build_proxy(forged, chain, key)


def test_proxy_passes_openssl_rfc3820_verification(
    user_credentials: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl binary not installed: cannot cross-check the proxy")
    cert, key_path, ca = user_credentials
    _, pem = _csr()
    chain = x509.load_pem_x509_certificates(cert.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    proxy = build_proxy(x509.load_pem_x509_csr(pem), chain, key)
    proxy_path = tmp_path / "proxy.pem"
    proxy_path.write_bytes(proxy.public_bytes(serialization.Encoding.PEM))
    done = subprocess.run(
        [
            openssl,
            "verify",
            "-allow_proxy_certs",
            "-CAfile",
            str(ca),
            "-untrusted",
            str(cert),
            str(proxy_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def test_delegate_from_a_proxy_file(
    user_credentials: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """X509_USER_PROXY style: one file with proxy, its key and the user certificate."""
    cert, key_path, _ = user_credentials
    proxy_key, pem = _csr()
    user_chain = x509.load_pem_x509_certificates(cert.read_bytes())
    user_key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(user_key, rsa.RSAPrivateKey)
    first = build_proxy(x509.load_pem_x509_csr(pem), user_chain, user_key)
    proxy_file = tmp_path / "x509up"
    write_private(
        proxy_file,
        first.public_bytes(serialization.Encoding.PEM)
        + proxy_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        + cert.read_bytes(),
    )
    fake = FakeDelegation()
    client, _ = make_client(fake, token=None, cert=proxy_file)
    async with client:
        await client.delegate()
    assert fake.uploaded is not None
    new, *rest = x509.load_pem_x509_certificates(fake.uploaded)
    assert [c.subject for c in rest] == [first.subject, user_chain[0].subject]
    assert new.issuer == first.subject
    assert new.not_valid_after_utc <= first.not_valid_after_utc


def test_tls_context_loads_client_certificate(
    user_credentials: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    cert, key, ca = user_credentials
    Fts3Client(ENDPOINT, cert=cert, key=key, ca=ca)  # loads without error
    Fts3Client(ENDPOINT, cert=cert, key=key, verify=False)
    not_a_key = tmp_path / "ca-as-key.pem"
    write_private(not_a_key, ca.read_bytes())
    with pytest.raises(ConfigurationError, match=r"cannot load X\.509 client certificate"):
        Fts3Client(ENDPOINT, cert=ca, key=not_a_key)  # no key in there


# --- key file permissions ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_client_refuses_a_key_others_may_read(
    user_credentials: tuple[Path, Path, Path], tmp_path: Path, mode: int
) -> None:
    cert, key, ca = user_credentials
    exposed = tmp_path / "userkey.pem"
    write_private(exposed, key.read_bytes())
    exposed.chmod(mode)
    with pytest.raises(InsecureKeyFileError) as refused:
        Fts3Client(ENDPOINT, cert=cert, key=exposed, ca=ca)
    message = str(refused.value)
    assert "\n" not in message
    assert str(exposed) in message
    assert f"chmod 600 {exposed}" in message
    assert f"{mode:04o}" in message


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_client_accepts_a_key_only_its_owner_reads(
    user_credentials: tuple[Path, Path, Path], tmp_path: Path, mode: int
) -> None:
    cert, key, ca = user_credentials
    private = tmp_path / "userkey.pem"
    write_private(private, key.read_bytes())
    private.chmod(mode)
    Fts3Client(ENDPOINT, cert=cert, key=private, ca=ca)


def test_a_proxy_file_is_a_key_file_too(user_credentials: tuple[Path, Path, Path]) -> None:
    """Without ``key``, the certificate file holds the key (X509_USER_PROXY): checked as one."""
    cert, _, ca = user_credentials  # the certificate is 0644, as certificates are
    with pytest.raises(InsecureKeyFileError, match="chmod 600"):
        Fts3Client(ENDPOINT, cert=cert, ca=ca)


def test_a_token_client_reads_no_key_file(tmp_path: Path) -> None:
    unused = tmp_path / "world-readable-but-unused.pem"
    unused.write_bytes(b"not read")
    unused.chmod(0o644)
    Fts3Client(ENDPOINT, token="t", key=unused)


# --- metrics ----------------------------------------------------------------------------------


def test_the_certificate_expiry_is_exported_when_the_client_is_made(
    user_credentials: tuple[Path, Path, Path],
) -> None:
    """What the alert "X.509 credential expires within 7 days" reads (deploy/monitoring)."""
    cert, key, ca = user_credentials
    expiry = CREDENTIAL_EXPIRY.labels(credential=X509_CREDENTIAL)
    expiry.set(0)
    make_client(FakeDelegation(), token=None, cert=cert, key=key, ca=ca)
    user = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    assert expiry._value.get() == user.not_valid_after_utc.timestamp()


async def test_calls_are_counted_ok_or_error_for_the_error_ratio() -> None:
    answers = iter([httpx.Response(200, json=[]), error(404, "no such job")])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, error(503, "down"))

    ok, failed = (PEER_CALLS.labels(peer="fts3", outcome=o) for o in ("ok", "error"))
    ok_before, failed_before = ok._value.get(), failed._value.get()
    client, _ = make_client(handler, retry_attempts=1)
    async with client:
        await client.files("j1")
        with pytest.raises(NotFoundError):
            await client.files("j2")  # an answer: the peer works
        with pytest.raises(TransientError):
            await client.files("j3")
    assert (ok._value.get() - ok_before, failed._value.get() - failed_before) == (2, 1)
