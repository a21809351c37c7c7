"""Configuration: one ``config.yaml`` (keys as in the seed) with environment overrides.

Every key can be overridden by an environment variable ``DATASTORE__<SECTION>__<KEY>``
(``DATASTORE__FTS3__ENDPOINT=https://fts.example.org:8446``). The file is found at the path in
``DATASTORE_CONFIG`` or ``./config.yaml``; without a file, the defaults describe the local stack.
Settings are read once, by ``load_settings`` in each service's entry point, and passed down.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import warnings
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from datastore_common.domain.archival import PARAMETER_UNITS
from datastore_common.domain.broker_nodes import check_urls, join_urls, split_urls, user_of
from datastore_common.errors import ConfigurationError
from datastore_common.original_config import translate as translate_original

CONFIG_ENV = "DATASTORE_CONFIG"
#: The service roles a broker user can have (``broker.users``); see ``topology.PUBLISHERS``.
SERVICE_ROLES = ("gateway", "icat-writer", "fts-submitter", "status-poller")
#: Passwords of quick local defaults: refused towards anything that is not this host.
KNOWN_DEFAULT_PASSWORDS = frozenset(
    {"guest", "datastore-pw", "pw", "password", "changeme", "change-me", ""}
)


def _loopback(host: str | None) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


DEFAULT_CONFIG_PATH = Path("config.yaml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fts3Settings(_Section):
    """How to reach FTS3 and the job parameters we ask of it."""

    endpoint: AnyUrl = AnyUrl("https://127.0.0.1:8446")
    vo: str | None = Field(
        default=None,
        description="FTS VO of our credential; deterministic job ids depend on it. "
        "When unset it is read once from /whoami at start-up.",
    )
    ca_path: Path | None = Field(
        default=None, description="CA bundle or directory that signs the FTS3 host certificate."
    )
    verify_tls: bool = True
    token: SecretStr | None = Field(
        default=None, description="Bearer token; when set, used instead of the X.509 credential."
    )
    max_files_per_job: int = Field(default=1000, ge=1, le=10000)
    archive_timeout: int = Field(
        default=28800,
        ge=1,
        description="Seconds a file may wait for tape. Never 0: FTS would then call a copy "
        "FINISHED before it is on tape, and ICAT would say archived when it is not.",
    )
    bring_online: int = Field(
        default=28800, ge=0, description="Seconds a restore may wait to stage."
    )
    copy_pin_lifetime: int = Field(default=28800, ge=-1)
    verify_checksum: Literal["both", "source", "target", "none"] = "both"
    retry: int = Field(default=2, ge=-1, description="FTS-side retries per file.")
    priority: int = Field(default=3, ge=1, le=5)
    request_timeout: float = Field(default=30.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _retired_keys(cls, data: Any) -> Any:
        """``max_attempts`` (the FTS client's own retries) is gone: an FTS call is sent once and
        retried by the bus, the poller or the HTTP caller (architecture.md, "Retries")."""
        if isinstance(data, dict) and "max_attempts" in data:
            warnings.warn(
                "fts3.max_attempts is no longer used and is ignored: remove it from the "
                "configuration (FTS calls are retried by the bus, see architecture.md)",
                FutureWarning,
                stacklevel=2,
            )
            data = {k: v for k, v in data.items() if k != "max_attempts"}
        return data


class IcatSettings(_Section):
    """The ICAT server and the functional account the workers write with."""

    url: AnyUrl = AnyUrl("http://localhost:18080")
    check_cert: bool = True
    auth: str = "simple"
    username: str = "datastore"
    password: SecretStr = SecretStr("datastore-pw")
    facility: str = Field(default="facility", description="Facility every entity is scoped to.")
    session_cache_seconds: float = Field(
        default=60.0, ge=0, description="How long the gateway trusts a checked user session."
    )
    session_pool_size: int = Field(
        default=2,
        ge=1,
        description="python-icat clients serving the gateway's logins and session checks "
        "(and its vocabulary look-ups): never shared with selections.",
    )
    selection_pool_size: int = Field(
        default=4,
        ge=1,
        description="python-icat clients serving the gateway's restore selections, status "
        "and look-ups, read with the user's session; a large selection waits for these only.",
    )
    selection_deadline_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long the gateway reads one selection, status or look-up from ICAT; "
        "past it the request gets 503 with the reason and ICAT is read no further.",
    )
    functional_user_name: str | None = Field(
        default=None,
        description="The functional account's user name as ICAT reports it (getUserName, and "
        "the modId of what it writes); default '<auth>/<username>'. A restore counts a "
        'datafile\'s "Archival state" only when this account wrote it.',
    )
    trusted_writers: tuple[str, ...] = Field(
        default=(),
        description="Further ICAT accounts, as ICAT names them (modId, '<auth>/<username>'), "
        'whose "Archival state" and "Archival failure" count as Datastore\'s: only the '
        "original Datastore API's functional account, when it was another account than "
        "ours (README, 'Taking over from the original Datastore API'). Never a user's.",
    )
    archival_parameter_units: str = Field(
        default=PARAMETER_UNITS,
        description="ParameterType.units of the archival parameter types ('Archival state', "
        "'Archival ids', ...), which ICAT keys by (facility, name, units). The original "
        "Datastore API's are '' (empty): set '' to read and write its records.",
    )

    embargo_period_years: int = Field(
        default=2,
        ge=0,
        description="A new Investigation without releaseDate is released this many years after "
        "its endDate (else startDate, else the day it is created), as the original API did.",
    )
    embargo_types: tuple[str, ...] = Field(
        default=(),
        description="InvestigationType names whose new Investigations get no releaseDate at "
        "all (even one the request gives), as the original API's list.",
    )

    @property
    def functional_user(self) -> str:
        """Who ICAT says wrote what the functional account writes (``modId``)."""
        return self.functional_user_name or f"{self.auth}/{self.username}"

    @property
    def archival_writers(self) -> tuple[str, ...]:
        """Every writer (``modId``) whose archival parameters count: ours, then the trusted."""
        return (self.functional_user, *self.trusted_writers)


class BrokerSettings(_Section):
    """RabbitMQ connection, topology names and delivery policy."""

    url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="The broker's AMQP URL, or every node's of a cluster: a list, or one "
        "string separated by commas, all with the same user, password and vhost. A process "
        "connects to the first node that answers and, when it goes, to another one.",
    )
    exchange: str = "datastore"
    queue_prefix: str = Field(default="", description="Prepended to every queue name (tests).")
    prefetch: int = Field(default=64, ge=1)
    archive_prefetch: int = Field(
        default=2,
        ge=1,
        description="Archive requests one icat-writer holds at once (each may name 10,000s of "
        "files: a few at a time keeps memory bounded and lets other replicas take the rest).",
    )
    delivery_limit: int = Field(default=5, ge=2, description="Redeliveries before giving up.")
    retry_delays: tuple[float, ...] = Field(
        default=(1.0, 5.0, 30.0, 120.0, 600.0, 1800.0),
        description="Backoff before each retry of a transient failure; the last step repeats.",
    )
    retry_for_seconds: float = Field(
        default=24 * 3600.0,
        ge=0,
        description="How long a transient failure (a peer down) is retried before the request "
        "ends FAILED; failures of our own credentials are retried for ever.",
    )
    connect_attempts: int = Field(
        default=30,
        ge=0,
        description="Attempts to reach the broker at start (backoff up to 5 s); 0 = until it "
        "answers, so that a broker outage is a wait, not a crash loop (Kubernetes).",
    )
    users: dict[str, str] = Field(
        default_factory=lambda: {"guest": "*"},
        description="Broker user -> the role it publishes as: gateway, icat-writer, "
        "fts-submitter, status-poller, operator (datastore-ops). Consumers refuse a message "
        "whose AMQP user_id (checked by RabbitMQ) has no role allowed to publish its type. "
        "'*' (every role) is the quick local default for guest on a loopback broker only.",
    )

    @field_validator("users")
    @classmethod
    def _known_roles(cls, value: dict[str, str]) -> dict[str, str]:
        known = {*SERVICE_ROLES, "operator", "*"}
        wrong = {user: role for user, role in value.items() if role not in known}
        if wrong:
            raise ValueError(f"unknown roles {wrong}; a role is one of {sorted(known)}")
        return value

    @field_validator("url", mode="before")
    @classmethod
    def _one_string(cls, value: Any) -> Any:
        """A YAML list of nodes' URLs is kept as the one string an env variable would give."""
        if isinstance(value, list | tuple):
            return join_urls(
                [v.get_secret_value() if isinstance(v, SecretStr) else str(v) for v in value]
            )
        return value

    @field_validator("url")
    @classmethod
    def _nodes_agree(cls, value: SecretStr) -> SecretStr:
        check_urls(split_urls(value.get_secret_value()))  # BrokerUrlError is a ValueError
        return value

    @property
    def urls(self) -> tuple[str, ...]:
        """Every node's URL (one for a single broker), with the credentials."""
        return split_urls(self.url.get_secret_value())

    @property
    def user(self) -> str:
        """The broker user this process connects as (from ``url``: one for every node)."""
        return user_of(self.urls)

    @field_validator("retry_delays")
    @classmethod
    def _delays_grow(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(d <= 0 for d in value):
            raise ValueError("must be a non-empty list of positive seconds")
        if list(value) != sorted(value):
            raise ValueError("must not decrease")
        return value


class GatewaySettings(_Section):
    """HTTP front door limits and who may archive."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    archivers: tuple[str, ...] = Field(
        default=("simple/root", "simple/datastore"),
        description="ICAT user names (plugin/name) allowed to archive.",
    )
    admins: tuple[str, ...] = Field(
        default=("simple/root",),
        description="ICAT user names (plugin/name) who may see every user's requests.",
    )
    max_datafiles_per_request: int = Field(default=50_000, ge=1)
    max_bytes_per_request: int = Field(default=50 * 1024**4, ge=1)
    max_body_bytes: int = Field(default=64 * 1024**2, ge=1024)
    max_login_body_bytes: int = Field(
        default=8 * 1024,
        ge=256,
        le=1024**2,
        description="Cap on the body of POST /login (read without a session): larger is a 413.",
    )
    max_concurrent_logins: int = Field(
        default=8,
        ge=1,
        description="POST /login calls asked of ICAT at once by one gateway; more wait up to "
        "login_wait_seconds for a turn, then get 503 with Retry-After (logins do not pile up "
        "on ICAT's authenticator).",
    )
    login_wait_seconds: float = Field(
        default=5.0, ge=0, description="How long a login beyond the limit waits for a turn."
    )
    idempotency_window_seconds: int = Field(default=24 * 3600, ge=0)
    state_db: str = Field(
        default="sqlite:///var/gateway/gateway.sqlite",
        description="Where idempotency keys and the request ledger live "
        "(sqlite:///path or postgresql://...); replicas on several hosts share a PostgreSQL.",
    )
    ledger_retention_days: float = Field(
        default=90.0, gt=0, description="How long an ended request stays in the ledger."
    )
    cors_origins: tuple[str, ...] = Field(
        default=(),
        description="Origins (scheme://host[:port], or '*') whose browser pages may call the "
        "API (CORS); empty: no CORS headers, browsers allow same-origin pages only.",
    )
    vocabulary_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long a facility, type, instrument, cycle or format name found in "
        "ICAT is trusted; unknown names are asked again on every request.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where users reach this gateway: request.completed messages, webhooks and "
        "e-mails link to <public_url>/requests/<request_id>.",
    )

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://datastore.example.org")
        return value.rstrip("/")


class NotifySettings(_Section):
    """How the gateway tells users that their request ended (webhooks and e-mail)."""

    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Key of the HMAC-SHA256 signature of every webhook call "
        "(X-Datastore-Signature); requests naming a webhook are refused while it is unset.",
    )
    webhook_allowed_hosts: tuple[str, ...] = Field(
        default=(),
        description="Hosts a webhook may point at (exact names, or '.example.org' for any "
        "name under it); empty: any host.",
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    smtp_host: str | None = Field(
        default=None,
        description="SMTP server that sends the e-mails; requests naming an e-mail address "
        "are refused while it is unset.",
    )
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="datastore@localhost", description="The e-mails' From.")
    smtp_starttls: bool = Field(default=False, description="Upgrade to TLS before logging in.")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(
        default=10,
        ge=1,
        description="Tries of one webhook call or e-mail before giving it up (logged); the "
        "broker's request.completed is tried until it is published.",
    )
    retry_delays: tuple[float, ...] = Field(
        default=(10.0, 60.0, 300.0, 900.0, 3600.0),
        description="Wait before each retry of a failed notification; the last step repeats.",
    )
    poll_seconds: float = Field(
        default=2.0, gt=0, description="How often each gateway looks for notifications due."
    )

    @field_validator("retry_delays")
    @classmethod
    def _delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(d <= 0 for d in value):
            raise ValueError("must be a non-empty list of positive seconds")
        return value


class PollerSettings(_Section):
    """How often active FTS jobs are asked about, and in what batches."""

    interval_seconds: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=100, ge=1, le=100)
    batch_wait_seconds: float = Field(default=0.5, ge=0)


class AuditSettings(_Section):
    """The audit of the catalogue against the tape (``datastore-ops audit``, and a loop in
    the status-poller when ``interval_seconds`` is set): files on tape ICAT does not know,
    archived datafiles the tape lacks or holds with another size, and the adler32 of a
    random sample of tape files recomputed against ICAT's."""

    interval_seconds: float = Field(
        default=0.0,
        ge=0,
        description="The status-poller audits every this many seconds; 0 (the default) = "
        "never. Turn it on in one poller replica only: each replica would audit.",
    )
    sample_size: int = Field(
        default=100, ge=0, description="Tape files whose adler32 is recomputed per run."
    )
    under: str = Field(
        default="",
        description="Audit only this folder below the tape root (a location prefix of whole "
        "components, e.g. an instrument: 'LARMOR'); '' = everything.",
    )
    report_dir: Path | None = Field(
        default=None,
        description="Each run of the loop writes audit-<time>.json and .txt here; none = "
        "the summary goes to the log only.",
    )
    page_size: int = Field(
        default=1000, ge=1, le=10_000, description="Archived datafiles read from ICAT per query."
    )


class RestoreSettings(_Section):
    """Fair use of the tape drives: what one user may have being recalled at once (files
    and bytes of their restores not yet ended; files already online, or followed while
    another restore recalls them, do not count) and what the facility stages at once. None:
    no limit. A restore past a cap waits QUEUED and starts by itself when capacity frees up
    (priority, then arrival order); one that alone is past a cap is refused with 413."""

    max_user_files_in_flight: int | None = Field(default=None, ge=1)
    max_user_bytes_in_flight: int | None = Field(default=None, ge=1)
    max_bytes_staging: int | None = Field(
        default=None, ge=1, description="Bytes being recalled at once for all users together."
    )
    user_priorities: dict[str, int] = Field(
        default_factory=dict,
        description="ICAT user name (plugin/name) -> priority in the restore queue (higher "
        "first; 0 when not named).",
    )
    confirm_above_bytes: int | None = Field(
        default=None,
        ge=0,
        description="A restore selecting more bytes than this needs confirm=true (428 "
        "without; the dry run tells the size). None: never.",
    )
    retention_days: float = Field(
        default=14,
        gt=0,
        description="How long a restored copy stays on the user data cache after it was "
        "written (or last found online or followed by a restore); then the cleaner removes it.",
    )
    cleaner: bool = Field(
        default=True,
        description="Run the cleaner of expired restored copies in the gateway (it needs "
        "write access to the user data cache).",
    )
    cleaner_dry_run: bool = Field(
        default=False,
        description="The cleaner only logs and counts what it would remove; nothing is removed.",
    )
    cleaner_interval_seconds: float = Field(default=3600.0, gt=0)
    queue_poll_seconds: float = Field(
        default=10.0, gt=0, description="How often each gateway looks for queued restores to start."
    )


class XRootDSettings(_Section):
    """How the services talk to XRootD storage (the instrument data cache's checks)."""

    timeout_seconds: int = Field(default=30, ge=1, description="Per request (stat, mkdir...).")
    checksum_concurrency: int = Field(
        default=4,
        ge=1,
        description="Checksums one process asks of one server at once; keep the sum over all "
        "icat-writer replicas within the server's `xrootd.chksum max` (4 when not set).",
    )
    checksum_bytes_per_second: int = Field(
        default=50 * 1024**2,
        ge=1024,
        description="Assumed server checksum rate: a checksum's time-out is 120 s + size / rate.",
    )
    describe_concurrency: int = Field(default=32, ge=1, description="Files stat'ed at once.")


class InstrumentAccount(_Section):
    """An instrument that publishes ``archive.requested`` straight to the broker."""

    broker_user: str = Field(min_length=1, description="Its RabbitMQ user.")
    icat_user: str = Field(
        min_length=1, description="The ICAT identity its requests archive as (plugin/name)."
    )
    instruments: tuple[str, ...] = Field(
        min_length=1, description="ICAT Instrument names it may archive for."
    )


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "console", "auto"] = "auto"


class DatastoreSettings(BaseSettings):
    """All of Datastore's configuration. Top-level storage keys keep the seed's names."""

    model_config = SettingsConfigDict(
        env_prefix="DATASTORE__",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    fts3: Fts3Settings = Fts3Settings()
    icat: IcatSettings = IcatSettings()
    broker: BrokerSettings = BrokerSettings()
    gateway: GatewaySettings = GatewaySettings()
    notify: NotifySettings = NotifySettings()
    poller: PollerSettings = PollerSettings()
    audit: AuditSettings = AuditSettings()
    restore: RestoreSettings = RestoreSettings()
    xrootd: XRootDSettings = XRootDSettings()
    log: LogSettings = LogSettings()
    instrument_data_cache: str = "root://127.0.0.1:11094//"
    user_data_cache: str = "root://127.0.0.1:11095//"
    tape_archive: str = "root://127.0.0.1:11096//"
    tape_root_dir: str = Field(default="archive/", description="Prefix under the tape root.")
    x509_user_cert: Path | None = None
    x509_user_key: Path | None = None
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0 = no metrics server.")
    metrics_address: IPvAnyAddress = Field(
        default=IPv4Address("127.0.0.1"),
        description="Address the workers' metrics server listens on: 0.0.0.0 where Prometheus "
        "scrapes from another host or pod (Kubernetes, Compose).",
    )
    instruments: tuple[InstrumentAccount, ...] = Field(
        default=(),
        description="Instruments' broker users, each with the ICAT identity and instruments "
        "it may archive for (README, 'Instruments on the broker').",
    )

    @model_validator(mode="after")
    def _instrument_users_distinct(self) -> DatastoreSettings:
        users = [account.broker_user for account in self.instruments]
        clash = sorted(
            {u for u in users if users.count(u) > 1} | (set(users) & set(self.broker.users))
        )
        if clash:
            raise ValueError(f"broker users listed twice (instruments / broker.users): {clash}")
        return self

    def check_deployable(self) -> None:
        """Refuse, at start, credentials that must never leave a developer's machine: guest
        (or any user acting as every role) and the local stack's passwords, towards a broker or
        ICAT that is not on this host."""
        problems: list[str] = []
        remote = [urlsplit(url) for url in self.broker.urls]
        remote = [node for node in remote if not _loopback(node.hostname)]
        if remote:
            broker = remote[0]
            if broker.username in (None, "", "guest") or broker.password in KNOWN_DEFAULT_PASSWORDS:
                problems.append(
                    "broker.url: a default user or password towards a remote broker; give each "
                    "service its own broker user (deploy/README.md)"
                )
            everyone = sorted(u for u, role in self.broker.users.items() if role == "*")
            if everyone:
                problems.append(
                    f"broker.users: {everyone} may act as every role; name one role per user"
                )
        icat_host = urlsplit(str(self.icat.url)).hostname
        # Unset is fine: the services that do not log in to ICAT are not given its password.
        if (
            not _loopback(icat_host)
            and "password" in self.icat.model_fields_set
            and self.icat.password.get_secret_value() in KNOWN_DEFAULT_PASSWORDS
        ):
            problems.append(
                "icat.password: the local stack's default password towards a remote ICAT"
            )
        if problems:
            raise ConfigurationError("refusing to start: " + "; ".join(problems))

    @model_validator(mode="before")
    @classmethod
    def _original_keys(cls, data: Any) -> Any:
        """The original Datastore API's keys: read as ours, or refused naming ours
        (``original_config.RULES``)."""
        if not isinstance(data, dict):
            return data
        translation = translate_original(data)  # OriginalKeyRefused is a ValueError
        for notice in translation.notices:
            warnings.warn(notice, FutureWarning, stacklevel=2)
        return translation.values

    @field_validator("instrument_data_cache", "user_data_cache", "tape_archive")
    @classmethod
    def _storage_root(cls, value: str) -> str:
        if not value.startswith(("root://", "roots://", "https://", "davs://")):
            raise ValueError("must be a storage URL such as root://host:1094//")
        return value if value.endswith("/") else value + "/"

    @field_validator("tape_root_dir")
    @classmethod
    def _relative_dir(cls, value: str) -> str:
        value = value.strip("/")
        if ".." in value.split("/"):
            raise ValueError("must not contain '..'")
        return value + "/" if value else ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then environment, then config.yaml, then defaults.
        path = _config_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)


def _config_path() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigurationError(f"{CONFIG_ENV}={explicit}: no such file")
        return path
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_settings(**overrides: Any) -> DatastoreSettings:
    """Read and check the configuration; a bad value raises ConfigurationError naming its key."""
    try:
        settings = DatastoreSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from exc
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigurationError(f"invalid configuration file: {exc}") from exc
    settings.check_deployable()
    return settings


def command_line(prog: str, description: str) -> argparse.ArgumentParser:
    """The argument parser every service starts from: ``--config PATH``, then its own options."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--config", help=f"config.yaml to read (default: ${CONFIG_ENV} or ./config.yaml)"
    )
    return parser


def settings_from(args: argparse.Namespace) -> DatastoreSettings:
    """Load the settings, from ``--config`` when it was given (the environment is left as it
    was: a command run in-process, as tests do, must not change what later loads read)."""
    if not args.config:
        return load_settings()
    previous = os.environ.get(CONFIG_ENV)
    os.environ[CONFIG_ENV] = str(args.config)
    try:
        return load_settings()
    finally:
        if previous is None:
            del os.environ[CONFIG_ENV]
        else:
            os.environ[CONFIG_ENV] = previous


@contextlib.contextmanager
def refusing_to_start(prog: str) -> Iterator[None]:
    """A ``ConfigurationError`` while starting ends the process with one line naming the
    program and the reason (exit status 1), not a traceback an operator must read through."""
    try:
        yield
    except ConfigurationError as exc:
        raise SystemExit(f"{prog}: {exc}") from None
