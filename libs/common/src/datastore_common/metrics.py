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
UP = Gauge("datastore_up", "1 while the service is connected and consuming", ["service"])


def start_metrics_server(port: int, *, address: str = "127.0.0.1") -> None:
    """Serve /metrics on ``address``:``port`` (port 0 = disabled) in a background thread.

    Workers start it before they reach the broker: it answers their liveness probe while they
    wait for one that is down (``datastore_up`` 0 until they consume)."""
    if port:
        start_http_server(port, addr=address)
