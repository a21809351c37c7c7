import uuid

import pytest

from datastore_common.domain.job_ids import FTS3_BASE_ID, fts_job_id, fts_vo_id, job_sid


def test_base_id_is_fts3s_namespace() -> None:
    assert uuid.UUID("01874efb-4735-4595-bc9c-591aef8240c9") == FTS3_BASE_ID


def test_job_id_is_uuid5_of_uuid5() -> None:
    expected = uuid.uuid5(uuid.uuid5(FTS3_BASE_ID, "dteam"), "abc")
    assert fts_job_id("dteam", "abc") == str(expected)
    assert fts_vo_id("dteam") == uuid.uuid5(FTS3_BASE_ID, "dteam")


def test_job_id_is_pinned() -> None:
    # Pinned so a change of constant or scheme cannot pass unnoticed.
    assert fts_job_id("dteam", "abc") == "6b85c008-f243-5c15-ac3f-e8ae81d5a138"


def test_job_id_depends_on_vo_and_sid() -> None:
    ids = {fts_job_id(vo, sid) for vo in ("a", "b") for sid in ("x", "y")}
    assert len(ids) == 4


def test_job_sid_is_stable_and_distinct() -> None:
    assert job_sid("req-1", 0) == job_sid("req-1", 0)
    assert len({job_sid("req-1", i) for i in range(50)}) == 50
    assert job_sid("req-1", 1) != job_sid("req-11", 1)
    assert job_sid("req-1", 11) != job_sid("req-11", 1)


@pytest.mark.parametrize(("request_id", "index"), [("", 0), ("r", -1)])
def test_job_sid_rejects_bad_input(request_id: str, index: int) -> None:
    with pytest.raises(ValueError):
        job_sid(request_id, index)


def test_job_id_rejects_empty() -> None:
    with pytest.raises(ValueError):
        fts_job_id("", "s")
    with pytest.raises(ValueError):
        fts_job_id("vo", "")
