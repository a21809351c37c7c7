"""The gateway as the command sees it: one method per HTTP route it uses, JSON in and out.

Every answer that is not a 2xx becomes a :class:`GatewayError` carrying the gateway's own
reason (``{"detail": "<reason>"}``, or the one-line ``reason`` of a 422 FastAPI refused), so
the command can print it on one line. Nothing here knows about terminals.
"""

from __future__ import annotations

from typing import Any

import httpx

#: A page of a list (``GET /requests``, ``/investigations``, ``/datasets``), as the gateway
#: answers: ``{"items": [...], "next_cursor": ...}``.
Page = dict[str, Any]


class GatewayError(Exception):
    """The gateway refused or could not answer; ``reason`` is its own words."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SessionExpiredError(GatewayError):
    """A 401: no session, or one ICAT no longer knows."""


def reason_of(answer: httpx.Response) -> str:
    """The gateway's reason for a refusal, on one line."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("reason"), str):
            return str(body["reason"])
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
    text = " ".join(answer.text.split())
    return text[:300] or answer.reason_phrase or f"HTTP {answer.status_code}"


class GatewayClient:
    """The routes of the gateway the command calls, with the caller's session."""

    def __init__(self, http: httpx.Client, session: str | None = None) -> None:
        self.http = http
        self.session = session

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        sent = dict(headers or {})
        if self.session:
            sent["Authorization"] = f"Bearer {self.session}"
        try:
            answer = self.http.request(method, path, json=json, params=params, headers=sent)
        except httpx.HTTPError as exc:
            reason = f"cannot reach the gateway at {self.http.base_url}: {exc}"
            raise GatewayError(0, reason) from exc
        if answer.status_code == 401:
            raise SessionExpiredError(401, reason_of(answer))
        if answer.status_code >= 400:
            raise GatewayError(answer.status_code, reason_of(answer))
        return answer.json() if answer.content else None

    def login(self, username: str, password: str, auth: str) -> str:
        body = {"auth": auth, "username": username, "password": password}
        answer = self._call("POST", "/login", json=body)
        return str(answer["sessionId"])

    def archive(self, body: Any, idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        answer: dict[str, Any] = self._call("POST", "/archive", json=body, headers=headers)
        return answer

    def restore(
        self,
        *,
        investigation_ids: list[int],
        dataset_ids: list[int],
        datafile_ids: list[int],
    ) -> dict[str, Any]:
        body = {
            "investigation_ids": investigation_ids,
            "dataset_ids": dataset_ids,
            "datafile_ids": datafile_ids,
        }
        answer: dict[str, Any] = self._call("POST", "/restore", json=body)
        return answer

    def request(self, request_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._call("GET", f"/requests/{request_id}")
        return answer

    def requests(self, states: list[str], *, limit: int = 50) -> Page:
        params: list[tuple[str, str | int]] = [("state", s) for s in states]
        params.append(("limit", limit))
        answer: Page = self._call("GET", "/requests", params=params)
        return answer

    def cancel(self, request_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._call("DELETE", f"/requests/{request_id}")
        return answer

    def retry(self, dataset_id: int) -> dict[str, Any]:
        answer: dict[str, Any] = self._call("POST", f"/datasets/{dataset_id}/retry")
        return answer

    def dataset_status(self, dataset_id: int, *, list_files: bool = True) -> dict[str, Any]:
        params = {"list_files": str(list_files).lower()}
        answer: dict[str, Any] = self._call("GET", f"/datasets/{dataset_id}/status", params=params)
        return answer

    def investigation_status(self, investigation_id: int) -> dict[str, Any]:
        answer: dict[str, Any] = self._call("GET", f"/investigations/{investigation_id}/status")
        return answer

    def find_investigations(self, name: str, visit_id: str | None = None) -> list[dict[str, Any]]:
        """Every investigation of that name (and visit), all pages."""
        params = {"name": name} | ({"visit_id": visit_id} if visit_id else {})
        return self._all_pages("/investigations", params)

    def _all_pages(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page: Page = self._call(
                "GET", path, params=params | ({"cursor": cursor} if cursor else {})
            )
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items
