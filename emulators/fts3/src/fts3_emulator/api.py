"""The FTS3 REST API as the official ``fts3`` client and our own client speak it.

Field names, status codes and error bodies follow cern-fts/fts-rest-flask; see
/work/shared/design/fts3-rest.md for what the client needs and why each detail matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fts3_emulator.config import EmulatorSettings
from fts3_emulator.delegation import DelegationError, accept_credential, new_request
from fts3_emulator.engine import TransferEngine
from fts3_emulator.identity import UserIdentity, identity_from_certificate, identity_from_token
from fts3_emulator.states import (
    FILE_ACTIVE_STATES,
    FTS_BASE_ID,
    JOB_ACTIVE_STATES,
    TIMESTAMP_FORMAT,
    deterministic_job_id,
    random_job_id,
    storage_element,
    utc_now,
    verify_checksum_mode,
)
from fts3_emulator.store import DuplicateJobError, NewFile, Store

API_VERSION = {"major": 3, "minor": 14, "patch": 0}
SUBMIT_HOST = "fts3-emulator"
REASONS = {
    200: "Ok",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    419: "Authentication Timeout",
    500: "Internal Server Error",
}
_MULTI_SLASH = re.compile(r"/{2,}")
# Client certificate keys whose size the delegation request key copies (others: 2048 bits).
_SIZED_KEYS = (rsa.RSAPublicKey, dsa.DSAPublicKey, ec.EllipticCurvePublicKey)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def status_line(code: int) -> str:
    return f"{code} {REASONS.get(code, '')}".strip()


def error_body(code: int, message: str) -> dict[str, Any]:
    return {"status": status_line(code), "message": message}


def json_response(content: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status)


# --- rendering ---------------------------------------------------------------------------


def render_job(job: dict[str, Any]) -> dict[str, Any]:
    params = job["params"]
    return {
        "job_id": job["job_id"],
        "job_state": job["job_state"],
        "job_type": "N",
        "user_dn": job["user_dn"],
        "cred_id": job["cred_id"],
        "vo_name": job["vo_name"],
        "source_se": job["source_se"],
        "dest_se": job["dest_se"],
        "submit_time": job["submit_time"],
        "job_finished": job["job_finished"],
        "reason": job["reason"],
        "priority": params.get("priority"),
        "retry": params.get("retry"),
        "retry_delay": params.get("retry_delay"),
        "verify_checksum": params.get("verify_checksum"),
        "overwrite_flag": params.get("overwrite_flag"),
        "job_metadata": params.get("job_metadata"),
        "bring_online": params.get("bring_online"),
        "archive_timeout": params.get("archive_timeout"),
        "copy_pin_lifetime": params.get("copy_pin_lifetime"),
        "max_time_in_queue": params.get("max_time_in_queue"),
        "source_spacetoken": params.get("source_spacetoken"),
        "space_token": params.get("destination_spacetoken"),
        "destination_spacetoken": params.get("destination_spacetoken"),
        "cancel_job": bool(job["cancel_job"]),
        "submit_host": SUBMIT_HOST,
        "internal_job_params": params.get("internal_job_params"),
        "dst_file_report": params.get("dst_file_report", False),
        "target_qos": None,
        "os_project_id": None,
        "http_status": "200 Ok",
    }


def render_file(entry: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    extra = entry["extra"]
    return {
        "file_id": entry["file_id"],
        "file_index": entry["file_index"],
        "job_id": entry["job_id"],
        "file_state": entry["file_state"],
        "source_surl": entry["source_surl"],
        "dest_surl": entry["dest_surl"],
        "source_se": storage_element(entry["source_surl"]),
        "dest_se": storage_element(entry["dest_surl"]),
        "checksum": entry["checksum"],
        "filesize": entry["filesize"] if entry["filesize"] is not None else entry["user_filesize"],
        "user_filesize": entry["user_filesize"],
        "reason": entry["reason"],
        "start_time": entry["start_time"],
        "finish_time": entry["finish_time"],
        "staging_start": entry["staging_start"],
        "staging_finished": entry["staging_finished"],
        "bringonline_token": entry["staging_reqid"],
        "archive_start_time": entry["archive_start"],
        "archive_finish_time": entry["archive_finish_time"],
        "file_metadata": extra.get("metadata"),
        "staging_metadata": extra.get("staging_metadata"),
        "archive_metadata": extra.get("archive_metadata"),
        "activity": extra.get("activity", "default"),
        "selection_strategy": extra.get("selection_strategy", "auto"),
        "retry": max(entry["attempts"] - 1, 0),
        "current_failures": 0,
        "throughput": entry["throughput"],
        "tx_duration": entry["tx_duration"],
        "transfer_host": SUBMIT_HOST if entry["start_time"] else None,
        "vo_name": job["vo_name"],
        "priority": job["params"].get("priority"),
        "hashed_id": entry["file_id"] % 65536,
        "pid": None,
        "log_file": None,
        "log_debug": None,
        "dest_surl_uuid": None,
        "file_state_initial": None,
    }


# --- the application --------------------------------------------------------------------


class Fts3Api:
    """Route handlers bound to one store, engine and settings."""

    def __init__(self, settings: EmulatorSettings, store: Store, engine: TransferEngine) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine

    # identity ------------------------------------------------------------------------------
    def user(self, request: Request) -> UserIdentity:
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            identity = identity_from_token(authorization[7:].strip(), self.settings.tokens)
            if identity is None:
                raise ApiError(401, "Invalid or unknown bearer token")
            return identity
        der = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_der")
        if der:
            return identity_from_certificate(der)
        raise ApiError(403, "No credentials: present a client certificate or a bearer token")

    def _owned_job(self, job_id: str, user: UserIdentity) -> dict[str, Any]:
        job = self.store.get_job(job_id)
        if job is None:
            raise ApiError(404, f'No job with the id "{job_id}" has been found')
        if job["user_dn"] != user.user_dn and job["vo_name"] != user.vo_name:
            raise ApiError(403, f'Not enough permissions to check the job "{job_id}"')
        return job

    # endpoints -----------------------------------------------------------------------------
    async def root(self, request: Request) -> Response:
        return json_response(
            {
                "api": API_VERSION,
                "core": API_VERSION,
                "schema": API_VERSION,
                "delegation": {"major": 2, "minor": 0, "patch": 0},
                "_links": {
                    "curies": [],
                    "fts:whoami": {"href": "/whoami"},
                    "fts:joblist": {"href": "/jobs{?vo_name,user_dn,dlg_id,state_in}"},
                    "fts:job": {"href": "/jobs/{id}"},
                },
            }
        )

    async def whoami(self, request: Request) -> Response:
        user = self.user(request)
        return json_response(
            {
                "user_dn": user.user_dn,
                "dn": [user.user_dn],
                "base_id": str(FTS_BASE_ID),
                "voms_cred": [],
                "vos": [user.vo_name],
                "vos_id": [str(uuid.uuid5(FTS_BASE_ID, user.vo_name))],
                "roles": [],
                "level": {"transfer": "vo", "config": None, "datamanagement": "all"},
                "delegation_id": user.delegation_id,
                "method": user.method,
                "is_root": False,
            }
        )

    def _own_delegation_id(self, request: Request, user: UserIdentity) -> str:
        dlg_id: str = request.path_params["dlg_id"]
        if dlg_id != user.delegation_id:
            raise ApiError(403, "The requested ID and the credentials ID do not match")
        return dlg_id

    async def delegation_info(self, request: Request) -> Response:
        user = self.user(request)
        dlg_id = self._own_delegation_id(request, user)
        delegation = self.store.get_delegation(dlg_id)
        if not delegation or not delegation["proxy_pem"]:
            return json_response(None if _old_client(request) else [])
        return json_response({"termination_time": delegation["termination_time"], "voms_attrs": []})

    async def delegation_request(self, request: Request) -> Response:
        user = self.user(request)
        dlg_id = self._own_delegation_id(request, user)
        key_bits = 2048
        der = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_der")
        if der:
            with contextlib.suppress(Exception):
                public_key = x509.load_der_x509_certificate(der).public_key()
                if isinstance(public_key, _SIZED_KEYS):  # the others have no key_size
                    key_bits = public_key.key_size
        csr_pem, key_pem = await asyncio.to_thread(new_request, key_bits)
        self.store.save_request_key(dlg_id, user.user_dn, key_pem)
        return PlainTextResponse(csr_pem, headers={"X-Delegation-ID": dlg_id})

    async def delegation_credential(self, request: Request) -> Response:
        user = self.user(request)
        dlg_id = self._own_delegation_id(request, user)
        delegation = self.store.get_delegation(dlg_id)
        if not delegation or not delegation["request_key"]:
            raise ApiError(400, "No request found for this delegation id")
        body = (await request.body()).decode(errors="replace")
        try:
            credential = accept_credential(body, delegation["request_key"])
        except DelegationError as error:
            raise ApiError(400, str(error)) from error
        self.store.save_credential(dlg_id, credential.proxy_pem, credential.termination_time)
        return Response(status_code=201)

    async def delegation_delete(self, request: Request) -> Response:
        user = self.user(request)
        dlg_id = self._own_delegation_id(request, user)
        if not self.store.delete_delegation(dlg_id):
            raise ApiError(404, "Delegated credentials not found")
        return Response(status_code=204)

    async def submit(self, request: Request) -> Response:
        user = self.user(request)
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as error:
            raise ApiError(400, f"Badly formatted JSON request ({error})") from error
        if not isinstance(body, dict):
            raise ApiError(400, "Badly formatted JSON request")
        if user.needs_delegation:
            self._require_delegation(user)
        if body.get("delete") is not None:
            raise ApiError(405, "Deletion jobs are no longer supported by FTS")
        files = body.get("files")
        if not files:
            raise ApiError(400, "No transfers operations specified")
        params = dict(body.get("params") or {})
        if params.get("id_generator") == "deterministic":
            if params.get("sid") is None:
                raise ApiError(400, "Need sid for deterministic job id generation")
            job_id = deterministic_job_id(user.vo_name, str(params["sid"]))
        else:
            job_id = random_job_id()
        new_files, checksum_given = [], False
        for item in files:
            sources, destinations = item.get("sources") or [], item.get("destinations") or []
            if not sources or not destinations:
                raise ApiError(400, "Invalid value within the request: missing source or dest")
            checksum = item.get("checksum") or "ADLER32"
            checksum_given = checksum_given or ":" in checksum
            filesize = item.get("filesize")
            new_files.append(
                NewFile(
                    source_surl=sources[0],
                    dest_surl=destinations[0],
                    file_state="",
                    checksum=checksum,
                    user_filesize=int(filesize) if filesize not in (None, "") else None,
                    extra={
                        key: item.get(key)
                        for key in (
                            "metadata",
                            "staging_metadata",
                            "archive_metadata",
                            "activity",
                            "selection_strategy",
                        )
                        if item.get(key) is not None
                    },
                )
            )
        job_params = _job_params(params, user, checksum_given)
        initial_state = "STAGING" if (job_params["bring_online"] or 0) > 0 else "SUBMITTED"
        for entry in new_files:
            entry.file_state = initial_state
        job = {
            "job_id": job_id,
            "job_state": initial_state,
            "user_dn": user.user_dn,
            "vo_name": user.vo_name,
            "cred_id": user.delegation_id,
            "source_se": storage_element(new_files[0].source_surl),
            "dest_se": storage_element(new_files[0].dest_surl),
            "submit_time": utc_now().strftime(TIMESTAMP_FORMAT),
            "params": job_params,
        }
        try:
            self.store.insert_job(job, new_files)
        except DuplicateJobError as error:
            raise ApiError(409, "The sid provided by the user is duplicated") from error
        self.engine.wake()
        return json_response({"job_id": job_id})

    def _require_delegation(self, user: UserIdentity) -> None:
        delegation = self.store.get_delegation(user.delegation_id)
        if not delegation or not delegation["termination_time"]:
            raise ApiError(419, f"No delegation found for {user.delegation_id}")
        from datetime import datetime

        termination = datetime.strptime(delegation["termination_time"], TIMESTAMP_FORMAT)
        if termination - utc_now() < timedelta(hours=1):
            raise ApiError(419, "The delegated credentials expire in less than one hour")

    async def list_jobs(self, request: Request) -> Response:
        user = self.user(request)
        query = request.query_params
        if query.get("dlg_id") and query["dlg_id"] != user.delegation_id:
            raise ApiError(403, "The provided delegation id does not match your delegation id")
        if query.get("user_dn") and query["user_dn"] != user.user_dn:
            raise ApiError(
                400, "The provided DN and delegation id do not correspond to the same user"
            )
        limit = None
        if query.get("limit"):
            try:
                limit = int(query["limit"])
            except ValueError as error:
                raise ApiError(400, "The limit must be an integer") from error
            if not 0 <= limit <= 500:
                raise ApiError(400, "The limit must be positive and less or equal than 500")
        filters = {"cred_id": user.delegation_id}
        for name, column in (
            ("vo_name", "vo_name"),
            ("source_se", "source_se"),
            ("dest_se", "dest_se"),
            ("user_dn", "user_dn"),
        ):
            if query.get(name):
                filters[column] = query[name]
        states = [s for s in (query.get("state_in") or "").split(",") if s] or None
        # FTS: without state_in, or with state_in but neither limit nor time_window, only jobs
        # that have not finished are listed.
        unfinished_only = states is None or (limit is None and not query.get("time_window"))
        jobs = self.store.list_jobs(
            states=states, unfinished_only=unfinished_only, filters=filters, limit=limit
        )
        if query.get("time_window") and states:
            jobs = [j for j in jobs if _within_window(j, query["time_window"])]
        rendered = [render_job(job) for job in jobs]
        if query.get("fields"):
            fields = query["fields"].split(",")
            rendered = [{f: job[f] for f in fields if f in job} for job in rendered]
        return json_response(rendered)

    async def get_jobs(self, request: Request) -> Response:
        user = self.user(request)
        job_ids = request.path_params["job_list"].split(",")
        file_fields = [f for f in request.query_params.get("files", "").split(",") if f]
        statuses: list[dict[str, Any]] = []
        errors = 0
        for job_id in filter(None, job_ids):
            try:
                job = self._owned_job(job_id, user)
            except ApiError as error:
                statuses.append(
                    {
                        "job_id": job_id,
                        "http_status": status_line(error.status),
                        "http_message": error.message,
                    }
                )
                errors += 1
                continue
            rendered = render_job(job)
            if file_fields:
                rendered["files"] = [
                    {f: v for f, v in render_file(entry, job).items() if f in file_fields}
                    for entry in self.store.files_of(job_id)
                ]
            statuses.append(rendered)
        if not statuses:
            raise ApiError(400, "No job id given")
        if len(job_ids) == 1:
            single = statuses[0]
            if errors:
                code = int(single["http_status"].split()[0])
                return json_response({**error_body(code, single["http_message"]), **single}, code)
            return json_response(single)
        return json_response(statuses, 207 if errors else 200)

    async def get_files(self, request: Request) -> Response:
        user = self.user(request)
        job = self._owned_job(request.path_params["job_id"], user)
        return json_response(
            [render_file(entry, job) for entry in self.store.files_of(job["job_id"])]
        )

    async def get_dm(self, request: Request) -> Response:
        user = self.user(request)
        self._owned_job(request.path_params["job_id"], user)
        return json_response([])

    async def cancel_jobs(self, request: Request) -> Response:
        user = self.user(request)
        job_ids = [j for j in request.path_params["job_list"].split(",") if j]
        responses: list[dict[str, Any]] = []
        now = utc_now()
        for job_id in job_ids:
            try:
                job = self._owned_job(job_id, user)
            except ApiError as error:
                responses.append(
                    {
                        "job_id": job_id,
                        "http_status": status_line(error.status),
                        "http_message": error.message,
                    }
                )
                continue
            if job["job_state"] not in JOB_ACTIVE_STATES:
                rendered = render_job(job)
                rendered.update(
                    http_status="304 Not Modified", http_message="The job is in a terminal state"
                )
                responses.append(rendered)
                continue
            reason = "Job canceled by the user"
            canceled = []
            for entry in self.store.files_of(job_id):
                if entry["file_state"] in FILE_ACTIVE_STATES and self.store.update_file(
                    entry["file_id"],
                    only_if_state_in=FILE_ACTIVE_STATES,
                    file_state="CANCELED",
                    reason=reason,
                    finish_time=now,
                ):
                    canceled.append(entry["file_id"])
            self.store.update_job(
                job_id, job_state="CANCELED", cancel_job=1, job_finished=now, reason=reason
            )
            self.engine.cancel_files(canceled)
            rendered = render_job(self.store.get_job(job_id) or job)
            rendered["http_message"] = None
            responses.append(rendered)
        if not responses:
            raise ApiError(400, "No job id given")
        if len(job_ids) == 1:
            single = responses[0]
            code = int(single["http_status"].split()[0])
            if code not in (200, 304):
                return json_response({**error_body(code, single["http_message"]), **single}, code)
            return json_response(single)
        failed = any(
            "job_state" not in r and not r["http_status"].startswith("2") for r in responses
        )
        return json_response(responses, 207 if failed else 200)

    async def cancel_files(self, request: Request) -> Response:
        user = self.user(request)
        job = self._owned_job(request.path_params["job_id"], user)
        requested = [f for f in request.path_params["file_ids"].split(",") if f]
        files = {str(e["file_id"]): e for e in self.store.files_of(job["job_id"])}
        now = utc_now()
        changed: list[str] = []
        canceled: list[int] = []
        for file_id in requested:
            entry = files.get(file_id)
            if entry is None:
                changed.append("File does not belong to the job")
            elif entry["file_state"] not in FILE_ACTIVE_STATES:
                changed.append(entry["file_state"])
            elif self.store.update_file(
                entry["file_id"],
                only_if_state_in=FILE_ACTIVE_STATES,
                file_state="CANCELED",
                finish_time=now,
                reason="File canceled by the user",
            ):
                changed.append("CANCELED")
                canceled.append(entry["file_id"])
            else:
                changed.append(self.store.file_state(entry["file_id"]))
        self.engine.cancel_files(canceled)
        remaining = [e["file_state"] for fid, e in files.items() if fid not in requested]
        if not any(s in FILE_ACTIVE_STATES for s in remaining + changed):
            self.store.update_job(
                job["job_id"], job_state="CANCELED", cancel_job=1, job_finished=now
            )
        else:
            self.engine.refresh_job(job["job_id"])
        return json_response(changed if len(changed) > 1 else changed[0])

    async def get_faults(self, request: Request) -> Response:
        self.user(request)
        return json_response(self.settings.faults.as_dict())

    async def set_faults(self, request: Request) -> Response:
        self.user(request)
        try:
            values = json.loads(await request.body() or b"{}")
            self.settings.faults.update(values)
        except (ValueError, TypeError) as error:
            raise ApiError(400, f"Bad fault settings: {error}") from error
        return json_response(self.settings.faults.as_dict())


def _job_params(params: dict[str, Any], user: UserIdentity, checksum_given: bool) -> dict[str, Any]:
    """The job parameters FTS stores: nulls replaced by defaults, flags normalised."""
    metadata = params.get("job_metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        metadata = {"label": metadata}
    metadata = {**metadata, "auth_method": user.method}

    def number(name: str, default: int | None) -> int | None:
        value = params.get(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except (TypeError, ValueError) as error:
            raise ApiError(400, f"Invalid value within the request: {name}={value!r}") from error

    return {
        "verify_checksum": verify_checksum_mode(params.get("verify_checksum"), checksum_given),
        "overwrite_flag": "Y" if params.get("overwrite") else None,
        "overwrite": bool(params.get("overwrite")),
        "job_metadata": metadata,
        "bring_online": number("bring_online", -1),
        "archive_timeout": number("archive_timeout", -1),
        "copy_pin_lifetime": number("copy_pin_lifetime", -1),
        "max_time_in_queue": number("max_time_in_queue", None),
        "priority": number("priority", 3),
        "retry": number("retry", 0),
        "retry_delay": number("retry_delay", 0),
        "timeout": number("timeout", None),
        "source_spacetoken": params.get("source_spacetoken"),
        "destination_spacetoken": params.get("destination_spacetoken"),
        "dst_file_report": bool(params.get("dst_file_report")),
        "internal_job_params": None,
        "sid": params.get("sid"),
        "id_generator": params.get("id_generator") or "standard",
    }


def _old_client(request: Request) -> bool:
    """Clients before 3.12 expect ``null`` for "no delegation", newer ones ``[]``."""
    match = re.search(r"fts-python-bindings/(\d+)\.(\d+)", request.headers.get("user-agent", ""))
    return match is not None and (int(match[1]), int(match[2])) < (3, 12)


def _within_window(job: dict[str, Any], window: str) -> bool:
    from datetime import datetime

    hours, _, minutes = window.partition(":")
    try:
        span = timedelta(hours=int(hours), minutes=int(minutes or 0))
    except ValueError:
        return True
    finished = job["job_finished"]
    return finished is None or datetime.strptime(finished, TIMESTAMP_FORMAT) >= utc_now() - span


# --- middleware -------------------------------------------------------------------------


class CollapseSlashes:
    """The official client sends ``//whoami``: collapse repeated slashes before routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = dict(scope)
            scope["path"] = _MULTI_SLASH.sub("/", scope["path"])
            scope["raw_path"] = _MULTI_SLASH.sub("/", scope["path"]).encode()
        await self.app(scope, receive, send)


class InjectFaults:
    """Answers a fraction of API calls with 500 or delays them (never the admin endpoint)."""

    def __init__(self, app: ASGIApp, settings: EmulatorSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        faults = self.settings.faults
        if scope["type"] == "http" and not scope["path"].startswith("/admin"):
            if faults.http_delay_rate and random.random() < faults.http_delay_rate:
                await asyncio.sleep(faults.http_delay_seconds)
            if faults.http_error_rate and random.random() < faults.http_error_rate:
                response = json_response(error_body(500, "Injected fault (fault injection)"), 500)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _handle(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as error:
            return json_response(error_body(error.status, error.message), error.status)

    return endpoint


def create_app(settings: EmulatorSettings, store: Store, engine: TransferEngine) -> ASGIApp:
    api = Fts3Api(settings, store, engine)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):  # type: ignore[no-untyped-def]
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()
            store.close()

    routes = [
        Route("/", _handle(api.root), methods=["GET"]),
        Route("/whoami", _handle(api.whoami), methods=["GET"]),
        Route("/delegation/{dlg_id}", _handle(api.delegation_info), methods=["GET"]),
        Route("/delegation/{dlg_id}", _handle(api.delegation_delete), methods=["DELETE"]),
        Route("/delegation/{dlg_id}/request", _handle(api.delegation_request), methods=["GET"]),
        Route(
            "/delegation/{dlg_id}/credential",
            _handle(api.delegation_credential),
            methods=["PUT", "POST"],
        ),
        Route("/jobs", _handle(api.submit), methods=["POST", "PUT"]),
        Route("/jobs", _handle(api.list_jobs), methods=["GET"]),
        Route("/jobs/{job_id}/files", _handle(api.get_files), methods=["GET"]),
        Route("/jobs/{job_id}/dm", _handle(api.get_dm), methods=["GET"]),
        Route("/jobs/{job_id}/files/{file_ids}", _handle(api.cancel_files), methods=["DELETE"]),
        Route("/jobs/{job_list}", _handle(api.get_jobs), methods=["GET"]),
        Route("/jobs/{job_list}", _handle(api.cancel_jobs), methods=["DELETE"]),
        Route("/admin/faults", _handle(api.get_faults), methods=["GET"]),
        Route("/admin/faults", _handle(api.set_faults), methods=["PUT", "POST"]),
    ]

    async def not_found(request: Request, _exc: Exception) -> Response:
        return json_response(error_body(404, f"No route for {request.url.path}"), 404)

    async def not_allowed(request: Request, _exc: Exception) -> Response:
        return json_response(error_body(405, f"{request.method} not allowed"), 405)

    async def crashed(request: Request, exc: Exception) -> Response:
        return json_response(error_body(500, f"Internal error: {exc}"), 500)

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_allowed, 500: crashed},
    )
    return CollapseSlashes(InjectFaults(app, settings))
