"""Proxy delegation as FTS does it: a CSR whose key we keep, then a verified proxy chain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


class DelegationError(ValueError):
    """The uploaded credential is not a proxy of the request we handed out."""


@dataclass(frozen=True)
class DelegatedCredential:
    proxy_pem: str  # the proxy, its private key, then the rest of the chain (X509_USER_PROXY)
    termination_time: datetime  # naive UTC: the earliest notAfter in the chain


def new_request(key_bits: int = 2048) -> tuple[str, str]:
    """A self-signed-by-its-key CSR and the PEM of the private key we must keep."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=max(key_bits, 1024))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "proxy")]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def _verify_signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    public_key = issuer.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        return False
    try:
        public_key.verify(
            child.signature,
            child.tbs_certificate_bytes,
            padding.PKCS1v15(),
            child.signature_hash_algorithm or hashes.SHA256(),
        )
    except Exception:
        return False
    return True


def accept_credential(chain_pem: str, request_key_pem: str) -> DelegatedCredential:
    """Check an uploaded proxy chain the way fts-rest's delegation controller does."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError as error:
        raise DelegationError(f"Could not load the credential: {error}") from error
    if len(chain) < 2:
        raise DelegationError("Malformed proxy: the chain needs the proxy and its issuer")
    proxy, issuer = chain[0], chain[1]
    key = serialization.load_pem_private_key(request_key_pem.encode(), password=None)
    proxy_key = proxy.public_key()
    if not isinstance(proxy_key, rsa.RSAPublicKey) or not isinstance(key, rsa.RSAPrivateKey):
        raise DelegationError("The proxy must carry an RSA key")
    if proxy_key.public_numbers().n != key.public_key().public_numbers().n:
        raise DelegationError("The delegated proxy does not match the private key of the request")
    if not _verify_signed_by(proxy, issuer):
        raise DelegationError("The proxy is not signed by the next certificate in the chain")
    subject = list(proxy.subject)
    if (
        proxy.issuer != issuer.subject
        or list(proxy.issuer) != subject[:-1]
        or (subject[-1].oid != NameOID.COMMON_NAME)
    ):
        raise DelegationError("The proxy subject must be its issuer's subject plus one CN")
    termination = min(certificate.not_valid_after_utc for certificate in chain)
    proxy_pem = "".join(
        [
            proxy.public_bytes(serialization.Encoding.PEM).decode(),
            request_key_pem,
            *(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain[1:]),
        ]
    )
    return DelegatedCredential(
        proxy_pem=proxy_pem, termination_time=termination.replace(tzinfo=None, microsecond=0)
    )
