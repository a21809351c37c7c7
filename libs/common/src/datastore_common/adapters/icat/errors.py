"""python-icat, suds and network failures as :mod:`datastore_common.errors` types."""

from __future__ import annotations

import http.client
import urllib.error

import icat.exception as icat_errors
import suds
import suds.transport

from datastore_common.errors import (
    AlreadyExistsError,
    AuthenticationError,
    DatastoreError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PeerTimeoutError,
    PeerUnavailableError,
)

_FAULT_ERRORS: tuple[tuple[type[Exception], type[DatastoreError]], ...] = (
    (icat_errors.ICATSessionError, AuthenticationError),
    (icat_errors.ICATPrivilegesError, ForbiddenError),
    (icat_errors.ICATNoObjectError, NotFoundError),
    (icat_errors.ICATObjectExistsError, AlreadyExistsError),
    (icat_errors.ICATValidationError, InvalidRequestError),
    (icat_errors.ICATParameterError, InvalidRequestError),
    (icat_errors.ICATNotImplementedError, InvalidRequestError),
    (icat_errors.ICATInternalError, PeerUnavailableError),
)


def translate_icat_error(exc: BaseException, *, operation: str) -> DatastoreError | None:
    """The Datastore error for a python-icat/suds/network failure; None for anything else
    (a programming error must surface as itself)."""
    text = f"icat {operation}: {exc}"
    for fault, error in _FAULT_ERRORS:
        if isinstance(exc, fault):
            return error(text)
    if isinstance(exc, icat_errors.ICATError | suds.WebFault):
        return PeerUnavailableError(text)  # a fault without an IcatException type
    if isinstance(exc, suds.transport.TransportError):
        code = getattr(exc, "httpcode", None)
        if code is None or code >= 500 or code in (408, 429):
            return PeerUnavailableError(text)
        if code == 401:
            return AuthenticationError(text)
        if code == 403:
            return ForbiddenError(text)
        return InvalidRequestError(text)
    status = _suds_http_status(exc)
    if status is not None:
        if status >= 500 or status in (408, 429):
            return PeerUnavailableError(text)
        return InvalidRequestError(text)
    if isinstance(exc, TimeoutError):
        return PeerTimeoutError(text)
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, TimeoutError):
            return PeerTimeoutError(text)
        return PeerUnavailableError(text)
    if isinstance(exc, OSError | http.client.HTTPException):
        return PeerUnavailableError(text)
    return None


def _suds_http_status(exc: BaseException) -> int | None:
    """suds raises a bare ``Exception((status, reason))`` for an HTTP error without a SOAP
    fault (a proxy's 503, say): its status, or None for any other exception."""
    if type(exc) is Exception and len(exc.args) == 1 and isinstance(exc.args[0], tuple):
        status = exc.args[0][0] if exc.args[0] else None
        return status if isinstance(status, int) else None
    return None
