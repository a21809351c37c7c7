"""``XRootDClient.list_tree`` on a fake file system: every folder walked, sizes from the
listing, a stat for entries listed without one, a missing folder is empty."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from datastore_common.adapters.xrootd.client import XRootDClient, _flags
from datastore_common.errors import PeerUnavailableError

IS_DIR = int(_flags.StatInfoFlags.IS_DIR)


@dataclass
class Status:
    ok: bool = True
    code: int = 0
    errno: int = 0
    message: str = ""


@dataclass
class Info:
    size: int
    flags: int
    mtime: int = 0


@dataclass
class Entry:
    name: str
    statinfo: Info | None


NOT_FOUND = Status(ok=False, code=400, errno=3011, message="no such file or directory")


class FakeFileSystem:
    """Folders by path: {name: size, or None for a subfolder}; ``bare`` paths are listed
    without their stat information."""

    def __init__(self, tree: dict[str, dict[str, int | None]], bare: set[str]) -> None:
        self.tree = tree
        self.bare = bare
        self.stats: list[str] = []
        self.down = False

    def _kind(self, path: str) -> Info | None:
        parent, _, name = path.rpartition("/")
        if path in self.tree:
            return Info(0, IS_DIR)
        size = self.tree.get(parent or "/", {}).get(name)
        return None if size is None else Info(size, 0)

    def dirlist(self, path: str, flags: Any, timeout: int, callback: Any) -> Status:
        if self.down:
            callback(Status(ok=False, code=101, message="connection refused"), None, None)
        elif path not in self.tree:
            callback(NOT_FOUND, None, None)
        else:
            entries = [
                Entry(name, None if f"{path}/{name}" in self.bare else self._kind(f"{path}/{name}"))
                for name in self.tree[path]
            ]
            callback(Status(), entries, None)
        return Status()

    def stat(self, path: str, timeout: int, callback: Any) -> Status:
        self.stats.append(path)
        info = self._kind(path)
        callback(Status() if info else NOT_FOUND, info, None)
        return Status()


def client_on(file_system: FakeFileSystem) -> XRootDClient:
    client = XRootDClient(tune=False)
    client._file_system = lambda server: file_system  # type: ignore[method-assign]
    return client


TREE: dict[str, dict[str, int | None]] = {
    "/archive": {"a.nxs": 1, "x": None, "empty": None},
    "/archive/x": {"b.nxs": 22, "y": None},
    "/archive/x/y": {"c.nxs": 333},
    "/archive/empty": {},
}


async def test_every_file_at_any_depth_with_its_size() -> None:
    file_system = FakeFileSystem(TREE, bare=set())
    listed = await client_on(file_system).list_tree("root://tape:1094//archive/")
    assert listed == {"a.nxs": 1, "x/b.nxs": 22, "x/y/c.nxs": 333}
    assert file_system.stats == []  # the listing carried every size


async def test_entries_listed_without_their_stat_are_stated() -> None:
    file_system = FakeFileSystem(TREE, bare={"/archive/x", "/archive/x/b.nxs"})
    listed = await client_on(file_system).list_tree("root://tape:1094//archive")
    assert listed == {"a.nxs": 1, "x/b.nxs": 22, "x/y/c.nxs": 333}
    assert sorted(file_system.stats) == ["/archive/x", "/archive/x/b.nxs"]


async def test_a_missing_folder_is_empty_and_a_server_down_raises() -> None:
    file_system = FakeFileSystem(TREE, bare=set())
    client = client_on(file_system)
    assert await client.list_tree("root://tape:1094//nothing/here") == {}
    file_system.down = True
    with pytest.raises(PeerUnavailableError):
        await client.list_tree("root://tape:1094//archive")
