"""Login and sessions: sessions live in memory and in SQLite (they survive a restart)."""

from __future__ import annotations

import threading
import time
import uuid

from .config import EmulatorConfig
from .errors import IcatError
from .sqlgen import Principal
from .store import Store


class Sessions:
    def __init__(self, config: EmulatorConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    @property
    def lifetime_s(self) -> float:
        return self.config.session_lifetime_minutes * 60.0

    def login(self, mnemonic: str, credentials: dict[str, str]) -> str:
        if mnemonic not in self.config.authenticators:
            raise IcatError("SESSION", f"Authenticator mnemonic {mnemonic} not recognised")
        user = credentials.get("username", "")
        if not self.config.check_password(mnemonic, user, credentials.get("password", "")):
            raise IcatError("SESSION", "The username and password do not match")
        session_id = str(uuid.uuid4())
        expires = time.time() + self.lifetime_s
        name = f"{mnemonic}/{user}"
        self.store.save_session(session_id, name, expires)
        with self._lock:
            self._cache[session_id] = (name, expires)
        return session_id

    def _lookup(self, session_id: str) -> tuple[str, float]:
        with self._lock:
            entry = self._cache.get(session_id)
        if entry is None:
            entry = self.store.load_session(session_id)
            if entry is not None:
                with self._lock:
                    self._cache[session_id] = entry
        if entry is None or entry[1] < time.time():
            raise IcatError("SESSION", f"Unable to find user by sessionid: {session_id}")
        return entry

    def principal(self, session_id: str) -> Principal:
        name, _ = self._lookup(session_id)
        return Principal(name, name in self.config.root_users)

    def remaining_minutes(self, session_id: str) -> float:
        _, expires = self._lookup(session_id)
        return max(0.0, (expires - time.time()) / 60.0)

    def refresh(self, session_id: str) -> None:
        name, _ = self._lookup(session_id)
        expires = time.time() + self.lifetime_s
        self.store.save_session(session_id, name, expires)
        with self._lock:
            self._cache[session_id] = (name, expires)

    def logout(self, session_id: str) -> None:
        self._lookup(session_id)
        self.store.drop_session(session_id)
        with self._lock:
            self._cache.pop(session_id, None)
