"""The gateway's own Prometheus metrics (the shared ones live in datastore_common.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "datastore_gateway_http_requests_total",
    "HTTP requests answered, by route template and status code",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "datastore_gateway_http_request_seconds",
    "Time to answer an HTTP request, by route template",
    ["method", "route"],
)
ARCHIVE_REQUESTS = Counter(
    "datastore_gateway_archive_requests_total",
    "Archive requests answered 202, by outcome (accepted = published, replayed = idempotent)",
    ["outcome"],
)
ARCHIVED_DATAFILES = Counter(
    "datastore_gateway_archive_datafiles_total", "Datafiles in accepted archive requests"
)
SESSION_CHECKS = Counter(
    "datastore_gateway_session_checks_total",
    "Bearer session look-ups, by result (cached, checked, refused)",
    ["result"],
)
RESTORE_REQUESTS = Counter(
    "datastore_gateway_restore_requests_total",
    "Restore requests answered 202, by outcome (accepted = published, replayed = idempotent)",
    ["outcome"],
)
RESTORED_DATAFILES = Counter(
    "datastore_gateway_restore_datafiles_total", "Datafiles in accepted restore requests"
)
SHARED_DATAFILES = Counter(
    "datastore_gateway_restore_shared_datafiles_total",
    "Datafiles of accepted restores that another restore was already recalling to the same "
    "place: followed, not recalled twice",
)
RESTORES_QUEUED = Counter(
    "datastore_gateway_restore_queued_total",
    "Restores accepted into the queue (QUEUED: past a cap of restore.*)",
)
RESTORES_STARTED_FROM_QUEUE = Counter(
    "datastore_gateway_restore_queue_started_total",
    "Queued restores started, by outcome (started, retried)",
    ["outcome"],
)
RESTORE_QUEUE_LENGTH = Gauge(
    "datastore_gateway_restore_queue_requests",
    "Restores waiting in the queue (QUEUED) as this gateway last saw it",
)
RESTORE_QUEUE_BYTES = Gauge(
    "datastore_gateway_restore_queue_bytes",
    "Bytes the queued restores would recall, as this gateway last saw it",
)
RESTORED_COPIES = Counter(
    "datastore_gateway_restored_copies_total",
    "Expired restored copies the cleaner dealt with, by outcome (removed, would_remove in a "
    "dry run, kept: a live restore needs it, forgotten: gone or not the file Datastore wrote)",
    ["outcome"],
)
RESTORED_COPY_BYTES_REMOVED = Counter(
    "datastore_gateway_restored_copy_bytes_removed_total",
    "Bytes of expired restored copies removed from the user data cache",
)
NOTIFICATIONS = Counter(
    "datastore_gateway_notifications_total",
    "Notifications of ended requests, by channel (broker, webhook, email) and outcome "
    "(sent, retried, given_up)",
    ["channel", "outcome"],
)
RETRY_REQUESTS = Counter(
    "datastore_gateway_retry_requests_total",
    "Dataset retries answered 202, by outcome (accepted = published, replayed = idempotent)",
    ["outcome"],
)
