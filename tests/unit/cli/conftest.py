"""The ``datastore`` command against a gateway built in-process on the unit fakes
(tests/unit/gateway/conftest.py): the command's HTTP goes to the real routes through
starlette's TestClient, and each "sleep" while it follows a request feeds the gateway's
ledger the next event, as the ledger consumer would."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner, Result

from datastore_cli.cli import Deps, app
from datastore_common.messages import Envelope, Payload, wrap
from datastore_gateway.ledger import Ledger
from datastore_gateway.ledger_feed import follow
from tests.unit.gateway.conftest import Gateway, build_gateway


@dataclass
class Command:
    """Runs ``datastore ...`` as a person would type it; ``events`` are fed to the ledger
    one per wait while a request is followed (each made when it is due, as it may name the
    request the command just sent)."""

    gateway: Gateway
    config_dir: Path
    events: list[Callable[[], Payload]] = field(default_factory=list)
    waits: int = 0

    def deps(self) -> Deps:
        return Deps(
            connect=lambda url: self.gateway.client,
            sleep=self._next_event,
            config_dir=self.config_dir,
            interval=0.0,
        )

    def __call__(self, *args: str, input: str | None = None) -> Result:
        # A wide terminal: rich folds long ids to the width, and tests look for them whole.
        runner = CliRunner(env={"COLUMNS": "200"})
        return runner.invoke(app, list(args), obj=self.deps(), input=input)

    def login(self) -> None:
        result = self("login", "--username", "root", input="pw\n")
        assert result.exit_code == 0, result.output

    def feed(self, data: Payload) -> None:
        ledger = self.gateway.app.state.gateway.ledger
        assert isinstance(ledger, Ledger)
        envelope: Envelope[Any] = wrap(
            data, source="icat-writer", correlation_id="c", user="simple/root"
        )
        portal = self.gateway.client.portal
        assert portal is not None
        portal.call(functools.partial(follow, envelope, ledger=ledger))

    def _next_event(self, _: float) -> None:
        self.waits += 1
        assert self.waits < 100, "followed a request that never ends"
        if self.events:
            self.feed(self.events.pop(0)())


@pytest.fixture
def command(tmp_path: Path) -> Iterator[Command]:
    harness = build_gateway(tmp_path)
    # The gateway's own log lines would land in the command's captured output.
    with structlog.testing.capture_logs(), harness.client:
        yield Command(harness, tmp_path / "config")
