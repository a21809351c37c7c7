"""RFC 3820 proxy certificates, made the way the fts3 client and voms-proxy-init make them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

PROXY_CERT_INFO = ObjectIdentifier("1.3.6.1.5.5.7.1.14")
# ProxyCertInfo ::= SEQUENCE { proxyPolicy SEQUENCE { policyLanguage id-ppl-inheritAll } }
INHERIT_ALL = bytes.fromhex("300c300a06082b06010505071501")


def sign_proxy(
    issuer_cert: x509.Certificate,
    issuer_key: rsa.RSAPrivateKey,
    public_key: rsa.RSAPublicKey,
    hours: int = 12,
) -> x509.Certificate:
    now = datetime.now(UTC)
    subject = x509.Name(
        [*issuer_cert.subject, x509.NameAttribute(NameOID.COMMON_NAME, str(int(time.time())))]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(issuer_cert.serial_number)
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=hours))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.UnrecognizedExtension(PROXY_CERT_INFO, INHERIT_ALL), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def write_proxy(user_cert: Path, user_key: Path, out: Path) -> Path:
    """An X509_USER_PROXY file: proxy, its key, then the user certificate."""
    cert = x509.load_pem_x509_certificate(user_cert.read_bytes())
    key = serialization.load_pem_private_key(user_key.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    proxy_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    proxy = sign_proxy(cert, key, proxy_key.public_key())
    out.write_bytes(
        proxy.public_bytes(serialization.Encoding.PEM)
        + proxy_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    return out
