import os
from pathlib import Path

import pytest

from datastore_common.errors import ConfigurationError
from datastore_common.settings import load_settings


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.yaml"
    monkeypatch.setenv("DATASTORE_CONFIG", str(path))
    for key in [k for k in __import__("os").environ if k.startswith("DATASTORE__")]:
        monkeypatch.delenv(key)
    return path


def test_reads_the_seed_keys_from_the_file(config_file: Path) -> None:
    config_file.write_text(
        "fts3:\n  endpoint: https://fts.example.org:8446\n"
        "instrument_data_cache: root://idc.example.org:1094//\n"
        "user_data_cache: root://udc.example.org:1094//\n"
        "tape_archive: root://tape.example.org:1094//\n"
        "x509_user_cert: /etc/grid/usercert.pem\n"
        "x509_user_key: /etc/grid/userkey.pem\n"
    )
    settings = load_settings()
    assert str(settings.fts3.endpoint) == "https://fts.example.org:8446/"
    assert settings.instrument_data_cache == "root://idc.example.org:1094//"
    assert settings.x509_user_key == Path("/etc/grid/userkey.pem")
    assert settings.fts3.max_files_per_job == 1000  # default kept for keys not in the file


def test_environment_overrides_one_nested_key(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text("fts3:\n  endpoint: https://a:8446\n  max_files_per_job: 10\n")
    monkeypatch.setenv("DATASTORE__FTS3__ENDPOINT", "https://b:8446")
    settings = load_settings()
    assert settings.fts3.endpoint.host == "b"
    assert settings.fts3.max_files_per_job == 10  # the sibling key from the file survives


def test_a_bad_value_names_its_key(config_file: Path) -> None:
    config_file.write_text("fts3:\n  max_files_per_job: 0\n")
    with pytest.raises(ConfigurationError, match=r"fts3\.max_files_per_job"):
        load_settings()


def test_an_unknown_key_is_refused_by_name(config_file: Path) -> None:
    config_file.write_text("fts3:\n  endpont: https://typo:8446\n")
    with pytest.raises(ConfigurationError, match=r"fts3\.endpont"):
        load_settings()


def test_a_bad_storage_url_names_its_key(config_file: Path) -> None:
    config_file.write_text("tape_archive: /just/a/path\n")
    with pytest.raises(ConfigurationError, match="tape_archive"):
        load_settings()


def test_a_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATASTORE_CONFIG", "/nonexistent/config.yaml")
    with pytest.raises(ConfigurationError, match="no such file"):
        load_settings()


def test_broken_yaml_is_a_configuration_error(config_file: Path) -> None:
    config_file.write_text("fts3: [unclosed\n")
    with pytest.raises(ConfigurationError):
        load_settings()


def test_secrets_do_not_show_in_repr(config_file: Path) -> None:
    config_file.write_text("icat:\n  password: hunter2\n")
    settings = load_settings()
    assert settings.icat.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)


def test_retry_delays_must_not_decrease(config_file: Path) -> None:
    config_file.write_text("broker:\n  retry_delays: [5, 1]\n")
    with pytest.raises(ConfigurationError, match=r"broker\.retry_delays"):
        load_settings()


def test_the_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).parents[3] / "config.example.yaml"
    monkeypatch.setenv("DATASTORE_CONFIG", str(example))
    settings = load_settings()
    assert settings.tape_archive.startswith("root://")


def test_archive_timeout_0_is_refused_as_finished_would_not_mean_on_tape(
    config_file: Path,
) -> None:
    config_file.write_text("fts3:\n  archive_timeout: 0\n")
    with pytest.raises(ConfigurationError, match=r"fts3\.archive_timeout"):
        load_settings()


def test_a_config_given_on_the_command_line_does_not_stay_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commands run in-process (tests, datastore-ops) must not change what later loads read."""
    import argparse

    from datastore_common.settings import CONFIG_ENV, settings_from

    monkeypatch.delenv(CONFIG_ENV, raising=False)
    config = tmp_path / "config.yaml"
    config.write_text("tape_root_dir: elsewhere/\n")
    assert settings_from(argparse.Namespace(config=str(config))).tape_root_dir == "elsewhere/"
    assert CONFIG_ENV not in os.environ
