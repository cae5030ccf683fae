"""A stand-in for dstack's guest agent: its HTTP RPC on a real unix socket, from a thread.

It speaks the shapes of Dstack-TEE/dstack sdk/curl/api.md: GetKey derives a key per path
(here HMAC-SHA256 of a test secret, where dstack uses its KMS-provisioned app key), EmitEvent
logs a runtime event in RTMR3 and calls `on_extend` with its digest (the fake kernel's
RTMR3 follows), GetQuote returns the event log as a JSON string. `raw` makes a method
answer with exact bytes (truncated, oversized, non-hex...) to test a client's defences.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socketserver
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from enclave.platform.runtime_events import DSTACK_RUNTIME_EVENT_TYPE, RuntimeEvent


class FakeDstackAgent:
    """Serve until `stop`; `socket` is the path to give the client."""

    def __init__(
        self,
        *,
        app_secret: bytes = b"test app key",
        emit_event: bool = True,
        on_extend: Callable[[bytes], None] | None = None,
        boot_events: list[dict[str, Any]] | None = None,
        compact: bool = False,
    ) -> None:
        """`compact`: GetQuote replies with dstack's compact log (the `tdx-lite` form),
        runtime events without their digests."""
        # A short directory: unix socket paths are limited to 108 bytes.
        self._dir = tempfile.TemporaryDirectory(prefix="dstack-")
        self.socket = str(Path(self._dir.name) / "dstack.sock")
        self.app_secret = app_secret
        self.emit_event = emit_event
        self.on_extend = on_extend
        self.compact = compact
        self.log: list[dict[str, Any]] = list(boot_events or [])
        self.raw: dict[str, bytes] = {}
        self.requests: list[tuple[str, Any]] = []
        agent = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                method = self.path.lstrip("/")
                agent.requests.append((method, body))
                if method in agent.raw:
                    self.wfile.write(agent.raw[method])
                    self.close_connection = True
                    return
                status, reply = agent.answer(method, body)
                data = b"" if reply is None else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # unix-socket peers have no address to log

        self._server = socketserver.ThreadingUnixStreamServer(self.socket, Handler)
        self._server.daemon_threads = True
        # The socket listens from here on: no readiness to wait for.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def answer(self, method: str, body: dict[str, Any]) -> tuple[int, Any]:
        if method == "GetKey":
            key = hmac.new(self.app_secret, body["path"].encode(), hashlib.sha256).digest()
            return 200, {"key": key.hex(), "signature_chain": ["00" * 65, "11" * 65]}
        if method == "EmitEvent" and self.emit_event:
            event = RuntimeEvent(body["event"], bytes.fromhex(body["payload"]))
            self.log.append(event.log_entry())
            if self.on_extend is not None:
                self.on_extend(event.digest())
            return 200, None
        if method == "GetQuote":
            log = [
                {**entry, "digest": ""}
                if self.compact and entry["event_type"] == DSTACK_RUNTIME_EVENT_TYPE
                else entry
                for entry in self.log
            ]
            return 200, {"quote": "", "event_log": json.dumps(log), "report_data": ""}
        return 404, {"error": f"Method not found: {method}"}

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._dir.cleanup()

    def __enter__(self) -> FakeDstackAgent:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def raw_reply(status: int, body: bytes, *, content_length: int | None = None) -> bytes:
    """An HTTP/1.1 response with exactly `body`, announcing `content_length` (default: its
    true length)."""
    length = len(body) if content_length is None else content_length
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
