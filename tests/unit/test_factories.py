"""The test factories build the seed workflow's request, and only change what they are told."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.factories import seed_body, seed_investigation, spread_files

#: The body of shared/design/seed-workflow.md, verbatim (bench/gateway_bench.py reads it too).
SEED_JSON = Path(__file__).parent / "gateway" / "seed_archive_body.json"


def test_the_default_body_is_the_seed_workflow_body_verbatim() -> None:
    assert seed_body() == json.loads(SEED_JSON.read_text())


def test_the_spec_is_the_body_validated_under_a_unique_name() -> None:
    first, second = seed_investigation(), seed_investigation()
    assert first.name != second.name
    named = seed_investigation("ABC123")
    assert named.model_dump(mode="json") == seed_investigation("ABC123").model_dump(mode="json")
    assert [d.name for d in named.datasets[0].datafiles] == [f"file_{i:04d}.nxs" for i in range(4)]


def test_datasets_by_count_by_name_and_by_file_names() -> None:
    [inv] = seed_body("X", "2", datasets=2, files=3)["investigations"]
    assert (inv["name"], inv["visitId"]) == ("X", "2")
    assert [(d["name"], len(d["datafiles"])) for d in inv["datasets"]] == [
        ("scan_0000", 3),
        ("scan_0001", 3),
    ]
    [inv] = seed_body(datasets={"scan_0001": 2, "raw": ["a.nxs"]})["investigations"]
    assert [[f["name"] for f in d["datafiles"]] for d in inv["datasets"]] == [
        ["file_0000.nxs", "file_0001.nxs"],
        ["a.nxs"],
    ]


def test_sizes_checksums_and_other_fields_are_changed_as_asked() -> None:
    [inv] = seed_body(file_size=None, checksum="adler32:0000abcd", title="T")["investigations"]
    assert inv["title"] == "T"
    assert {(f["fileSize"], f["checksum"]) for f in inv["datasets"][0]["datafiles"]} == {
        (None, "adler32:0000abcd")
    }


def test_spread_files_fills_datasets_in_order() -> None:
    assert spread_files(5, datasets=2) == {
        "scan_0000": [f"file_{i:05d}.nxs" for i in range(3)],
        "scan_0001": ["file_00003.nxs", "file_00004.nxs"],
    }
