"""POST /archive refuses names ICAT does not know (422, each named) and answers 503 when ICAT
cannot say; known names are cached for gateway.vocabulary_cache_seconds, unknown ones not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from datastore_common.errors import AuthenticationError, CredentialError, PeerUnavailableError
from datastore_common.messages import InvestigationSpec
from datastore_common.ports import terms_of
from datastore_common.testing.fake_vocabulary import SEED_VOCABULARY, FakeVocabulary
from datastore_gateway import handlers
from datastore_gateway.vocabulary_cache import CachedVocabulary
from tests.support.factories import seed_body
from tests.unit.gateway.conftest import AsyncGateway, Gateway, build_gateway


def archive(gateway: Gateway, body: Any, **headers: str) -> httpx.Response:
    return gateway.client.post("/archive", json=body, headers={**gateway.bearer(), **headers})


def investigation(body: dict[str, Any]) -> dict[str, Any]:
    inv: dict[str, Any] = body["investigations"][0]
    return inv


Change = Callable[[dict[str, Any]], None]


def with_format(name: str, version: str) -> Change:
    def change(body: dict[str, Any]) -> None:
        datafile = investigation(body)["datasets"][0]["datafiles"][0]
        datafile["datafileFormat"] = {"name": name, "version": version}

    return change


UNKNOWN: dict[str, tuple[Change, str]] = {
    "facility": (
        lambda b: investigation(b)["facility"].update(name="other"),
        "unknown facility 'other': this Datastore serves facility 'facility' (icat.facility)",
    ),
    "investigationType": (
        lambda b: investigation(b)["investigationType"].update(name="experiment"),
        "unknown investigationType 'experiment' in facility 'facility'",
    ),
    "instrument": (
        lambda b: investigation(b)["instrument"].update(name="LET"),
        "unknown instrument 'LET' in facility 'facility'",
    ),
    "facilityCycle": (
        lambda b: investigation(b)["facilityCycle"].update(name="20YY"),
        "unknown facilityCycle '20YY' in facility 'facility'",
    ),
    "datasetType": (
        lambda b: investigation(b)["datasets"][0]["datasetType"].update(name="scann"),
        "unknown datasetType 'scann' in facility 'facility'",
    ),
    "datafileFormat": (
        with_format("nexus", "4"),
        "unknown datafileFormat 'nexus' version '4' in facility 'facility'",
    ),
}


class TestUnknownNames:
    @pytest.mark.parametrize(("change", "message"), list(UNKNOWN.values()), ids=list(UNKNOWN))
    def test_each_kind_unknown_is_422_naming_kind_and_value(
        self, gateway: Gateway, change: Change, message: str
    ) -> None:
        body = seed_body()
        change(body)
        answer = archive(gateway, body)
        assert answer.status_code == 422, answer.text
        assert answer.json() == {"detail": message}
        assert gateway.publisher.published == []

    def test_every_unknown_name_is_named_in_one_answer_after_one_question(
        self, gateway: Gateway
    ) -> None:
        body = seed_body()
        for change, _ in UNKNOWN.values():
            change(body)
        answer = archive(gateway, body)
        assert answer.status_code == 422
        assert answer.json()["detail"] == "; ".join(message for _, message in UNKNOWN.values())
        assert len(gateway.vocabulary.calls) == 1

    def test_the_served_facility_missing_from_icat_is_named(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path)
        gw.vocabulary.known["facility"] = set()
        with gw.client:
            answer = archive(gw, seed_body())
        assert answer.status_code == 422
        assert answer.json()["detail"] == (
            "unknown facility 'facility': it is not in ICAT (icat.facility)"
        )

    def test_known_names_and_formats_are_accepted(self, gateway: Gateway) -> None:
        body = seed_body()
        with_format("nexus", "3")(body)
        answer = archive(gateway, body)
        assert answer.status_code == 202, answer.text
        [asked] = gateway.vocabulary.calls
        assert asked == {kind: set(terms) for kind, terms in SEED_VOCABULARY.items()}

    def test_many_unknown_names_are_listed_up_to_a_limit(self, gateway: Gateway) -> None:
        body = seed_body()
        for i, datafile in enumerate(investigation(body)["datasets"][0]["datafiles"]):
            datafile["datafileFormat"] = {"name": "nexus", "version": f"v{i}"}
        for i in range(30):
            dataset = {**investigation(body)["datasets"][0], "name": f"scan_{i + 1:04d}"}
            investigation(body)["datasets"].append(
                {**dataset, "datasetType": {"name": f"type_{i:02d}"}}
            )
        answer = archive(gateway, body)
        assert answer.status_code == 422
        detail = answer.json()["detail"]
        assert detail.count("unknown") == handlers.MAX_UNKNOWN_NAMED
        assert detail.endswith("; and 14 more")  # 30 dataset types + 4 formats - 20
        assert "unknown datasetType 'type_00' in facility 'facility'" in detail

    def test_a_replayed_request_asks_nothing_again(self, gateway: Gateway) -> None:
        headers = {"Idempotency-Key": "k-1"}
        first = archive(gateway, seed_body(), **headers)
        again = archive(gateway, seed_body(), **headers)
        assert first.json() == again.json()
        assert len(gateway.vocabulary.calls) == 1


class TestCache:
    def test_known_names_are_asked_once_within_the_ttl(self, gateway: Gateway) -> None:
        for visit in ("1", "2", "3"):
            body = seed_body()
            investigation(body)["visitId"] = visit  # a new request each time, not a replay
            assert archive(gateway, body).status_code == 202
        assert len(gateway.vocabulary.calls) == 1
        assert len(gateway.publisher.published) == 3

    def test_an_unknown_name_is_asked_again_so_a_new_type_works_at_once(
        self, gateway: Gateway
    ) -> None:
        body = seed_body()
        investigation(body)["datasets"][0]["datasetType"]["name"] = "calibration"
        assert archive(gateway, body).status_code == 422
        gateway.vocabulary.known["datasetType"].add("calibration")  # added in ICAT
        answer = archive(gateway, body)
        assert answer.status_code == 202, answer.text
        # Only the name not known before is asked again; the others came from the cache.
        assert gateway.vocabulary.calls[1] == {"datasetType": {"calibration"}}

    def test_a_zero_ttl_asks_every_time(self, tmp_path: Path) -> None:
        gw = build_gateway(tmp_path, vocabulary_cache_seconds=0)
        with gw.client:
            for visit in ("1", "2"):
                body = seed_body()
                investigation(body)["visitId"] = visit
                assert archive(gw, body).status_code == 202
        assert len(gw.vocabulary.calls) == 2

    async def test_known_names_expire_after_the_ttl(self) -> None:
        now = [0.0]
        inner = FakeVocabulary()
        cache = CachedVocabulary(inner, ttl=60, clock=lambda: now[0])
        terms = terms_of([InvestigationSpec.model_validate(investigation(seed_body()))])
        assert await cache.unknown(terms) == {}
        now[0] = 59.0
        assert await cache.unknown(terms) == {}
        assert len(inner.calls) == 1
        now[0] = 60.0
        inner.known["datasetType"] = set()  # removed from ICAT meanwhile
        assert await cache.unknown(terms) == {"datasetType": {"scan"}}
        assert len(inner.calls) == 2
        assert cache.facility == inner.facility == "facility"


class TestIcatUnavailable:
    def test_icat_down_is_503_with_the_reason_and_nothing_is_remembered(
        self, gateway: Gateway
    ) -> None:
        gateway.vocabulary.fail_with = PeerUnavailableError("icat vocabulary: connection refused")
        headers = {"Idempotency-Key": "k-1"}
        answer = archive(gateway, seed_body(), **headers)
        assert answer.status_code == 503
        detail = answer.json()["detail"]
        assert "cannot check the names the request uses in ICAT; nothing accepted" in detail
        assert "connection refused" in detail
        assert answer.headers["retry-after"]
        assert gateway.publisher.published == []

        gateway.vocabulary.fail_with = None  # ICAT is back: the retry really archives
        retry = archive(gateway, seed_body(), **headers)
        assert retry.status_code == 202
        assert len(gateway.publisher.published) == 1

    @pytest.mark.parametrize(
        "refusal",
        [
            AuthenticationError("icat login: wrong password"),
            CredentialError("ICAT refused the functional account simple/datastore: SESSION"),
        ],
    )
    def test_functional_account_refused_is_503_not_401(
        self, gateway: Gateway, refusal: Exception
    ) -> None:
        gateway.vocabulary.fail_with = refusal
        answer = archive(gateway, seed_body())
        assert answer.status_code == 503
        assert answer.headers["retry-after"]
        assert "www-authenticate" not in answer.headers
        detail = answer.json()["detail"]
        assert "refused the gateway's own credential (not yours)" in detail
        assert "password" not in detail and "datastore" not in detail  # nothing of ours leaks

    async def test_icat_that_never_answers_is_503(
        self, async_gateway: AsyncGateway, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(handlers, "VOCABULARY_TIMEOUT_SECONDS", 0.1)

        async def never(*_: Any, **__: Any) -> dict[str, Any]:
            await asyncio.sleep(3600)
            return {}

        state = async_gateway.app.state.gateway
        monkeypatch.setattr(state.vocabulary.inner, "unknown", never)
        answer = await async_gateway.client.post(
            "/archive", json=seed_body(), headers=await async_gateway.bearer()
        )
        assert answer.status_code == 503
        assert "ICAT did not say within 0.1 s" in answer.json()["detail"]
        assert async_gateway.publisher.published == []


def test_terms_of_collects_each_kind_once() -> None:
    body = seed_body()
    with_format("nexus", "3")(body)
    second = {**investigation(body), "visitId": "2"}
    specs = [InvestigationSpec.model_validate(i) for i in (investigation(body), second)]
    assert terms_of(specs) == {kind: set(terms) for kind, terms in SEED_VOCABULARY.items()}
