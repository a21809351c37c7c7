"""Who is calling: DN formatting from X.509 certificates, proxy handling, bearer tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from fts3_emulator.states import delegation_id_for

PROXY_CERT_INFO_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.14")  # RFC 3820 proxyCertInfo
_PROXY_CN = re.compile(r"^(\d+|proxy|limited proxy)$")

# OpenSSL's short names, as X509_NAME_oneline prints them.
_SHORT_NAMES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.USER_ID: "UID",
    NameOID.SERIAL_NUMBER: "serialNumber",
}


@dataclass(frozen=True)
class UserIdentity:
    """An authenticated caller, shaped like fts-rest's UserCredentials."""

    user_dn: str
    method: str  # "certificate" or "oauth2"
    vos: list[str] = field(default_factory=list)
    fqans: list[str] = field(default_factory=list)

    @property
    def delegation_id(self) -> str:
        return delegation_id_for(self.user_dn, self.fqans)

    @property
    def vo_name(self) -> str:
        return self.vos[0] if self.vos else self.delegation_id

    @property
    def needs_delegation(self) -> bool:
        return self.method == "certificate"


def name_to_oneline(name: x509.Name) -> str:
    """OpenSSL oneline form ``/C=UK/O=Org/CN=Name``, in certificate order."""
    parts = []
    for attribute in name:
        short = _SHORT_NAMES.get(attribute.oid, attribute.oid.dotted_string)
        value = attribute.value
        # Only an x500UniqueIdentifier (a bit string) is bytes; it is written as its repr.
        parts.append(f"/{short}={value if isinstance(value, str) else repr(value)}")
    return "".join(parts)


def strip_proxy_cns(dn: str) -> str:
    """Drop trailing proxy CNs (``/CN=1234567``, ``/CN=proxy``) to reach the end-entity DN."""
    parts = dn.split("/")
    while len(parts) > 2 and parts[-1].startswith("CN=") and _PROXY_CN.match(parts[-1][3:]):
        parts.pop()
    return "/".join(parts)


def is_proxy_certificate(certificate: x509.Certificate) -> bool:
    try:
        certificate.extensions.get_extension_for_oid(PROXY_CERT_INFO_OID)
    except x509.ExtensionNotFound:
        return False
    return True


def end_entity_dn(certificate: x509.Certificate) -> str:
    """The DN FTS (mod_gridsite) reports: the end-entity DN, even behind an RFC 3820 proxy."""
    if is_proxy_certificate(certificate):
        return strip_proxy_cns(name_to_oneline(certificate.issuer))
    return strip_proxy_cns(name_to_oneline(certificate.subject))


def identity_from_certificate(der: bytes) -> UserIdentity:
    certificate = x509.load_der_x509_certificate(der)
    return UserIdentity(user_dn=end_entity_dn(certificate), method="certificate")


def identity_from_token(token: str, tokens: dict[str, dict[str, str]]) -> UserIdentity | None:
    """Map a bearer token to a user through the configured table (no token introspection)."""
    entry = tokens.get(token)
    if entry is None:
        return None
    vo = entry.get("vo")
    return UserIdentity(
        user_dn=entry.get("user_dn") or entry.get("sub") or "token-user",
        method="oauth2",
        vos=[vo] if vo else [],
    )
