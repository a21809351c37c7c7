"""Emulator settings: defaults < YAML file < environment (FTS3_EMULATOR_*) < command line."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_CONFIG_FILE = REPO_ROOT / "deploy" / "local" / "fts3" / "emulator.yaml"
ENV_PREFIX = "FTS3_EMULATOR_"


@dataclass
class FaultSettings:
    """Fault injection for reliability tests; everything off by default."""

    http_error_rate: float = 0.0  # fraction of API calls answered 500
    http_delay_rate: float = 0.0  # fraction of API calls delayed
    http_delay_seconds: float = 2.0
    transfer_failure_rate: float = 0.0  # fraction of copies failing

    def update(self, values: dict[str, Any]) -> None:
        for item in fields(self):
            if item.name in values and values[item.name] is not None:
                setattr(self, item.name, float(values[item.name]))

    def as_dict(self) -> dict[str, float]:
        return {item.name: getattr(self, item.name) for item in fields(self)}


@dataclass
class EmulatorSettings:
    host: str = "127.0.0.1"
    port: int = 8446
    db_path: Path = REPO_ROOT / "var" / "fts3" / "fts3.sqlite"
    cert: Path = REPO_ROOT / "var" / "certs" / "hostcert.pem"
    key: Path = REPO_ROOT / "var" / "certs" / "hostkey.pem"
    ca: Path = REPO_ROOT / "var" / "certs" / "ca.pem"
    # bearer token -> {"user_dn": ..., "vo": ...}
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    concurrency: int = 8  # copies running at once (small copies are ~ms of server work each)
    poll_interval: float = 0.5  # seconds between staging/archiving polls (first poll, backoff base)
    poll_max_interval: float = 5.0  # a file still not on tape/online is polled at most this rarely
    query_batch: int = 8  # paths per `query prepare` (the answer is capped at ~2 KB)
    query_parallel: int = 2  # `query prepare` calls in flight (each runs the tape script)
    copy_mode: str = "auto"  # auto: streamed below tpc_min_size, else TPC | tpc | streamed
    tpc_min_size: int = 16 << 20  # bytes; smaller files are copied two-party (streamed)
    retry_default: int = 0  # retries FTS applies when a job says retry=0
    copy_timeout: float = 3600.0
    log_level: str = "info"
    faults: FaultSettings = field(default_factory=FaultSettings)

    def apply(self, values: dict[str, Any]) -> None:
        for item in fields(self):
            if item.name not in values or values[item.name] is None:
                continue
            value = values[item.name]
            if item.name == "faults":
                self.faults.update(value)
            elif item.name == "tokens":
                self.tokens = {str(k): dict(v) for k, v in dict(value).items()}
            elif item.name in {"db_path", "cert", "key", "ca"}:
                setattr(self, item.name, Path(value))
            elif item.name in {
                "port",
                "concurrency",
                "retry_default",
                "query_batch",
                "query_parallel",
                "tpc_min_size",
            }:
                setattr(self, item.name, int(value))
            elif item.name in {"poll_interval", "copy_timeout", "poll_max_interval"}:
                setattr(self, item.name, float(value))
            else:
                setattr(self, item.name, str(value))


def _from_environment(environ: dict[str, str]) -> dict[str, Any]:
    """FTS3_EMULATOR_PORT=8446, FTS3_EMULATOR_FAULTS__HTTP_ERROR_RATE=0.1,
    FTS3_EMULATOR_TOKENS="tok1=/CN=user1,tok2=/CN=user2"."""
    values: dict[str, Any] = {}
    faults: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key.startswith("faults__"):
            faults[key[len("faults__") :]] = value
        elif key == "tokens":
            values["tokens"] = {
                token: {"user_dn": dn}
                for token, _, dn in (entry.partition("=") for entry in value.split(","))
                if token
            }
        else:
            values[key] = value
    if faults:
        values["faults"] = faults
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fts3-emulator", description=__doc__)
    parser.add_argument("--config", type=Path, help="YAML settings file")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--db-path", dest="db_path")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--ca")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--poll-interval", dest="poll_interval", type=float)
    parser.add_argument("--copy-mode", dest="copy_mode", choices=["auto", "tpc", "streamed"])
    parser.add_argument("--log-level", dest="log_level")
    parser.add_argument(
        "--token", action="append", default=[], help="TOKEN=USER_DN, may be repeated"
    )
    return parser


def load_settings(
    argv: list[str] | None = None, environ: dict[str, str] | None = None
) -> EmulatorSettings:
    args = build_parser().parse_args(argv)
    environ = dict(os.environ if environ is None else environ)
    settings = EmulatorSettings()
    config_file = args.config or Path(environ.get(f"{ENV_PREFIX}CONFIG", DEFAULT_CONFIG_FILE))
    if config_file and Path(config_file).is_file():
        settings.apply(yaml.safe_load(Path(config_file).read_text()) or {})
    settings.apply(_from_environment(environ))
    cli = {k: v for k, v in vars(args).items() if k not in {"config", "token"}}
    settings.apply(cli)
    for entry in args.token:
        token, _, dn = entry.partition("=")
        settings.tokens[token] = {"user_dn": dn or "/CN=token-user"}
    return settings
