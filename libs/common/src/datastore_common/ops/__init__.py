"""``datastore-ops``: look at dead letters and redrive them (``dlq``: the operations; ``cli``:
the command line); also bulk retries (``retry``), broker accounts (``broker_users``) and the
audit of the catalogue against the tape (``audit``; docs/operations.md).

    datastore-ops [--config PATH] audit [--under FOLDER] [--sample N] [--json] [--dry-run]
    datastore-ops [--config PATH] dlq list [--json]
    datastore-ops [--config PATH] dlq show QUEUE [--limit N] [--body] [--json]
    datastore-ops [--config PATH] dlq replay QUEUE [--limit N] [--id ID] [--correlation-id ID]
    datastore-ops [--config PATH] dlq purge QUEUE [--yes]

QUEUE is a consumer role (``icat-writer.archive``) or its dead-letter queue
(``dlq.icat-writer.archive``); ``broker.queue_prefix`` is added when the name lacks it. Only the
DLQs of the configured topology can be named, so a work queue can never be purged by mistake.

Nothing here loses a message:
- ``show`` reads with ``basic.get`` without acking and gives everything back with one
  ``basic.nack(requeue)`` at the end. It takes a full pass over the messages that were there when
  it started (even with ``--limit``): RabbitMQ 3.x quorum queues put returned messages at the
  tail, so returning only the first N would move them behind the rest. It nacks rather than
  rejects: on RabbitMQ 4.x a reject counts towards the quorum queue's delivery limit, a nack
  does not;
- ``replay`` publishes a clean copy (every ``x-datastore-*`` failure header, ``x-death`` and
  ``x-delivery-count`` removed; ``x-datastore-replays`` counted up) to the original queue,
  waits for the broker's confirm, and only then acks the DLQ copy; a failed publish gives the
  message back and stops. A crash between confirm and ack leaves a duplicate, never a gap
  (handlers are idempotent). With a filter it also takes a full pass, for the same reason;
- ``purge`` refuses without ``--yes``.

The tool does not declare the topology (it only passively checks queues), so a config that
differs from the running services' cannot change or break the broker's queues.

Exit codes: 0 ok, 2 usage (bad arguments, unknown queue, purge without ``--yes``), 1 failure
(broker unreachable, queue missing, publish refused, no message matched), with a one-line reason
on stderr.
"""
