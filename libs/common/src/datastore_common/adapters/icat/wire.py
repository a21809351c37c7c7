"""Bulk ICAT calls on the SOAP wire, from templates suds made once (:class:`SoapWire`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import icat.entity
import icat.exception as icat_errors
import suds
import suds.properties
import suds.sax.date
import suds.transport
from lxml import etree

from datastore_common.adapters.icat.pool import IcatClient

#: Beans per createMany (and deleteMany).
CREATE_CHUNK = 1000

_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_XSD = "http://www.w3.org/2001/XMLSchema"
_ICAT_NS = "http://icatproject.org"
_XSI_TYPE = f"{{{_XSI}}}type"
_XSI_NIL = f"{{{_XSI}}}nil"
_INTEGER_TYPES = frozenset({"long", "int", "short", "byte", "integer", "unsignedInt"})
_FLOAT_TYPES = frozenset({"double", "float", "decimal"})
# Template holes: private-use characters, which suds writes unchanged and no value contains
# (values are inserted after the template is cut).
_HOLE_RE = re.compile("\ue000(\\d+)\ue001")
_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"})


def _hole(index: int) -> str:
    return f"\ue000{index}\ue001"


def xml_text(value: str) -> str:
    """XML character data for ``value``: the five characters suds escapes, escaped the same
    way (``&apos;``, ``&quot;``...), but every ``&`` (suds leaves one that starts an entity,
    so a name containing ``&amp;`` would reach ICAT as ``&``)."""
    return value.translate(_XML_ESCAPES)


def wire_value(value: Any) -> str:
    """A field value as suds writes it in a request (booleans lower case, dates ISO 8601)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return str(suds.sax.date.DateTime(value))
    return xml_text(str(value))


class _Template:
    """Text with numbered holes, rendered by one %-format (a bean costs microseconds)."""

    def __init__(self, text: str) -> None:
        parts = _HOLE_RE.split(text)
        self.order = [int(i) for i in parts[1::2]]
        self._format = "%s".join(p.replace("%", "%%") for p in parts[0::2])

    def render(self, values: Sequence[str]) -> str:
        return self._format % tuple(values[i] for i in self.order)


@dataclass(frozen=True)
class BeanShape:
    """Which fields a bean of ``bean`` carries: attributes, and relations (field -> target
    bean) sent as ``<field><id>..</id></field>``; ``with_id`` for update and delete."""

    bean: str
    attributes: tuple[str, ...] = ()
    relations: tuple[tuple[str, str], ...] = ()
    with_id: bool = False

    @property
    def holes(self) -> int:
        return len(self.attributes) + len(self.relations) + int(self.with_id)


#: A bean to send: its shape, and its wire values in hole order.
Bean = tuple[BeanShape, Sequence[str]]


class SoapWire:
    """Bulk ICAT calls for one python-icat client, without building a suds object per bean.

    The XML is suds's own: for each operation and bean shape, python-icat and suds marshal
    one bean once (``nosend``) with placeholders, and that text becomes a template. Beans
    are rendered from it (values escaped as XML), the envelope is posted with the client's
    suds transport to the client's SOAP address, the reply is read with lxml. A SOAP fault
    is handed back to suds (``__inject`` reply), so it becomes a ``WebFault`` and then the
    python-icat exception of its ``IcatException`` type, as for any other call.
    """

    def __init__(self, client: IcatClient) -> None:
        self.client = client
        self._methods = client.wsdl.services[0].ports[0].methods
        self._envelopes: dict[str, tuple[_Template, str]] = {}
        self._beans: dict[tuple[str, BeanShape], _Template] = {}
        self._parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)

    # ------------------------------------------------------------ templates

    def _marshal(self, call: Callable[[], Any]) -> str:
        """The request suds would send for ``call()``, with the session id as hole 0."""
        client = self.client
        session_id = client.sessionId
        client.sessionId = _hole(0)
        client.set_options(nosend=True)
        try:
            context = call()
        finally:
            client.set_options(nosend=False)
            client.sessionId = session_id
        return str(context.envelope.decode("utf-8"))

    def bean(self, op: str, shape: BeanShape) -> _Template:
        """The template of one bean of ``shape`` in a request of ``op``; hole order: id (if
        with_id), attributes, relation ids."""
        key = (op, shape)
        template = self._beans.get(key)
        if template is not None:
            return template
        client = self.client
        holes = iter(range(1, shape.holes + 1))
        fields: dict[str, Any] = {}
        if shape.with_id:
            fields["id"] = _hole(next(holes))
        for name in shape.attributes:
            fields[name] = _hole(next(holes))
        for name, target in shape.relations:
            fields[name] = client.new(target, id=_hole(next(holes)))
        entity = client.new(shape.bean, **fields)
        # What python-icat's Client.<op> sends (its methods return None for void operations).
        instance = icat.entity.Entity.getInstance(entity)
        argument = [instance] if op.endswith("Many") else instance
        text = self._marshal(lambda: getattr(client.service, op)(client.sessionId, argument))
        tag = "beans" if op.endswith("Many") else "bean"
        start = text.index(f"<{tag} ", text.index("</sessionId>"))
        end = text.index(f"</{tag}>", start) + len(tag) + 3
        bean_text = text[start:end]
        found = sorted(int(i) for i in _HOLE_RE.findall(bean_text))
        if found != list(range(1, shape.holes + 1)):
            raise RuntimeError(f"suds left out fields of {shape}: {bean_text}")
        # Holes renumbered from 0 for the bean's own values.
        template = _Template(_HOLE_RE.sub(lambda m: _hole(int(m.group(1)) - 1), bean_text))
        self._beans[key] = template
        if op not in self._envelopes:
            self._envelopes[op] = (_Template(text[:start] + _hole(1) + text[end:]), tag)
        return template

    def _envelope(self, op: str, beans: str) -> bytes:
        template, _ = self._envelopes[op]
        return template.render([xml_text(str(self.client.sessionId)), beans]).encode("utf-8")

    # ------------------------------------------------------------ calls

    def post(self, op: str, envelope: bytes) -> Any:
        """Send a request envelope of ``op``; the reply's response element (lxml)."""
        client = self.client
        method = self._methods[op]
        location = suds.properties.Unskin(client.options).get("location", method.location)
        request = suds.transport.Request(location, envelope)
        action = method.soap.action
        request.headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": action.encode("utf-8") if isinstance(action, str) else action,
            **client.options.headers,
        }
        try:
            reply = client.options.transport.send(request)
        except suds.transport.TransportError as exc:
            content = exc.fp.read() if exc.fp else b""
            if exc.httpcode == 500 and content:
                self._raise_fault(op, content, 500, str(exc))
            raise
        root = etree.fromstring(reply.message, self._parser)
        body = root.find(f"{{{_SOAP_ENV}}}Body")
        if body is None or len(body) == 0:
            raise icat_errors.ICATError(f"icat {op}: a reply without a SOAP body")
        response = body[0]
        if response.tag == f"{{{_SOAP_ENV}}}Fault":
            self._raise_fault(op, reply.message, 200, "SOAP fault with HTTP 200")
        return response

    def _raise_fault(self, op: str, content: bytes, status: int, description: str) -> None:
        """suds reads the fault as for its own calls; python-icat names it."""
        inject = {"reply": content, "status": status, "description": description}
        try:
            getattr(self.client.service, op)(__inject=inject)
        except suds.WebFault as fault:
            raise icat_errors.translateError(fault) from None
        except Exception:  # no fault in it after all: the transport error stands
            return

    def create_many(self, beans: Sequence[Bean]) -> list[int]:
        """createMany of (shape, wire values in hole order) beans; their ids. Atomic on
        ICAT's side: after a fault nothing was created."""
        if not beans:
            return []
        text = "".join(self.bean("createMany", shape).render(row) for shape, row in beans)
        response = self.post("createMany", self._envelope("createMany", text))
        ids = [int(r.text) for r in response.iterfind("return")]
        if len(ids) != len(beans):
            raise icat_errors.ICATError(f"createMany of {len(beans)} returned {len(ids)} ids")
        return ids

    def create(self, shape: BeanShape, row: Sequence[str]) -> int:
        template = self.bean("create", shape)
        response = self.post("create", self._envelope("create", template.render(row)))
        return int(response.findtext("return"))

    def update(self, shape: BeanShape, row: Sequence[str]) -> None:
        template = self.bean("update", shape)
        self.post("update", self._envelope("update", template.render(row)))

    def delete_many(self, bean: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        template = self.bean("deleteMany", BeanShape(bean, with_id=True))
        beans = "".join(template.render([str(i)]) for i in ids)
        self.post("deleteMany", self._envelope("deleteMany", beans))

    def search(self, query: str) -> list[Any]:
        """``search`` for scalar or multi-column (fieldSet) results: ints, floats, strings,
        booleans, datetimes, None; rows as tuples. Entity results are python-icat's job."""
        if "search" not in self._envelopes:
            text = self._marshal(lambda: self.client.service.search(_hole(0), _hole(1)))
            self._envelopes["search"] = (_Template(text), "query")
        template, _ = self._envelopes["search"]
        envelope = template.render([xml_text(str(self.client.sessionId)), xml_text(query)])
        response = self.post("search", envelope.encode("utf-8"))
        types: dict[str | None, tuple[str | None, str]] = {}
        return [_search_value(r, types) for r in response.iterfind("return")]


def _search_value(
    element: Any, types: dict[str | None, tuple[str | None, str]] | None = None
) -> Any:
    """A search result (or fieldSet field) as python-icat would give it. ``types`` caches the
    resolved ``xsi:type`` values of one reply (its prefixes are declared once, at the top)."""
    if element.get(_XSI_NIL) == "true":
        return None
    types = {} if types is None else types
    attribute = element.get(_XSI_TYPE)
    resolved = types.get(attribute)
    if resolved is None:
        prefix, _, local = (attribute or "xs:string").rpartition(":")
        resolved = types[attribute] = (element.nsmap.get(prefix or None), local)
    namespace, local = resolved
    if namespace == _ICAT_NS and local == "fieldSet":
        return tuple(_search_value(field, types) for field in element)
    if namespace != _XSD:
        raise TypeError(f"search result of type {local!r}: use python-icat's client.search")
    text = element.text
    if text is None:
        return None  # suds reads an empty element as None too
    if local in _INTEGER_TYPES:
        return int(text)
    if local in _FLOAT_TYPES:
        return float(text)
    if local == "boolean":
        return text in ("true", "1")
    if local == "dateTime":
        return suds.sax.date.DateTime(text).value
    return str(text)


def wire_of(client: IcatClient) -> SoapWire:
    """The bulk SOAP helper of a pooled client (its templates live as long as it)."""
    wire = getattr(client, "_datastore_wire", None)
    if not isinstance(wire, SoapWire):
        wire = SoapWire(client)
        client._datastore_wire = wire  # goes with the client when the pool drops it
    return wire
