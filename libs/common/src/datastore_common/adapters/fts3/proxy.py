"""RFC 3820 proxy certificates for FTS3 delegation (pure crypto): FTS hands out a CSR, we sign
a short-lived proxy for its key with our certificate's key, as the official client does."""

from __future__ import annotations

import secrets
import stat
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from datastore_common.errors import (
    ConfigurationError,
    InsecureKeyFileError,
    PeerUnavailableError,
)

#: RFC 3820 proxyCertInfo extension and its "inherit all" policy language.
PROXY_CERT_INFO_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.14")
INHERIT_ALL_OID = "1.3.6.1.5.5.7.21.1"
#: DER of ProxyCertInfo ::= SEQUENCE { proxyPolicy SEQUENCE { policyLanguage inheritAll } }.
_PROXY_CERT_INFO_INHERIT_ALL = bytes.fromhex("300c300a06082b06010505071501")

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def require_private_key_file(path: Path) -> None:
    """Refuse a private key file its group or others may read, as ssh does: whoever can read
    it can act as us at FTS. A missing file is left to whoever loads it to report."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigurationError(f"cannot read X.509 private key {path}: {exc}") from exc
    if mode & 0o077:
        raise InsecureKeyFileError(
            f"X.509 private key {path} is readable by group or others (mode {mode:04o}): "
            f"run `chmod 600 {path}` (x509_user_key must be private to the service's user)"
        )


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


def chain_expiry(chain: Sequence[x509.Certificate]) -> datetime:
    """When a certificate chain stops being valid: its earliest notAfter (a proxy's, else the
    user certificate's or an intermediate's)."""
    if not chain:
        raise ConfigurationError("no certificate in the X.509 credential")
    return min(c.not_valid_after_utc for c in chain)


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
