"""XRootD URLs, ``root://host:port//absolute/path``: split into server and path, and joined
back as FTS3 and xrdcp write them."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from datastore_common.errors import InvalidRequestError

SCHEMES = ("root", "xroot")


@dataclass(frozen=True, slots=True)
class XRootDUrl:
    """A file or folder on an XRootD server: ``server`` is ``root://host:port``."""

    server: str
    path: str

    def __str__(self) -> str:
        return join_url(self.server, self.path)

    def joinpath(self, *names: str) -> XRootDUrl:
        return XRootDUrl(self.server, _normalise_path(posixpath.join(self.path, *names)))


def _normalise_path(path: str) -> str:
    parts = [part for part in path.split("/") if part]
    return "/" + "/".join(parts)


def split_url(url: str) -> XRootDUrl:
    """``root://host:port//a/b`` (or ``/a/b`` after the host) -> server ``root://host:port``,
    path ``/a/b``. Raises InvalidRequestError for anything that is not an XRootD URL."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in SCHEMES:
        raise InvalidRequestError(f"not an XRootD URL (root://host:port//path): {url!r}")
    host, _, path = rest.partition("/")
    if not host or "?" in host:
        raise InvalidRequestError(f"XRootD URL without a host: {url!r}")
    if "?" in path:
        raise InvalidRequestError(f"XRootD URL with a query string is not supported: {url!r}")
    return XRootDUrl(f"{scheme}://{host}", _normalise_path(path))


def join_url(server: str, path: str) -> str:
    """``root://host:port`` + ``/a/b`` -> ``root://host:port//a/b`` (the doubled slash makes
    the path absolute, as FTS3 and xrdcp write it)."""
    return f"{server.rstrip('/')}/{_normalise_path(path)}"
