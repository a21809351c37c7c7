"""domain.paths: where a datafile lives on each storage; the archive transfer's two URLs."""

from __future__ import annotations

import itertools

import pytest

from datastore_common.domain.paths import (
    UnsafeLocationError,
    archive_location,
    archive_urls,
    investigation_folder,
    storage_url,
)
from datastore_common.errors import PermanentError
from datastore_common.messages import InvestigationSpec
from tests.unit.domain.specs import investigation


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
    with pytest.raises(UnsafeLocationError, match="unsafe location"):
        archive_urls(
            location,
            instrument_data_cache="root://h//",
            tape_archive="root://t//",
            tape_root_dir="",
        )


# ---------------------------------------------------------------- one folder per investigation

NAMES = ["ABC", "ABC-1", "A-B-C", "ABC123", "x.y", "a+b", "-", "1"]
VISITS = ["1", "2", "1_2", "20XX", "a.b", "+"]


def test_legal_name_and_visit_pairs_never_share_a_folder() -> None:
    folders = {}
    for name, visit in itertools.product(NAMES, VISITS):
        folder = investigation_folder(name, visit)
        assert folder.rsplit("-", 1) == [name, visit]  # it splits back at its last '-'
        assert folders.setdefault(folder, (name, visit)) == (name, visit)
    assert investigation_folder("ABC123", "1") == "ABC123-1"  # the seed's layout


@pytest.mark.parametrize(("name", "visit"), [("ABC", "1-2"), ("ABC", "-2"), ("ABC", "2-")])
def test_a_visit_id_with_a_dash_is_a_permanent_error_naming_the_rule(name: str, visit: str) -> None:
    with pytest.raises(UnsafeLocationError, match="without '-'") as refused:
        investigation_folder(name, visit)
    assert isinstance(refused.value, PermanentError)
    assert repr(visit) in str(refused.value)


def test_archive_location_refuses_what_validation_was_skipped_for() -> None:
    """A second line behind the models: an investigation built without validation (or by
    code that forgot it) cannot reach a path."""
    valid = investigation(["f.nxs"], name="ABC")
    [dataset] = valid.datasets
    [datafile] = dataset.datafiles
    assert archive_location(valid, dataset, datafile) == "instrument/20XX/ABC-1/scan/scan_0/f.nxs"
    dashed = InvestigationSpec.model_construct(**{**dict(valid), "visitId": "1-2"})
    with pytest.raises(UnsafeLocationError, match="visitId '1-2'"):
        archive_location(dashed, dataset, datafile)
    sneaky = dataset.model_construct(**{**dict(dataset), "name": "../x"})
    with pytest.raises(UnsafeLocationError, match=r"dataset name '\.\./x'"):
        archive_location(valid, sneaky, datafile)
