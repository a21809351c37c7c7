"""Error answers as the OpenAPI document shows them: what each status means on a route, its
body's model and examples of the reason given."""

from __future__ import annotations

from typing import Any

from datastore_gateway.middleware import MISSING_BEARER
from datastore_gateway.schemas import Problem

Responses = dict[int | str, dict[str, Any]]


def problem(description: str, *details: str) -> dict[str, Any]:
    """A ``Problem`` answer (``{"detail": "<reason>"}``) with each reason as an example."""
    answer: dict[str, Any] = {"model": Problem, "description": description}
    if details:
        examples = {f"example {n}": {"value": {"detail": d}} for n, d in enumerate(details, 1)}
        answer["content"] = {"application/json": {"examples": examples}}
    return answer


def invalid(
    description: str, *fields: tuple[str, str, str], details: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A 422: a parameter FastAPI refused (``{"detail": [...], "reason": ...}``, as
    ``main.validation_problem`` trims it), for each (location, error type, message) in
    ``fields``; or one our own checks refused (``{"detail": "<reason>"}``), for each of
    ``details``."""
    examples: dict[str, Any] = {}
    for location, error_type, message in fields:
        loc = [int(part) if part.isdigit() else part for part in location.split(".")]
        examples[f"invalid {location.removeprefix('query.').removeprefix('path.')}"] = {
            "value": {
                "detail": [{"type": error_type, "loc": loc, "msg": message}],
                "reason": f"{location}: {message}",
            }
        }
    for n, detail in enumerate(details, 1):
        examples[f"refused {n}"] = {"value": {"detail": detail}}
    return {"description": description, "content": {"application/json": {"examples": examples}}}


UNAUTHENTICATED = problem("No, unknown or expired ICAT session", MISSING_BEARER)
