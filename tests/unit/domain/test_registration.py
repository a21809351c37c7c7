"""domain.registration: the icat-writer's decisions, rule by rule, on plain data."""

from __future__ import annotations

from dataclasses import replace

import pytest

from datastore_common.domain.archival import (
    ARCHIVAL_ENDPOINT,
    ARCHIVAL_FAILURE,
    ARCHIVAL_IDS,
    ARCHIVAL_STATE,
)
from datastore_common.domain.claims import Standing, after_claim, claim_ids, standing
from datastore_common.domain.progress import (
    dataset_writes,
    file_update,
    identified,
    lookup_keys,
    progress,
)
from datastore_common.domain.registration import (
    ALREADY_ON_TAPE,
    DatasetRegistration,
    FileDecision,
    FileToRegister,
    Plan,
    PlanMismatchError,
    announce,
    check_plan,
    dataset_values,
    decide_file,
    files_of,
    fill_gaps,
    refuse,
    register_files,
    size_and_checksum,
)
from datastore_common.errors import InvalidRequestError
from datastore_common.messages import (
    ArchiveRequested,
    DatafileKey,
    FileState,
    PlannedJob,
    PlannedTransfer,
    TransferStatus,
)
from tests.unit.domain.specs import ENDPOINT, Datafile, Dataset, Stored, investigation, plan

OURS = ("job-a", "job-b")  # the job ids of the request being registered
THEIRS = "job-x"  # a job of another request
REAL = "adler32:0000abcd"

# ---------------------------------------------------------------- may this request go on?


@pytest.mark.parametrize(
    ("archival", "expected"),
    [
        pytest.param({}, Standing("claim"), id="new-dataset-is-claimed-first"),
        pytest.param(
            {ARCHIVAL_IDS: "job-a"},
            Standing("register", ours=True),
            id="claimed-by-an-earlier-delivery-of-ours-carries-on",
        ),
        pytest.param(
            {ARCHIVAL_STATE: "SUBMITTED", ARCHIVAL_IDS: "job-a,job-b"},
            Standing("register", ours=True),
            id="redelivery-after-registration-is-ours",
        ),
        pytest.param(
            {ARCHIVAL_STATE: "FINISHED", ARCHIVAL_IDS: "job-b"},
            Standing("register", ours=True),
            id="redelivery-after-finishing-is-still-ours",
        ),
        pytest.param(
            {ARCHIVAL_STATE: "SUBMITTED", ARCHIVAL_IDS: THEIRS},
            Standing("refuse", state="SUBMITTED", job_ids=(THEIRS,)),
            id="being-archived-by-another-request-is-refused",
        ),
        pytest.param(
            {ARCHIVAL_STATE: "ACTIVE", ARCHIVAL_IDS: f"job-a,{THEIRS}"},
            Standing("refuse", state="ACTIVE", job_ids=("job-a", THEIRS)),
            id="ids-only-partly-ours-are-not-ours",
        ),
        pytest.param(
            {ARCHIVAL_STATE: "FINISHED", ARCHIVAL_IDS: THEIRS},
            Standing("refuse", state="FINISHED", job_ids=(THEIRS,)),
            id="finished-by-another-request-is-refused",
        ),
        pytest.param(
            {ARCHIVAL_STATE: "SUBMITTED"},
            Standing("refuse", state="SUBMITTED"),
            id="in-flight-without-ids-is-refused",
        ),
        pytest.param(
            {ARCHIVAL_STATE: "FAILED", ARCHIVAL_IDS: THEIRS},
            Standing("claim", replacing=THEIRS),
            id="failed-may-be-archived-again",
        ),
        pytest.param(
            {ARCHIVAL_STATE: "CANCELED", ARCHIVAL_IDS: THEIRS},
            Standing("claim", replacing=THEIRS),
            id="canceled-may-be-archived-again",
        ),
        pytest.param(
            {ARCHIVAL_STATE: "FINISHEDDIRTY", ARCHIVAL_IDS: THEIRS},
            Standing("claim", replacing=THEIRS),
            id="finisheddirty-may-be-archived-again",
        ),
        pytest.param(
            {ARCHIVAL_STATE: "failed"},
            Standing("claim"),
            id="states-are-compared-normalised",
        ),
        # Ids of another request without a state: its claim, its registration not written yet.
        pytest.param(
            {ARCHIVAL_IDS: THEIRS},
            Standing("refuse", state="SUBMITTED", job_ids=(THEIRS,)),
            id="another-requests-claim-without-a-state-is-refused",
        ),
    ],
)
def test_standing(archival: dict[str, str], expected: Standing) -> None:
    assert standing(archival, frozenset(OURS)) == expected


@pytest.mark.parametrize(
    ("holder", "expected"),
    [
        pytest.param(None, Standing("register"), id="claimed"),
        pytest.param(
            "job-b,job-a", Standing("register"), id="a-concurrent-delivery-of-ours-claimed-first"
        ),
        pytest.param(
            "",
            Standing("refuse", state="SUBMITTED"),
            id="a-claim-being-swapped-by-another-request-refuses",
        ),
        pytest.param(
            THEIRS,
            Standing("refuse", state="SUBMITTED", job_ids=(THEIRS,)),
            id="another-request-claimed-first",
        ),
        pytest.param(
            f"job-a,{THEIRS}",
            Standing("refuse", state="SUBMITTED", job_ids=("job-a", THEIRS)),
            id="a-holder-only-partly-ours-refuses",
        ),
    ],
)
def test_after_claim(holder: str | None, expected: Standing) -> None:
    assert after_claim(holder, frozenset(OURS)) == expected


# ---------------------------------------------------------------- what each datafile gets


@pytest.mark.parametrize(
    ("size", "checksum", "stored", "expected"),
    [
        pytest.param(5, REAL, Stored(9, "adler32:ffffffff"), (5, REAL), id="the-request-wins"),
        pytest.param(0, REAL, Stored(9, "adler32:ffffffff"), (9, REAL), id="size-0-is-unknown"),
        pytest.param(None, None, Stored(9, "adler32:ffffffff"), (9, "adler32:ffffffff"),
                     id="missing-values-come-from-the-cache"),
        pytest.param(5, "string", Stored(9, "adler32:ffffffff"), (5, "adler32:ffffffff"),
                     id="a-placeholder-checksum-is-not-kept"),
        pytest.param(5, "ADLER32:0000ABCD", None, (5, "ADLER32:0000ABCD"),
                     id="a-real-checksum-is-kept-as-sent"),
        pytest.param(None, "string", None, (None, None), id="nothing-known-without-the-cache"),
    ],
)  # fmt: skip
def test_size_and_checksum(
    size: int | None,
    checksum: str | None,
    stored: Stored | None,
    expected: tuple[int | None, str | None],
) -> None:
    [datafile] = investigation(["f.nxs"], size=size, checksum=checksum).datasets[0].datafiles
    assert size_and_checksum(datafile, stored) == expected


def _file(on_cache: bool) -> FileToRegister:
    """The one datafile of a one-file request, in job "job-a"."""
    inv = investigation(["f.nxs"])
    request = ArchiveRequested(request_id="req-1", investigations=[inv], jobs=plan([inv]))
    [file] = files_of(
        check_plan(request, request.jobs, endpoint=ENDPOINT),
        inv,
        inv.datasets[0],
        {request.jobs[0].transfers[0].source: Stored(12, REAL) if on_cache else None},
    )
    return replace(file, job_id="job-a")


SUBMITTED_VALUES = {
    ARCHIVAL_STATE: "SUBMITTED",
    ARCHIVAL_IDS: "job-a",
    ARCHIVAL_ENDPOINT: ENDPOINT,
    ARCHIVAL_FAILURE: None,  # a failure of an earlier attempt is removed
}
ON_TAPE = {ARCHIVAL_STATE: "FINISHED", ARCHIVAL_IDS: THEIRS, ARCHIVAL_ENDPOINT: ENDPOINT}
MISSING_FAILURE = (
    "user error: source not found on the instrument data cache: "
    "root://idc:1094//instrument/20XX/ABC-1/scan/scan_0/f.nxs"
)


@pytest.mark.parametrize(
    ("ours", "current", "on_cache", "values", "state", "fate"),
    [
        pytest.param(False, {}, True, SUBMITTED_VALUES, "SUBMITTED", "registered",
                     id="first-archive"),
        pytest.param(False, {}, False,
                     {ARCHIVAL_STATE: "FAILED", ARCHIVAL_FAILURE: MISSING_FAILURE},
                     "FAILED", "dropped FAILED user", id="missing-source-fails-as-user-error"),
        pytest.param(False, ON_TAPE, True, {}, "FINISHED", "dropped FINISHED",
                     id="rearchive-keeps-what-is-on-tape"),
        pytest.param(False, ON_TAPE, False, {}, "FINISHED", "dropped FINISHED",
                     id="on-tape-wins-over-a-missing-source"),
        pytest.param(False, {ARCHIVAL_STATE: "FAILED", ARCHIVAL_FAILURE: "system error: x"},
                     True, SUBMITTED_VALUES, "SUBMITTED", "registered",
                     id="rearchive-copies-a-failed-file-again"),
        pytest.param(True, SUBMITTED_VALUES | {ARCHIVAL_FAILURE: "x"}, True, {}, "SUBMITTED",
                     "registered", id="redelivery-neither-rewrites-nor-removes"),
        pytest.param(True, {ARCHIVAL_STATE: "ACTIVE", ARCHIVAL_IDS: "job-a"}, True,
                     {ARCHIVAL_ENDPOINT: ENDPOINT}, "ACTIVE", "registered",
                     id="redelivery-fills-gaps-and-keeps-the-state-recorded-since"),
        pytest.param(True, {ARCHIVAL_STATE: "FINISHED", ARCHIVAL_IDS: "job-a"}, True,
                     {ARCHIVAL_ENDPOINT: ENDPOINT}, "FINISHED", "registered",
                     id="redelivery-announces-its-finished-file-again"),
        pytest.param(True, {}, True,
                     {ARCHIVAL_STATE: "SUBMITTED", ARCHIVAL_IDS: "job-a",
                      ARCHIVAL_ENDPOINT: ENDPOINT},
                     "SUBMITTED", "registered", id="redelivery-writes-what-was-never-written"),
        pytest.param(True, {ARCHIVAL_STATE: "FAILED", ARCHIVAL_FAILURE: MISSING_FAILURE}, False,
                     {}, "FAILED", "dropped FAILED user",
                     id="redelivery-drops-the-missing-source-again"),
    ],
)  # fmt: skip
def test_decide_file(
    ours: bool,
    current: dict[str, str],
    on_cache: bool,
    values: dict[str, str | None],
    state: str,
    fate: str,
) -> None:
    decision = decide_file(
        _file(on_cache), Datafile(11, archival=current), ours=ours, endpoint=ENDPOINT
    )
    assert (decision.values, decision.state, _fate(decision)) == (values, state, fate)
    if decision.registered is not None:
        assert decision.job_id == "job-a"
        assert (decision.registered.datafile_id, decision.registered.dataset_id) == (11, 7)
        assert (decision.registered.filesize, decision.registered.checksum) == (12, REAL)
    if decision.dropped is not None:
        assert decision.job_id is None
        assert (decision.dropped.datafile_id, decision.dropped.dataset_id) == (11, 7)
    if decision.dropped is not None and decision.dropped.state == "FINISHED":
        assert decision.dropped.reason == ALREADY_ON_TAPE


def _fate(decision: FileDecision) -> str:
    if decision.registered is not None:
        return "registered"
    assert decision.dropped is not None
    return " ".join(
        filter(None, ["dropped", decision.dropped.state, decision.dropped.failure_class])
    )


@pytest.mark.parametrize(
    ("current", "wanted", "expected"),
    [
        pytest.param({}, {"a": "1", "b": None}, {"a": "1"}, id="none-removes-nothing-missing"),
        pytest.param({"a": "0"}, {"a": "1", "b": "2"}, {"b": "2"}, id="recorded-values-stay"),
        pytest.param({"a": "0"}, {"a": None}, {}, id="recorded-values-are-not-removed"),
    ],
)
def test_fill_gaps(
    current: dict[str, str], wanted: dict[str, str | None], expected: dict[str, str]
) -> None:
    assert fill_gaps(current, wanted) == expected


def _decision(state: str, job_id: str | None = None) -> FileDecision:
    return FileDecision(values={}, state=state, job_id=job_id)


@pytest.mark.parametrize(
    ("ours", "current", "decisions", "expected"),
    [
        pytest.param(False, {}, [_decision("SUBMITTED", "job-a"), _decision("SUBMITTED", "job-b"),
                                 _decision("SUBMITTED", "job-a")],
                     {ARCHIVAL_STATE: "SUBMITTED", ARCHIVAL_ENDPOINT: ENDPOINT,
                      ARCHIVAL_IDS: "job-a,job-b"},
                     id="jobs-in-file-order-each-once"),
        pytest.param(False, {ARCHIVAL_IDS: "job-a"}, [_decision("FAILED"), _decision("FINISHED")],
                     {ARCHIVAL_STATE: "FINISHEDDIRTY", ARCHIVAL_ENDPOINT: ENDPOINT},
                     id="no-file-left-in-a-job-leaves-the-ids-recorded"),
        pytest.param(True, {ARCHIVAL_STATE: "ACTIVE", ARCHIVAL_IDS: "job-a"},
                     [_decision("SUBMITTED", "job-a")], {ARCHIVAL_ENDPOINT: ENDPOINT},
                     id="redelivery-only-fills-gaps"),
    ],
)  # fmt: skip
def test_dataset_values(
    ours: bool,
    current: dict[str, str],
    decisions: list[FileDecision],
    expected: dict[str, str | None],
) -> None:
    assert dataset_values(current, decisions, ours=ours, endpoint=ENDPOINT) == expected


# ---------------------------------------------------------------- a dataset, then the request


def _request(*datasets: list[str], per_job: int = 100) -> tuple[ArchiveRequested, Plan]:
    inv = investigation(*datasets)
    request = ArchiveRequested(
        request_id="req-1", investigations=[inv], jobs=plan([inv], per_job=per_job)
    )
    return request, check_plan(request, request.jobs, endpoint=ENDPOINT)


def test_a_dataset_is_claimed_with_its_jobs_sorted() -> None:
    request, the_plan = _request(["a", "b", "c"], per_job=2)  # a dataset split over two jobs
    inv = request.investigations[0]
    files = files_of(the_plan, inv, inv.datasets[0], dict.fromkeys(the_plan.sources))
    assert claim_ids(f.job_id for f in files) == ",".join(
        sorted(job.job_id for job in request.jobs)
    )


def test_register_files_writes_by_datafile_id_and_keeps_the_rest_by_key() -> None:
    request, the_plan = _request(["a", "b"])
    inv = request.investigations[0]
    a, b = the_plan.sources
    files = files_of(the_plan, inv, inv.datasets[0], {a: Stored(1, REAL), b: None})
    result = register_files(
        files, {"a": Datafile(21), "b": Datafile(22)}, Dataset(7), ours=False, endpoint=ENDPOINT
    )
    [job] = request.jobs
    assert set(result.file_values) == {21, 22}
    assert result.file_values[22][ARCHIVAL_STATE] == "FAILED"
    assert result.dataset_values[ARCHIVAL_STATE] == "SUBMITTED"
    assert result.dataset_values[ARCHIVAL_IDS] == job.job_id
    assert [k[3] for k in result.registered] == ["a"]
    assert [k[3] for k in result.dropped] == ["b"]
    assert not result.refused


def test_a_refused_dataset_drops_every_file_and_writes_nothing() -> None:
    request, the_plan = _request(["a", "b"])
    inv = request.investigations[0]
    files = files_of(the_plan, inv, inv.datasets[0], dict.fromkeys(the_plan.sources))
    refusal = Standing("refuse", state="ACTIVE", job_ids=(THEIRS,))
    result = refuse(inv, inv.datasets[0], files, refusal, dataset_id=7)
    assert (result.refused, result.file_values, result.dataset_values) == (True, {}, {})
    assert {f.state for f in result.dropped.values()} == {"FAILED"}
    assert {f.failure_class for f in result.dropped.values()} == {"user"}
    assert next(iter(result.dropped.values())).reason == (
        f"dataset ABC-1/scan_0 is already archived or being archived (state ACTIVE, jobs "
        f"{THEIRS}): not archived again"
    )


# Each file of a two-file job: "r" registered, "m" missing source (FAILED), "t" on tape
# (FINISHED); the job announced with what is left, and the status of the job's lost files.
@pytest.mark.parametrize(
    ("fates", "announced", "job_state", "reason"),
    [
        pytest.param("rr", 2, None, None, id="nothing-lost-no-status"),
        pytest.param("rm", 1, "SUBMITTED", None, id="one-missing-the-job-goes-on"),
        pytest.param("mm", 0, "FAILED", "no file of this job can be archived: source not found",
                     id="all-missing-the-job-fails"),
        pytest.param("tt", 0, "FINISHED", None, id="all-on-tape-the-job-is-done"),
        pytest.param("tm", 0, "FINISHEDDIRTY",
                     "no file of this job can be archived: source not found",
                     id="on-tape-and-missing-the-job-is-dirty"),
    ],
)  # fmt: skip
def test_announce(fates: str, announced: int, job_state: str | None, reason: str | None) -> None:
    request, the_plan = _request(["a", "b"])
    [job] = request.jobs
    registered, dropped = {}, {}
    for fate, transfer in zip(fates, job.transfers, strict=True):
        key = _key(transfer.datafile)
        if fate == "r":
            registered[key] = transfer.model_copy(update={"datafile_id": 1})
        else:
            state, why = ("FAILED", "source not found") if fate == "m" else ("FINISHED", "tape")
            dropped[key] = FileState(
                source=transfer.source, destination=transfer.destination, state=state, reason=why
            )
    result = announce(the_plan, [DatasetRegistration(7, {}, {}, registered, dropped)])

    assert [len(j.transfers) for j in result.jobs] == ([announced] if announced else [])
    assert (result.registered, result.dropped) == (len(registered), len(dropped))
    if job_state is None:
        assert result.statuses == []
        return
    [status] = result.statuses
    assert (status.job_id, status.job_state, status.fts_endpoint) == (
        job.job_id,
        job_state,
        ENDPOINT,
    )
    assert (status.reason or "").startswith(reason or "") and bool(status.reason) == bool(reason)
    assert status.files == list(dropped.values())


def _key(key: DatafileKey | None) -> tuple[str, str, str, str]:
    assert key is not None
    return (key.investigation, key.visit_id, key.dataset, key.datafile)


def _jobs_with(change: str, job: PlannedJob) -> list[PlannedJob]:
    """The request's one job, changed so that it no longer covers the request."""
    first, second = job.transfers
    assert second.datafile is not None
    stranger = second.model_copy(
        update={"datafile": second.datafile.model_copy(update={"datafile": "zz"})}
    )
    return {
        "restore-job": lambda: [job.model_copy(update={"kind": "restore"})],
        "no-datafile": lambda: [_with(job, first.model_copy(update={"datafile": None}), second)],
        "twice": lambda: [job, _with(job.model_copy(update={"job_id": "j2"}), second)],
        "missing": lambda: [_with(job, first)],
        "unknown": lambda: [_with(job, first, second, stranger)],
    }[change]()


def _with(job: PlannedJob, *transfers: PlannedTransfer) -> PlannedJob:
    return job.model_copy(update={"transfers": list(transfers)})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param("restore-job", "is a restore job in an archive request", id="restore-job"),
        pytest.param("no-datafile", "names no datafile", id="transfer-without-datafile"),
        pytest.param("twice", r"scan_0/b planned twice", id="datafile-planned-twice"),
        pytest.param("missing", r"unplanned: \['ABC/1/scan_0/b'\], unknown: \[\]", id="unplanned"),
        pytest.param("unknown", r"unplanned: \[\], unknown: \['ABC/1/scan_0/zz'\]", id="unknown"),
    ],
)
def test_check_plan_refuses_jobs_that_do_not_cover_the_request(change: str, message: str) -> None:
    request, _ = _request(["a", "b"])
    with pytest.raises(PlanMismatchError, match=message) as caught:
        check_plan(request, _jobs_with(change, request.jobs[0]), endpoint=ENDPOINT)
    assert isinstance(caught.value, InvalidRequestError)  # the request's fault: a user error


def test_check_plan_keeps_the_jobs_and_names_their_ids_and_sources() -> None:
    request, the_plan = _request(["a", "b", "c"], per_job=2)
    assert the_plan.jobs == tuple(request.jobs)
    assert the_plan.job_ids == {job.job_id for job in request.jobs}
    assert the_plan.sources == [t.source for job in request.jobs for t in job.transfers]


# ---------------------------------------------------------------- FTS's news


def _status(files: list[FileState], reason: str | None = None) -> TransferStatus:
    return TransferStatus(
        request_id="r",
        kind="archive",
        job_id="job-a",
        fts_endpoint=ENDPOINT,
        job_state="ACTIVE",
        reason=reason,
        files=files,
    )


def _reported(
    state: str,
    datafile_id: int | None = 1,
    reason: str | None = None,
    failure_class: str | None = None,
) -> FileState:
    return FileState.model_validate(
        {
            "source": "s",
            "destination": "d",
            "datafile_id": datafile_id,
            "state": state,
            "reason": reason,
            "failure_class": failure_class,
        }
    )


@pytest.mark.parametrize(
    ("recorded_ids", "state", "file", "status_reason", "expected"),
    [
        pytest.param("job-a", "SUBMITTED", _reported("ACTIVE"), None,
                     {ARCHIVAL_STATE: "ACTIVE"}, id="forward"),
        pytest.param("job-a", None, _reported("started"), None,
                     {ARCHIVAL_STATE: "ACTIVE"}, id="from-nothing-normalised"),
        pytest.param(None, "SUBMITTED", _reported("ACTIVE"), None,
                     {ARCHIVAL_STATE: "ACTIVE"}, id="no-recorded-job-any-job-may-report"),
        pytest.param("job-old,job-a", "SUBMITTED", _reported("FINISHED"), None,
                     {ARCHIVAL_STATE: "FINISHED"}, id="one-of-the-recorded-jobs"),
        pytest.param("job-b", "SUBMITTED", _reported("FINISHED"), None, None,
                     id="a-stale-job-id-is-ignored"),
        pytest.param("job-a", "ACTIVE", _reported("SUBMITTED"), None, None, id="no-step-back"),
        pytest.param("job-a", "ACTIVE", _reported("ACTIVE"), None, None, id="duplicate"),
        pytest.param("job-a", "FINISHED", _reported("FAILED"), None, None,
                     id="terminal-is-final"),
        pytest.param("job-a", "ACTIVE", _reported("FAILED", reason="Connection timed out"), "job",
                     {ARCHIVAL_STATE: "FAILED",
                      ARCHIVAL_FAILURE: "system error: Connection timed out"},
                     id="failed-with-the-files-reason-classified"),
        pytest.param("job-a", "ACTIVE", _reported("FAILED"), "No such file or directory",
                     {ARCHIVAL_STATE: "FAILED",
                      ARCHIVAL_FAILURE: "user error: No such file or directory"},
                     id="failed-with-the-jobs-reason"),
        pytest.param("job-a", "ACTIVE", _reported("FAILED"), None,
                     {ARCHIVAL_STATE: "FAILED",
                      ARCHIVAL_FAILURE: "system error: FTS gave no reason"},
                     id="failed-without-a-reason"),
        pytest.param("job-a", "ACTIVE", _reported("FAILED", reason="timeout", failure_class="user"),
                     None, {ARCHIVAL_STATE: "FAILED", ARCHIVAL_FAILURE: "user error: timeout"},
                     id="a-given-class-wins"),
    ],
)  # fmt: skip
def test_file_update(
    recorded_ids: str | None,
    state: str | None,
    file: FileState,
    status_reason: str | None,
    expected: dict[str, str] | None,
) -> None:
    status = _status([file], reason=status_reason)
    assert file_update(status, file, recorded_ids=recorded_ids, state=state) == expected


def test_progress_moves_each_file_once_and_names_the_unknown() -> None:
    current = {
        1: Datafile(1, archival={ARCHIVAL_STATE: "SUBMITTED", ARCHIVAL_IDS: "job-a"}),
        2: Datafile(2, archival={ARCHIVAL_STATE: "FINISHED", ARCHIVAL_IDS: "job-a"}),
    }
    files = [
        _reported("ACTIVE", 1),
        _reported("SUBMITTED", 1),  # behind what this same event just moved it to
        _reported("FINISHED", 2),  # a duplicate
        _reported("FINISHED", 3),  # gone from ICAT
        _reported("FINISHED", None),  # not in ICAT at all
    ]
    result = progress(_status(files), files, current)
    assert result.updates == {1: {ARCHIVAL_STATE: "ACTIVE"}}
    assert result.unknown == (3,)


def test_files_reported_by_key_get_their_ids_where_found() -> None:
    key = DatafileKey(investigation="ABC", visit_id="1", dataset="s", datafile="f")
    gone = key.model_copy(update={"datafile": "g"})
    files = [
        _reported("FAILED", 5),
        FileState(source="s", destination="d", datafile=key, state="FAILED"),
        FileState(source="s", destination="d", datafile=gone, state="FAILED"),
        FileState(source="s", destination="d", state="FAILED"),
    ]
    assert lookup_keys(files) == [key, gone]
    assert [f.datafile_id for f in identified(files, {key: 6})] == [5, 6]


def _recorded(dataset_id: int, *states: str | None) -> list[Datafile]:
    return [
        Datafile(10 * dataset_id + i, dataset_id, {ARCHIVAL_STATE: s} if s else {})
        for i, s in enumerate(states)
    ]


@pytest.mark.parametrize(
    ("dataset_state", "file_states", "expected"),
    [
        pytest.param("SUBMITTED", ["ACTIVE", "SUBMITTED"], None, id="earliest-file-state-holds"),
        pytest.param("SUBMITTED", ["ACTIVE", "FINISHED"], "ACTIVE", id="moves-forward"),
        pytest.param("SUBMITTED", ["FINISHED", "FAILED"], "FINISHEDDIRTY", id="mixed-end"),
        pytest.param(None, ["FINISHED", None], "FINISHED", id="files-without-state-do-not-count"),
        pytest.param("FAILED", ["FINISHED"], None, id="a-terminal-dataset-is-final"),
        pytest.param("ACTIVE", ["SUBMITTED"], None, id="never-back"),
        pytest.param("SUBMITTED", [None, None], None, id="no-file-archived-by-us-left-alone"),
    ],
)
def test_dataset_writes(
    dataset_state: str | None, file_states: list[str | None], expected: str | None
) -> None:
    archival = {ARCHIVAL_STATE: dataset_state} if dataset_state else {}
    files = _recorded(7, *file_states) + _recorded(8, "FINISHED")
    writes = dataset_writes(files, [Dataset(7, archival)])
    assert writes == ({7: {ARCHIVAL_STATE: expected}} if expected else {})
