"""An X.509 key others may read stops every service that would load it, with one line saying
which file and how to fix it (as ssh refuses such a key)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datastore_common.adapters.fts3.proxy import require_private_key_file
from datastore_common.adapters.fts3.transfer_service import (
    Fts3TransferService,
    require_private_credentials,
)
from datastore_common.errors import ConfigurationError, InsecureKeyFileError
from datastore_common.settings import DatastoreSettings, refusing_to_start
from datastore_common.testing.fakes import FakeSessions, RecordingPublisher
from datastore_gateway.__main__ import main as gateway_main
from datastore_gateway.main import create_app
from datastore_status_poller.__main__ import main as poller_main


def key_file(folder: Path, mode: int, name: str = "userkey.pem") -> Path:
    path = folder / name
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot read before the mode is checked\n")
    path.chmod(mode)
    return path


def x509_settings(key: Path, tmp_path: Path, **more: object) -> DatastoreSettings:
    return DatastoreSettings(
        x509_user_cert=tmp_path / "usercert.pem",
        x509_user_key=key,
        gateway={"state_db": f"sqlite:///{tmp_path}/gateway.sqlite"},
        **more,  # type: ignore[arg-type]
    )


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DATASTORE* variables; the one ``--config`` sets is undone after the test."""
    monkeypatch.setenv("DATASTORE_CONFIG", "")
    for name in [k for k in os.environ if k.startswith("DATASTORE")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o777])
def test_a_key_group_or_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    key = key_file(tmp_path, mode)
    with pytest.raises(InsecureKeyFileError) as refused:
        require_private_key_file(key)
    assert str(refused.value).count("\n") == 0
    assert f"chmod 600 {key}" in str(refused.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_key_only_its_owner_reads_is_accepted(tmp_path: Path, mode: int) -> None:
    require_private_key_file(key_file(tmp_path, mode))


def test_a_missing_key_is_left_to_the_loader_to_report(tmp_path: Path) -> None:
    require_private_key_file(tmp_path / "absent.pem")  # TLS loading names it as missing


def test_the_fts_port_refuses_an_exposed_x509_user_key(tmp_path: Path) -> None:
    settings = x509_settings(key_file(tmp_path, 0o644), tmp_path)
    with pytest.raises(InsecureKeyFileError, match=r"userkey\.pem"):
        Fts3TransferService.from_settings(settings)


def test_with_a_token_the_key_file_is_not_looked_at(tmp_path: Path) -> None:
    settings = x509_settings(key_file(tmp_path, 0o644), tmp_path, fts3={"token": "t"})
    require_private_credentials(settings)
    Fts3TransferService.from_settings(settings)  # the token client reads no key


def test_a_proxy_in_x509_user_cert_is_checked_as_the_key(tmp_path: Path) -> None:
    proxy = key_file(tmp_path, 0o644, "x509up_u1000")
    settings = DatastoreSettings(x509_user_cert=proxy)
    with pytest.raises(InsecureKeyFileError, match="x509up_u1000"):
        require_private_credentials(settings)


async def test_the_gateway_refuses_to_start_rather_than_serve_without_fts(
    tmp_path: Path,
) -> None:
    """Without FTS credentials the gateway starts (job endpoints 503); with an exposed key it
    must not: that is a leak to fix, not a missing feature."""
    settings = x509_settings(key_file(tmp_path, 0o640), tmp_path)
    app = create_app(settings, sessions=FakeSessions({}), publisher=RecordingPublisher(), vo="vo")
    app.state.gateway.selections = app.state.gateway.vocabulary = object()  # no ICAT built
    with pytest.raises(InsecureKeyFileError):
        async with app.router.lifespan_context(app):
            pass


def test_refusing_to_start_is_one_line_naming_the_program() -> None:
    with pytest.raises(SystemExit) as stopped, refusing_to_start("datastore-fts-submitter"):
        raise ConfigurationError("x509_user_key: bad")
    assert stopped.value.code == "datastore-fts-submitter: x509_user_key: bad"


def test_refusing_to_start_lets_other_errors_through() -> None:
    with pytest.raises(RuntimeError), refusing_to_start("datastore-icat-writer"):
        raise RuntimeError("a bug keeps its traceback")


@pytest.mark.usefixtures("clean_environment")
def test_gateway_command_stops_with_one_line_before_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = key_file(tmp_path, 0o644)
    config = tmp_path / "config.yaml"
    config.write_text(f"x509_user_cert: {tmp_path}/usercert.pem\nx509_user_key: {key}\n")
    monkeypatch.setattr("uvicorn.run", pytest.fail)  # must not get that far
    with pytest.raises(SystemExit) as stopped:
        gateway_main(["--config", str(config)])
    message = str(stopped.value.code)
    assert message.startswith("datastore-gateway: X.509 private key ")
    assert f"chmod 600 {key}" in message and "\n" not in message


@pytest.mark.usefixtures("clean_environment")
def test_worker_command_stops_with_one_line_on_a_bad_setting(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("poller:\n  batch_size: 0\n")
    with pytest.raises(SystemExit) as stopped:
        poller_main(["--config", str(config)])
    assert str(stopped.value.code).startswith("datastore-status-poller: invalid configuration")
    assert "poller.batch_size" in str(stopped.value.code)
