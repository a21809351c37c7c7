"""HTTP shapes of the gateway: what clients send and what they get back (not wire messages).

``ArchiveRequest`` is the seed's ``POST /archive`` body verbatim; its investigations reuse the
message models of ``datastore_common.messages.metadata``, so the HTTP body and an instrument's
``archive.requested`` message obey the same rules (safe names, no duplicates, files present).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datastore_common.messages import InvestigationSpec, check_unique_investigations

API_VERSION = "1"


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoginRequest(_Shape):
    auth: str = Field(default="simple", min_length=1, examples=["simple"])
    username: str = Field(min_length=1, examples=["root"])
    password: str = Field(min_length=1, examples=["pw"])


class LoginAccepted(_Shape):
    sessionId: str = Field(description="ICAT session id; send it as 'Authorization: Bearer ...'.")


class ArchiveRequest(_Shape):
    investigations: list[InvestigationSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_investigations(self) -> ArchiveRequest:
        check_unique_investigations(self.investigations)
        return self

    @property
    def datafile_count(self) -> int:
        return sum(len(ds.datafiles) for inv in self.investigations for ds in inv.datasets)

    @property
    def total_bytes(self) -> int:
        return sum(
            df.fileSize or 0
            for inv in self.investigations
            for ds in inv.datasets
            for df in ds.datafiles
        )


class ArchiveAccepted(_Shape):
    request_id: str = Field(description="Correlates every message and status of this request.")
    job_ids: list[str] = Field(description="The FTS job ids the files will travel under.")


class VersionInfo(_Shape):
    name: str
    version: str
    api_version: str


class Health(_Shape):
    status: str = Field(description="'ok' when every dependency is reachable, else 'degraded'.")
    broker_connected: bool
    vo: str | None = Field(description="FTS VO job ids are derived from, once known.")


class Problem(_Shape):
    """Body of every error answer except 422: one sentence saying why."""

    detail: str
