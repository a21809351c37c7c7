import json
from pathlib import Path

from datastore_common.asyncapi import build_asyncapi
from datastore_common.messages import PAYLOAD_TYPES, Envelope, binding_key, parse_envelope

COMMITTED = Path(__file__).parents[3] / "docs" / "asyncapi.json"


def test_committed_asyncapi_document_matches_the_code() -> None:
    assert json.loads(COMMITTED.read_text()) == build_asyncapi(), (
        "docs/asyncapi.json is stale: run `make asyncapi`"
    )


def test_every_message_type_has_a_channel_and_resolvable_refs() -> None:
    document = build_asyncapi()
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {a.removesuffix(".{instrument}") for a in addresses} == set(PAYLOAD_TYPES)
    schemas = document["components"]["schemas"]
    text = json.dumps(document)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        if ref.startswith("#/components/schemas/"):
            assert ref.removeprefix("#/components/schemas/") in schemas, ref


def test_answers_to_instruments_are_addressed_to_them() -> None:
    channels = {c["address"]: c for c in build_asyncapi()["channels"].values()}
    for message_type in (
        "datastore.archive.accepted.v1",
        "datastore.archive.rejected.v1",
        "datastore.request.completed.v1",
    ):
        assert "instrument" in channels[f"{message_type}.{{instrument}}"]["parameters"]
        assert binding_key(PAYLOAD_TYPES[message_type]) == f"{message_type}.#"
    assert "datastore.archive.requested.v1" in channels  # what instruments publish: as it is


def test_every_example_is_a_valid_message_of_its_channel() -> None:
    count = 0
    for channel in build_asyncapi()["channels"].values():
        for message in channel["messages"].values():
            for example in message.get("examples", []):
                payload = example["payload"]
                envelope: Envelope[object] = parse_envelope(
                    json.dumps(payload).encode(), PAYLOAD_TYPES
                )  # type: ignore[assignment]
                assert channel["address"].startswith(envelope.type)
                count += 1
    assert count >= 5  # requested, accepted, two rejections, completed
