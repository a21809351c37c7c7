"""The ICAT SOAP operations: decode a request envelope, run it, encode the response or fault."""

from __future__ import annotations

import re
from collections.abc import Callable
from xml.sax.saxutils import escape

from lxml import etree

from . import concise
from .config import EmulatorConfig
from .errors import IcatError
from .jpql import QueryError
from .model import ATTRIBUTE, MANY, META_FIELDS, ONE, Entity, Model
from .sessions import Sessions
from .sqlgen import Principal
from .store import BeanIn, Obj, SearchResult, Store
from .values import XSI_TYPES, ValueError_, to_db, to_wire

NS = "http://icatproject.org"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_TYPE = f"{{{XSI}}}type"
_XSI_NIL = f"{{{XSI}}}nil"

_ENVELOPE_START = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/" '
    f'xmlns:xsi="{XSI}" xmlns:xs="http://www.w3.org/2001/XMLSchema"><S:Body>'
)
_ENVELOPE_END = "</S:Body></S:Envelope>"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def _local(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1]


def fault_xml(err: IcatError) -> str:
    msg = escape(err.message)
    return (
        f"{_ENVELOPE_START}<S:Fault><faultcode>S:Server</faultcode><faultstring>{msg}</faultstring>"
        f'<detail><ns2:IcatException xmlns:ns2="{NS}"><message>{msg}</message>'
        f"<offset>{err.offset}</offset><type>{err.type}</type></ns2:IcatException></detail>"
        f"</S:Fault>{_ENVELOPE_END}"
    )


def _response(op: str, body: str) -> str:
    wrapper = f'<ns2:{op}Response xmlns:ns2="{NS}">{body}</ns2:{op}Response>'
    return f"{_ENVELOPE_START}{wrapper}{_ENVELOPE_END}"


def _ret(value: object, xsi_type: str | None = None) -> str:
    attr = f' xsi:type="{xsi_type}"' if xsi_type else ""
    return f"<return{attr}>{escape(str(value))}</return>"


class IcatService:
    """All operations of the ICAT SOAP port, by name."""

    def __init__(
        self, config: EmulatorConfig, model: Model, store: Store, sessions: Sessions
    ) -> None:
        self.config = config
        self.model = model
        self.store = store
        self.sessions = sessions
        self.entity_info_xml = {name: self._entity_info(e) for name, e in model.entities.items()}
        self.operations: dict[str, Callable[[dict[str, list[etree._Element]]], str]] = {
            "getApiVersion": lambda a: _ret(config.api_version),
            "getVersion": lambda a: _ret(config.api_version),
            "getEntityNames": lambda a: "".join(_ret(n) for n in model.concrete_names()),
            "getEntityInfo": self.get_entity_info,
            "getAuthenticatorInfo": self.get_authenticator_info,
            "login": self.login,
            "logout": self.logout,
            "refresh": self.refresh,
            "getRemainingMinutes": lambda a: _ret(
                self.sessions.remaining_minutes(self._text(a, "sessionId"))
            ),
            "getUserName": lambda a: _ret(self._principal(a).name),
            "getProperties": self.get_properties,
            "create": self.create,
            "createMany": self.create_many,
            "update": self.update,
            "delete": self.delete,
            "deleteMany": self.delete_many,
            "get": self.get,
            "search": self.search,
            "isAccessAllowed": self.is_access_allowed,
            "dummy": lambda a: "",
        }

    # -- entry point -------------------------------------------------------------------------
    def handle(self, body: bytes) -> tuple[int, str, str]:
        """SOAP request bytes -> (HTTP status, operation name, response XML)."""
        op = "?"
        try:
            try:
                root = etree.fromstring(body, _PARSER)
            except etree.XMLSyntaxError as exc:
                raise IcatError("BAD_PARAMETER", f"Malformed SOAP request: {exc}") from exc
            body_elem = next((c for c in root if _local(c.tag) == "Body"), None)
            request = (
                None
                if body_elem is None
                else next((c for c in body_elem if isinstance(c.tag, str)), None)
            )
            if request is None:
                raise IcatError("BAD_PARAMETER", "No operation in SOAP body")
            op = _local(request.tag)
            handler = self.operations.get(op)
            if handler is None:
                raise IcatError("NOT_IMPLEMENTED", f"Operation {op} is not implemented")
            args: dict[str, list[etree._Element]] = {}
            for child in request:
                if isinstance(child.tag, str):
                    args.setdefault(_local(child.tag), []).append(child)
            return 200, op, _response(op, handler(args))
        except IcatError as err:
            return 500, op, fault_xml(err)

    # -- argument helpers --------------------------------------------------------------------
    @staticmethod
    def _text(args: dict[str, list[etree._Element]], name: str) -> str:
        elems = args.get(name)
        if not elems:
            raise IcatError("BAD_PARAMETER", f"{name} is missing")
        return elems[0].text or ""

    def _principal(self, args: dict[str, list[etree._Element]]) -> Principal:
        return self.sessions.principal(self._text(args, "sessionId"))

    # -- beans -------------------------------------------------------------------------------
    def decode_bean(self, elem: etree._Element, declared: Entity | None) -> BeanIn:
        entity = declared
        xsi_type = elem.get(_XSI_TYPE)
        if xsi_type:
            entity = self.model.by_xsd_name(xsi_type.rsplit(":", 1)[-1])
            if entity is None:
                raise IcatError("BAD_PARAMETER", f"Unknown bean type {xsi_type}")
        if entity is None:
            raise IcatError("BAD_PARAMETER", "Bean has no xsi:type")
        bean = BeanIn(entity)
        fields = entity.fields
        for child in elem:
            if not isinstance(child.tag, str):
                continue
            name = _local(child.tag)
            f = fields.get(name)
            if f is None or name in META_FIELDS:
                continue
            nil = child.get(_XSI_NIL) in ("true", "1")
            if f.rel_type == ATTRIBUTE:
                if name == "id":
                    bean.id = None if nil or not child.text else int(child.text)
                    continue
                try:
                    bean.values[name] = None if nil else to_db(f.type, child.text or "")
                except ValueError_ as exc:
                    raise IcatError("BAD_PARAMETER", f"{entity.name}.{name}: {exc}") from exc
            elif f.rel_type == ONE:
                id_text = None if nil else child.findtext("id")
                bean.ones[name] = int(id_text) if id_text else None
            elif f.rel_type == MANY and not nil:
                target = self.model.entities[f.type]
                bean.manies.setdefault(name, []).append(self.decode_bean(child, target))
        return bean

    def _beans(self, args: dict[str, list[etree._Element]], name: str) -> list[BeanIn]:
        return [self.decode_bean(e, None) for e in args.get(name, [])]

    def encode_obj(self, tag: str, obj: Obj, typed: bool) -> str:
        entity = obj.entity
        attr = f' xsi:type="ns2:{entity.xsd_name}"' if typed else ""
        parts = [f"<{tag}{attr}>"]
        row = obj.row
        for f in entity.fields.values():
            if f.rel_type != ATTRIBUTE:
                continue
            value = row.get(f.name)
            if value is not None:
                parts.append(f"<{f.name}>{escape(to_wire(f.type, value))}</{f.name}>")
        for rel, related in obj.related.items():
            if related is None:
                continue
            if isinstance(related, list):
                parts.extend(self.encode_obj(rel, r, False) for r in related)
            else:
                parts.append(self.encode_obj(rel, related, False))
        parts.append(f"</{tag}>")
        return "".join(parts)

    # -- metadata operations -----------------------------------------------------------------
    def _entity_info(self, entity: Entity) -> str:
        parts = ["<return>"]
        if entity.constraint:
            names = "".join(f"<fieldNames>{n}</fieldNames>" for n in entity.constraint)
            parts.append(f"<constraints>{names}</constraints>")
        for f in entity.fields.values():
            length = f"<stringLength>{f.string_length}</stringLength>" if f.string_length else ""
            # icat.server's EntityInfoHandler skips the meta fields: neither mandatory nor sized.
            not_nullable = f.not_nullable and f.name not in META_FIELDS
            parts.append(
                f"<fields><cascaded>{'true' if f.rel_type == MANY else 'false'}</cascaded>"
                f"<name>{f.name}</name><notNullable>{'true' if not_nullable else 'false'}"
                f"</notNullable><relType>{f.rel_type}</relType>{length}<type>{f.type}</type>"
                "</fields>"
            )
        parts.append("</return>")
        return "".join(parts)

    def get_entity_info(self, args: dict[str, list[etree._Element]]) -> str:
        name = self._text(args, "beanName")
        info = self.entity_info_xml.get(name)
        if info is None:
            raise IcatError("BAD_PARAMETER", f"{name} is not an ICAT entity")
        return info

    def get_authenticator_info(self, args: dict[str, list[etree._Element]]) -> str:
        out = []
        for auth in self.config.authenticators.values():
            friendly = f"<friendly>{escape(auth.friendly)}</friendly>" if auth.friendly else ""
            out.append(
                f"<return><admin>false</admin>{friendly}"
                "<keys><hide>false</hide><name>username</name></keys>"
                "<keys><hide>true</hide><name>password</name></keys>"
                f"<mnemonic>{escape(auth.mnemonic)}</mnemonic></return>"
            )
        return "".join(out)

    def get_properties(self, args: dict[str, list[etree._Element]]) -> str:
        self._principal(args)
        props = [
            f"lifetimeMinutes {self.config.session_lifetime_minutes:g}",
            "maxEntities 1000000",
            "maxIdsInQuery 500",
            f"authn.list {' '.join(self.config.authenticators)}",
            f"rootUserNames {' '.join(self.config.root_users)}",
        ]
        return "".join(_ret(p) for p in props)

    def logout(self, args: dict[str, list[etree._Element]]) -> str:
        self.sessions.logout(self._text(args, "sessionId"))
        return ""

    def refresh(self, args: dict[str, list[etree._Element]]) -> str:
        self.sessions.refresh(self._text(args, "sessionId"))
        return ""

    def login(self, args: dict[str, list[etree._Element]]) -> str:
        plugin = self._text(args, "plugin")
        credentials: dict[str, str] = {}
        for cred in args.get("credentials", []):
            for entry in cred:
                if isinstance(entry.tag, str) and _local(entry.tag) == "entry":
                    credentials[entry.findtext("key") or ""] = entry.findtext("value") or ""
        return _ret(self.sessions.login(plugin, credentials))

    # -- entity operations -------------------------------------------------------------------
    def create(self, args: dict[str, list[etree._Element]]) -> str:
        principal = self._principal(args)
        beans = self._beans(args, "bean")
        if len(beans) != 1:
            raise IcatError("BAD_PARAMETER", "create needs exactly one bean")
        (new_id,) = self.store.create_many(principal, beans)
        return _ret(new_id)

    def create_many(self, args: dict[str, list[etree._Element]]) -> str:
        principal = self._principal(args)
        beans = self._beans(args, "beans")
        return "".join(_ret(i) for i in self.store.create_many(principal, beans))

    def update(self, args: dict[str, list[etree._Element]]) -> str:
        principal = self._principal(args)
        beans = self._beans(args, "bean")
        if len(beans) != 1:
            raise IcatError("BAD_PARAMETER", "update needs exactly one bean")
        self.store.update(principal, beans[0])
        return ""

    def delete(self, args: dict[str, list[etree._Element]]) -> str:
        principal = self._principal(args)
        self.store.delete_many(principal, self._beans(args, "bean"))
        return ""

    def delete_many(self, args: dict[str, list[etree._Element]]) -> str:
        principal = self._principal(args)
        self.store.delete_many(principal, self._beans(args, "beans"))
        return ""

    def search(self, args: dict[str, list[etree._Element]]) -> str:
        principal = self._principal(args)
        result = self.store.search(principal, self._text(args, "query"))
        return self._encode_result(result)

    def _encode_result(self, result: SearchResult) -> str:
        if result.kind == "entity":
            return "".join(self.encode_obj("return", o, True) for o in result.items)  # type: ignore[arg-type]
        if result.kind == "scalar":
            java_type = result.value_types[0]
            xsi = XSI_TYPES.get(java_type, "xs:long")
            return "".join(_ret(to_wire(java_type, v), xsi) for v in result.items if v is not None)
        out = []
        for values in result.items:
            fields = []
            for java_type, v in zip(result.value_types, values, strict=True):  # type: ignore[call-overload]
                if v is None:
                    fields.append('<fields xsi:nil="true"/>')
                else:
                    xsi = XSI_TYPES.get(java_type, "xs:long")
                    fields.append(
                        f'<fields xsi:type="{xsi}">{escape(to_wire(java_type, v))}</fields>'
                    )
            out.append(f'<return xsi:type="ns2:fieldSet">{"".join(fields)}</return>')
        return "".join(out)

    _GET_QUERY = re.compile(
        r"^\s*(\w+)(?:\s+(?:AS\s+)?(?!INCLUDE\b)([\w$]+))?\s*(.*)$", re.IGNORECASE | re.DOTALL
    )

    def get(self, args: dict[str, list[etree._Element]]) -> str:
        principal = self._principal(args)
        query = self._text(args, "query")
        try:
            primary_key = int(self._text(args, "primaryKey"))
        except ValueError as exc:
            raise IcatError("BAD_PARAMETER", "primaryKey must be an integer") from exc
        words = query.split()
        if len(words) > 1 and words[1].upper() == "INCLUDE":  # icat.server: the concise syntax
            try:
                query = concise.get_to_jpql(self.model, query)
            except QueryError as exc:
                raise IcatError("BAD_PARAMETER", exc.message, exc.offset) from exc
        m = self._GET_QUERY.match(query)
        if not m:
            raise IcatError("BAD_PARAMETER", f"Bad get query {query!r}", 0)
        bean, alias, rest = m.group(1), m.group(2) or "o", m.group(3)
        entity = self.model.entities.get(bean)
        if entity is None or entity.abstract:
            raise IcatError("BAD_PARAMETER", f"{bean} is not an ICAT entity", 0)
        if not self.store.exists(entity, primary_key):
            raise IcatError("NO_SUCH_OBJECT_FOUND", f"{bean}[id:{primary_key}] not found.")
        if not self.store.is_allowed(principal, entity, "R", primary_key):
            raise IcatError(
                "INSUFFICIENT_PRIVILEGES", f"READ access to this {bean} is not allowed."
            )
        text = f"SELECT {alias} FROM {bean} {alias} WHERE {alias}.id = {primary_key} {rest}"
        result = self.store.search(principal, text)
        if not result.items:  # deleted meanwhile
            raise IcatError("NO_SUCH_OBJECT_FOUND", f"{bean}[id:{primary_key}] not found.")
        return self.encode_obj("return", result.items[0], True)  # type: ignore[arg-type]

    def is_access_allowed(self, args: dict[str, list[etree._Element]]) -> str:
        principal = self._principal(args)
        (bean,) = self._beans(args, "bean")
        access = self._text(args, "accessType")
        flags = {"CREATE": "C", "READ": "R", "UPDATE": "U", "DELETE": "D"}
        if access not in flags:
            raise IcatError(
                "BAD_PARAMETER",
                "invalid access type, must be 'READ', 'UPDATE', 'DELETE' or 'CREATE'",
            )
        if principal.is_root:
            allowed = True
        elif access == "CREATE":
            # As icat.server: create it in a transaction, check, roll back.
            try:
                self.store.create_many(principal, [bean], dry_run=True)
                allowed = True
            except IcatError as exc:
                if exc.type != "INSUFFICIENT_PRIVILEGES":
                    raise
                allowed = False
        elif bean.id is None:
            raise IcatError("NO_SUCH_OBJECT_FOUND", f"{bean.entity.name} has null primary key.")
        else:
            allowed = self.store.is_allowed(principal, bean.entity, flags[access], bean.id)
        return _ret("true" if allowed else "false")
