"""Pure helpers of the XRootD adapter: URLs, checksum answers, error mapping."""

from __future__ import annotations

import pytest

from datastore_common.adapters.xrootd.client import error_for_status, parse_checksum_answer
from datastore_common.adapters.xrootd.urls import XRootDUrl, join_url, split_url
from datastore_common.errors import (
    AlreadyExistsError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PeerTimeoutError,
    PeerUnavailableError,
)


class TestSplitUrl:
    @pytest.mark.parametrize(
        ("url", "server", "path"),
        [
            ("root://127.0.0.1:11094//a/b.nxs", "root://127.0.0.1:11094", "/a/b.nxs"),
            ("root://127.0.0.1:11094/a/b.nxs", "root://127.0.0.1:11094", "/a/b.nxs"),
            ("xroot://host:1094///a//b/", "xroot://host:1094", "/a/b"),
            ("root://127.0.0.1:11096", "root://127.0.0.1:11096", "/"),
        ],
    )
    def test_splits_server_and_absolute_path(self, url: str, server: str, path: str) -> None:
        assert split_url(url) == XRootDUrl(server, path)

    @pytest.mark.parametrize(
        "url", ["/a/b", "https://host//a", "root:///a", "root://h:1//a?x=1", "root://h?x:1//a"]
    )
    def test_refuses_what_is_not_an_xrootd_url(self, url: str) -> None:
        with pytest.raises(InvalidRequestError):
            split_url(url)

    def test_join_round_trips(self) -> None:
        url = "root://127.0.0.1:11094//instrument/cycle/inv-1/raw/ds/f.nxs"
        assert join_url(*vars_of(split_url(url))) == url
        assert str(split_url(url)) == url

    def test_join_doubles_the_slash_once(self) -> None:
        assert join_url("root://h:1/", "a/b") == "root://h:1//a/b"
        assert join_url("root://h:1", "//a/b") == "root://h:1//a/b"

    def test_joinpath_appends_names(self) -> None:
        base = split_url("root://h:1//tape/root")
        assert str(base.joinpath("cycle", "f.nxs")) == "root://h:1//tape/root/cycle/f.nxs"


def vars_of(url: XRootDUrl) -> tuple[str, str]:
    return url.server, url.path


class TestParseChecksumAnswer:
    def test_server_answer_becomes_fts_style(self) -> None:
        assert parse_checksum_answer(b"adler32 df533b3d\x00") == "adler32:df533b3d"

    def test_pads_to_eight_hex_digits_and_lowercases(self) -> None:
        assert parse_checksum_answer("adler32 62ABC") == "adler32:00062abc"

    @pytest.mark.parametrize("answer", [b"md5 0123", b"adler32 ", b"adler32 xyz", b""])
    def test_refuses_other_answers(self, answer: bytes) -> None:
        with pytest.raises(InvalidRequestError):
            parse_checksum_answer(answer)


class TestErrorForStatus:
    @pytest.mark.parametrize(
        ("code", "errno", "error_type"),
        [
            (400, 3011, NotFoundError),
            (400, 3010, ForbiddenError),
            (400, 3018, AlreadyExistsError),
            (400, 3016, InvalidRequestError),  # is a directory
            (400, 3005, InvalidRequestError),  # directory not empty
            (400, 3007, PeerUnavailableError),  # I/O error on the server
            (400, 3034, PeerTimeoutError),
            (206, 0, PeerTimeoutError),  # operation expired
            (103, 0, PeerTimeoutError),  # socket time-out
            (108, 0, PeerUnavailableError),  # connection refused
        ],
    )
    def test_maps_status_to_error_kind(self, code: int, errno: int, error_type: type) -> None:
        error = error_for_status(code, errno, "[ERROR] text\n", operation="stat", url="root://h//p")
        assert type(error) is error_type
        assert str(error) == "xrootd stat root://h//p: [ERROR] text"
