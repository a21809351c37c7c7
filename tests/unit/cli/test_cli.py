"""``datastore`` as a person uses it: login, archive --wait, restore, status, requests,
datasets status, cancel, retry; what it prints, what it keeps and its exit codes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from datastore_common.domain.failures import give_up_events
from datastore_common.messages import (
    ArchiveRegistered,
    ArchiveRequested,
    FileState,
    Payload,
    RestoreRequested,
    TransferStatus,
)
from tests.support.factories import seed_body
from tests.unit.cli.conftest import Command

FTS = "https://fts:8446"


def sent(command: Command) -> ArchiveRequested | RestoreRequested:
    data = command.gateway.publisher.published[-1].data
    assert isinstance(data, ArchiveRequested | RestoreRequested)
    return data


def statuses(request: ArchiveRequested | RestoreRequested, state: str) -> TransferStatus:
    """FTS's word that the request's one job, and each of its files, is in ``state``."""
    [job] = request.jobs
    return TransferStatus(
        request_id=request.request_id,
        kind="restore" if isinstance(request, RestoreRequested) else "archive",
        job_id=job.job_id,
        fts_endpoint=FTS,
        job_state=state,
        files=[
            FileState(source=t.source, destination=t.destination, state=state)
            for t in job.transfers
        ],
    )


def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "seed-body.json"
    path.write_text(json.dumps(seed_body()))
    return path


def archive_to(command: Command, *job_states: str) -> None:
    """While the command waits: registered, then FTS reports each job state in turn."""

    def registered() -> Payload:
        request = sent(command)
        assert isinstance(request, ArchiveRequested)
        [job] = request.jobs
        sized = [t.model_copy(update={"filesize": 1000}) for t in job.transfers]
        return ArchiveRegistered(
            request_id=request.request_id, jobs=[job.model_copy(update={"transfers": sized})]
        )

    command.events.append(registered)
    for state in job_states:
        command.events.append(lambda state=state: statuses(sent(command), state))


class TestLogin:
    def test_asks_the_password_without_echo_and_keeps_the_session_0600(
        self, command: Command
    ) -> None:
        result = command("login", "--username", "root", input="pw\n")
        assert result.exit_code == 0, result.output
        assert "Password: \n" in result.output  # not echoed
        assert "Logged in to http://127.0.0.1:8000 as simple/root" in result.output
        kept = command.config_dir / "session.json"
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        session = json.loads(kept.read_text())["session"]
        assert session in command.gateway.sessions.sessions
        # The next command uses it.
        assert command("requests", "--json").exit_code == 0

    def test_a_refused_password_is_one_line_with_the_reason(self, command: Command) -> None:
        result = command("login", "--username", "root", input="wrong\n")
        assert result.exit_code == 1
        [line] = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert line.startswith("error:") and "Traceback" not in result.output
        assert not (command.config_dir / "session.json").exists()

    def test_not_logged_in_or_expired_says_how_to_log_in(
        self, command: Command, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        result = command("requests")
        assert result.exit_code == 1 and "datastore login" in result.stderr
        monkeypatch.setenv("DATASTORE_SESSION", "expired-session")
        result = command("requests")
        assert result.exit_code == 1
        assert "401" not in result.stderr and "log in again: datastore login" in result.stderr

    def test_the_environment_overrides_the_kept_session_and_url(
        self, command: Command, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        command.login()
        urls: list[str] = []
        deps = command.deps()
        deps.connect = lambda url: urls.append(url) or command.gateway.client  # type: ignore[func-returns-value]
        monkeypatch.setenv("DATASTORE_URL", "http://elsewhere:9000/")
        monkeypatch.setenv("DATASTORE_SESSION", command.gateway.login())
        from typer.testing import CliRunner

        from datastore_cli.cli import app

        assert CliRunner().invoke(app, ["requests"], obj=deps).exit_code == 0
        assert urls == ["http://elsewhere:9000"]


class TestArchive:
    def test_wait_follows_to_finished_and_exits_0_with_a_summary(
        self, command: Command, tmp_path: Path
    ) -> None:
        command.login()
        archive_to(command, "ACTIVE", "FINISHED")
        result = command("archive", str(seed_file(tmp_path)), "--wait")
        assert result.exit_code == 0, result.output
        request = sent(command)
        assert f"accepted: request {request.request_id}" in result.output
        assert "FINISHED" in result.output and request.jobs[0].job_id in result.output
        assert "4.0 kB" in result.output  # bytes done of the summary table
        assert command.waits == 3 and not command.events

    def test_wait_exits_non_zero_when_it_ends_otherwise(
        self, command: Command, tmp_path: Path
    ) -> None:
        command.login()
        archive_to(command, "FINISHEDDIRTY")
        result = command("archive", str(seed_file(tmp_path)), "--wait")
        assert result.exit_code == 1 and "FINISHEDDIRTY" in result.output

    def test_wait_shows_a_failure_with_its_reason(self, command: Command, tmp_path: Path) -> None:
        command.login()

        def given_up() -> Payload:
            *first, last = give_up_events(
                sent(command), "gave up: icat down", "system", fts_endpoint=FTS
            )
            for event in first:
                command.feed(event)
            return last

        command.events.append(given_up)
        result = command("archive", str(seed_file(tmp_path)), "--wait")
        assert result.exit_code == 1
        assert "FAILED" in result.output and "icat down" in result.output

    def test_json_prints_the_answer_then_the_final_status(
        self, command: Command, tmp_path: Path
    ) -> None:
        command.login()
        result = command("archive", str(seed_file(tmp_path)), "--json")
        assert result.exit_code == 0
        accepted = json.loads(result.stdout)
        assert accepted["request_id"] == sent(command).request_id and accepted["job_ids"]
        archive_to(command, "FINISHED")
        result = command("archive", str(seed_file(tmp_path)), "--wait", "--json")
        final = json.loads(result.stdout)
        assert (result.exit_code, final["state"]) == (0, "FINISHED")
        assert final["request_id"] == sent(command).request_id

    def test_a_refused_body_prints_the_gateways_reason(
        self, command: Command, tmp_path: Path
    ) -> None:
        command.login()
        body = seed_body()
        body["investigations"][0]["name"] = "../etc"
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(body))
        result = command("archive", str(path))
        assert result.exit_code == 1
        assert result.stderr.startswith("error: 422: ") and "../etc" in result.stderr
        assert not command.gateway.publisher.published

    def test_a_file_that_is_not_json_is_refused_before_sending(
        self, command: Command, tmp_path: Path
    ) -> None:
        command.login()
        path = tmp_path / "body.json"
        path.write_text("{not json")
        result = command("archive", str(path))
        assert result.exit_code == 1 and "is not JSON" in result.stderr


class TestRestore:
    @pytest.fixture
    def on_tape(self, command: Command) -> int:
        """Investigation 1 (ABC123-1): dataset 10 FINISHED on tape, dataset 11 ACTIVE."""
        selections = command.gateway.selections
        folder = "instrument/20XX/ABC123-1/scan"
        selections.add_dataset(1, 10, [f"{folder}/scan_0000/f0"], first_datafile_id=100)
        selections.add_dataset(
            1, 11, [f"{folder}/scan_0001/f0"], first_datafile_id=110, state="ACTIVE"
        )
        command.login()
        return 10

    def test_dry_run_names_what_would_be_restored_and_sends_nothing(
        self, command: Command, on_tape: int
    ) -> None:
        result = command("restore", "--dataset", str(on_tape), "--dry-run")
        assert result.exit_code == 0, result.output
        assert "scan_0000" in result.output and "yes" in result.output
        assert not command.gateway.publisher.published
        # The investigation by NAME-VISIT: one of its datasets is not on tape yet.
        result = command("restore", "--investigation", "ABC123-1", "--dry-run", "--json")
        assert result.exit_code == 1
        [row] = json.loads(result.stdout)
        assert (row["name"], row["state"], row["restorable"]) == ("ABC123-1", "ACTIVE", False)

    def test_restore_by_dataset_is_accepted_and_followed(
        self, command: Command, on_tape: int
    ) -> None:
        result = command("restore", "--dataset", str(on_tape), "--json")
        assert result.exit_code == 0, result.output
        request = sent(command)
        assert isinstance(request, RestoreRequested)
        assert json.loads(result.stdout)["request_id"] == request.request_id
        command.events.append(lambda: statuses(sent(command), "FINISHED"))
        result = command("status", request.request_id, "--watch")
        assert result.exit_code == 0 and "FINISHED" in result.output

    def test_an_unknown_investigation_name_is_refused_with_why(
        self, command: Command, on_tape: int
    ) -> None:
        result = command("restore", "--investigation", "NOPE-1")
        assert result.exit_code == 1 and "no investigation 'NOPE-1'" in result.stderr

    def test_nothing_selected_is_a_usage_error(self, command: Command) -> None:
        assert command("restore").exit_code == 2


class TestFollowingAndControl:
    def test_status_without_an_id_is_the_newest_request_and_requests_lists_them(
        self, command: Command, tmp_path: Path
    ) -> None:
        command.login()
        command("archive", str(seed_file(tmp_path)))
        request = sent(command)
        result = command("status", "--json")
        assert json.loads(result.stdout)["request_id"] == request.request_id
        result = command("status")
        assert result.exit_code == 0 and "waiting on registration in ICAT" in result.output
        result = command("requests", "--state", "submitted")
        assert result.exit_code == 0 and request.request_id in result.output
        result = command("requests", "--state", "FINISHED")
        assert result.output.strip() == "no requests"

    def test_cancel_of_an_archive_prints_the_409_reason(
        self, command: Command, tmp_path: Path
    ) -> None:
        command.login()
        command("archive", str(seed_file(tmp_path)))
        result = command("cancel", sent(command).request_id)
        assert result.exit_code == 1 and result.stderr.startswith("error: 409: ")

    def test_retry_of_a_dataset_in_flight_prints_the_409_reason(self, command: Command) -> None:
        command.gateway.selections.add_dataset(
            1,
            10,
            ["instrument/20XX/ABC123-1/scan/scan_0000/f0"],
            first_datafile_id=100,
            state="ACTIVE",
        )
        command.login()
        result = command("retry", "10")
        assert result.exit_code == 1 and "409" in result.stderr

    def test_datasets_status_lists_each_file(self, command: Command) -> None:
        command.gateway.selections.add_dataset(
            1, 10, ["instrument/20XX/ABC123-1/scan/scan_0000/f0"], first_datafile_id=100
        )
        command.login()
        result = command("datasets", "status", "10")
        assert result.exit_code == 0, result.output
        assert "scan_0000" in result.output and "f0" in result.output
        assert json.loads(command("datasets", "status", "10", "--json").stdout)["state"] == (
            "FINISHED"
        )
        result = command("datasets", "status", "999")
        assert result.exit_code == 1 and result.stderr.startswith("error: 404: ")
