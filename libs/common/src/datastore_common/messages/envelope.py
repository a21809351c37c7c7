"""The one envelope every message travels in (CloudEvents-like)."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import from_json

from datastore_common.errors import InvalidMessageError


class Payload(BaseModel):
    """Base of every message body; ``TYPE`` is its routing key and AsyncAPI channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    TYPE: ClassVar[str]
    #: Routed to one instrument: the routing key is ``TYPE.<broker user>`` (``routing_key``),
    #: and queues bind ``TYPE.#`` to receive them all.
    ADDRESSED: ClassVar[bool] = False

    def routing_key(self) -> str:
        """The routing key on the topic exchange: the type, or ``TYPE.<instrument>``."""
        return self.TYPE

    def mandatory(self) -> bool:
        """Whether a publish nobody's queue receives is an error (most messages: yes)."""
        return True


def binding_key(payload: type[Payload]) -> str:
    """What a queue binds to receive every message of ``payload``'s type."""
    return f"{payload.TYPE}.#" if payload.ADDRESSED else payload.TYPE


P = TypeVar("P", bound=Payload)


class Envelope(BaseModel, Generic[P]):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Unique per message.")
    type: str = Field(
        description="Message type, also the routing key, e.g. datastore.archive.requested.v1"
    )
    source: str = Field(description="Who published it: a service name or an instrument.")
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str = Field(
        min_length=1, max_length=200, description="The request id the message belongs to."
    )
    user: str | None = Field(default=None, description="ICAT user name (plugin/name) behind it.")
    data: P

    @model_validator(mode="after")
    def _type_matches_data(self) -> Envelope[P]:
        expected = getattr(type(self.data), "TYPE", None)
        if expected is not None and self.type != expected:
            raise ValueError(f"type {self.type!r} does not match a {expected} payload")
        return self


_TYPE_FIELD = re.compile(rb'"type"\s*:\s*"([^"\\]{1,200})"')


@functools.cache
def _envelope_class(payload: type[Payload]) -> type[Envelope[Payload]]:
    return Envelope[payload]  # type: ignore[valid-type]


def parse_envelope(body: bytes, payload_types: Mapping[str, type[Payload]]) -> Envelope[Payload]:
    """Decode and validate a message body; anything malformed is an InvalidMessageError."""
    # Fast path: our publishers put "type" near the start; validate the bytes in one pass.
    # A wrong guess cannot pass (the envelope checks type == payload TYPE), so any failure
    # falls through to the careful path, which also words the error.
    guess = _TYPE_FIELD.search(body, 0, 400)
    if guess is not None:
        payload = payload_types.get(guess.group(1).decode(errors="replace"))
        if payload is not None:
            try:
                return _envelope_class(payload).model_validate_json(body)
            except ValidationError:
                pass
    try:
        raw = from_json(body)
    except ValueError as exc:
        raise InvalidMessageError(f"body is not JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise InvalidMessageError("body is not an envelope with a string 'type'")
    payload = payload_types.get(raw["type"])
    if payload is None:
        raise InvalidMessageError(
            f"unknown message type {raw['type']!r}; expected one of {sorted(payload_types)}"
        )
    try:
        return _envelope_class(payload).model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10]
        )
        raise InvalidMessageError(f"invalid {raw['type']}: {problems}") from exc


def wrap(
    data: P,
    *,
    source: str,
    correlation_id: str,
    user: str | None = None,
    id: uuid.UUID | None = None,
) -> Envelope[P]:
    """Put a payload into a fresh envelope typed after it (with a fresh id unless given)."""
    return Envelope[P](
        id=id or uuid.uuid4(),
        type=data.TYPE,
        source=source,
        correlation_id=correlation_id,
        user=user,
        data=data,
    )


def envelope_json_schema(payload: type[Payload]) -> dict[str, Any]:
    return Envelope[payload].model_json_schema()  # type: ignore[valid-type]
