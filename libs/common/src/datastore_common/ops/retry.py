"""``datastore-ops retry``: retry in bulk the datasets of archives that ended badly.

Built on the gateway's own path, over HTTP, so that a bulk retry is exactly what
``POST /datasets/{id}/retry`` does, with its checks (only FAILED or CANCELED files of an
ended archive; 409 otherwise): the ledger's listing (``GET /requests``, everyone's: the
session must be an admin's and an archiver's) names the archives that ended in the states
asked since then, with their failure class; each of their datasets is found by name
(``GET /datasets``) unless the request names its id, and retried once.

Pure parts (``parse_since``, ``datasets_to_retry``) are separate from the calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from datastore_common.ops.dlq import OpsError, UsageError

_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: The ledger's listing page size the tool asks for (the gateway's maximum).
PAGE = 500


def parse_since(text: str, now: datetime) -> datetime:
    """``2d``, ``12h``, ``30m``, ``1w`` before ``now``, or an ISO date or time (UTC if no
    zone); UsageError otherwise."""
    match = _DURATION.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise UsageError(
                f"--since {text!r}: give a duration (30m, 12h, 2d, 1w) or an ISO date"
            ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DatasetToRetry:
    """A dataset of an archive that ended badly: by id when the request names it, else by
    its investigation (``<name>-<visitId>``) and name."""

    request_id: str
    dataset_id: int | None
    investigation: str | None
    dataset: str | None

    @property
    def label(self) -> str:
        if self.dataset_id is not None:
            return f"dataset {self.dataset_id}"
        return f"{self.investigation}/{self.dataset}"


def failure_class_of(request: Mapping[str, Any]) -> str:
    """A request's failure class: the one the ledger recorded, else ``system`` (FTS failed
    its files: ours or a peer's, never the request's own)."""
    failure = request.get("failure")
    if isinstance(failure, Mapping) and failure.get("class"):
        return str(failure["class"])
    return "system"


def datasets_to_retry(
    requests: Iterable[Mapping[str, Any]], *, failure_classes: Sequence[str]
) -> list[DatasetToRetry]:
    """Every dataset of the archive requests of these failure classes, once each (by id or
    by names), in the order of the listing (newest first)."""
    seen: set[tuple[Any, ...]] = set()
    found: list[DatasetToRetry] = []
    for request in requests:
        if request.get("kind") != "archive":
            continue
        if failure_classes and failure_class_of(request) not in failure_classes:
            continue
        for shown in request.get("datasets") or ():
            dataset_id = shown.get("dataset_id")
            investigation = (
                f"{shown['investigation']}-{shown['visit_id']}"
                if shown.get("investigation") and shown.get("visit_id")
                else None
            )
            candidate = DatasetToRetry(
                request_id=str(request.get("request_id")),
                dataset_id=int(dataset_id) if dataset_id is not None else None,
                investigation=investigation,
                dataset=shown.get("dataset"),
            )
            key = (
                ("id", candidate.dataset_id)
                if candidate.dataset_id is not None
                else ("name", candidate.investigation, candidate.dataset)
            )
            if candidate.dataset_id is None and not (investigation and candidate.dataset):
                continue  # nothing to find it by
            if key not in seen:
                seen.add(key)
                found.append(candidate)
    return found


@dataclass
class RetryReport:
    retried: list[tuple[str, str]] = field(default_factory=list)  # (dataset, request id)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (dataset, why)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (dataset, why)
    planned: list[str] = field(default_factory=list)  # --dry-run: what would be retried


class Gateway:
    """The few gateway calls the tool makes, with the operator's session."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def _get(self, path: str, params: Any) -> Any:
        answer = await self._client.get(path, params=params)
        if answer.status_code != 200:
            raise OpsError(f"GET {path}: {answer.status_code} {_detail(answer)}")
        return answer.json()

    async def ended_archives(self, states: Sequence[str], since: datetime) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        while True:
            params: list[tuple[str, str]] = [
                ("kind", "archive"),
                ("mine", "false"),
                ("since", since.isoformat()),
                ("limit", str(PAGE)),
                *(("state", state) for state in states),
            ]
            if cursor:
                params.append(("cursor", cursor))
            page = await self._get("/requests", params)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    async def dataset_id(self, candidate: DatasetToRetry) -> int | None:
        if candidate.dataset_id is not None:
            return candidate.dataset_id
        found = await self._get(
            "/datasets", {"investigation": candidate.investigation, "name": candidate.dataset}
        )
        return int(found[0]["id"]) if len(found) == 1 else None

    async def retry(self, dataset_id: int) -> tuple[int, Any]:
        answer = await self._client.post(f"/datasets/{dataset_id}/retry")
        return answer.status_code, answer.json()


def _detail(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:200]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)


async def bulk_retry(
    gateway: Gateway,
    *,
    states: Sequence[str],
    failure_classes: Sequence[str],
    since: datetime,
    dry_run: bool,
) -> RetryReport:
    """Retry (or, with ``dry_run``, only name) every dataset of the archives that ended in
    ``states`` since ``since`` with a failure of ``failure_classes``."""
    report = RetryReport()
    requests = await gateway.ended_archives(states, since)
    for candidate in datasets_to_retry(requests, failure_classes=failure_classes):
        dataset_id = await gateway.dataset_id(candidate)
        if dataset_id is None:
            report.missing.append((candidate.label, "not found by name in ICAT"))
            continue
        label = f"dataset {dataset_id}"
        if dry_run:
            report.planned.append(f"{label} (request {candidate.request_id})")
            continue
        code, body = await gateway.retry(dataset_id)
        if code == 202:
            report.retried.append((label, str(body["request_id"])))
        elif code in (404, 409):
            why = str(body.get("detail", body)) if isinstance(body, dict) else str(body)
            (report.refused if code == 409 else report.missing).append((label, why))
        else:
            detail = body.get("detail", body) if isinstance(body, dict) else body
            raise OpsError(f"POST /datasets/{dataset_id}/retry: {code} {detail}")
    return report
