"""ICAT's entity validation (icat.server 6.2's isValid, isUnique and Parameter checks), with its
fault types and messages, through python-icat."""

from __future__ import annotations

import icat
import pytest


@pytest.fixture(scope="module")
def facility(root):
    return root.assertedSearch("SELECT o FROM Facility o WHERE o.name = 'facility'")[0]


@pytest.fixture
def dataset(root, make_investigation, unique):
    inv = make_investigation(f"VAL-{unique}", n_datasets=1, n_files=0)
    query = f"SELECT o FROM Dataset o WHERE o.investigation.id = {inv.id} INCLUDE o.investigation"
    return root.assertedSearch(query)[0]


def _count(root, query: str) -> int:
    return int(root.search(query)[0])


def test_string_lengths_are_icats(root, dataset, unique):
    longest = root.new("Datafile", name="n" * 255, dataset=dataset, location="l" * 511)
    longest.create()  # 255 for a name, 511 for a Datafile's location: at the limit is fine
    with pytest.raises(icat.ICATValidationError) as err:
        root.new("Datafile", name="n" * 256, dataset=dataset).create()
    assert str(err.value) == "Datafile: name cannot have length > 255"
    with pytest.raises(
        icat.ICATValidationError, match=r"^Datafile: location cannot have length > 511$"
    ):
        root.new("Datafile", name=f"f-{unique}", dataset=dataset, location="l" * 512).create()
    # Java counts UTF-16 units: a character outside the BMP counts twice.
    with pytest.raises(icat.ICATValidationError, match="name cannot have length > 255"):
        root.new("Datafile", name="\U0001f600" + "n" * 254, dataset=dataset).create()


def test_update_is_validated_too(root, dataset):
    datafile = root.new("Datafile", name="to-update", dataset=dataset)
    datafile.create()
    datafile = root.get("Datafile INCLUDE 1", datafile.id)
    datafile.description = "d" * 256
    with pytest.raises(icat.ICATValidationError, match="Datafile: description cannot have"):
        datafile.update()
    assert root.get("Datafile", datafile.id).description is None


def test_create_many_reports_the_offset_of_the_invalid_bean_and_creates_nothing(root, dataset):
    beans = [
        root.new("Datafile", name="ok-1", dataset=dataset),
        root.new("Datafile", name="ok-2", dataset=dataset),
        root.new("Datafile", name="x" * 300, dataset=dataset),
    ]
    with pytest.raises(icat.ICATValidationError) as err:
        root.createMany(beans)
    assert err.value.offset == 2
    assert _count(root, f"SELECT COUNT(o) FROM Datafile o WHERE o.dataset.id = {dataset.id}") == 0


def test_uniqueness_is_checked_before_mandatory_fields(root, dataset):
    # icat.server's create: isUnique, then isValid. A duplicate key wins over a missing type.
    with pytest.raises(icat.ICATObjectExistsError, match="Dataset exists with"):
        root.new(
            "Dataset", name=dataset.name, complete=False, investigation=dataset.investigation
        ).create()
    with pytest.raises(icat.ICATValidationError, match="Dataset: type cannot be null"):
        root.new(
            "Dataset", name="new-name", complete=False, investigation=dataset.investigation
        ).create()


def test_a_null_key_field_is_a_validation_error_not_a_duplicate(root, dataset):
    with pytest.raises(icat.ICATValidationError, match="Datafile: name cannot be null"):
        root.new("Datafile", dataset=dataset).create()


def _parameter_type(root, facility, name: str, **values: object):
    bean = root.new("ParameterType", name=name, units="u", facility=facility, **values)
    bean.create()
    return bean


def test_parameter_type_must_be_applicable(root, facility, dataset, unique):
    only_datasets = _parameter_type(
        root, facility, f"ds-only-{unique}", valueType="STRING", applicableToDataset=True
    )
    root.new("DatasetParameter", dataset=dataset, type=only_datasets, stringValue="a").create()
    datafile = root.new("Datafile", name="with-param", dataset=dataset)
    datafile.create()
    with pytest.raises(icat.ICATValidationError) as err:
        root.new(
            "DatafileParameter", datafile=datafile, type=only_datasets, stringValue="a"
        ).create()
    assert str(err.value) == (f"Parameter of type ds-only-{unique} is not applicable to a Datafile")
    with pytest.raises(icat.ICATValidationError, match=r"^Type of parameter is not set$"):
        root.new("DatasetParameter", dataset=dataset, stringValue="a").create()


def test_enforced_numeric_range(root, facility, dataset, unique):
    ranged = _parameter_type(
        root,
        facility,
        f"ranged-{unique}",
        valueType="NUMERIC",
        applicableToDataset=True,
        enforced=True,
        minimumNumericValue=1.5,
        maximumNumericValue=10000000.0,
    )
    root.new("DatasetParameter", dataset=dataset, type=ranged, numericValue=1.5).create()
    with pytest.raises(icat.ICATValidationError) as err:
        root.new("DatasetParameter", dataset=dataset, type=ranged, numericValue=1).create()
    assert str(err.value) == f"Parameter of type ranged-{unique} has value 1.0 < 1.5"
    with pytest.raises(icat.ICATValidationError) as err:
        root.new("DatasetParameter", dataset=dataset, type=ranged, numericValue=2e7).create()
    assert str(err.value) == f"Parameter of type ranged-{unique} has value 2.0E7 > 1.0E7"
    # Not enforced: the same range is only advice.
    advised = _parameter_type(
        root,
        facility,
        f"advised-{unique}",
        valueType="NUMERIC",
        applicableToDataset=True,
        minimumNumericValue=1.5,
    )
    root.new("DatasetParameter", dataset=dataset, type=advised, numericValue=0).create()


def test_enforced_permissible_strings_on_create_and_update(root, facility, dataset, unique):
    colours = _parameter_type(
        root,
        facility,
        f"colour-{unique}",
        valueType="STRING",
        applicableToDataset=True,
        enforced=True,
    )
    for value in ("red", "green"):
        root.new("PermissibleStringValue", type=colours, value=value).create()
    parameter = root.new("DatasetParameter", dataset=dataset, type=colours, stringValue="red")
    parameter.create()
    with pytest.raises(icat.ICATValidationError) as err:
        root.new("DatasetParameter", dataset=dataset, type=colours, stringValue="blue").create()
    assert str(err.value) == (
        f"Parameter of type colour-{unique} has value blue not in allowed set [red, green]"
    )
    parameter = root.get("DatasetParameter INCLUDE 1", parameter.id)
    parameter.stringValue = "blue"
    with pytest.raises(icat.ICATValidationError, match="not in allowed set"):
        parameter.update()


def test_entity_info_reports_icats_string_lengths(root):
    def lengths(bean: str) -> dict[str, int | None]:
        return {f.name: getattr(f, "stringLength", None) for f in root.getEntityInfo(bean).fields}

    datafile = lengths("Datafile")
    assert (datafile["location"], datafile["name"], datafile["fileSize"]) == (511, 255, None)
    # icat.server describes the meta fields as neither mandatory nor sized.
    assert datafile["createId"] is None
    fields = {f.name: f for f in root.getEntityInfo("Datafile").fields}
    assert not fields["createId"].notNullable and fields["name"].notNullable
    rule = lengths("Rule")
    assert (rule["crudFlags"], rule["what"]) == (4, 1024)
