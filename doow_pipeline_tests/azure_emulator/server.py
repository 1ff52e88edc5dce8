"""HTTPS server around EmulatorApp: stdlib ThreadingHTTPServer, TLS handshake in the connection's thread,
HTTP/1.1 keep-alive, Azure's standard response headers, connection resets for faults."""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import struct
import sys
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from .app import Context, EmulatorApp, Request, Response
from .metrics import JsonDoc

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
log = logging.getLogger("azure_emulator")


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address, app: EmulatorApp, ssl_context: ssl.SSLContext):
        self.app = app
        self.ssl_context = ssl_context
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        try:
            request.settimeout(30)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            try:
                request.close()
            except OSError:
                pass
            return
        try:
            tls.settimeout(Handler.timeout)
            # Headers and body leave in separate writes: without TCP_NODELAY, Nagle's algorithm and delayed
            # ACKs stall every keep-alive response by ~40 ms, which real Azure does not.
            tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.RequestHandlerClass(tls, client_address, self)
        except (ssl.SSLError, OSError, ValueError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):  # quiet: clients drop connections all the time
        log.debug("connection error from %s", client_address, exc_info=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = 120

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        log.debug("%s - %s", self.address_string(), format % args)

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (OSError, ValueError, ssl.SSLError):
            self.close_connection = True

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError, ssl.SSLError):
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = lambda self: self.dispatch()

    def dispatch(self) -> None:
        started = time.perf_counter()
        app: EmulatorApp = self.server.app
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        raw_path, _, query = self.path.partition("?")
        path = re.sub(r"/{2,}", "/", unquote(raw_path)) or "/"
        headers = {k.lower(): v for k, v in self.headers.items()}
        host = headers.get("host") or f"127.0.0.1:{self.server.server_address[1]}"
        req = Request(self.command, path, query, headers, body, self.client_address[0], f"https://{host}")
        if req.lower[:1] == ["_emulator"]:
            if self.client_address[0] not in LOOPBACK:
                self.send(Response(403, {"error": "the control API answers loopback clients only"}), req)
            else:
                self.send(app.control(req), req)
            return
        ctx = Context()
        try:
            response = app.handle(req, ctx)
        except Exception as exc:  # noqa: BLE001 - last resort for any emulator bug: answer like Azure's 500 and keep the traceback visible
            traceback.print_exc(file=sys.stderr)
            response = Response(
                500,
                {"error": {"code": "InternalServerError", "message": f"Emulator failure: {type(exc).__name__}: {exc}"}},
            )
        payload = b"" if response.reset else self.serialize(response)
        duration_ms = (time.perf_counter() - started) * 1000
        entry = app.record(req, ctx, response, duration_ms)  # before answering: the log is complete on return
        if response.reset:
            self.reset_connection()
            return
        validation_kind = app.validation_kind(ctx.kind, response)
        if validation_kind:
            app.begin_validation()
        try:
            self.send(response, req, payload)
        finally:
            if validation_kind:
                app.validate(entry, response, validation_kind)

    def reset_connection(self) -> None:
        """Close the TCP connection without an HTTP response (RST, no TLS close_notify)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            raw = socket.socket(fileno=self.connection.detach())
            raw.close()
        except (OSError, ValueError):
            pass

    @staticmethod
    def serialize(response: Response) -> bytes:
        if response.body is None:
            return b""
        if isinstance(response.body, (bytes, bytearray)):
            return bytes(response.body)
        if isinstance(response.body, JsonDoc):
            return response.body.render().encode("utf-8")
        return json.dumps(response.body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def send(self, response: Response, req: Request, payload: bytes | None = None) -> None:
        if payload is None:
            payload = self.serialize(response)
        self.send_response(response.status)
        headers = {
            "Cache-Control": "no-cache",
            "Pragma": "no-cache",
            "Content-Type": "application/json; charset=utf-8",
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-correlation-request-id": req.headers.get("x-ms-correlation-request-id") or str(uuid.uuid4()),
            "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
            "X-Content-Type-Options": "nosniff",
        }
        client_request_id = req.headers.get("x-ms-client-request-id")
        if client_request_id:
            headers["x-ms-client-request-id"] = client_request_id
        headers.update(response.headers)
        if not payload:
            headers.pop("Content-Type", None)
        headers["Content-Length"] = str(len(payload))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload[: len(payload) // 2] if response.truncate else payload)
        self.wfile.flush()
        if response.truncate:
            self.reset_connection()
