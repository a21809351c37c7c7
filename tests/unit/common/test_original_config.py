"""The original Datastore API's config.yaml keys: read as ours, or refused naming ours."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from datastore_common.errors import ConfigurationError
from datastore_common.original_config import RULES, OriginalKeyRefused, translate
from datastore_common.settings import DatastoreSettings, load_settings

# The original's config.yaml.example before storage endpoints (its seed-era keys + later icat).
ORIGINAL_EXAMPLE = """
icat:
  url: https://icat.example.org:8181
  check_cert: False
  facility_name: facility
  functional_user:
    auth: simple
    username: root
    password: the-sites-own-9  # the example's 'pw' is refused towards a remote ICAT
  admin_users:
    - auth: simple
      username: root
    - auth: db
      username: alice
  embargo_period_years: 3
  embargo_types: [calibration]
  parameter_type_job_state: Archival state
  parameter_type_job_ids: Archival ids
fts3:
  endpoint: https://fts.example.org:8446
  instrument_data_cache: root://idc.example.org:1094//
  restored_data_cache: root://rdc.example.org:1094//
  tape_archive: root://archive.example.org:1094//
  x509_user_cert: hostcert.pem
  x509_user_key: hostkey.pem
  verify_checksum: destination
  supported_checksums: [ADLER32]
  retry: -1
  bring_online: 600
"""

# The original's latest config.yaml.example, verbatim but for its password.
ORIGINAL_LATEST = """
icat:
  url: https://icat_payara_container:8181
  check_cert: False
  facility_name: facility
  functional_user:
    auth: simple
    username: root
    password: the-sites-own-9  # the example's 'pw' is refused towards a remote ICAT
  admin_users:
    - auth: simple
      username: root

fts3:
  endpoint: https://lcgfts3.gridpp.rl.ac.uk:8446
  verify: false
  x509_user_cert: hostcert.pem
  x509_user_key: hostkey.pem
  archive_endpoint:
    url: root://archive.ac.uk:1094//
    storage_type: tape
  storage_endpoints:
    idc:
      url: root://idc.ac.uk:1094//
      storage_type: disk
    echo:
      url: http://minio:9000
      storage_type: s3
      access_key: minioadmin
      secret_key: minioadmin
      cache_bucket: cache-bucket
"""


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.yaml"
    monkeypatch.setenv("DATASTORE_CONFIG", str(path))
    for key in [k for k in os.environ if k.startswith("DATASTORE__")]:
        monkeypatch.delenv(key)
    return path


def quietly_load() -> DatastoreSettings:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return load_settings()


def test_the_original_example_config_starts_datastore_with_the_same_meaning(
    config_file: Path,
) -> None:
    config_file.write_text(ORIGINAL_EXAMPLE)
    settings = quietly_load()
    assert str(settings.icat.url) == "https://icat.example.org:8181/"
    assert settings.icat.check_cert is False
    assert settings.icat.facility == "facility"
    assert (settings.icat.auth, settings.icat.username) == ("simple", "root")
    assert settings.icat.password.get_secret_value() == "the-sites-own-9"
    assert settings.gateway.archivers == ("simple/root", "db/alice")
    assert settings.icat.embargo_period_years == 3
    assert settings.icat.embargo_types == ("calibration",)
    assert settings.instrument_data_cache == "root://idc.example.org:1094//"
    assert settings.user_data_cache == "root://rdc.example.org:1094//"
    assert settings.tape_archive == "root://archive.example.org:1094//"
    assert settings.x509_user_cert == Path("hostcert.pem")
    assert settings.x509_user_key == Path("hostkey.pem")
    assert settings.fts3.verify_checksum == "target"
    assert settings.fts3.retry == -1
    assert settings.fts3.bring_online == 600


def test_each_moved_key_is_announced_with_its_new_name(config_file: Path) -> None:
    config_file.write_text(ORIGINAL_EXAMPLE)
    with pytest.warns(FutureWarning) as caught:
        load_settings()
    notices = [str(w.message) for w in caught]
    assert "icat.facility_name is now icat.facility: read as such; rename it when convenient" in (
        notices
    )
    assert any(n.startswith("fts3.restored_data_cache is now user_data_cache") for n in notices)


def test_the_original_latest_example_is_refused_naming_our_keys(config_file: Path) -> None:
    config_file.write_text(ORIGINAL_LATEST)
    with pytest.raises(ConfigurationError) as refused:
        quietly_load()
    message = str(refused.value)
    assert "fts3.storage_endpoints" in message
    assert "instrument_data_cache" in message and "user_data_cache" in message
    # What can be read is not what is refused: the archive endpoint is read as tape_archive.
    assert "fts3.archive_endpoint" not in message


def test_the_latest_example_starts_once_storage_endpoints_become_our_two_urls(
    config_file: Path,
) -> None:
    fixed = ORIGINAL_LATEST.split("  storage_endpoints:")[0] + (
        "instrument_data_cache: root://idc.ac.uk:1094//\nuser_data_cache: root://rdc.ac.uk:1094//\n"
    )
    config_file.write_text(fixed)
    settings = quietly_load()
    assert settings.tape_archive == "root://archive.ac.uk:1094//"
    assert settings.fts3.verify_tls is False
    assert settings.instrument_data_cache == "root://idc.ac.uk:1094//"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"icat": {"facility_name": "isis"}}, {"icat": {"facility": "isis"}}),
        ({"fts3": {"verify": False}}, {"fts3": {"verify_tls": False}}),
        (
            {"fts3": {"tape_archive": "root://t//"}},
            {"fts3": {}, "tape_archive": "root://t//"},
        ),
        (
            {"fts3": {"user_data_cache": "root://u//"}},
            {"fts3": {}, "user_data_cache": "root://u//"},
        ),
        (
            {"fts3": {"x509_user_proxy": "/tmp/x509up_u1"}},
            {"fts3": {}, "x509_user_cert": "/tmp/x509up_u1", "x509_user_key": "/tmp/x509up_u1"},
        ),
        (
            {"fts3": {"total_file_size_limit": 1000}},
            {"fts3": {}, "gateway": {"max_bytes_per_request": 1000}},
        ),
        (
            {"fts3": {"archive_endpoint": {"url": "root://t//", "archive_timeout": 60}}},
            {"fts3": {"archive_timeout": 60}, "tape_archive": "root://t//"},
        ),
        ({"fts3": {"verify_checksum": "both"}}, {"fts3": {"verify_checksum": "both"}}),
        ({"icat": {"create_parameter_types": True}}, {"icat": {}}),
        ({"fts3": {"check_source": False}}, {"fts3": {}}),
        ({"icat": {"parameter_type_fts_endpoints": "Archival endpoint"}}, {"icat": {}}),
        ({"fts3": {"endpoint": "https://f:8446"}}, {"fts3": {"endpoint": "https://f:8446"}}),
    ],
)
def test_accepted_keys_become_ours(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    assert translate(raw).values == expected


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"fts3": {"storage_endpoints": {}}}, "user_data_cache"),
        ({"fts3": {"download_cache": "root://d//"}}, "user_data_cache"),
        ({"fts3": {"file_size_limit": 10}}, "gateway.max_bytes_per_request"),
        ({"s3": {"endpoint": "http://minio:9000"}}, "S3 storage is not supported"),
        ({"icat": {"parameter_type_deletion_date": "Deletion date"}}, "no deletion date"),
        ({"icat": {"parameter_type_job_state": "Job state"}}, "'Archival state'"),
        ({"icat": {"parameter_type_fts_endpoints": "FTS endpoints"}}, "'Archival endpoint'"),
        ({"fts3": {"supported_checksums": ["MD5"]}}, "ADLER32"),
        ({"fts3": {"verify_checksum": "sometimes"}}, "destination"),
        (
            {"fts3": {"archive_endpoint": {"url": "root://t//", "storage_type": "disk"}}},
            "tape_archive",
        ),
        ({"icat": {"functional_user": {"auth": "simple", "user": "x"}}}, "username"),
    ],
)
def test_refused_keys_name_what_to_set_instead(raw: dict[str, Any], named: str) -> None:
    with pytest.raises(OriginalKeyRefused) as refused:
        translate(raw)
    assert named in str(refused.value)
    assert "original Datastore API key" in str(refused.value)


def test_every_refusal_is_reported_at_once() -> None:
    with pytest.raises(OriginalKeyRefused) as refused:
        translate({"s3": {}, "fts3": {"storage_endpoints": {}, "file_size_limit": 1}})
    message = str(refused.value)
    assert all(key in message for key in ("s3", "fts3.storage_endpoints", "fts3.file_size_limit"))


def test_an_original_key_and_ours_with_different_values_are_refused() -> None:
    with pytest.raises(OriginalKeyRefused, match="keep tape_archive"):
        translate({"fts3": {"tape_archive": "root://a//"}, "tape_archive": "root://b//"})
    same = {"fts3": {"tape_archive": "root://a//"}, "tape_archive": "root://a//"}
    assert translate(same).values["tape_archive"] == "root://a//"


def test_two_original_keys_setting_one_of_ours_differently_are_refused() -> None:
    raw = {"fts3": {"user_data_cache": "root://u//", "restored_data_cache": "root://r//"}}
    with pytest.raises(OriginalKeyRefused, match="to different values"):
        translate(raw)


def test_the_raw_mapping_is_left_untouched() -> None:
    raw = {"fts3": {"verify": True}}
    translate(raw)
    assert raw == {"fts3": {"verify": True}}


def test_our_own_keys_pass_through_unchanged() -> None:
    ours = {"gateway": {"port": 8001}, "fts3": {"verify_tls": False}, "tape_archive": "root://t//"}
    assert translate(ours) == translate(ours)  # no notices, nothing moved
    assert translate(ours).values == ours
    assert translate(ours).notices == []


def test_every_rule_is_for_an_icat_fts3_or_s3_key() -> None:
    assert {key.split(".")[0] for key in RULES} == {"icat", "fts3", "s3"}


def test_our_own_verify_checksum_values_pass_without_notice() -> None:
    for value in ("target", "both", "none", "source"):
        translation = translate({"fts3": {"verify_checksum": value}})
        assert translation.values == {"fts3": {"verify_checksum": value}}
        assert translation.notices == []
