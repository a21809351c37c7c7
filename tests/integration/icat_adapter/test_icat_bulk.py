"""The bulk SOAP path of IcatCatalogue (SoapWire): the same wire as suds, escaping, faults in
the middle of a bulk create, concurrent updates."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import icat
import icat.exception as icat_errors
import pytest
from lxml import etree

from datastore_common.adapters.icat.catalogue import IcatCatalogue
from datastore_common.adapters.icat.pool import IcatClientPool
from datastore_common.adapters.icat.wire import BeanShape as _BeanShape
from datastore_common.adapters.icat.wire import SoapWire, _search_value, wire_value, xml_text
from datastore_common.domain.archival import ARCHIVAL_FAILURE, ARCHIVAL_IDS, ARCHIVAL_STATE
from datastore_common.errors import NotFoundError
from datastore_common.messages import DatafileSpec
from datastore_common.ports import NewDatafile
from datastore_common.settings import IcatSettings
from tests.support.factories import seed_investigation
from tests.support.icat_fixtures import IcatEmulator

from .test_icat_catalogue import count, register

WHEN = datetime(2024, 6, 5, 10, 53, 29, 501000, tzinfo=UTC)
AWKWARD = ["a&b.nxs", 'quote\'s "double".nxs', "<tag>x<tag>.nxs", "100%_%s_{0}.nxs", "é ü ✓.nxs"]


@pytest.fixture(scope="module")
def root(seeded_icat: IcatEmulator) -> Iterator[icat.Client]:
    client = icat.Client(seeded_icat.url)
    client.login("simple", {"username": "root", "password": "pw"})
    yield client
    client.cleanup()


def _new_dataset(root: icat.Client) -> int:
    facility = root.search("SELECT o FROM Facility o WHERE o.name = 'facility'")[0]
    inv_type = root.search("SELECT o FROM InvestigationType o WHERE o.name = 'type'")[0]
    ds_type = root.search("SELECT o FROM DatasetType o WHERE o.name = 'scan'")[0]
    name = seed_investigation().name
    investigation = root.new(
        "Investigation", name=name, visitId="1", title="T", facility=facility, type=inv_type
    )
    investigation.id = root.create(investigation)
    dataset = root.new(
        "Dataset", name="bulk", complete=False, investigation=investigation, type=ds_type
    )
    return int(root.create(dataset))


def _suds_envelope(client: icat.Client, op: str, beans: list[object]) -> str:
    """What python-icat + suds send for ``op`` of ``beans`` (not sent: nosend)."""
    instances = icat.entity.Entity.getInstances(beans)
    client.set_options(nosend=True)
    try:
        argument = instances if op.endswith("Many") else instances[0]
        context = getattr(client.service, op)(client.sessionId, argument)
    finally:
        client.set_options(nosend=False)
    return str(context.envelope.decode("utf-8"))


class TestSameWireAsSuds:
    def test_datafile_create_many_is_byte_for_byte_what_suds_sends(self, root: icat.Client) -> None:
        wire = SoapWire(root)
        shape = _BeanShape(
            "Datafile",
            ("datafileCreateTime", "fileSize", "location", "name"),
            (("dataset", "Dataset"),),
        )
        names = ["plain.nxs", "a&b.nxs", 'quote\'s "double".nxs', "<tag>.nxs", "é ✓.nxs"]
        beans = [
            root.new(
                "Datafile",
                name=name,
                location=f"dir/{name}",
                fileSize=i,
                datafileCreateTime=WHEN,
                dataset=root.new("Dataset", id=42),
            )
            for i, name in enumerate(names)
        ]
        rows = [
            [wire_value(WHEN), wire_value(i), wire_value(f"dir/{n}"), wire_value(n), "42"]
            for i, n in enumerate(names)
        ]
        ours = wire._envelope(
            "createMany",
            "".join(wire.bean("createMany", shape).render(row) for row in rows),
        ).decode("utf-8")
        assert ours.count("<beans ") == len(names)
        assert ours == _suds_envelope(root, "createMany", beans)
        assert "a&amp;b.nxs" in ours and "&apos;" in ours and "&quot;" in ours

    def test_parameter_update_is_what_suds_sends(self, root: icat.Client) -> None:
        wire = SoapWire(root)
        shape = _BeanShape(
            "DatafileParameter",
            ("stringValue",),
            (("type", "ParameterType"), ("datafile", "Datafile")),
            with_id=True,
        )
        bean = root.new(
            "DatafileParameter",
            id=7,
            stringValue="FAILED & <gone>",
            type=root.new("ParameterType", id=3),
            datafile=root.new("Datafile", id=11),
        )
        ours = wire._envelope(
            "update",
            wire.bean("update", shape).render(["7", xml_text("FAILED & <gone>"), "3", "11"]),
        )
        assert ours.decode("utf-8") == _suds_envelope(root, "update", [bean])

    def test_an_entity_like_text_is_escaped_too(self) -> None:
        # suds would send "&amp;" unchanged (ICAT would read "&"); the bulk path does not.
        assert xml_text("R&amp;D <x> 'y' \"z\"") == (
            "R&amp;amp;D &lt;x&gt; &apos;y&apos; &quot;z&quot;"
        )
        assert wire_value(True) == "true"
        assert wire_value(WHEN) == "2024-06-05T10:53:29.501000+00:00"

    def test_search_values_are_read_as_suds_reads_them(self) -> None:
        reply = (
            '<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:ns2="http://icatproject.org">'
            '<return xsi:type="ns2:fieldSet"><fields xsi:type="xs:long">11</fields>'
            '<fields xsi:type="xs:string">a&amp;b&lt;&apos;&quot;x&gt;</fields>'
            '<fields xsi:nil="true"/><fields xsi:type="xs:boolean">true</fields>'
            '<fields xsi:type="xs:double">1.5</fields>'
            '<fields xsi:type="xs:dateTime">2024-06-05T10:53:29.501Z</fields>'
            '<fields xsi:type="xs:string"></fields></return>'
            '<return xsi:type="ns2:dataset"><id>1</id></return></r>'
        )
        fieldset, entity = etree.fromstring(reply)
        assert _search_value(fieldset) == (
            11,
            "a&b<'\"x>",
            None,
            True,
            1.5,
            datetime(2024, 6, 5, 10, 53, 29, 501000, tzinfo=UTC),
            None,
        )
        with pytest.raises(TypeError, match="dataset"):
            _search_value(entity)


def _files(names: list[str]) -> list[NewDatafile]:
    # model_construct: AWKWARD names are no safe names (a request cannot carry them), but
    # the wire must still escape whatever ICAT holds or is sent (descriptions, older data).
    return [
        NewDatafile(
            spec=DatafileSpec.model_construct(
                name=name, datafileCreateTime=WHEN, description=f"d {name}"
            ),
            location=f"dir/{name}",
            file_size=i,
            checksum=f"adler32:{i:08x}",
        )
        for i, name in enumerate(names)
    ]


class TestBulkCreate:
    async def test_awkward_names_round_trip_and_are_found_again(
        self, catalogue: IcatCatalogue, root: icat.Client
    ) -> None:
        dataset_id = _new_dataset(root)
        names = [*AWKWARD, "R&amp;D.nxs"]
        first = await catalogue.ensure_datafiles(dataset_id, _files(names))
        assert sorted(first) == sorted(names)
        stored = root.search(
            f"SELECT o FROM Datafile o JOIN o.dataset ds WHERE ds.id = {dataset_id}"
        )
        assert sorted(d.name for d in stored) == sorted(names)
        by_name = {d.name: d for d in stored}
        assert by_name["a&b.nxs"].location == "dir/a&b.nxs"
        assert by_name["R&amp;D.nxs"].description == "d R&amp;D.nxs"
        again = await catalogue.ensure_datafiles(dataset_id, _files(names))
        assert {n: r.datafile_id for n, r in again.items()} == {
            n: r.datafile_id for n, r in first.items()
        }
        ids = [r.datafile_id for r in first.values()]
        await catalogue.set_archival(
            "Datafile", {i: {ARCHIVAL_FAILURE: f"user error: {names[0]} <&> '\"'"} for i in ids}
        )
        rows = await catalogue.datafiles_by_id(ids)
        assert {r.archival[ARCHIVAL_FAILURE] for r in rows} == {f"user error: {names[0]} <&> '\"'"}

    async def test_a_fault_in_the_middle_creates_nothing_and_is_mapped(
        self, catalogue: IcatCatalogue, root: icat.Client, icat_settings: IcatSettings
    ) -> None:
        dataset_id = _new_dataset(root)
        pool = IcatClientPool(str(icat_settings.url), size=1)
        shape = _BeanShape("Datafile", ("name",), (("dataset", "Dataset"),))

        def create(client: icat.Client) -> list[int]:
            client.login("simple", {"username": "root", "password": "pw"})
            beans = [(shape, [f"f{i}.nxs", str(dataset_id)]) for i in range(10)]
            beans[5] = (shape, ["bad.nxs", "999999999"])  # no such dataset
            try:
                return SoapWire(client).create_many(beans)
            except icat_errors.ICATNoObjectError as exc:
                assert exc.offset == 5  # python-icat's exception, with ICAT's offset
                raise

        try:
            with pytest.raises(NotFoundError, match="999999999"):
                await pool.call("createMany", create)
        finally:
            await pool.close()
        query = f"SELECT COUNT(o) FROM Datafile o JOIN o.dataset ds WHERE ds.id = {dataset_id}"
        assert count(root, query) == 0  # atomic: the five good ones before it are not there

        # The same through the catalogue: archival parameters for a missing datafile.
        [good] = (await catalogue.ensure_datafiles(dataset_id, _files(["good.nxs"]))).values()
        with pytest.raises(NotFoundError):
            await catalogue.set_archival(
                "Datafile",
                {
                    good.datafile_id: {ARCHIVAL_STATE: "SUBMITTED"},
                    999999998: {ARCHIVAL_STATE: "SUBMITTED"},
                },
            )
        [again] = await catalogue.datafiles_by_id([good.datafile_id])
        assert again.archival == {}

    async def test_duplicates_in_one_request_fall_back_to_one_by_one(
        self, catalogue: IcatCatalogue, root: icat.Client
    ) -> None:
        dataset_id = _new_dataset(root)
        files = _files(["x.nxs", "y.nxs", "x.nxs"])  # createMany fails on the third
        records = await catalogue.ensure_datafiles(dataset_id, files)
        assert sorted(records) == ["x.nxs", "y.nxs"]
        query = f"SELECT COUNT(o) FROM Datafile o JOIN o.dataset ds WHERE ds.id = {dataset_id}"
        assert count(root, query) == 2


class TestConcurrentUpdates:
    async def test_many_updates_spread_over_the_pool(
        self, icat_settings: IcatSettings, root: icat.Client
    ) -> None:
        catalogue = IcatCatalogue(
            icat_settings, pool=IcatClientPool(str(icat_settings.url), size=3)
        )
        try:
            spec = seed_investigation(files=120)
            ids = await register(catalogue, spec)
            files = [v for k, v in ids.items() if "/" in k]
            first = {i: {ARCHIVAL_STATE: "SUBMITTED", ARCHIVAL_IDS: "job"} for i in files}
            assert await catalogue.set_archival("Datafile", first) == 240
            moved = {i: {ARCHIVAL_STATE: "ACTIVE", ARCHIVAL_IDS: "job"} for i in files}
            assert await catalogue.set_archival("Datafile", moved) == 120  # ids unchanged
            assert catalogue._pool.clients_built == 3
            rows = await catalogue.datafiles_by_id(files)
            assert {r.archival[ARCHIVAL_STATE] for r in rows} == {"ACTIVE"}
            # Racing replicas moving the same files: every update lands, none is lost.
            other = IcatCatalogue(icat_settings, pool=IcatClientPool(str(icat_settings.url)))
            try:
                done = {i: {ARCHIVAL_STATE: "FINISHED"} for i in files}
                await asyncio.gather(
                    catalogue.set_archival("Datafile", done), other.set_archival("Datafile", done)
                )
            finally:
                await other.close()
            rows = await catalogue.datafiles_by_id(files)
            assert {r.archival[ARCHIVAL_STATE] for r in rows} == {"FINISHED"}
            query = (
                "SELECT COUNT(p) FROM DatafileParameter p JOIN p.datafile df JOIN df.dataset ds "
                f"WHERE ds.id = {ids['scan_0000']}"
            )
            assert count(root, query) == 240
        finally:
            await catalogue.close()
