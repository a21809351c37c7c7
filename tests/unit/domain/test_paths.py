"""domain.paths: where a datafile lives on each storage; the archive transfer's two URLs."""

from __future__ import annotations

import pytest

from datastore_common.domain.paths import archive_urls, storage_url


@pytest.mark.parametrize(
    ("idc", "tape", "tape_root_dir", "expected"),
    [
        pytest.param("root://idc:1094//", "root://tape:1094//", "archive/",
                     ("root://idc:1094//i/f", "root://tape:1094//archive/i/f"),
                     id="tape-root-dir-under-the-tape-root"),
        pytest.param("root://idc:1094/", "root://tape:1094/", "",
                     ("root://idc:1094/i/f", "root://tape:1094/i/f"), id="no-tape-root-dir"),
        pytest.param("root://idc:1094", "root://tape:1094", "a/b/",
                     ("root://idc:1094/i/f", "root://tape:1094/a/b/i/f"),
                     id="roots-without-a-trailing-slash"),
    ],
)  # fmt: skip
def test_archive_urls(idc: str, tape: str, tape_root_dir: str, expected: tuple[str, str]) -> None:
    urls = archive_urls(
        "i/f", instrument_data_cache=idc, tape_archive=tape, tape_root_dir=tape_root_dir
    )
    assert urls == expected
    assert (urls.source, urls.destination) == expected


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        pytest.param("i/f", "root://h//i/f", id="relative"),
        pytest.param("/i/f", "root://h//i/f", id="a-leading-slash-is-dropped"),
    ],
)
def test_storage_url(location: str, expected: str) -> None:
    assert storage_url("root://h//", location) == expected


@pytest.mark.parametrize("location", ["../etc/passwd", "i/../../f", ".."])
def test_no_way_out_of_the_storage_root(location: str) -> None:
    with pytest.raises(ValueError, match="unsafe location"):
        archive_urls(
            location,
            instrument_data_cache="root://h//",
            tape_archive="root://t//",
            tape_root_dir="",
        )
