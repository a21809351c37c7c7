"""The ICAT fault: what ``IcatException`` carries on the wire."""

from __future__ import annotations

FAULT_TYPES = frozenset(
    {
        "BAD_PARAMETER",
        "INTERNAL",
        "INSUFFICIENT_PRIVILEGES",
        "NO_SUCH_OBJECT_FOUND",
        "OBJECT_ALREADY_EXISTS",
        "SESSION",
        "VALIDATION",
        "NOT_IMPLEMENTED",
    }
)


class IcatError(Exception):
    """An ICAT exception; python-icat maps ``type`` to its ICAT*Error classes."""

    def __init__(self, fault_type: str, message: str, offset: int = -1) -> None:
        assert fault_type in FAULT_TYPES, fault_type
        super().__init__(message)
        self.type = fault_type
        self.message = message
        self.offset = offset
