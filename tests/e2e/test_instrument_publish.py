"""An instrument archives straight through the broker, with the gateway down.

The instrument's account (tests/support/stack_fixtures.py: the session's instrument broker
user, archiving as simple/root for the instrument "instrument") publishes the seed's archive
body with the helper (``datastore-publish``), hears ``archive.accepted`` on its own answer
queue, and the dataset reaches FINISHED in ICAT; once the gateway is back, the ledger shows
the request FINISHED (``source: broker``, its instrument) and the instrument hears its
``request.completed``. Publishing it again is harmless (the same request, the same answer).
A malformed message, an instrument name the account was not given, a name ICAT does not know
and another ICAT identity are each answered ``archive.rejected`` with the reason, and change
nothing: no investigation in ICAT, nothing in the ledger.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from datastore_common.domain.senders import INSTRUMENT
from datastore_common.instrument import InstrumentLink, build_request
from datastore_common.messages import ArchiveRejected, ArchiveRequested, Envelope
from tests.e2e.api_client import (
    ARCHIVAL_STATE,
    archival_parameters,
    dataset_folder,
    icat_root,
    login,
    wait_for,
    write_idc_files,
)
from tests.support.factories import seed_body
from tests.support.stack_fixtures import VENV_BIN, DatastoreStack, StackFactory

pytestmark = pytest.mark.e2e
FILES = ["file_0000.nxs", "file_0001.nxs", "file_0002.nxs", "file_0003.nxs"]
WINDOW = 24 * 3600.0


def helper(stack: DatastoreStack, request_file: Path, *args: str) -> subprocess.Popen[str]:
    """``datastore-publish archive <file> <args> --json`` as the instrument account, from
    the stack's configuration (the instrument's credentials in the environment)."""
    return subprocess.Popen(
        [str(VENV_BIN / "datastore-publish"), "archive", str(request_file), *args, "--json"],
        env={
            **os.environ,
            "DATASTORE_CONFIG": str(stack.config_path),
            "DATASTORE__BROKER__URL": stack.broker_urls[INSTRUMENT],
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float) -> tuple[int, dict[str, Any], str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, json.loads(out) if out.strip() else {}, err


def ledger_items(stack: DatastoreStack, headers: dict[str, str], name: str) -> list[Any]:
    answer = httpx.get(
        f"{stack.gateway_url}/requests",
        params={"investigation": name, "mine": "false"},
        headers=headers,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    items: list[Any] = answer.json()["items"]
    return items


async def rejections(stack: DatastoreStack, names: dict[str, str]) -> dict[str, ArchiveRejected]:
    """Publish each bad request as the instrument; the rejection each one got."""
    url = stack.broker_urls[INSTRUMENT]
    exchange = stack.settings.broker.exchange
    answers: dict[str, ArchiveRejected] = {}

    async def answer_to(link: InstrumentLink, request_id: str, message_id: str) -> Any:
        envelope: Envelope[Any] | None = await link.next_answer(
            request_id, within=120, message_id=message_id
        )
        assert envelope is not None, f"no answer to {request_id}"
        assert isinstance(envelope.data, ArchiveRejected), envelope
        return envelope.data

    async with InstrumentLink(url, exchange=exchange, icat_user="simple/root") as link:
        await link.listen()
        # A malformed message: no investigations. Published raw (the helper would refuse it).
        malformed_id, message_id = f"bad-{uuid.uuid4()}", str(uuid.uuid4())
        body = json.dumps(
            {
                "id": message_id,
                "type": ArchiveRequested.TYPE,
                "source": link.instrument,
                "correlation_id": malformed_id,
                "data": {"request_id": malformed_id},
            }
        ).encode()
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            raw = await channel.get_exchange(exchange, ensure=False)
            await raw.publish(
                aio_pika.Message(
                    body,
                    content_type="application/json",
                    user_id=link.instrument,
                    message_id=message_id,
                    correlation_id=malformed_id,
                    type=ArchiveRequested.TYPE,
                ),
                routing_key=ArchiveRequested.TYPE,
                mandatory=True,
            )
        answers["malformed"] = await answer_to(link, malformed_id, message_id)

        # An instrument its account was not given; a dataset type ICAT does not know.
        other_instrument = seed_body(names["other_instrument"], files=1)
        other_instrument["investigations"][0]["instrument"]["name"] = "not-our-instrument"
        unknown_type = seed_body(names["unknown_type"], files=1)
        unknown_type["investigations"][0]["datasets"][0]["datasetType"]["name"] = "no-such-type"
        for what, request_body in (
            ("other_instrument", other_instrument),
            ("unknown_type", unknown_type),
        ):
            request = build_request(request_body, instrument=link.instrument, window=WINDOW)
            sent = await link.publish(request)
            answers[what] = await answer_to(link, request.request_id, sent)

    # Another ICAT identity than the account's.
    async with InstrumentLink(url, exchange=exchange, icat_user="simple/someone-else") as link:
        await link.listen()
        request = build_request(
            seed_body(names["identity"], files=1), instrument=link.instrument, window=WINDOW
        )
        sent = await link.publish(request)
        answers["identity"] = await answer_to(link, request.request_id, sent)
    return answers


@pytest.mark.timeout(900)
def test_an_instrument_archives_through_the_broker_with_the_gateway_down(
    datastore_stack_factory: StackFactory, tmp_path: Path
) -> None:
    stack = datastore_stack_factory()
    stack.stop("gateway")
    settings = stack.settings
    instrument_user = stack.settings_as(INSTRUMENT).broker.user
    client = icat_root(stack.icat_url)

    # -- refused: each answered with its reason, nothing written ---------------------------
    names = {
        what: f"IRJ{uuid.uuid4().hex[:8].upper()}"
        for what in ("other_instrument", "unknown_type", "identity")
    }
    for name in names.values():
        write_idc_files(settings.instrument_data_cache, dataset_folder(name), ["file_0000.nxs"])
    rejected = asyncio.run(rejections(stack, names))
    assert rejected["malformed"].rejection == "schema"
    assert "investigations" in rejected["malformed"].reason
    assert rejected["other_instrument"].rejection == "not_allowed"
    assert "may archive only for instrument" in rejected["other_instrument"].reason
    assert "not-our-instrument" in rejected["other_instrument"].reason
    assert rejected["unknown_type"].rejection == "unknown_names"
    assert "no-such-type" in rejected["unknown_type"].reason
    assert rejected["identity"].rejection == "not_allowed"
    assert "archives as 'simple/root'" in rejected["identity"].reason
    assert all(answer.instrument == instrument_user for answer in rejected.values())

    # -- accepted with the gateway down, archived to FINISHED -------------------------------
    name = f"INS{uuid.uuid4().hex[:8].upper()}"
    write_idc_files(settings.instrument_data_cache, dataset_folder(name), FILES)
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(seed_body(name)))
    code, first, err = finish(helper(stack, request_file, "--wait", "answer"), 180)
    assert code == 0, err
    accepted = first["accepted"]
    assert accepted is not None and first["rejected"] is None, first
    request_id = first["request_id"]
    assert accepted["request_id"] == request_id and accepted["job_ids"]
    assert accepted["owner"] == "simple/root" and accepted["instrument"] == instrument_user
    assert accepted["status_url"].endswith(f"/requests/{request_id}")

    # Published again (a lost confirm, say): the same request, the same answer, then its end.
    again = helper(stack, request_file, "--wait", "--timeout", "180", "--end-timeout", "600")
    final = wait_for(
        lambda: (
            (params := archival_parameters(client, name))
            .get("Dataset:scan_0000", {})
            .get(ARCHIVAL_STATE)
            in {"FINISHED", "FAILED", "FINISHEDDIRTY"}
            and params
        ),
        600,
        "the dataset to end in ICAT with the gateway down",
    )
    assert final["Dataset:scan_0000"][ARCHIVAL_STATE] == "FINISHED", final
    for file in FILES:
        assert final[f"Datafile:{file}"][ARCHIVAL_STATE] == "FINISHED", final
    assert again.poll() is None  # request.completed comes from the gateway's ledger: not yet

    # -- the gateway back: the ledger catches up and tells the instrument -------------------
    stack.start("gateway")
    stack.wait_for_gateway()
    code, second, err = finish(again, 600)
    assert code == 0, err
    assert second["request_id"] == request_id
    assert second["accepted"]["job_ids"] == accepted["job_ids"]  # the same answer
    completed = second["completed"]
    assert completed is not None and completed["state"] == "FINISHED", second
    assert completed["instrument"] == instrument_user
    assert completed["files"] == {"FINISHED": len(FILES)}

    headers = login(stack)
    shown = wait_for(
        lambda: (
            (
                r := httpx.get(
                    f"{stack.gateway_url}/requests/{request_id}", headers=headers, timeout=30
                )
            ).status_code
            == 200
            and r.json()["state"] == "FINISHED"
            and r.json()
        ),
        120,
        "the ledger to show the request FINISHED",
    )
    assert (shown["source"], shown["instrument"]) == ("broker", instrument_user)
    assert shown["owner"] == "simple/root"
    assert [job["job_id"] for job in shown["jobs"]] == accepted["job_ids"]
    # Nothing new: one request, one investigation with its four datafiles.
    assert [item["request_id"] for item in ledger_items(stack, headers, name)] == [request_id]
    datafiles = client.search(
        f"SELECT df.name FROM Datafile df JOIN df.dataset ds JOIN ds.investigation i "
        f"WHERE i.name = '{name}'"
    )
    assert sorted(datafiles) == FILES
    assert len(client.search(f"SELECT i FROM Investigation i WHERE i.name = '{name}'")) == 1

    # The rejected changed nothing: no investigation, no request in the ledger.
    for rejected_name in names.values():
        assert (
            client.search(f"SELECT i FROM Investigation i WHERE i.name = '{rejected_name}'") == []
        )
        assert ledger_items(stack, headers, rejected_name) == []
    stack.assert_running()
