"""The broker's nodes: ``broker.url`` names one node, or every node of a cluster.

Several URLs are written as a list (YAML) or in one string separated by commas (an environment
variable, a secret): ``amqp://u:p@node1:5672/,amqp://u:p@node2:5672/``. They must name the same
user, password and virtual host: a process is one broker user whichever node it reaches (every
consumer checks a message's sender by its AMQP ``user_id``, ``domain.senders``), and a cluster
has one set of queues per virtual host. A process connects to the first node that answers and,
when that node goes, to the next one (``adapters.rabbitmq.connection``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

#: A comma (and blanks) before the next ``amqp://`` or ``amqps://`` separates two URLs; a comma
#: inside a password or a query stays where it is.
_SEPARATOR = re.compile(r"\s*,\s*(?=amqps?://)", re.IGNORECASE)
SCHEMES = ("amqp", "amqps")


class BrokerUrlError(ValueError):
    """``broker.url`` cannot be used: the reason names the URL by position, never its secret."""


def split_urls(value: str | Sequence[str]) -> tuple[str, ...]:
    """Every URL ``value`` names, in order (a list, or one string separated by commas)."""
    items = [value] if isinstance(value, str) else list(value)
    urls: list[str] = []
    for item in items:
        urls += [url for url in _SEPARATOR.split(item.strip()) if url]
    return tuple(urls)


def join_urls(urls: Sequence[str]) -> str:
    """The one-string form of several URLs (``DATASTORE__BROKER__URL``, ``*.url`` files)."""
    return ",".join(urls)


@dataclass(frozen=True)
class _Account:
    user: str
    password: str
    vhost: str


def _account(url: str, position: int) -> _Account:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        raise BrokerUrlError(f"URL {position} is not a URL: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise BrokerUrlError(
            f"URL {position} must start with amqp:// or amqps://, not {parts.scheme or '?'}://"
        )
    if not parts.hostname:
        raise BrokerUrlError(f"URL {position} names no host")
    del port
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return _Account(unquote(parts.username or "guest"), unquote(parts.password or "guest"), vhost)


def check_urls(urls: Sequence[str]) -> tuple[str, ...]:
    """The URLs, once each is an AMQP URL with a host and all name one account and vhost."""
    if not urls:
        raise BrokerUrlError("names no broker URL")
    accounts = [_account(url, position) for position, url in enumerate(urls, start=1)]
    first = accounts[0]
    for position, account in enumerate(accounts[1:], start=2):
        if account.user != first.user:
            raise BrokerUrlError(
                f"URL {position} names user {account.user!r} and URL 1 {first.user!r}: every "
                "node must be reached as the same broker user"
            )
        if account.password != first.password:
            raise BrokerUrlError(f"URL {position} has another password than URL 1")
        if account.vhost != first.vhost:
            raise BrokerUrlError(
                f"URL {position} names vhost {account.vhost!r} and URL 1 {first.vhost!r}"
            )
    duplicates = sorted({url for url in urls if list(urls).count(url) > 1})
    if duplicates:
        raise BrokerUrlError(f"names the same node twice ({len(duplicates)} URL(s) repeated)")
    return tuple(urls)


def user_of(urls: Sequence[str]) -> str:
    """The broker user all the URLs name (``check_urls`` made sure it is one)."""
    return unquote(urlsplit(urls[0]).username or "guest")


def without_secret(url: str) -> str:
    """``scheme://host:port/vhost`` for logs: no user, no password, no query."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path or '/'}"


@dataclass
class NodeRotation:
    """Which node to try next: the current one until it fails, then the one after it, round
    the list. Connecting at start tries each once from the current one (``from_current``)."""

    urls: tuple[str, ...]
    current: int = 0

    def __post_init__(self) -> None:
        if not self.urls:
            raise BrokerUrlError("names no broker URL")
        self.current %= len(self.urls)

    @property
    def url(self) -> str:
        return self.urls[self.current]

    def advance(self) -> str:
        """The current node failed: the next one becomes current."""
        self.current = (self.current + 1) % len(self.urls)
        return self.url

    def from_current(self) -> list[str]:
        """Every URL once, starting with the current one."""
        return [*self.urls[self.current :], *self.urls[: self.current]]

    def settle_on(self, url: str) -> None:
        """A connection was made to ``url``: it is the current node from now on."""
        self.current = self.urls.index(url)
