"""The REST surface: authentication, delegation, ids, bulk status, listing, fault injection."""

from __future__ import annotations

import ssl
import subprocess
import uuid
from datetime import datetime

import httpx
import pytest
from fts3.rest.client import Submitter
from fts3.rest.client import easy as fts3
from fts3.rest.client.exceptions import ClientError, NeedDelegation, NotFound, ServerError

from tests.integration.fts3_emulator.helpers import (
    official_context,
    put_random_file,
    unique_dir,
    wait_for_job,
)
from tests.integration.fts3_emulator.proxies import write_proxy

pytestmark = pytest.mark.integration

BASE_ID = uuid.UUID("01874efb-4735-4595-bc9c-591aef8240c9")


def certificate_dn(path) -> str:
    out = subprocess.run(
        ["openssl", "x509", "-in", str(path), "-noout", "-subject", "-nameopt", "compat"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().removeprefix("subject=")


def test_root_answers_the_api_version_as_ints(fts3_emulator):
    with fts3_emulator.client() as client:
        answer = client.get("/").json()
    assert all(isinstance(answer["api"][k], int) for k in ("major", "minor", "patch"))


def test_doubled_leading_slash_is_routed_without_redirect(fts3_emulator):
    with fts3_emulator.client(follow_redirects=False) as client:
        whoami = client.get(f"{fts3_emulator.url}//whoami")
        jobs = client.get(f"{fts3_emulator.url}//jobs")
    assert whoami.request.url.raw_path == b"//whoami"
    assert whoami.status_code == 200 and "delegation_id" in whoami.json()
    assert jobs.status_code == 200 and isinstance(jobs.json(), list)


def test_whoami_reports_the_oneline_dn_and_delegation_id(fts3_emulator):
    ctx = official_context(fts3_emulator)
    me = fts3.whoami(ctx)
    dn = certificate_dn(fts3_emulator.user_cert)
    assert me["user_dn"] == dn and dn.startswith("/C=")
    assert me["method"] == "certificate"
    assert me["vos"] == [me["delegation_id"]]
    assert me["base_id"] == str(BASE_ID)


def test_delegation_keeps_a_verified_proxy(fts3_emulator):
    ctx = official_context(fts3_emulator)
    dlg_id = fts3.delegate(ctx, force=True)
    with fts3_emulator.client() as client:
        info = client.get(f"/delegation/{dlg_id}").json()
        other = client.get("/delegation/0123456789abcdef")
    termination = datetime.strptime(info["termination_time"], "%Y-%m-%dT%H:%M:%S")
    assert termination > datetime.utcnow()
    assert other.status_code == 403


def test_submit_without_delegation_is_419_for_certificate_users(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator)
    dlg_id = fts3.whoami(ctx)["delegation_id"]
    with fts3_emulator.client() as client:
        assert client.delete(f"/delegation/{dlg_id}").status_code == 204
        assert client.get(f"/delegation/{dlg_id}").json() == []
    job = fts3.new_job([fts3.new_transfer(f"{fts3_xrootd.idc}/x", f"{fts3_xrootd.udc}/x")])
    with pytest.raises(NeedDelegation):
        Submitter(ctx).submit(transfers=job["files"], params=job["params"])  # no delegation
    fts3.delegate(ctx)
    with fts3_emulator.client() as client:
        assert "termination_time" in client.get(f"/delegation/{dlg_id}").json()


def test_deterministic_ids_follow_fts_and_a_reused_sid_is_409(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator)
    vo = fts3.whoami(ctx)["vos"][0]
    sid = f"sid-{uuid.uuid4()}"
    folder = unique_dir()
    put_random_file(f"{fts3_xrootd.idc}/{folder}/d", 1024)
    job = fts3.new_job(
        [fts3.new_transfer(f"{fts3_xrootd.idc}/{folder}/d", f"{fts3_xrootd.udc}/{folder}/d")],
        id_generator="deterministic",
        sid=sid,
    )

    job_id = fts3.submit(ctx, job)

    assert job_id == str(uuid.uuid5(uuid.uuid5(BASE_ID, vo), sid))
    with pytest.raises(ClientError, match="409"):
        fts3.submit(ctx, job)
    with fts3_emulator.client() as client:
        body = {"files": job["files"], "params": {**job["params"], "sid": None}}
        missing_sid = client.post("/jobs", json=body)
    assert missing_sid.status_code == 400
    assert wait_for_job(ctx, job_id)[0]["job_state"] == "FINISHED"


def test_bulk_status_lists_in_order_and_207_marks_unknown_ids(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator)
    folder = unique_dir()
    ids = []
    for name in ("a", "b"):
        put_random_file(f"{fts3_xrootd.idc}/{folder}/{name}", 1024)
        ids.append(
            fts3.submit(
                ctx,
                fts3.new_job(
                    [
                        fts3.new_transfer(
                            f"{fts3_xrootd.idc}/{folder}/{name}",
                            f"{fts3_xrootd.udc}/{folder}/{name}",
                        )
                    ]
                ),
            )
        )
    unknown = str(uuid.uuid4())

    statuses = fts3.get_jobs_statuses(ctx, ids, list_files=True)
    single = fts3.get_jobs_statuses(ctx, ids[:1])
    with fts3_emulator.client() as client:
        mixed = client.get(
            f"/jobs/{ids[0]},{unknown},{ids[1]}", params={"files": "file_state,dest_surl"}
        )
        alone = client.get(f"/jobs/{unknown}")

    assert [s["job_id"] for s in statuses] == ids
    assert all(
        set(s["files"][0])
        <= {
            "file_state",
            "dest_surl",
            "finish_time",
            "start_time",
            "reason",
            "source_surl",
            "file_metadata",
        }
        for s in statuses
    )
    assert isinstance(single, dict) and single["job_id"] == ids[0]
    assert mixed.status_code == 207
    entries = mixed.json()
    assert [e["job_id"] for e in entries] == [ids[0], unknown, ids[1]]
    assert entries[1]["http_status"] == "404 Not Found"
    assert entries[0]["http_status"] == "200 Ok"
    assert set(entries[0]["files"][0]) == {"file_state", "dest_surl"}
    assert alone.status_code == 404
    assert alone.json()["status"] == "404 Not Found"
    with pytest.raises(NotFound):
        fts3.get_job_status(ctx, unknown)


def test_list_jobs_filters(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator)
    me = fts3.whoami(ctx)
    folder = unique_dir()
    put_random_file(f"{fts3_xrootd.tape}/{folder}/l", 1024)
    job_id = fts3.submit(
        ctx,
        fts3.new_job(
            [fts3.new_transfer(f"{fts3_xrootd.tape}/{folder}/l", f"{fts3_xrootd.udc}/{folder}/l")],
            bring_online=3600,
        ),
    )
    try:
        listed = fts3.list_jobs(
            ctx,
            user_dn=me["user_dn"],
            vo=me["vos"][0],
            source_se=fts3_xrootd.tape,
            dest_se=fts3_xrootd.udc,
            delegation_id=me["delegation_id"],
            state_in=["STAGING", "SUBMITTED", "ACTIVE"],
        )
        other_dest = fts3.list_jobs(ctx, dest_se=fts3_xrootd.idc)
    finally:
        fts3.cancel(ctx, job_id)
    assert job_id in {j["job_id"] for j in listed}
    assert job_id not in {j["job_id"] for j in other_dest}
    assert job_id not in {j["job_id"] for j in fts3.list_jobs(ctx)}  # terminal now


def test_rfc3820_proxy_client_certificate_maps_to_the_end_entity_dn(fts3_emulator, tmp_path):
    proxy = write_proxy(fts3_emulator.user_cert, fts3_emulator.user_key, tmp_path / "x509up")
    ctx = fts3.Context(
        fts3_emulator.url,
        ucert=str(proxy),
        ukey=str(proxy),
        capath=str(fts3_emulator.ca),
        verify=True,
    )
    me = fts3.whoami(ctx)
    assert me["user_dn"] == certificate_dn(fts3_emulator.user_cert)
    assert me["delegation_id"] == fts3.whoami(official_context(fts3_emulator))["delegation_id"]
    assert fts3.delegate(ctx) == me["delegation_id"]


def test_requests_without_credentials_are_refused(fts3_emulator):
    with fts3_emulator.client(with_cert=False) as client:
        assert client.get("/whoami").status_code == 403
        assert client.get("/jobs").status_code == 403
        bad = client.get("/whoami", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert bad.json()["status"] == "401 Unauthorized"


def test_untrusted_client_certificate_is_refused_at_the_handshake(fts3_emulator, tmp_path):
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=stranger",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(cafile=str(fts3_emulator.ca))
    context.load_cert_chain(str(cert), str(key))
    with pytest.raises(httpx.HTTPError), httpx.Client(verify=context) as client:
        client.get(f"{fts3_emulator.url}//whoami").raise_for_status()


def test_token_users_submit_without_delegation(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator, token=fts3_emulator.token)
    me = fts3.whoami(ctx)
    assert me["user_dn"] == fts3_emulator.token_dn and me["method"] == "oauth2"
    folder = unique_dir()
    put_random_file(f"{fts3_xrootd.idc}/{folder}/t", 1024)
    job = fts3.new_job(
        [fts3.new_transfer(f"{fts3_xrootd.idc}/{folder}/t", f"{fts3_xrootd.udc}/{folder}/t")]
    )
    job_id = Submitter(ctx).submit(transfers=job["files"], params=job["params"])
    finished, _ = wait_for_job(ctx, job_id)
    assert finished["job_state"] == "FINISHED"
    assert finished["job_metadata"]["auth_method"] == "oauth2"


def test_fault_injection_via_the_admin_endpoint(fts3_emulator, fts3_xrootd):
    ctx = official_context(fts3_emulator)
    with fts3_emulator.client() as client:
        try:
            assert client.put("/admin/faults", json={"http_error_rate": 1.0}).status_code == 200
            with pytest.raises(ServerError):
                fts3.whoami(ctx)
            client.put(
                "/admin/faults",
                json={"http_error_rate": 0.0, "http_delay_rate": 1.0, "http_delay_seconds": 0.5},
            )
            elapsed = client.get("/whoami").elapsed.total_seconds()
            assert elapsed >= 0.5
            client.put("/admin/faults", json={"http_delay_rate": 0.0, "transfer_failure_rate": 1.0})
            folder = unique_dir()
            put_random_file(f"{fts3_xrootd.idc}/{folder}/f", 1024)
            job_id = fts3.submit(
                ctx,
                fts3.new_job(
                    [
                        fts3.new_transfer(
                            f"{fts3_xrootd.idc}/{folder}/f", f"{fts3_xrootd.udc}/{folder}/f"
                        )
                    ],
                    retry=2,
                ),
            )
            job, _ = wait_for_job(ctx, job_id)
        finally:
            client.put(
                "/admin/faults",
                json={"http_error_rate": 0.0, "http_delay_rate": 0.0, "transfer_failure_rate": 0.0},
            )
        assert client.get("/admin/faults").json()["transfer_failure_rate"] == 0.0
    assert job["job_state"] == "FAILED"
    assert "Injected" in job["files"][0]["reason"]
    assert job["files"][0]["retry"] == 2  # retry=2: three attempts
