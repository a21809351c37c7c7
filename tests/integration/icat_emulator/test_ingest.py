"""python-icat's own scripts (icatingest.py, icatdump.py), unmodified, against the emulator."""

from __future__ import annotations

import re

import yaml

from tests.support.icat_fixtures import EXAMPLE_YAML, IcatEmulator, run_icat_script

from .conftest import ingest_args, login

SEEDED = {
    "Facility": ["facility"],
    "Instrument": ["instrument"],
    "InvestigationType": ["type"],
    "FacilityCycle": ["20XX"],
    "DatasetType": ["scan"],
    "DatafileFormat": ["nexus"],
    "ParameterType": [
        "Archival endpoint",
        "Archival failure",
        "Archival ids",
        "Archival state",
        "Deletion date",
    ],
}


def _names(url: str) -> dict[str, list[str]]:
    client = login(url, "simple", "root", "pw")
    return {bean: sorted(client.search(f"SELECT o.name FROM {bean} o")) for bean in SEEDED}


def _dump(url: str) -> str:
    result = run_icat_script(
        "icatdump.py",
        "-f",
        "YAML",
        "-o",
        "-",
        "--url",
        url,
        "--no-check-certificate",
        "--auth",
        "simple",
        "--user",
        "root",
        "--pass",
        "pw",
    )
    assert result.returncode == 0, result.stderr
    # The header carries the date and service URL; the body must be identical.
    return re.sub(r"^# (Date|Service):.*$", "", result.stdout, flags=re.MULTILINE)


def _seed_rules() -> int:
    docs = list(yaml.safe_load_all(EXAMPLE_YAML.read_text("utf-8")))
    return sum(len(doc.get("rule") or {}) for doc in docs)


def test_icatingest_twice_with_duplicate_ignore_creates_only_the_rules_again(
    icat_emulator_factory,
):
    emulator: IcatEmulator = icat_emulator_factory()
    rules = _seed_rules()
    first = run_icat_script("icatingest.py", *ingest_args(emulator.url))
    assert first.returncode == 0, first.stderr
    assert _names(emulator.url) == SEEDED
    # One create per object of example.yaml: 11 catalogue objects, the functional account's
    # User, its Grouping and UserGroup, and the rules.
    assert emulator.server_stats()["create"]["count"] == 14 + rules

    second = run_icat_script("icatingest.py", *ingest_args(emulator.url))
    assert second.returncode == 0, second.stderr
    assert _names(emulator.url) == SEEDED
    client = login(emulator.url, "simple", "root", "pw")
    total = sum(client.search(f"SELECT COUNT(o) FROM {bean} o")[0] for bean in SEEDED)
    assert total == 11
    # Each object is tried again: the 14 with a uniqueness constraint fail OBJECT_ALREADY_EXISTS
    # (and are found); ICAT has no uniqueness constraint on Rule, so the rules are added again.
    assert emulator.server_stats()["create"]["count"] == 2 * (14 + rules)
    assert client.search("SELECT COUNT(o) FROM Rule o") == [2 * rules]
    assert client.search("SELECT COUNT(o) FROM UserGroup o") == [1]


def test_parameter_types_as_the_services_use_them(seeded):
    client = login(seeded.url, "simple", "root", "pw")
    types = client.search(
        "SELECT o FROM ParameterType o WHERE o.facility.name = 'facility' INCLUDE o.facility"
    )
    assert {
        (
            t.name,
            t.units,
            t.valueType,
            t.applicableToDataset,
            t.applicableToDatafile,
            t.facility.name,
        )
        for t in types
    } >= {  # the services' own, next to the example metadata's (run_number, temperature, ...)
        ("Archival state", "N/A", "STRING", True, True, "facility"),
        ("Archival ids", "N/A", "STRING", True, True, "facility"),
        ("Archival endpoint", "N/A", "STRING", True, True, "facility"),
        ("Archival failure", "N/A", "STRING", True, True, "facility"),
        ("Deletion date", "N/A", "STRING", True, True, "facility"),
    }


def test_icatdump_then_reingest_into_fresh_emulator_reproduces_it(icat_emulator_factory, tmp_path):
    source: IcatEmulator = icat_emulator_factory()
    assert run_icat_script("icatingest.py", *ingest_args(source.url)).returncode == 0
    client = login(source.url, "simple", "root", "pw")
    facility = client.assertedSearch("SELECT o FROM Facility o")[0]
    inv_type = client.assertedSearch("SELECT o FROM InvestigationType o")[0]
    inv = client.new(
        "Investigation", name="INV1", visitId="1", title="Dump me", facility=facility, type=inv_type
    )
    inv.create()
    user = client.new("User", name="db/alice", fullName="Alice")
    user.create()
    client.new("InvestigationUser", user=user, investigation=inv, role="PI").create()

    dump = _dump(source.url)
    assert "Dump me" in dump and "db/alice" in dump
    dump_file = tmp_path / "dump.yaml"
    dump_file.write_text(dump)

    target: IcatEmulator = icat_emulator_factory()
    result = run_icat_script("icatingest.py", *ingest_args(target.url, str(dump_file)))
    assert result.returncode == 0, result.stderr
    assert _dump(target.url) == dump
