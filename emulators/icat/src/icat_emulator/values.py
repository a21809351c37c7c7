"""Conversion of field values between the wire (XML text), Python and the SQLite columns.

Dates are stored as UTC text ``YYYY-MM-DDTHH:MM:SS.ffffff`` so that text order is time order;
booleans as 0/1. A naive date from a client is taken as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

_DB_DATE = "%Y-%m-%dT%H:%M:%S.%f"


class ValueError_(Exception):
    """A value that cannot be converted to the field's type."""


def parse_date(text: str) -> str:
    """Any ISO-8601 (or JPQL ``{ts ...}``) date text -> the stored UTC form."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError_(f"Bad date value '{text}'") from exc
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime(_DB_DATE)


def date_to_wire(stored: str) -> str:
    """Stored UTC date -> xs:dateTime text (milliseconds unless finer precision was stored)."""
    base, _, micros = stored.partition(".")
    micros = (micros or "0").ljust(6, "0")
    fraction = micros[:3] if micros[3:] == "000" else micros
    return f"{base}.{fraction}Z"


def now_db() -> str:
    return datetime.now(UTC).replace(tzinfo=None).strftime(_DB_DATE)


def to_db(java_type: str, value: object) -> object:
    """Coerce a wire text or query literal to the column value of ``java_type``."""
    if value is None:
        return None
    try:
        if java_type in ("Long", "Integer"):
            if isinstance(value, bool):
                return int(value)
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return int(str(value).strip())
        if java_type == "Double":
            return float(str(value).strip()) if not isinstance(value, int | float) else float(value)
        if java_type == "boolean":
            if isinstance(value, bool):
                return int(value)
            text = str(value).strip().lower()
            if text in ("true", "1"):
                return 1
            if text in ("false", "0"):
                return 0
            raise ValueError_(f"Bad boolean value '{value}'")
        if java_type == "Date":
            return parse_date(str(value))
    except (TypeError, ValueError) as exc:
        raise ValueError_(f"Bad {java_type} value '{value}'") from exc
    return str(value)


def to_wire(java_type: str, value: object) -> str:
    """Column value -> XML text."""
    if java_type == "boolean":
        return "true" if value else "false"
    if java_type == "Date":
        return date_to_wire(str(value))
    if java_type == "Double":
        return repr(float(value))  # type: ignore[arg-type]
    return str(value)


XSI_TYPES = {
    "String": "xs:string",
    "Long": "xs:long",
    "Integer": "xs:int",
    "Double": "xs:double",
    "boolean": "xs:boolean",
    "Date": "xs:dateTime",
    "ParameterValueType": "xs:string",
    "StudyStatus": "xs:string",
}
