"""The error vocabulary every adapter and handler speaks.

Adapters translate wire failures (HTTP codes, SOAP faults, time-outs) into these types, so
callers branch on *kind of failure*, never on status codes. The worker runtime decides once:
a ``TransientError`` is retried with backoff, a ``PermanentError`` is dead-lettered (or
recorded as FAILED) at once.
"""

from __future__ import annotations

from collections.abc import Mapping


class DatastoreError(Exception):
    """Base of every error raised on purpose by Datastore code."""


class TransientError(DatastoreError):
    """Worth retrying later: a peer is down, slow, overloaded or answered 5xx."""


class CredentialError(TransientError):
    """A peer refused *our own* credential (the FTS certificate or token, an expired proxy,
    the ICAT functional account). Not the request's fault: it is retried until an operator
    fixes the credential, raises an alarm, and never fails a user's files."""


class PermanentError(DatastoreError):
    """Retrying cannot help: the input is invalid or a peer refused it for good."""


class TooLargeError(PermanentError):
    """A request or a selection holds more than a configured limit allows."""


class ConfigurationError(PermanentError):
    """A setting is missing or invalid; the message names the key."""


class InsecureKeyFileError(ConfigurationError):
    """A private key file others than its owner may read (as ssh refuses one): every service
    that would load it refuses to start, the gateway included."""


class PeerTimeoutError(TransientError):
    """A peer did not answer in time."""


class DeadlineExceededError(PeerTimeoutError):
    """Work on a peer outlasted the deadline Datastore sets for it (``icat.
    selection_deadline_seconds``): stopped, not retried; the caller may ask for less or
    retry later."""


class PeerUnavailableError(TransientError):
    """A peer could not be reached or answered with a server error."""


class NotFoundError(PermanentError):
    """The thing asked for does not exist at the peer."""


class AuthenticationError(PermanentError):
    """Credentials or session were refused."""


class SessionRefusedError(AuthenticationError):
    """The *caller's* own ICAT session or login was refused (unknown, expired, wrong
    password, none given): the gateway answers 401. Any other ``AuthenticationError`` is a peer
    refusing *us*, never the caller's fault (the gateway answers 503)."""


class ForbiddenError(PermanentError):
    """Authenticated, but not allowed to do this."""


class AlreadyExistsError(PermanentError):
    """The peer already holds this object (often success for idempotent callers)."""


class InvalidRequestError(PermanentError):
    """The peer refused the request as malformed or invalid."""


class ConflictError(InvalidRequestError):
    """What is asked cannot be done in the state its object is in (cancel an ended request,
    retry a dataset in flight): the reason says which state and why (HTTP 409; the caller's
    doing, so a user error when a worker gives it up)."""


class InvalidMessageError(PermanentError):
    """A message body that is not a valid envelope of a known type."""


class GaveUpError(PermanentError):
    """A message was delivered ``delivery_limit`` times without its handler ever answering."""


class NotArchivedError(PermanentError):
    """Some selected datafiles are not (yet) safely on tape: their "Archival state" is not
    FINISHED (or they have no location). ``states`` maps datafile id -> state (None = none)."""

    def __init__(self, states: Mapping[int, str | None]) -> None:
        self.states = dict(states)
        shown = sorted(self.states.items())[:20]
        listed = ", ".join(f"{i} ({s or 'never archived'})" for i, s in shown)
        more = f" and {len(self.states) - len(shown)} more" if len(self.states) > len(shown) else ""
        super().__init__(
            f"{len(self.states)} selected datafile(s) cannot be restored: their "
            f'"Archival state" is not FINISHED: {listed}{more}'
        )


class UntrustedLocationError(InvalidRequestError):
    """Some selected datafiles cannot be restored: their ``Datafile.location`` in ICAT is not
    the one Datastore wrote for them (unsafe, or not where the investigation/dataset/datafile
    hierarchy puts them). ``reasons`` maps datafile id -> why."""

    def __init__(self, reasons: Mapping[int, str]) -> None:
        self.reasons = dict(reasons)
        shown = sorted(self.reasons.items())[:20]
        listed = "; ".join(f"{i} ({why})" for i, why in shown)
        more = (
            f"; and {len(self.reasons) - len(shown)} more" if len(self.reasons) > len(shown) else ""
        )
        super().__init__(
            f"{len(self.reasons)} selected datafile(s) cannot be restored: their location in "
            f"ICAT is not the one Datastore archived them at: {listed}{more}"
        )
