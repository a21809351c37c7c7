"""The ICAT 6.2 entity model: entities, their fields, relations and uniqueness constraints.

The field table is read from ``data/model-6.2.0.txt`` (extracted from icatproject/icat.server
v6.2.0 entity classes). The inverse side of every one-to-many relation (JPA ``mappedBy``) is not
in that table, so it is listed here, taken from the same sources. In ICAT 6.2 every one-to-many
relation is ``cascade = CascadeType.ALL``: deleting a parent deletes its children.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

ATTRIBUTE = "ATTRIBUTE"
ONE = "ONE"
MANY = "MANY"

META_FIELDS = ("createId", "createTime", "modId", "modTime")

# Java simple type name -> XSD type of an attribute.
XSD_TYPES = {
    "String": "xs:string",
    "Long": "xs:long",
    "Integer": "xs:int",
    "Double": "xs:double",
    "boolean": "xs:boolean",
    "Date": "xs:dateTime",
    "ParameterValueType": "tns:parameterValueType",
    "StudyStatus": "tns:studyStatus",
}

# "<Entity>.<one-to-many field>:<mappedBy field of the child>" (icat.server v6.2.0 entity/*.java).
_MAPPED_BY = """
Application.jobs:application DataCollection.dataCollectionDatafiles:dataCollection
DataCollection.dataCollectionDatasets:dataCollection
DataCollection.dataCollectionInvestigations:dataCollection DataCollection.parameters:dataCollection
DataCollection.jobsAsInput:inputDataCollection DataCollection.jobsAsOutput:outputDataCollection
DataCollection.dataPublications:content DataPublication.users:publication
DataPublication.dates:publication DataPublication.relatedItems:publication
DataPublication.fundingReferences:dataPublication DataPublication.subjects:dataPublication
DataPublicationType.dataPublications:type DataPublicationUser.affiliations:user
Datafile.dataCollectionDatafiles:datafile Datafile.destDatafiles:destDatafile
Datafile.parameters:datafile Datafile.sourceDatafiles:sourceDatafile
DatafileFormat.datafiles:datafileFormat Dataset.datafiles:dataset
Dataset.dataCollectionDatasets:dataset Dataset.datasetInstruments:dataset
Dataset.datasetTechniques:dataset Dataset.parameters:dataset DatasetType.datasets:type
Facility.applications:facility Facility.datafileFormats:facility Facility.datasetTypes:facility
Facility.facilityCycles:facility Facility.instruments:facility Facility.investigations:facility
Facility.investigationTypes:facility Facility.parameterTypes:facility Facility.sampleTypes:facility
Facility.dataPublications:facility Facility.dataPublicationTypes:facility
FacilityCycle.investigationFacilityCycles:facilityCycle FundingReference.investigations:funding
FundingReference.publications:funding Grouping.investigationGroups:grouping Grouping.rules:grouping
Grouping.userGroups:grouping Instrument.instrumentScientists:instrument
Instrument.investigationInstruments:instrument Instrument.datasetInstruments:instrument
Instrument.shifts:instrument Investigation.datasets:investigation
Investigation.investigationGroups:investigation Investigation.investigationInstruments:investigation
Investigation.investigationUsers:investigation Investigation.keywords:investigation
Investigation.investigationFacilityCycles:investigation Investigation.parameters:investigation
Investigation.publications:investigation Investigation.fundingReferences:investigation
Investigation.samples:investigation Investigation.shifts:investigation
Investigation.studyInvestigations:investigation
Investigation.dataCollectionInvestigations:investigation InvestigationType.investigations:type
ParameterType.dataCollectionParameters:type ParameterType.datafileParameters:type
ParameterType.datasetParameters:type ParameterType.investigationParameters:type
ParameterType.permissibleStringValues:type ParameterType.sampleParameters:type
Sample.datasets:sample Sample.parameters:sample SampleType.samples:type
Study.studyInvestigations:study Technique.datasetTechniques:technique User.userGroups:user
User.investigationUsers:user User.instrumentScientists:user User.studies:user
User.dataPublicationUsers:user
"""

# "<Entity>.<field>:<length>" of every String attribute whose column is not 255 long (icat.server
# v6.2.0 entity/*.java, ``@Column(length = ...)``; EntityInfoHandler's default is 255). ICAT refuses
# a longer value with VALIDATION "<Entity>: <field> cannot have length > <n>".
DEFAULT_STRING_LENGTH = 255
_STRING_LENGTHS = """
Affiliation.fullReference:1023 DataPublication.subject:1023 DataPublication.description:4000
Datafile.location:511 Dataset.location:511 Facility.description:1023
FundingReference.acknowledgement:1023 Instrument.description:4000 Investigation.summary:4000
Parameter.stringValue:4000 PublicStep.origin:32 PublicStep.field:32 Publication.fullReference:511
RelatedItem.fullReference:1023 Rule.crudFlags:4 Rule.what:1024 SampleType.safetyInformation:4000
Study.description:4000
"""


@dataclass
class Field:
    """One field of an entity as getEntityInfo describes it."""

    name: str
    type: str  # Java simple type name, or the target entity name for a relation
    rel_type: str  # ATTRIBUTE, ONE or MANY
    not_nullable: bool = False
    mapped_by: str | None = None  # for MANY: the child's ONE field pointing back here
    string_length: int | None = None  # for a String attribute: ICAT's maximum length

    @property
    def is_attribute(self) -> bool:
        return self.rel_type == ATTRIBUTE


@dataclass
class Entity:
    """One ICAT entity type (a "bean")."""

    name: str
    parent: str | None
    abstract: bool = False
    own_fields: list[Field] = field(default_factory=list)
    constraint: list[str] = field(default_factory=list)
    fields: dict[str, Field] = field(default_factory=dict)  # all fields incl. inherited + meta

    @property
    def xsd_name(self) -> str:
        return lcfirst(self.name)

    def attributes(self) -> list[Field]:
        return [f for f in self.fields.values() if f.rel_type == ATTRIBUTE]

    def ones(self) -> list[Field]:
        return [f for f in self.fields.values() if f.rel_type == ONE]

    def manies(self) -> list[Field]:
        return [f for f in self.fields.values() if f.rel_type == MANY]


@dataclass
class Model:
    entities: dict[str, Entity]
    enums: dict[str, list[str]]

    def concrete_names(self) -> list[str]:
        return sorted(n for n, e in self.entities.items() if not e.abstract)

    def by_xsd_name(self, xsd_name: str) -> Entity | None:
        return self._xsd_index().get(xsd_name)

    @cache  # noqa: B019 - the model is a process-wide singleton
    def _xsd_index(self) -> dict[str, Entity]:
        return {e.xsd_name: e for e in self.entities.values()}

    def __hash__(self) -> int:
        return id(self)


def lcfirst(name: str) -> str:
    return name[0].lower() + name[1:]


_LINE = re.compile(r"^(ABSTRACT )?(\w+)\((\w+)\) UNIQUE\[(.*?)\]: (.*)$")
_FIELD = re.compile(r"^(\w+)(!?):(\w+)(->|\[\*\])?$")


def parse_model(text: str) -> Model:
    """Parse the model table (format documented in its header) into a :class:`Model`."""
    entities: dict[str, Entity] = {}
    enums: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("ENUM "):
            name, values = line[5:].split(":", 1)
            enums[name.strip()] = re.findall(r"'(\w+)'", values)
            continue
        m = _LINE.match(line)
        if not m:
            raise ValueError(f"bad model line: {line}")
        abstract, name, parent, constraint, fields_text = m.groups()
        entity = Entity(
            name=name,
            parent=None if parent == "None" else parent,
            abstract=bool(abstract),
            constraint=re.findall(r"'(\w+)'", constraint),
        )
        for item in fields_text.split(", "):
            fm = _FIELD.match(item.strip())
            if not fm:
                raise ValueError(f"bad field {item!r} in {name}")
            fname, bang, ftype, rel = fm.groups()
            rel_type = {None: ATTRIBUTE, "->": ONE, "[*]": MANY}[rel]
            entity.own_fields.append(Field(fname, ftype, rel_type, bool(bang)))
        entities[name] = entity

    for text_item in _MAPPED_BY.split():
        owner_field, child_field = text_item.split(":")
        owner, fname = owner_field.split(".")
        for f in entities[owner].own_fields:
            if f.name == fname:
                f.mapped_by = child_field
    for text_item in _STRING_LENGTHS.split():
        owner_field, length = text_item.split(":")
        owner, fname = owner_field.split(".")
        [string_field] = [f for f in entities[owner].own_fields if f.name == fname]
        string_field.string_length = int(length)
    for entity in entities.values():
        for f in entity.own_fields:
            if (
                f.type == "String"
                and f.rel_type == ATTRIBUTE
                and f.string_length is None
                and f.name not in META_FIELDS  # set by the server, not checked by ICAT
            ):
                f.string_length = DEFAULT_STRING_LENGTH
    model = Model(entities, enums)
    for entity in entities.values():
        entity.fields = {f.name: f for f in _all_fields(model, entity)}
    return model


def _all_fields(model: Model, entity: Entity) -> list[Field]:
    chain: list[Entity] = []
    current: Entity | None = entity
    while current is not None:
        chain.append(current)
        current = model.entities.get(current.parent) if current.parent else None
    result: list[Field] = []
    for e in reversed(chain):
        result.extend(e.own_fields)
    # id is nullable in getEntityInfo; the meta fields are mandatory but set by the server.
    return result


@cache
def load_model() -> Model:
    text = resources.files("icat_emulator").joinpath("data/model-6.2.0.txt").read_text("utf-8")
    return parse_model(text)
