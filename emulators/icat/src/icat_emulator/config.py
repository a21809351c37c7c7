"""Emulator configuration (YAML), with defaults that match deploy/local/icat/emulator.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class Authenticator:
    mnemonic: str
    users: dict[str, str]  # user name -> password
    friendly: str | None = None


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 18080
    database: str = "var/icat/icat.sqlite"
    session_lifetime_minutes: float = 120.0
    api_version: str = "6.2.0"
    # ICAT user names are "<mnemonic>/<name>" (authenticators configured with the mnemonic prefix).
    root_users: list[str] = field(default_factory=lambda: ["simple/root"])
    authenticators: dict[str, Authenticator] = field(default_factory=dict)

    def check_password(self, mnemonic: str, user: str, password: str) -> bool:
        auth = self.authenticators.get(mnemonic)
        return auth is not None and user in auth.users and auth.users[user] == password


def default_authenticators() -> dict[str, Authenticator]:
    return {
        "simple": Authenticator("simple", {"root": "pw", "datastore": "datastore-pw"}, "Simple"),
        "db": Authenticator("db", {"alice": "alice-pw", "bob": "bob-pw"}, "Database"),
    }


def load_config(path: str | Path | None) -> EmulatorConfig:
    """Read the YAML file (all keys optional); without a path, the built-in defaults."""
    if path is None:
        return EmulatorConfig(
            root_users=["simple/root", "simple/datastore"], authenticators=default_authenticators()
        )
    data = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    listen = data.get("listen", {})
    auths = {
        mnemonic: Authenticator(
            mnemonic=mnemonic,
            users={str(k): str(v) for k, v in (spec.get("users") or {}).items()},
            friendly=spec.get("friendly"),
        )
        for mnemonic, spec in (data.get("authenticators") or {}).items()
    }
    return EmulatorConfig(
        host=str(listen.get("host", "127.0.0.1")),
        port=int(listen.get("port", 18080)),
        database=str(data.get("database", "var/icat/icat.sqlite")),
        session_lifetime_minutes=float(data.get("session_lifetime_minutes", 120)),
        api_version=str(data.get("api_version", "6.2.0")),
        root_users=[str(u) for u in data.get("root_users", ["simple/root"])],
        authenticators=auths or default_authenticators(),
    )
