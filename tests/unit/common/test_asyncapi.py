import json
from pathlib import Path

from datastore_common.asyncapi import build_asyncapi
from datastore_common.messages import PAYLOAD_TYPES

COMMITTED = Path(__file__).parents[3] / "docs" / "asyncapi.json"


def test_committed_asyncapi_document_matches_the_code() -> None:
    assert json.loads(COMMITTED.read_text()) == build_asyncapi(), (
        "docs/asyncapi.json is stale: run `make asyncapi`"
    )


def test_every_message_type_has_a_channel_and_resolvable_refs() -> None:
    document = build_asyncapi()
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(PAYLOAD_TYPES)
    schemas = document["components"]["schemas"]
    text = json.dumps(document)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        if ref.startswith("#/components/schemas/"):
            assert ref.removeprefix("#/components/schemas/") in schemas, ref
