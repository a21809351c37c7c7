"""Prometheus metrics every service exposes, and the tiny server for workers.

The gateway serves ``/metrics`` from FastAPI; workers call ``start_metrics_server(port)``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, start_http_server

MESSAGES_PUBLISHED = Counter(
    "datastore_messages_published_total", "Messages confirmed by the broker", ["routing_key"]
)
MESSAGES_HANDLED = Counter(
    "datastore_messages_handled_total",
    "Messages settled by a consumer, by outcome (ok, retried, dead_lettered)",
    ["queue", "outcome"],
)
CREDENTIAL_FAILURES = Counter(
    "datastore_credential_failures_total",
    "Our own credential refused by a peer (FTS certificate/token, ICAT functional account): "
    "alert on any increase; the work waits and is retried",
    ["queue"],
)
GIVEN_UP = Counter(
    "datastore_requests_given_up_total",
    "Messages given up (permanent error, retries or deliveries exhausted) and reported FAILED",
    ["queue"],
)
MESSAGES_REFUSED = Counter(
    "datastore_messages_refused_total",
    "Messages refused because their sender may not send them (dead-lettered, never handled): "
    "alert on any increase, it is a misconfiguration or an attempt to forge",
    ["queue", "reason"],
)
RETRY_OLDEST_AGE = Gauge(
    "datastore_retry_oldest_age_seconds",
    "Age of the oldest first failure among messages this process is retrying",
    ["queue"],
)
AUDIT_FILES_HELP = (
    "Figures of the last catalogue-vs-tape audit, by kind: archived_in_icat, files_on_tape, "
    "unknown_to_icat, missing_on_tape, size_mismatch, bad_location, fixity_checked, "
    "fixity_failed, fixity_vanished"
)
AUDIT_FILES = Gauge("datastore_audit_files", AUDIT_FILES_HELP, ["kind"])
AUDIT_LAST_RUN_HELP = (
    "When the last audit ended (Unix time), by outcome: clean, disagreements, failed"
)
AUDIT_LAST_RUN = Gauge(
    "datastore_audit_last_run_timestamp_seconds", AUDIT_LAST_RUN_HELP, ["outcome"]
)
UP = Gauge("datastore_up", "1 while the service is connected and consuming", ["service"])


def start_metrics_server(port: int, *, service: str) -> None:
    """Serve /metrics on ``port`` (0 = disabled) in a background thread."""
    if port:
        start_http_server(port, addr="127.0.0.1")
    UP.labels(service=service).set(1)
