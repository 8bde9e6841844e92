"""Small HTTP servers on 127.0.0.1 that speak a provider's wire format, with fault injection.

The real SDKs are pointed at them by base URL, so a test exercises the SDK's own request building,
SSE parsing and error handling. Every request is captured (headers and body) for assertions.
Faults are queued and apply to the next requests, one fault per request:

    server.enqueue(Fault.http(429, retry_after="1"))
    server.enqueue(Fault.reset())                    # RST before any response
    server.enqueue(Fault.truncate(after_events=3))   # stream ends cleanly but early (no end event)
    server.enqueue(Fault.truncate(after_events=3, clean=False))  # connection dropped mid-stream
    server.enqueue(Fault.slow(2.0))                  # wait before answering
    server.enqueue(Fault.drip(0.3))                  # wait before every streamed event
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Fault:
    kind: str
    status: int = 0
    retry_after: str | None = None
    body: dict | None = None
    after_events: int = 0
    clean: bool = True
    delay: float = 0.0

    @classmethod
    def http(cls, status: int, retry_after: str | None = None, body: dict | None = None) -> Fault:
        return cls("status", status=status, retry_after=retry_after, body=body)

    @classmethod
    def reset(cls) -> Fault:
        return cls("reset")

    @classmethod
    def truncate(cls, after_events: int, clean: bool = True) -> Fault:
        return cls("truncate", after_events=after_events, clean=clean)

    @classmethod
    def slow(cls, delay: float) -> Fault:
        return cls("slow", delay=delay)

    @classmethod
    def drip(cls, delay: float) -> Fault:
        return cls("drip", delay=delay)


@dataclass
class Captured:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


class Reply:
    """What the server answers: a status and JSON body, or a list of SSE events."""

    def __init__(
        self,
        status: int = 200,
        body: Any = None,
        events: list[tuple[str | None, Any]] | None = None,
        headers=None,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ):
        self.status = status
        self.body = body
        self.events = events
        self.headers = headers or {}
        self.raw = raw  # a body sent as it is (JSONL results), instead of ``body`` as JSON
        self.content_type = content_type


class WireServer:
    """Base class: subclasses implement :meth:`handle` (and :meth:`error_body`)."""

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self._faults: deque[Fault] = deque()
        self._tls = False  # serve_tls() wraps the listening socket
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                owner._serve(self)

            def do_GET(self):
                owner._serve(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # shutdown() waits for the loop's next poll: 0.5 s by default, paid by every test's teardown
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{host}:{port}"

    def serve_tls(self, cert: Path, key: Path) -> WireServer:
        """Answer over TLS with this certificate (call before start)."""
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._tls = True
        return self

    def start(self) -> WireServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def enqueue(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    # -- subclass API --------------------------------------------------------------------------

    def handle(self, captured: Captured) -> Reply:
        raise NotImplementedError

    def error_body(self, status: int) -> dict:
        return {"error": {"code": status, "message": f"injected HTTP {status}"}}

    # -- serving ---------------------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        captured = Captured(h.command, h.path, {k.lower(): v for k, v in h.headers.items()}, body)
        with self._lock:
            self.requests.append(captured)
        fault = self._next_fault()
        if fault and fault.kind == "reset":
            _reset(h)
            return
        if fault and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault and fault.kind == "status":
            headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else {}
            self._send_json(h, Reply(fault.status, fault.body or self.error_body(fault.status), headers=headers))
            return
        reply = self.handle(captured)
        if reply.events is None:
            self._send_json(h, reply)
        else:
            self._send_sse(h, reply, fault)

    @staticmethod
    def _send_json(h, reply: Reply) -> None:
        data = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        h.send_response(reply.status)
        h.send_header("content-type", reply.content_type)
        h.send_header("content-length", str(len(data)))
        for k, v in reply.headers.items():
            h.send_header(k, v)
        h.end_headers()
        try:
            h.wfile.write(data)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out or was cancelled

    @staticmethod
    def _send_sse(h, reply: Reply, fault: Fault | None) -> None:
        h.send_response(reply.status)
        h.send_header("content-type", "text/event-stream")
        h.send_header("transfer-encoding", "chunked")
        h.send_header("cache-control", "no-cache")
        h.end_headers()
        for index, (event, data) in enumerate(reply.events):
            if fault and fault.kind == "truncate" and index >= fault.after_events:
                if fault.clean:
                    break  # the body ends properly, just without the provider's end-of-answer event
                h.wfile.write(b'40\r\ndata: {"partial')  # half a chunk, then the connection drops
                h.wfile.flush()
                _reset(h)
                return
            if fault and fault.kind == "drip":
                time.sleep(fault.delay)
            text = (
                f"event: {event}\n" if event else ""
            ) + f"data: {json.dumps(data) if not isinstance(data, str) else data}\n\n"
            chunk = text.encode()
            try:
                h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                h.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return  # the client went away (cancelled): nothing more to do
        try:
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def _reset(h: BaseHTTPRequestHandler) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), like a crashed server or a proxy timeout."""
    sock: socket.socket = h.connection
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    h.close_connection = True
