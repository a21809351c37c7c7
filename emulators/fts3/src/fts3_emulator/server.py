"""HTTPS serving: uvicorn with client-certificate authentication as FTS3 (mod_gridsite) does it.

The TLS handshake asks for a client certificate (optional, so token users get in), verifies it
against our CA and accepts RFC 3820 proxy chains. The peer certificate is handed to the ASGI app
as ``scope["extensions"]["tls"]["client_cert_der"]``: uvicorn does not pass it on by itself, so
the HTTP protocol classes below wrap the app per connection once the handshake is done.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from fts3_emulator.api import create_app
from fts3_emulator.config import EmulatorSettings
from fts3_emulator.engine import TransferEngine
from fts3_emulator.store import Store

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional in uvicorn
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

ALLOW_PROXY_CERTS = 0x40  # X509_V_FLAG_ALLOW_PROXY_CERTS


def _with_peer_certificate(app: ASGIApp, der: bytes | None) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {"client_cert_der": der}
            scope = {**scope, "extensions": extensions}
        await app(scope, receive, send)

    return wrapped


class _PeerCertificateMixin:
    app: ASGIApp

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.app = _with_peer_certificate(self.app, der)


class H11WithPeerCertificate(_PeerCertificateMixin, H11Protocol):
    pass


if HttpToolsProtocol is not None:

    class HttpToolsWithPeerCertificate(_PeerCertificateMixin, HttpToolsProtocol):
        pass

    PROTOCOL: type = HttpToolsWithPeerCertificate
else:
    PROTOCOL = H11WithPeerCertificate


def build_server(settings: EmulatorSettings) -> uvicorn.Server:
    store = Store(settings.db_path)
    engine = TransferEngine(store, settings)
    app = create_app(settings, store, engine)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=PROTOCOL,
        ssl_certfile=str(settings.cert),
        ssl_keyfile=str(settings.key),
        ssl_ca_certs=str(settings.ca),
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
        log_level=settings.log_level,
        timeout_keep_alive=30,
        lifespan="on",
    )
    config.load()
    assert config.ssl is not None
    config.ssl.verify_flags |= ALLOW_PROXY_CERTS
    return uvicorn.Server(config)


def serve(settings: EmulatorSettings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    build_server(settings).run()
