"""The fts-submitter process: its service (``bootstrap``) on the bus."""

from __future__ import annotations

from datastore_common.worker import Worker
from datastore_fts_submitter.bootstrap import bootstrap

SERVICE = "fts-submitter"
WORKER = Worker(SERVICE, bootstrap)
wire = WORKER.wire
main_run = WORKER.run
