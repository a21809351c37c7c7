# ruff: noqa: E501  (XML schema templates read better unwrapped)
"""Generate the WSDL and XSD documents of the ICAT SOAP interface from the entity model.

The shapes follow what JAX-WS/JAXB emit for icat.server (document/literal wrapped, target
namespace http://icatproject.org, no elementFormDefault so children are unqualified). The XSD is
served as a separate document imported by the WSDL: suds only finds anonymous local types such
as ``credentials`` in imported schemas.
"""

from __future__ import annotations

from .model import ATTRIBUTE, MANY, ONE, XSD_TYPES, Model, lcfirst

NS = "http://icatproject.org"

# operation -> (request children [(name, type, maxOccurs)], response return (type, maxOccurs) | None)
_SESSION = ("sessionId", "xs:string", "1")
OPERATIONS: dict[str, tuple[list[tuple[str, str, str]], tuple[str, str] | None]] = {
    "getApiVersion": ([], ("xs:string", "1")),
    "getVersion": ([], ("xs:string", "1")),
    "getEntityNames": ([], ("xs:string", "unbounded")),
    "getEntityInfo": ([("beanName", "xs:string", "1")], ("tns:entityInfo", "1")),
    "getAuthenticatorInfo": ([], ("tns:authenticatorInfo", "unbounded")),
    "login": (
        [("plugin", "xs:string", "1"), ("credentials", "@credentials", "1")],
        ("xs:string", "1"),
    ),
    "logout": ([_SESSION], None),
    "refresh": ([_SESSION], None),
    "getRemainingMinutes": ([_SESSION], ("xs:double", "1")),
    "getUserName": ([_SESSION], ("xs:string", "1")),
    "getProperties": ([_SESSION], ("xs:string", "unbounded")),
    "create": ([_SESSION, ("bean", "tns:entityBaseBean", "1")], ("xs:long", "1")),
    "createMany": (
        [_SESSION, ("beans", "tns:entityBaseBean", "unbounded")],
        ("xs:long", "unbounded"),
    ),
    "update": ([_SESSION, ("bean", "tns:entityBaseBean", "1")], None),
    "delete": ([_SESSION, ("bean", "tns:entityBaseBean", "1")], None),
    "deleteMany": ([_SESSION, ("beans", "tns:entityBaseBean", "unbounded")], None),
    "get": (
        [_SESSION, ("query", "xs:string", "1"), ("primaryKey", "xs:long", "1")],
        ("tns:entityBaseBean", "1"),
    ),
    "search": ([_SESSION, ("query", "xs:string", "1")], ("xs:anyType", "unbounded")),
    "isAccessAllowed": (
        [_SESSION, ("bean", "tns:entityBaseBean", "1"), ("accessType", "tns:accessType", "1")],
        ("xs:boolean", "1"),
    ),
}

_CREDENTIALS = (
    '<xs:element name="credentials" minOccurs="0"><xs:complexType><xs:sequence>'
    '<xs:element name="entry" minOccurs="0" maxOccurs="unbounded"><xs:complexType><xs:sequence>'
    '<xs:element name="key" type="xs:string" minOccurs="0"/>'
    '<xs:element name="value" type="xs:string" minOccurs="0"/>'
    "</xs:sequence></xs:complexType></xs:element>"
    "</xs:sequence></xs:complexType></xs:element>"
)

_SUPPORT_TYPES = """
<xs:complexType name="entityInfo"><xs:sequence>
<xs:element name="classComment" type="xs:string" minOccurs="0"/>
<xs:element name="constraints" type="tns:constraint" nillable="true" minOccurs="0" maxOccurs="unbounded"/>
<xs:element name="fields" type="tns:entityField" nillable="true" minOccurs="0" maxOccurs="unbounded"/>
</xs:sequence></xs:complexType>
<xs:complexType name="constraint"><xs:sequence>
<xs:element name="fieldNames" type="xs:string" nillable="true" minOccurs="0" maxOccurs="unbounded"/>
</xs:sequence></xs:complexType>
<xs:complexType name="entityField"><xs:sequence>
<xs:element name="cascaded" type="xs:boolean" minOccurs="0"/>
<xs:element name="comment" type="xs:string" minOccurs="0"/>
<xs:element name="name" type="xs:string" minOccurs="0"/>
<xs:element name="notNullable" type="xs:boolean"/>
<xs:element name="relType" type="tns:relType" minOccurs="0"/>
<xs:element name="stringLength" type="xs:int" minOccurs="0"/>
<xs:element name="type" type="xs:string" minOccurs="0"/>
</xs:sequence></xs:complexType>
<xs:complexType name="authenticatorInfo"><xs:sequence>
<xs:element name="admin" type="xs:boolean"/>
<xs:element name="friendly" type="xs:string" minOccurs="0"/>
<xs:element name="keys" type="tns:authenticatorCredentialKey" nillable="true" minOccurs="0" maxOccurs="unbounded"/>
<xs:element name="mnemonic" type="xs:string" minOccurs="0"/>
</xs:sequence></xs:complexType>
<xs:complexType name="authenticatorCredentialKey"><xs:sequence>
<xs:element name="hide" type="xs:boolean"/>
<xs:element name="name" type="xs:string" minOccurs="0"/>
<xs:element name="pattern" type="xs:string" minOccurs="0"/>
</xs:sequence></xs:complexType>
<xs:complexType name="fieldSet"><xs:sequence>
<xs:element name="fields" type="xs:anyType" nillable="true" minOccurs="0" maxOccurs="unbounded"/>
</xs:sequence></xs:complexType>
<xs:element name="IcatException" type="tns:IcatException"/>
<xs:complexType name="IcatException"><xs:sequence>
<xs:element name="message" type="xs:string" minOccurs="0"/>
<xs:element name="offset" type="xs:int"/>
<xs:element name="type" type="tns:icatExceptionType" minOccurs="0"/>
</xs:sequence></xs:complexType>
"""

_ENUMS = {
    "relType": ["ATTRIBUTE", "MANY", "ONE"],
    "accessType": ["READ", "UPDATE", "DELETE", "CREATE"],
    "icatExceptionType": [
        "BAD_PARAMETER",
        "INTERNAL",
        "INSUFFICIENT_PRIVILEGES",
        "NO_SUCH_OBJECT_FOUND",
        "OBJECT_ALREADY_EXISTS",
        "SESSION",
        "VALIDATION",
        "NOT_IMPLEMENTED",
    ],
}


def _enum(name: str, values: list[str]) -> str:
    items = "".join(f'<xs:enumeration value="{v}"/>' for v in values)
    return f'<xs:simpleType name="{name}"><xs:restriction base="xs:string">{items}</xs:restriction></xs:simpleType>'


def _entity_types(model: Model) -> str:
    out: list[str] = []
    for entity in model.entities.values():
        elements: list[str] = []
        for f in sorted(entity.own_fields, key=lambda f: f.name):
            if f.rel_type == ATTRIBUTE:
                xsd_type = XSD_TYPES[f.type]
                elements.append(f'<xs:element name="{f.name}" type="{xsd_type}" minOccurs="0"/>')
            elif f.rel_type == ONE:
                elements.append(
                    f'<xs:element name="{f.name}" type="tns:{lcfirst(f.type)}" minOccurs="0"/>'
                )
            elif f.rel_type == MANY:
                elements.append(
                    f'<xs:element name="{f.name}" type="tns:{lcfirst(f.type)}" nillable="true"'
                    ' minOccurs="0" maxOccurs="unbounded"/>'
                )
        seq = f"<xs:sequence>{''.join(elements)}</xs:sequence>"
        abstract = ' abstract="true"' if entity.abstract else ""
        if entity.parent is None:
            body = seq
        else:
            body = (
                f'<xs:complexContent><xs:extension base="tns:{lcfirst(entity.parent)}">'
                f"{seq}</xs:extension></xs:complexContent>"
            )
        out.append(f'<xs:complexType name="{entity.xsd_name}"{abstract}>{body}</xs:complexType>')
        if not entity.abstract:
            out.append(f'<xs:element name="{entity.xsd_name}" type="tns:{entity.xsd_name}"/>')
    return "\n".join(out)


def _operation_types(model: Model) -> str:
    out: list[str] = []
    for op, (params, ret) in OPERATIONS.items():
        children = []
        for name, xsd_type, max_occurs in params:
            if xsd_type == "@credentials":
                children.append(_CREDENTIALS)
                continue
            occurs = ' maxOccurs="unbounded"' if max_occurs == "unbounded" else ""
            nillable = ' nillable="true"' if max_occurs == "unbounded" else ""
            children.append(
                f'<xs:element name="{name}" type="{xsd_type}"{nillable} minOccurs="0"{occurs}/>'
            )
        out.append(f'<xs:element name="{op}" type="tns:{op}"/>')
        out.append(
            f'<xs:complexType name="{op}"><xs:sequence>{"".join(children)}</xs:sequence></xs:complexType>'
        )
        resp = ""
        if ret is not None:
            xsd_type, max_occurs = ret
            occurs = ' maxOccurs="unbounded"' if max_occurs == "unbounded" else ""
            resp = f'<xs:element name="return" type="{xsd_type}" minOccurs="0"{occurs}/>'
        out.append(f'<xs:element name="{op}Response" type="tns:{op}Response"/>')
        out.append(
            f'<xs:complexType name="{op}Response"><xs:sequence>{resp}</xs:sequence></xs:complexType>'
        )
    # dummy forces every entity type into the schema, as in icat.server.
    dummies = "".join(
        f'<xs:element name="{lcfirst(n)}" type="tns:{lcfirst(n)}" minOccurs="0"/>'
        for n in model.concrete_names()
    )
    out.append('<xs:element name="dummy" type="tns:dummy"/>')
    out.append(
        f'<xs:complexType name="dummy"><xs:sequence>{dummies}</xs:sequence></xs:complexType>'
    )
    out.append('<xs:element name="dummyResponse" type="tns:dummyResponse"/>')
    out.append('<xs:complexType name="dummyResponse"><xs:sequence/></xs:complexType>')
    return "\n".join(out)


def build_xsd(model: Model) -> str:
    enums = {**_ENUMS, **{lcfirst(k): v for k, v in model.enums.items()}}
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<xs:schema xmlns:tns="{NS}" xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        f'version="1.0" targetNamespace="{NS}">\n'
        + _operation_types(model)
        + "\n"
        + _entity_types(model)
        + _SUPPORT_TYPES
        + "\n".join(_enum(n, v) for n, v in enums.items())
        + "\n</xs:schema>\n"
    )


def build_wsdl(service_url: str) -> str:
    """The WSDL; ``service_url`` is where clients POST (taken from the request's Host)."""
    ops = [*OPERATIONS, "dummy"]
    messages = "".join(
        f'<message name="{op}"><part name="parameters" element="tns:{op}"/></message>'
        f'<message name="{op}Response"><part name="parameters" element="tns:{op}Response"/></message>'
        for op in ops
    )
    messages += (
        '<message name="IcatException"><part name="fault" element="tns:IcatException"/></message>'
    )
    port_ops = "".join(
        f'<operation name="{op}"><input message="tns:{op}"/><output message="tns:{op}Response"/>'
        '<fault message="tns:IcatException" name="IcatException"/></operation>'
        for op in ops
    )
    binding_ops = "".join(
        f'<operation name="{op}"><soap:operation soapAction=""/>'
        '<input><soap:body use="literal"/></input><output><soap:body use="literal"/></output>'
        '<fault name="IcatException"><soap:fault name="IcatException" use="literal"/></fault>'
        "</operation>"
        for op in ops
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" '
        'xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" '
        f'xmlns:tns="{NS}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        f'targetNamespace="{NS}" name="ICATService">'
        f'<types><xsd:schema><xsd:import namespace="{NS}" schemaLocation="{service_url}?xsd=1"/>'
        "</xsd:schema></types>"
        f"{messages}"
        f'<portType name="ICAT">{port_ops}</portType>'
        '<binding name="ICATPortBinding" type="tns:ICAT">'
        '<soap:binding transport="http://schemas.xmlsoap.org/soap/http" style="document"/>'
        f"{binding_ops}</binding>"
        '<service name="ICATService"><port name="ICATPort" binding="tns:ICATPortBinding">'
        f'<soap:address location="{service_url}"/></port></service>'
        "</definitions>\n"
    )
