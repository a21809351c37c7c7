"""The AsyncAPI 3.0 document of Datastore's messages, generated from the pydantic models.

``python -m datastore_common.asyncapi > docs/asyncapi.json`` refreshes the committed copy; a test
fails when the copy and the code disagree. Instruments that publish ``archive.requested``
directly use this document as their contract.
"""

from __future__ import annotations

import json
from typing import Any

from datastore_common.messages import PAYLOAD_TYPES, envelope_json_schema
from datastore_common.topology import (
    FTS_SUBMITTER,
    GATEWAY_LEDGER,
    ICAT_WRITER_ARCHIVE,
    ICAT_WRITER_STATUS,
    STATUS_POLLER_POLL,
    datastore_topology,
)

#: Who sends and who receives each message type (for the operations section).
_PRODUCERS = {
    "datastore.archive.requested.v1": ["gateway", "instrument"],
    "datastore.archive.registered.v1": ["icat-writer"],
    "datastore.restore.requested.v1": ["gateway"],
    "datastore.transfer.submitted.v1": ["fts-submitter"],
    "datastore.transfer.status.v1": ["fts-submitter", "status-poller", "icat-writer"],
    "datastore.transfer.tracked.v1": ["status-poller"],
    "datastore.request.failed.v1": ["icat-writer", "fts-submitter", "status-poller"],
    "datastore.request.delayed.v1": ["icat-writer", "fts-submitter", "status-poller"],
}
_CONSUMERS = {
    ICAT_WRITER_ARCHIVE: "icat-writer",
    ICAT_WRITER_STATUS: "icat-writer",
    FTS_SUBMITTER: "fts-submitter",
    STATUS_POLLER_POLL: "status-poller",
    GATEWAY_LEDGER: "gateway",
}


def _name(message_type: str) -> str:
    middle = message_type.split(".")[1:-1]
    return "".join(part.capitalize() for part in middle)


def build_asyncapi() -> dict[str, Any]:
    topology = datastore_topology()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for message_type, payload in sorted(PAYLOAD_TYPES.items()):
        name = _name(message_type)
        schema = envelope_json_schema(payload)
        for def_name, definition in schema.pop("$defs", {}).items():
            schemas[def_name] = definition
        schemas[f"{name}Envelope"] = schema
        channels[name] = {
            "address": message_type,
            "description": (payload.__doc__ or "").strip(),
            "messages": {
                name: {
                    "name": name,
                    "contentType": "application/json",
                    "payload": {"$ref": f"#/components/schemas/{name}Envelope"},
                }
            },
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {"name": topology.exchange, "type": "topic", "durable": True},
                }
            },
        }
        for producer in _PRODUCERS.get(message_type, []):
            operations[f"{producer}.send.{name}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{name}"},
                "summary": f"{producer} publishes {message_type}",
            }
        for spec in topology.queues:
            if message_type in spec.routing_keys:
                consumer = _CONSUMERS[spec.name]
                operations[f"{consumer}.receive.{name}"] = {
                    "action": "receive",
                    "channel": {"$ref": f"#/channels/{name}"},
                    "summary": f"{consumer} consumes it from queue {spec.name}",
                    "bindings": {"amqp": {"ack": True}},
                }
    # pydantic's $refs point at #/$defs/X; AsyncAPI keeps them under components.
    text = json.dumps(
        {
            "asyncapi": "3.0.0",
            "info": {
                "title": "Datastore messages",
                "version": "1.0.0",
                "description": "Every message travels in one envelope; its `type` is the routing "
                "key on the topic exchange. Publish persistent messages with publisher confirms.",
            },
            "defaultContentType": "application/json",
            "servers": {"local": {"host": "127.0.0.1:5672", "protocol": "amqp"}},
            "channels": channels,
            "operations": operations,
            "components": {"schemas": schemas},
        },
        indent=2,
        sort_keys=True,
    ).replace('"#/$defs/', '"#/components/schemas/')
    document: dict[str, Any] = json.loads(text)
    return document


def main() -> None:
    print(json.dumps(build_asyncapi(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
