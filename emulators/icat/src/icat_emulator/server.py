"""HTTP front: SOAP at /ICATService/ICAT (WSDL at ?wsdl, XSD at ?xsd=1), REST /icat/version,
/emulator/stats (per-operation counts and server-side times, for benchmarks) and
/emulator/faults (GET, PUT ``{"error_rate": 0.2, "lost_answer_rate": 0.1, "fail_next": 3}``: a
fraction of SOAP calls answered 503 before they run, or run and then left without an answer, as
a real ICAT behind an overloaded proxy does, and the next N calls answered 503; for fault tests)."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from .config import EmulatorConfig
from .model import load_model
from .sessions import Sessions
from .soap import IcatService
from .store import Store
from .wsdl import build_wsdl, build_xsd

log = logging.getLogger("icat_emulator")
SOAP_PATH = "/ICATService/ICAT"


class OperationStats:
    """Counts and server-side seconds per SOAP operation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ops: dict[str, dict[str, float]] = {}

    def record(self, op: str, seconds: float) -> None:
        with self._lock:
            entry = self.ops.setdefault(op, {"count": 0, "total_s": 0.0, "max_s": 0.0})
            entry["count"] += 1
            entry["total_s"] += seconds
            entry["max_s"] = max(entry["max_s"], seconds)
            entry["last_s"] = seconds

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {k: dict(v) for k, v in self.ops.items()}


class IcatHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        model = load_model()
        self.store = Store(config.database, model)
        self.service = IcatService(config, model, self.store, Sessions(config, self.store))
        self.xsd = build_xsd(model).encode()
        self.stats = OperationStats()
        self.faults = {"error_rate": 0.0, "lost_answer_rate": 0.0, "fail_next": 0.0}
        self.faults_lock = threading.Lock()
        super().__init__((config.host, config.port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: IcatHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == SOAP_PATH and url.query.lower() == "wsdl":
            host = (
                self.headers.get("Host") or f"{self.server.config.host}:{self.server.config.port}"
            )
            wsdl = build_wsdl(f"http://{host}{SOAP_PATH}")
            self._send(200, wsdl.encode(), "text/xml; charset=utf-8")
        elif url.path == SOAP_PATH and url.query.lower() == "xsd=1":
            self._send(200, self.server.xsd, "text/xml; charset=utf-8")
        elif url.path == "/icat/version":
            body = json.dumps({"version": self.server.config.api_version}).encode()
            self._send(200, body, "application/json")
        elif url.path == "/emulator/stats":
            self._send(200, json.dumps(self.server.stats.snapshot()).encode(), "application/json")
        elif url.path == "/emulator/faults":
            self._send(200, json.dumps(self.server.faults).encode(), "application/json")
        else:
            self._send(404, b"not found", "text/plain")

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if urlsplit(self.path).path != "/emulator/faults":
            self._send(404, b"not found", "text/plain")
            return
        try:
            wanted = {k: float(v) for k, v in json.loads(body or b"{}").items()}
            if not set(wanted) <= set(self.server.faults) or not all(
                0 <= v <= (10**6 if k == "fail_next" else 1) for k, v in wanted.items()
            ):
                raise ValueError(
                    f"rates in [0, 1] (fail_next: a count) for {sorted(self.server.faults)}"
                )
        except (ValueError, AttributeError) as exc:
            self._send(400, str(exc).encode(), "text/plain")
            return
        self.server.faults.update(wanted)
        self._send(200, json.dumps(self.server.faults).encode(), "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if urlsplit(self.path).path != SOAP_PATH:
            self._send(404, b"not found", "text/plain")
            return
        faults = self.server.faults
        with self.server.faults_lock:
            forced = faults["fail_next"] >= 1
            if forced:
                faults["fail_next"] -= 1
        if forced or random.random() < faults["error_rate"]:
            self._send(503, b"Service Unavailable (injected fault)", "text/plain")
            return
        started = time.perf_counter()
        try:
            status, op, xml = self.server.service.handle(body)
        except Exception:  # an emulator bug: answer as ICAT would (INTERNAL), keep serving
            log.exception("internal error")
            from .errors import IcatError
            from .soap import fault_xml

            status, op, xml = 500, "?", fault_xml(IcatError("INTERNAL", "Internal error"))
        elapsed = time.perf_counter() - started
        self.server.stats.record(op, elapsed)
        log.info("%s %s %.1f ms", op, status, elapsed * 1000)
        if random.random() < faults["lost_answer_rate"]:
            self.close_connection = True  # done, but the client never hears it
            return
        self._send(
            status,
            xml.encode(),
            "text/xml; charset=utf-8",
            {"X-Icat-Server-Time-Ms": f"{elapsed * 1000:.3f}"},
        )


def serve(config: EmulatorConfig) -> None:
    server = IcatHttpServer(config)
    log.info(
        "ICAT emulator listening on http://%s:%d%s (database %s)",
        config.host,
        server.server_address[1],
        SOAP_PATH,
        config.database,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
