"""POST /archive: validation, limits, the plan answered, the message published."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from datastore_common.domain.plan import plan_archive
from datastore_common.errors import PeerUnavailableError
from datastore_common.messages import ArchiveRequested, InvestigationSpec
from datastore_gateway import handlers
from tests.support.factories import seed_body, spread_files
from tests.unit.gateway.conftest import (
    TEST_VO,
    AsyncGateway,
    Gateway,
    build_gateway,
)


def archive(gateway: Gateway, body: Any, **headers: str) -> httpx.Response:
    return gateway.client.post("/archive", json=body, headers={**gateway.bearer(), **headers})


class TestFoldersCannotCollide:
    """(ABC, 1-2) and (ABC-1, 2) would both be the folder ABC-1-2: a visitId holds no '-'."""

    def test_a_visit_id_with_a_dash_is_422_naming_the_value_and_the_rule(
        self, gateway: Gateway
    ) -> None:
        body = seed_body()
        body["investigations"][0].update(name="ABC", visitId="1-2")
        answer = archive(gateway, body)
        assert answer.status_code == 422
        reason = answer.json()["reason"]
        assert "investigations.0.visitId" in reason
        assert "visitId '1-2' is not a safe name without '-'" in reason
        assert "'{name}-{visitId}'" in reason
        assert gateway.publisher.published == []
        assert gateway.vocabulary.calls == []  # refused before anything is asked

    def test_a_dash_in_the_investigation_name_keeps_the_seed_layout(self, gateway: Gateway) -> None:
        body = seed_body()
        body["investigations"][0].update(name="ABC-1", visitId="2")
        assert archive(gateway, body).status_code == 202
        [published] = gateway.publisher.published
        assert isinstance(published.data, ArchiveRequested)
        source = published.data.jobs[0].transfers[0].source
        assert "/instrument/20XX/ABC-1-2/scan/scan_0000/file_0000.nxs" in source

    def test_the_rule_is_in_the_openapi_description_of_visit_id(self, gateway: Gateway) -> None:
        schema = gateway.client.get("/openapi.json").json()["components"]["schemas"]
        visit_id = schema["InvestigationSpec"]["properties"]["visitId"]
        assert "without '-'" in visit_id["description"]
        assert visit_id["pattern"] == "^[A-Za-z0-9._+]+$"


class TestAccepted:
    def test_seed_body_gives_one_job_with_four_transfers_at_the_planned_paths(
        self, gateway: Gateway
    ) -> None:
        answer = archive(gateway, seed_body())
        assert answer.status_code == 202, answer.text
        accepted = answer.json()
        assert set(accepted) == {"request_id", "job_ids"}
        assert len(accepted["job_ids"]) == 1

        [published] = gateway.publisher.published
        message = published.data
        assert isinstance(message, ArchiveRequested)
        assert published.correlation_id == accepted["request_id"] == message.request_id
        assert published.user == "simple/root"
        [job] = message.jobs
        assert job.job_id == accepted["job_ids"][0]
        assert job.kind == "archive"
        relative = "instrument/20XX/ABC123-1/scan/scan_0000"
        assert [(t.source, t.destination) for t in job.transfers] == [
            (
                f"root://127.0.0.1:11094//{relative}/file_000{i}.nxs",
                f"root://127.0.0.1:11096//archive/{relative}/file_000{i}.nxs",
            )
            for i in range(4)
        ]
        # The seed's placeholders ("string", 0) are not passed on as real checksums/sizes.
        assert {(t.checksum, t.filesize) for t in job.transfers} == {(None, None)}

    def test_job_ids_are_plan_archives_for_the_request_id(self, gateway: Gateway) -> None:
        body = seed_body(datasets=spread_files(1500, datasets=3))
        accepted = archive(gateway, body).json()
        expected = plan_archive(
            accepted["request_id"],
            [InvestigationSpec.model_validate(i) for i in body["investigations"]],
            instrument_data_cache=gateway.settings.instrument_data_cache,
            tape_archive=gateway.settings.tape_archive,
            tape_root_dir=gateway.settings.tape_root_dir,
            vo=TEST_VO,
            max_files_per_job=gateway.settings.fts3.max_files_per_job,
        )
        assert accepted["job_ids"] == [job.job_id for job in expected]
        assert gateway.publisher.published[0].data.jobs == expected  # type: ignore[attr-defined]

    def test_2500_files_make_3_jobs(self, gateway: Gateway) -> None:
        accepted = archive(gateway, seed_body(datasets=spread_files(2500))).json()
        assert len(accepted["job_ids"]) == 3
        jobs = gateway.publisher.published[0].data.jobs  # type: ignore[attr-defined]
        assert [len(job.transfers) for job in jobs] == [1000, 1000, 500]

    def test_every_archiver_may_archive(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path, archivers=["db/alice"])
        with gw.client:
            headers = gw.bearer("alice", "alice-pw", auth="db")
            answer = gw.client.post("/archive", json=seed_body(), headers=headers)
        assert answer.status_code == 202


class TestRefused:
    def test_non_archiver_is_403_with_a_reason(self, gateway: Gateway) -> None:
        answer = gateway.client.post(
            "/archive", json=seed_body(), headers=gateway.bearer("alice", "alice-pw", auth="db")
        )
        assert answer.status_code == 403
        assert "db/alice" in answer.json()["detail"]
        assert "gateway.archivers" in answer.json()["detail"]
        assert gateway.publisher.published == []

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            (lambda b: b["investigations"][0]["datasets"][0].update(datafiles=[]), "datafiles"),
            (lambda b: b["investigations"][0].update(datasets=[]), "datasets"),
            (lambda b: b.update(investigations=[]), "investigations"),
            (
                lambda b: b["investigations"][0]["datasets"][0]["datafiles"][0].update(
                    name="../etc/passwd"
                ),
                "datafile name '../etc/passwd' is not a safe name",
            ),
            (
                lambda b: b["investigations"][0]["datasets"][0]["datafiles"][0].update(
                    name="sub/file.nxs"
                ),
                "datafile name 'sub/file.nxs' is not a safe name",
            ),
            (
                lambda b: b["investigations"][0]["datasets"][0]["datafiles"][0].update(name="a..b"),
                "no '..' inside",
            ),
            (lambda b: b["investigations"][0]["datasets"][0].update(name=".."), "'..'"),
            (lambda b: b["investigations"][0].update(visitId="1/2"), "visitId"),
            (
                lambda b: b["investigations"][0]["datasets"][0]["datafiles"][1].update(
                    name="file_0000.nxs"
                ),
                "duplicate datafile in dataset 'scan_0000': 'file_0000.nxs'",
            ),
            (
                lambda b: b["investigations"][0]["datasets"].append(
                    b["investigations"][0]["datasets"][0]
                ),
                "duplicate dataset in investigation ABC123-1: 'scan_0000'",
            ),
            (
                lambda b: b["investigations"].append(b["investigations"][0]),
                "duplicate investigation: ABC123-1",
            ),
            (lambda b: b["investigations"][0].pop("title"), "title"),
            (lambda b: b.update(extra=1), "extra"),
        ],
        ids=[
            "no-datafiles",
            "no-datasets",
            "no-investigations",
            "dotdot-path",
            "slash",
            "dotdot-inside",
            "dataset-dotdot",
            "visit-slash",
            "duplicate-datafile",
            "duplicate-dataset",
            "duplicate-investigation",
            "missing-title",
            "unknown-field",
        ],
    )
    def test_invalid_body_is_422_with_a_precise_reason(
        self, gateway: Gateway, change: Any, reason: str
    ) -> None:
        body = seed_body()
        change(body)
        answer = archive(gateway, body)
        assert answer.status_code == 422, answer.text
        problem = answer.json()
        assert reason in problem["reason"]
        assert all("input" not in e for e in problem["detail"])  # the body is never echoed
        assert gateway.publisher.published == []

    def test_malformed_json_is_422_with_reason(self, gateway: Gateway) -> None:
        answer = gateway.client.post(
            "/archive",
            content=b'{"investigations": [',
            headers={**gateway.bearer(), "Content-Type": "application/json"},
        )
        assert answer.status_code == 422
        assert "JSON" in answer.json()["reason"]

    @pytest.mark.parametrize("path", ["/archive", "/restore", "/login"])
    def test_a_body_not_utf8_is_422_with_reason_not_a_bare_400(
        self, gateway: Gateway, path: str
    ) -> None:
        """Found by schemathesis: FastAPI answered an undocumented 400 without a reason."""
        answer = gateway.client.post(
            path,
            content=b"\xf8\x8d\x80\xb5{}",
            headers={**gateway.bearer(), "Content-Type": "application/json"},
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["reason"] == "body: body is not UTF-8 JSON"
        assert gateway.publisher.published == []

    def test_other_http_errors_keep_their_status(self, gateway: Gateway) -> None:
        answer = gateway.client.put("/archive", json={}, headers=gateway.bearer())
        assert answer.status_code == 405

    def test_too_many_datafiles_is_413(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path, max_datafiles_per_request=10)
        with gw.client:
            answer = gw.client.post(
                "/archive", json=seed_body(datasets=spread_files(11)), headers=gw.bearer()
            )
        assert answer.status_code == 413
        assert answer.json()["detail"] == (
            "11 datafiles in one request; the limit is 10 (gateway.max_datafiles_per_request)"
        )
        assert gw.publisher.published == []

    def test_too_many_bytes_is_413(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path, max_bytes_per_request=1000)
        with gw.client:
            ok = gw.client.post(
                "/archive",
                json=seed_body(datasets=spread_files(10), file_size=100),
                headers=gw.bearer(),
            )
            over = gw.client.post(
                "/archive",
                json=seed_body(datasets=spread_files(11), file_size=100),
                headers=gw.bearer(),
            )
        assert ok.status_code == 202
        assert over.status_code == 413
        assert "1100 bytes" in over.json()["detail"]

    def test_body_over_content_length_limit_is_413_before_reading(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path, max_body_bytes=4096)
        with gw.client:
            headers = gw.bearer()
            answer = gw.client.post(
                "/archive", json=seed_body(datasets=spread_files(100)), headers=headers
            )
        assert answer.status_code == 413
        assert "gateway.max_body_bytes" in answer.json()["detail"]
        assert gw.sessions.checks == 0  # refused before authentication even ran

    async def test_streamed_body_over_the_limit_is_413_while_reading(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path, max_body_bytes=4096)
        chunks_sent = 0

        async def endless_body():  # type: ignore[no-untyped-def]
            nonlocal chunks_sent
            yield b'{"investigations": ['
            while chunks_sent < 10_000:  # far past the limit if nobody stopped reading
                chunks_sent += 1
                yield b" " * 1024

        async with gw.app.router.lifespan_context(gw.app):
            transport = httpx.ASGITransport(app=gw.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                login = await client.post(
                    "/login", json={"auth": "simple", "username": "root", "password": "pw"}
                )
                answer = await client.post(
                    "/archive",
                    content=endless_body(),
                    headers={
                        "Authorization": f"Bearer {login.json()['sessionId']}",
                        "Content-Type": "application/json",
                    },
                )
        assert "content-length" not in answer.request.headers  # chunked: only counting helps
        assert answer.status_code == 413
        assert chunks_sent < 10  # reading stopped right after the limit

    def test_broker_down_is_503_and_nothing_is_remembered(self, gateway: Gateway) -> None:
        gateway.publisher.fail_with = PeerUnavailableError("broker did not take message")
        headers = {**gateway.bearer(), "Idempotency-Key": "k-1"}
        answer = gateway.client.post("/archive", json=seed_body(), headers=headers)
        assert answer.status_code == 503
        assert "broker did not take message" in answer.json()["detail"]
        assert answer.headers["retry-after"]

        gateway.publisher.fail_with = None  # the broker is back: the retry really archives
        retry = gateway.client.post("/archive", json=seed_body(), headers=headers)
        assert retry.status_code == 202
        assert len(gateway.publisher.published) == 1

    async def test_broker_that_never_confirms_is_503(
        self, async_gateway: AsyncGateway, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(handlers, "PUBLISH_TIMEOUT_SECONDS", 0.1)

        async def never(*_: Any, **__: Any) -> None:
            await asyncio.sleep(3600)

        monkeypatch.setattr(async_gateway.publisher, "publish", never)
        answer = await async_gateway.client.post(
            "/archive", json=seed_body(), headers=await async_gateway.bearer()
        )
        assert answer.status_code == 503
        assert "did not confirm" in answer.json()["detail"]

    def test_unknown_vo_is_503_until_fts_answers(self, tmp_path: Path) -> None:
        from datastore_common.errors import PeerUnavailableError as Down
        from datastore_gateway.vo import VoSource

        answers: list[str | Exception] = [Down("fts down"), "late-vo"]

        async def fetch() -> str:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        gw = build_gateway(tmp_path)
        gw.app.state.gateway.vo = VoSource(fetch=fetch)
        with gw.client:
            headers = gw.bearer()
            first = gw.client.post("/archive", json=seed_body(), headers=headers)
            body = seed_body()
            body["investigations"][0]["visitId"] = "2"
            second = gw.client.post("/archive", json=body, headers=headers)
        assert first.status_code == 503
        assert "FTS VO unknown" in first.json()["detail"]
        assert second.status_code == 202
        assert gw.app.state.gateway.vo.known == "late-vo"
