"""Profile the gateway's POST /archive in-process, wired to the in-memory fakes.

The real ``create_app`` (middleware, session cache, validation, limits, SQLite idempotency and
ledger, ``plan_archive``, INFO JSON logs to a file) with ICAT faked (``FakeSessions``,
``FakeVocabulary``) and a publisher that does what the bus publisher does up to the socket
(envelope, JSON encoding) but sends nothing. Requests go through ``httpx.ASGITransport``, so
no network and no broker: what remains is the gateway's own CPU, which is what the bench's
ratio against a bare endpoint measures.

    .venv/bin/python bench/gateway_profile.py --small 2000 --concurrency 64 --html small.html
    .venv/bin/python bench/gateway_profile.py --small 0 --large 5 --html large.html

Without ``--html`` it prints pyinstrument's text tree; ``--no-profile`` prints only timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import body_with_files

from datastore_common.logging import configure_logging
from datastore_common.messages import Payload, wrap
from datastore_common.ports import Publisher
from datastore_common.settings import DatastoreSettings
from datastore_common.testing.fake_vocabulary import FakeVocabulary
from datastore_common.testing.fakes import FakeSessions
from datastore_gateway.main import create_app


class EncodingPublisher(Publisher):
    """What ``Bus.publish_payload`` does before the socket: wrap, encode; then drop it."""

    def __init__(self) -> None:
        self.published = 0

    async def publish(
        self,
        data: Payload,
        *,
        correlation_id: str,
        user: str | None = None,
        message_id: uuid.UUID | None = None,
    ) -> None:
        envelope = wrap(
            data, source="gateway", correlation_id=correlation_id, user=user, id=message_id
        )
        envelope.model_dump_json().encode()
        self.published += 1


def quiet_transport() -> None:
    """httpx's ASGI transport looks for trio on every request (a failed import each time):
    not the gateway's cost, so keep it out of the profile."""
    import httpx._transports.asgi as asgi

    asgi.is_running_trio = lambda: False  # type: ignore[attr-defined]


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    quiet_transport()
    settings = DatastoreSettings(
        gateway={"state_db": f"sqlite:///{work}/gateway.sqlite"},
        fts3={"vo": "profile-vo"},
        log={"level": "INFO", "format": "json"},
    )
    app = create_app(
        settings,
        sessions=FakeSessions({"simple/root": "pw"}),
        publisher=EncodingPublisher(),
        vo="profile-vo",
        vocabulary=FakeVocabulary(),
    )
    results: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            login = await client.post(
                "/login", json={"auth": "simple", "username": "root", "password": "pw"}
            )
            headers = {
                "Authorization": f"Bearer {login.json()['sessionId']}",
                "Content-Type": "application/json",
            }
            tag = uuid.uuid4().hex[:6]
            small = [
                json.dumps(body_with_files(4, f"{tag}-small-{i}")).encode()
                for i in range(args.small)
            ]
            large = [
                json.dumps(body_with_files(args.files, f"{tag}-large-{i}")).encode()
                for i in range(args.large)
            ]
            for i in range(20):  # warm-up: imports, first plan, caches
                body = json.dumps(body_with_files(4, f"{tag}-warm-{i}")).encode()
                assert (await client.post("/archive", content=body, headers=headers)).is_success

            profiler = None
            if not args.no_profile:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005, async_mode="disabled")
                profiler.start()
            if small:
                queue = list(reversed(small))

                async def worker() -> None:
                    while queue:
                        answer = await client.post("/archive", content=queue.pop(), headers=headers)
                        assert answer.status_code == 202, answer.text

                started = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(args.concurrency)))
                elapsed = time.perf_counter() - started
                results["small_per_second"] = round(len(small) / elapsed, 1)
            seconds = []
            for body in large:
                started = time.perf_counter()
                answer = await client.post("/archive", content=body, headers=headers)
                seconds.append(time.perf_counter() - started)
                assert answer.status_code == 202, answer.text
            if seconds:
                results["large_median_seconds"] = round(statistics.median(seconds), 4)
            if profiler is not None:
                profiler.stop()
                if args.html:
                    args.html.write_text(profiler.output_html())
                elif args.flat:
                    from pyinstrument.renderers import ConsoleRenderer

                    flat = ConsoleRenderer(flat=True, show_all=True, unicode=True, color=False)
                    print(profiler.output(flat)[: 100 * 120])
                else:
                    print(profiler.output_text(unicode=True, color=False, show_all=args.show_all))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=2000, help="small (4-file) requests")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--large", type=int, default=0, help="large requests, one at a time")
    parser.add_argument("--files", type=int, default=10_000, help="datafiles per large request")
    parser.add_argument("--html", type=Path, help="write pyinstrument's HTML report here")
    parser.add_argument("--flat", action="store_true", help="self time per function")
    parser.add_argument("--show-all", action="store_true", help="no frames hidden")
    parser.add_argument("--no-profile", action="store_true", help="timings only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gateway-profile-") as work:
        configure_logging("gateway", level="INFO", fmt="json")
        terminal = sys.stderr
        with (Path(work) / "gateway.log").open("w") as log_file:
            sys.stderr = log_file  # the JSON log lines go to a file, as in the bench
            try:
                results = asyncio.run(run(args, Path(work)))
            finally:
                sys.stderr = terminal
        print(json.dumps(results))


if __name__ == "__main__":
    main()
