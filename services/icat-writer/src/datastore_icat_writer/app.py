"""The icat-writer process: its service (``bootstrap``) on the bus, both queues in one process:
``icat-writer.archive`` -> ``register_archive``, ``icat-writer.status`` ->
``record_transfer_status``."""

from __future__ import annotations

from datastore_common.worker import Worker
from datastore_icat_writer.bootstrap import bootstrap

SERVICE = "icat-writer"
WORKER = Worker(SERVICE, bootstrap)
wire = WORKER.wire
main_run = WORKER.run
