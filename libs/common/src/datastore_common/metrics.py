"""Prometheus metrics every service exposes, and the tiny server for workers.

The gateway serves ``/metrics`` from FastAPI; workers call ``start_metrics_server(port)``.
deploy/monitoring/ alerts on these and charts them: tests/unit/deploy checks that every metric
it names is defined here or in a service's metrics module.
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
PEER_CALLS = Counter(
    "datastore_peer_calls_total",
    "Calls to a peer (icat, fts3) by outcome: ok (it answered, even a refusal of the request) "
    "or error (down, time-out, 5xx, our credential refused): the error ratio's source",
    ["peer", "outcome"],
)
POLL_BATCHES = Counter(
    "datastore_poll_batches_total",
    "Status-poller batches (one bulk FTS status request each), by outcome (ok, fts_unavailable)",
    ["outcome"],
)
POLL_LAST_SUCCESS = Gauge(
    "datastore_poll_last_success_timestamp_seconds",
    "When the status-poller last had a batch of job states from FTS (Unix time)",
)
CREDENTIAL_EXPIRY = Gauge(
    "datastore_credential_expiry_timestamp_seconds",
    "When our credential stops being valid (Unix time; a chain's earliest notAfter): "
    "alert days before, a refused credential holds up all work",
    ["credential"],
)


def peer_call(peer: str, *, failed: bool) -> None:
    """Count one call to ``peer``: ``failed`` when it did not answer (or refused us)."""
    PEER_CALLS.labels(peer=peer, outcome="error" if failed else "ok").inc()


def start_metrics_server(port: int, *, address: str = "127.0.0.1") -> None:
    """Serve /metrics on ``address``:``port`` (port 0 = disabled) in a background thread.

    Workers start it before they reach the broker: it answers their liveness probe while they
    wait for one that is down (``datastore_up`` 0 until they consume)."""
    if port:
        start_http_server(port, addr=address)
