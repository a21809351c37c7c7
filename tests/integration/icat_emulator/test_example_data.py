"""python-icat's own example data (icatdump-6.2.yaml/.xml, vendored under data/) through
icatingest.py and icatdump.py, unmodified: root gets the file back byte for byte; ordinary users
get what the example's own Rules let them read."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.support.icat_fixtures import IcatEmulator, run_icat_script

DATA = Path(__file__).parent / "data"
EXAMPLE_YAML = DATA / "icatdump-6.2.yaml"
EXAMPLE_XML = DATA / "icatdump-6.2.xml"
USERS_CONFIG = DATA / "example-users.yaml"  # the example's users, each with password "pw"

# Only the date and the service URL may differ from the file (ICAT-API and generator must not).
_VOLATILE = re.compile(r"^(# (Date|Service):.*|\s*<(date|service)>.*</(date|service)>)$", re.M)


def _login_args(url: str, user: str) -> list[str]:
    auth, name = user.split("/")
    return ["--url", url, "--no-check-certificate", "--auth", auth, "--user", name, "--pass", "pw"]


def _ingest(url: str, path: Path, data_format: str) -> None:
    result = run_icat_script(
        "icatingest.py", "-i", str(path), "-f", data_format, *_login_args(url, "simple/root")
    )
    assert result.returncode == 0, result.stderr


def _dump(url: str, user: str, data_format: str = "YAML") -> str:
    result = run_icat_script("icatdump.py", "-f", data_format, "-o", "-", *_login_args(url, user))
    assert result.returncode == 0, result.stderr
    return _VOLATILE.sub("", result.stdout)


@pytest.fixture(scope="module")
def example_icat(icat_emulator_factory: Callable[..., IcatEmulator]) -> IcatEmulator:
    """A fresh emulator with the example's users, icatdump-6.2.yaml ingested by root."""
    emulator = icat_emulator_factory(USERS_CONFIG)
    _ingest(emulator.url, EXAMPLE_YAML, "YAML")
    return emulator


@pytest.fixture(scope="module")
def root_dump(example_icat: IcatEmulator) -> list[dict[str, dict[str, dict[str, object]]]]:
    return list(yaml.safe_load_all(_dump(example_icat.url, "simple/root")))


def test_root_dump_reproduces_the_yaml_file(example_icat: IcatEmulator) -> None:
    assert _dump(example_icat.url, "simple/root") == _VOLATILE.sub("", EXAMPLE_YAML.read_text())


def test_xml_file_round_trips_too(icat_emulator_factory: Callable[..., IcatEmulator]) -> None:
    emulator = icat_emulator_factory(USERS_CONFIG)
    _ingest(emulator.url, EXAMPLE_XML, "XML")
    assert _dump(emulator.url, "simple/root", "XML") == _VOLATILE.sub("", EXAMPLE_XML.read_text())


def _objects(docs: list[dict[str, dict[str, dict[str, object]]]]) -> dict[str, dict[str, object]]:
    """Object key (icatdump's, unique per object) -> its attributes, over all chunks."""
    return {key: obj for doc in docs for objs in doc.values() for key, obj in objs.items()}


def _names(docs: list[dict[str, dict[str, dict[str, object]]]], section: str) -> set[str]:
    return {str(obj["name"]) for doc in docs for obj in (doc.get(section) or {}).values()}


# What each user reads under the example's rules, derived by hand from icatdump-6.2.yaml:
# InvestigationGroup readers/writers/owners (rules 51, 33, 23), instrument scientists (52, 35,
# 25), the user office's CRUD on Investigation (149), publication readers (96-102): only
# dataset pub-00027 is in a published data collection, everyone reads it (rule 30), and its
# investigation through nobody's publication rule. No investigation has a releaseDate.
EXPECTED_INVESTIGATIONS = {
    "db/jdoe": {"08100122-EF", "10100601-ST"},  # reader of both
    "db/rbeck": {"08100122-EF", "12100409-ST"},  # writer of one, reader of the other
    "db/nbour": {"08100122-EF", "10100601-ST", "12100409-ST"},
    "db/acord": {"08100122-EF", "10100601-ST", "12100409-ST"},  # scientist on all instruments
    "simple/useroffice": {"08100122-EF", "10100601-ST", "12100409-ST"},
    "simple/pubreader": set(),  # none is in a published data collection
}
EXPECTED_DATASETS = {
    "db/jdoe": {"e201215", "e201216", "e208339", "e208341", "e208342"},
    "db/rbeck": {"e201215", "e201216", "e208945", "e208946", "e208947", "pub-00027"},
    "simple/useroffice": {"pub-00027"},  # may write investigations, reads only public data
}
EXPECTED_GROUPINGS = {  # rule 7: the groupings one belongs to; rule 49: those of owned ones
    "db/jdoe": {"investigation_08100122-EF_reader", "investigation_10100601-ST_reader"},
    "db/ahau": {
        "investigation_10100601-ST_owner",
        "investigation_10100601-ST_reader",
        "investigation_10100601-ST_writer",
    },
}


@pytest.mark.parametrize("user", sorted(EXPECTED_INVESTIGATIONS))
def test_each_user_dumps_the_investigations_the_rules_let_them_read(
    example_icat: IcatEmulator, user: str
) -> None:
    docs = list(yaml.safe_load_all(_dump(example_icat.url, user)))
    assert _names(docs, "investigation") == EXPECTED_INVESTIGATIONS[user]
    if user in EXPECTED_DATASETS:
        assert _names(docs, "dataset") == EXPECTED_DATASETS[user]


@pytest.mark.parametrize("user", sorted(EXPECTED_GROUPINGS))
def test_each_user_sees_only_their_groupings_and_no_rules(
    example_icat: IcatEmulator, user: str
) -> None:
    docs = list(yaml.safe_load_all(_dump(example_icat.url, user)))
    assert _names(docs, "grouping") == EXPECTED_GROUPINGS[user]
    assert not any(doc.get("rule") or doc.get("publicStep") for doc in docs)


def test_the_reader_of_everything_dumps_what_root_dumps(example_icat: IcatEmulator) -> None:
    # simple/idsreader is in "rall", which the example grants READ on every entity it dumps.
    assert _dump(example_icat.url, "simple/idsreader") == _dump(example_icat.url, "simple/root")


@pytest.mark.parametrize("user", ["db/jdoe", "db/rbeck", "db/acord", "simple/pubreader"])
def test_a_user_dump_holds_only_roots_objects_with_roots_values(
    example_icat: IcatEmulator, root_dump: list[dict[str, dict[str, dict[str, object]]]], user: str
) -> None:
    root_objects = _objects(root_dump)
    user_objects = _objects(list(yaml.safe_load_all(_dump(example_icat.url, user))))
    assert user_objects and len(user_objects) < len(root_objects)
    for key, obj in user_objects.items():
        assert key in root_objects, key
        for name, value in obj.items():
            if isinstance(value, list):  # related objects: those the user may read
                assert all(item in root_objects[key][name] for item in value), (key, name)  # type: ignore[operator]
            elif value != root_objects[key][name]:
                # A reference to an object the user may not read: icatdump names it by id.
                assert isinstance(value, str) and "_id-" in value, (key, name, value)
                assert root_objects[key][name] not in user_objects, (key, name)
