"""Who is told when a request ends (``NotifyTargets``, part of an archive or restore request),
and the syntax their addresses must have."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

#: An e-mail address as a mail server takes it: a dot-atom local part, an @, a domain of
#: dot-separated labels (no quoted local parts, no IP literals: neither is needed here).
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
MAX_EMAIL_LENGTH = 254
MAX_WEBHOOK_LENGTH = 2000


def check_email(address: str) -> str:
    """The address, if its syntax is one a mail server accepts; else ValueError saying why."""
    if len(address) > MAX_EMAIL_LENGTH:
        raise ValueError(f"an e-mail address has at most {MAX_EMAIL_LENGTH} characters")
    if not _EMAIL.match(address) or len(address.split("@")[0]) > 64:
        raise ValueError(f"{address!r} is not an e-mail address (name@example.org)")
    return address


def is_loopback(host: str) -> bool:
    """Whether a URL's host is this machine (``localhost``, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_webhook(url: str) -> str:
    """The URL, if it is an https URL with a host (http only to this machine, for tests);
    else ValueError saying why. Which hosts are allowed is the gateway's setting
    (``notify.webhook_allowed_hosts``), checked where the settings are known."""
    if len(url) > MAX_WEBHOOK_LENGTH:
        raise ValueError(f"a webhook URL has at most {MAX_WEBHOOK_LENGTH} characters")
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a URL: {exc}") from exc
    if not host:
        raise ValueError(f"{url!r} is not a URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a webhook URL must not hold credentials (user:password@)")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)):
        return url
    raise ValueError(f"{url!r}: a webhook must be an https URL (http only to localhost)")


EmailAddress = Annotated[str, AfterValidator(check_email)]
WebhookUrl = Annotated[str, AfterValidator(check_webhook)]


class NotifyTargets(BaseModel):
    """Who is told when the request ends: an e-mail address, a webhook, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: EmailAddress | None = Field(
        default=None,
        description="Mailed (through the gateway's SMTP server) when the request ends.",
        examples=["alice@example.org"],
    )
    webhook: WebhookUrl | None = Field(
        default=None,
        description="POSTed the request.completed payload, signed (X-Datastore-Signature), "
        "when the request ends: an https URL (http only to localhost).",
        examples=["https://hooks.example.org/datastore"],
    )
