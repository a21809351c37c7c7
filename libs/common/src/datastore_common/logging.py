"""structlog set-up shared by every service: JSON lines by default, readable on a terminal.

Secrets never reach a log line: values under keys that look like credentials (password,
token, session id, authorization...) are replaced before rendering, whatever the caller passed,
and so are secrets inside any text (a URL's password, a bearer token, ``sessionId=...``), a
rendered traceback and stdlib records included (``redact_secrets``, ``RedactingFormatter``).
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|session(_?id)?|authori[sz]ation|api_?key|private_?key"
    r"|access_?key|cookie|credential",
    re.IGNORECASE,
)
#: ``scheme://user:password@`` (also with an empty user name, ``amqp://:pw@host``).
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)
#: ``Bearer <token>`` / ``Basic <credentials>`` in free text: an echoed Authorization header.
_AUTH_SCHEME = re.compile(r"(?P<scheme>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
#: ``sessionId=...``, ``password: ...``, ``"token": "..."`` inside a message or a URL's query.
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<name>\b(?:password|passwd|secret|token|session_?id|api_?key|access_?key)"
    r"[\"']?\s*[=:]\s*[\"']?)(?P<value>[^\s&\"',;}]+)",
    re.IGNORECASE,
)
REDACTED = "***"


#: What every secret pattern above needs somewhere in a text: a ``:`` or ``=``, or the word
#: Bearer or Basic. Most logged values (event names, ids, routes) have none and skip the three.
_MAY_HOLD_SECRET = re.compile(r"[:=]|bearer|basic", re.IGNORECASE)


def redact_text(text: str) -> str:
    """``text`` with the secrets it may carry masked: URL passwords, bearer tokens and
    ``name=value`` pairs whose name says credential (as an exception message may echo)."""
    if _MAY_HOLD_SECRET.search(text) is None:
        return text
    text = _URL_PASSWORD.sub(rf"\g<scheme>{REDACTED}@", text)
    text = _AUTH_SCHEME.sub(rf"\g<scheme>{REDACTED}", text)
    return _SECRET_ASSIGNMENT.sub(rf"\g<name>{REDACTED}", text)


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a credential, whose value is never shown."""
    return isinstance(key, str) and _is_secret_name(key)


@functools.lru_cache(maxsize=4096)
def _is_secret_name(key: str) -> bool:
    # Cached: a service logs the same few dozen keys on every line.
    return _SECRET_KEY.search(key) is not None


def redact(value: Any) -> Any:
    """Return ``value`` with secrets masked: credential-like keys and secrets inside text."""
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, int | float):  # most values: nothing to mask
        return value
    if isinstance(value, Mapping):
        return {k: (REDACTED if is_secret_key(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(redact(v) for v in value)
    if isinstance(value, bytes | BaseException):
        return redact_text(str(value))
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: every value under a credential-like key masked, and the secrets
    inside every other value (the event, an error's text, a rendered traceback) masked too.
    Pure: it returns a new event dict. Runs after ``format_exc_info``, so tracebacks pass it.
    The values our own processors set (``_OWN_VALUES``: the time and the level, whatever a
    caller passed under those keys was replaced) are kept as they are."""
    return {
        key: v if key in _OWN_VALUES else REDACTED if is_secret_key(key) else redact(v)
        for key, v in event_dict.items()
    }


#: Keys whose values ``configure_logging``'s own processors set, before redaction.
_OWN_VALUES = frozenset({"timestamp", "level"})


class RedactingFormatter(logging.Formatter):
    """stdlib records (libraries' warnings, their tracebacks) with secrets masked, as ours."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class _StderrLogger:
    """Writes each line to whatever ``sys.stderr`` is *now* (it may be swapped, as in tests)."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")  # one write and one flush per line (print makes two)
        stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _stderr_logger_factory(*_args: Any) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(service: str, *, level: str = "INFO", fmt: str = "auto") -> None:
    """Configure structlog (and stdlib logging through it) for one service process."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        # Redaction last before rendering: after the traceback became text.
        processors=[*shared, structlog.processors.format_exc_info, redact_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=_stderr_logger_factory,
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries log through stdlib; keep them quiet unless something is wrong.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(name)s %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


bind_correlation_id = structlog.contextvars.bound_contextvars
