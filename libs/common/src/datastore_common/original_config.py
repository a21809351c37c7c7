"""The original Datastore API's ``config.yaml`` keys, read by Datastore.

A site coming from ral-facilities' ``datastore-api`` keeps its ``config.yaml``: every key any
version of the original read (``icat.*``, ``fts3.*``, ``s3.*``) is either *accepted* (moved to
the key of ours that means the same, or dropped when ours needs nothing: a notice says so) or
*refused* at start with a message naming the key to set instead. Pure: ``translate`` takes the
raw mapping (as read from YAML) and answers the mapping Datastore's settings validate, plus the
notices to log; the table ``RULES`` is the whole of the mapping (documented in the README,
"Coming from the original Datastore API").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from datastore_common.domain.archival import ARCHIVAL_ENDPOINT, ARCHIVAL_IDS, ARCHIVAL_STATE


class OriginalKeyRefused(ValueError):
    """Keys of the original configuration Datastore cannot honour; the message names each and
    what to set instead."""


@dataclass(frozen=True)
class Outcome:
    """What one original key becomes: values of ours by dotted key, and a notice (or None)."""

    moves: dict[str, Any] = field(default_factory=dict)
    notice: str | None = None


#: A rule: the original key's value in, its outcome out; raises OriginalKeyRefused to refuse.
Rule = Callable[[Any], Outcome]


def _moved(new: str, convert: Callable[[Any], Any] = lambda v: v) -> Rule:
    def rule(value: Any) -> Outcome:
        return Outcome({new: convert(value)})

    return rule


def _refused(message: str) -> Rule:
    def rule(value: Any) -> Outcome:
        raise OriginalKeyRefused(message)

    return rule


def _ignored(notice: str) -> Rule:
    def rule(value: Any) -> Outcome:
        return Outcome(notice=notice)

    return rule


def _fixed_parameter_type(ours: str) -> Rule:
    """A ParameterType name the original let one choose: accepted when it is ours."""

    def rule(value: Any) -> Outcome:
        if value == ours:
            return Outcome(notice=f"the ParameterType is always {ours!r}: the key can go")
        raise OriginalKeyRefused(
            f"Datastore records this in the ParameterType {ours!r} (a fixed name), not "
            f"{value!r}: remove the key (ICAT's existing parameters of {value!r} stay as they are)"
        )

    return rule


def _functional_user(value: Any) -> Outcome:
    if not isinstance(value, Mapping):
        raise OriginalKeyRefused("must be a mapping with auth, username and password")
    names = {"auth": "icat.auth", "username": "icat.username", "password": "icat.password"}
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise OriginalKeyRefused(f"unknown keys {unknown}: only auth, username, password")
    return Outcome({names[k]: v for k, v in value.items()})


def _user_names(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(u, Mapping) and {"auth", "username"} <= set(u) for u in value
    ):
        raise OriginalKeyRefused("must be a list of {auth, username}")
    return [f"{u['auth']}/{u['username']}" for u in value]


_CHECKSUMS = {"none", "source", "target", "both"}


def _verify_checksum(value: Any) -> Outcome:
    """The original's 'destination' is our (and FTS's) 'target'; the other values are ours."""
    if value == "destination":
        return Outcome(
            {"fts3.verify_checksum": "target"}, notice="'destination' is now 'target': read as such"
        )
    if value not in _CHECKSUMS:
        raise OriginalKeyRefused(f"{value!r} is not one of {sorted(_CHECKSUMS | {'destination'})}")
    return Outcome({"fts3.verify_checksum": value})


def _supported_checksums(value: Any) -> Outcome:
    if isinstance(value, list) and "ADLER32" in {str(v).upper() for v in value}:
        return Outcome(notice="Datastore always uses ADLER32 checksums: the key can go")
    raise OriginalKeyRefused(
        f"Datastore verifies ADLER32 checksums only, and {value!r} does not list ADLER32: "
        "make the storage support adler32 (XRootD: xrootd.chksum adler32) and remove the key"
    )


def _x509_user_proxy(value: Any) -> Outcome:
    # A proxy file holds the certificate and its key, as the original used it.
    return Outcome({"x509_user_cert": value, "x509_user_key": value})


def _archive_endpoint(value: Any) -> Outcome:
    if not isinstance(value, Mapping) or "url" not in value:
        raise OriginalKeyRefused("must be a mapping with url (and storage_type: tape)")
    if value.get("storage_type", "tape") != "tape":
        raise OriginalKeyRefused(
            f"storage_type {value['storage_type']!r}: the archive is tape storage; set "
            "tape_archive to its URL"
        )
    names = {
        "url": "tape_archive",
        "bring_online": "fts3.bring_online",
        "archive_timeout": "fts3.archive_timeout",
    }
    unknown = sorted(set(value) - set(names) - {"storage_type"})
    if unknown:
        raise OriginalKeyRefused(f"unknown keys {unknown}: only url, bring_online, archive_timeout")
    return Outcome({names[k]: v for k, v in value.items() if k in names})


_STORAGE_ENDPOINTS = (
    "is now two keys: instrument_data_cache (the archive source) and user_data_cache (the "
    "restore destination); set those URLs and remove fts3.storage_endpoints"
)
_S3 = "S3 storage is not supported: remove the s3 section (restores go to user_data_cache)"

#: Every key of the original's config, dotted, with what it becomes. Keys the original shares
#: with ours, in the same place and meaning (icat.url, icat.check_cert, fts3.endpoint,
#: fts3.retry, fts3.bring_online, fts3.archive_timeout, fts3.copy_pin_lifetime,
#: icat.embargo_period_years, icat.embargo_types), need no rule and are not listed.
RULES: dict[str, Rule] = {
    "icat.facility_name": _moved("icat.facility"),
    "icat.functional_user": _functional_user,
    "icat.admin_users": _moved("gateway.archivers", _user_names),
    "icat.create_parameter_types": _ignored(
        "Datastore always creates its archival ParameterTypes when missing: the key can go"
    ),
    "icat.parameter_type_job_state": _fixed_parameter_type(ARCHIVAL_STATE),
    "icat.parameter_type_job_ids": _fixed_parameter_type(ARCHIVAL_IDS),
    "icat.parameter_type_fts_endpoints": _fixed_parameter_type(ARCHIVAL_ENDPOINT),
    "icat.parameter_type_deletion_date": _refused(
        "Datastore records no deletion date (it never deletes from the caches): remove the key"
    ),
    "fts3.verify": _moved("fts3.verify_tls"),
    "fts3.instrument_data_cache": _moved("instrument_data_cache"),
    "fts3.user_data_cache": _moved("user_data_cache"),
    "fts3.restored_data_cache": _moved("user_data_cache"),
    "fts3.tape_archive": _moved("tape_archive"),
    "fts3.x509_user_cert": _moved("x509_user_cert"),
    "fts3.x509_user_key": _moved("x509_user_key"),
    "fts3.x509_user_proxy": _x509_user_proxy,
    "fts3.verify_checksum": _verify_checksum,
    "fts3.supported_checksums": _supported_checksums,
    "fts3.archive_endpoint": _archive_endpoint,
    "fts3.storage_endpoints": _refused(_STORAGE_ENDPOINTS),
    "fts3.download_cache": _refused("is now user_data_cache (a storage URL): set that instead"),
    "fts3.check_source": _ignored(
        "Datastore always checks every source (size and adler32) before archiving: the key can go"
    ),
    "fts3.file_size_limit": _refused(
        "there is no per-file limit: gateway.max_bytes_per_request caps a request's total "
        "bytes; set that and remove the key"
    ),
    "fts3.total_file_size_limit": _moved("gateway.max_bytes_per_request"),
    "s3": _refused(_S3),
}


@dataclass(frozen=True)
class Translation:
    """The configuration in Datastore's keys, and what to tell the operator about it."""

    values: dict[str, Any]
    notices: list[str]


def translate(raw: Mapping[str, Any]) -> Translation:
    """``raw`` with every original key replaced by ours (see ``RULES``); OriginalKeyRefused
    naming every key that cannot be honoured, or that is given both ways with two values."""
    values: dict[str, Any] = {k: _copy(v) for k, v in raw.items()}
    notices: list[str] = []
    refusals: list[str] = []
    moves: dict[str, tuple[str, Any]] = {}  # new key -> (original key, value)
    for original, rule in RULES.items():
        found, value = _pop(values, original)
        if not found:
            continue
        try:
            outcome = rule(value)
        except OriginalKeyRefused as refusal:
            refusals.append(f"{original} (original Datastore API key): {refusal}")
            continue
        for new, new_value in outcome.moves.items():
            if new in moves and moves[new][1] != new_value:
                refusals.append(
                    f"{original} and {moves[new][0]} both set {new}, to different values"
                )
            moves[new] = (original, new_value)
        if outcome.notice:
            notices.append(f"{original} (original Datastore API key): {outcome.notice}")
        elif list(outcome.moves) != [original]:  # a key of ours too, same meaning: no notice
            notices.append(
                f"{original} is now {', '.join(outcome.moves)}: read as such; "
                "rename it when convenient"
            )
    for new, (original, value) in moves.items():
        found, current = _get(values, new)
        if found and current != value:
            refusals.append(f"{original} and {new} are both set, to different values: keep {new}")
            continue
        _set(values, new, value)
    if refusals:
        raise OriginalKeyRefused("; ".join(refusals))
    return Translation(values, notices)


def _copy(value: Any) -> Any:
    return {k: _copy(v) for k, v in value.items()} if isinstance(value, Mapping) else value


def _pop(values: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    *parents, leaf = dotted.split(".")
    node: Any = values
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or leaf not in node:
        return False, None
    return True, node.pop(leaf)


def _get(values: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _set(values: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = values
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {} if child is None else dict(child)
            node[part] = child
        node = child
    node[leaf] = value
