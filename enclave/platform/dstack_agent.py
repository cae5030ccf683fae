"""A client for dstack's guest agent: the KMS-derived key, runtime events, its event log.

Inside a dstack CVM the guest agent serves an HTTP RPC on a unix socket. Its documented
shapes (Dstack-TEE/dstack, sdk/curl/api.md; proto in dstack/guest-agent/rpc/proto/
agent_rpc.proto, both at commit 312dc605ebaaf93372534ffb135ea011533d28e9):

- `POST http://dstack/GetKey` with `{"path": ..., "purpose": ...}` replies
  `{"key": "<hex>", "signature_chain": ["<hex>", ...]}`: a key derived by the KMS-provisioned
  app key for `path` ("the domain separator for deterministic key material"); `purpose`
  "does not affect the private key bytes". 32 bytes (GetKeyResponse.key, secp256k1 scalar).
- `POST http://dstack/GetQuote` with `{"report_data": "<hex>"}` replies `{"quote": "<hex>",
  "event_log": "<json-event-log>", ...}`; the event log is a JSON array of TDX event log
  entries, RTMR3 entries with their payloads.
- `POST http://dstack/EmitEvent` with `{"event": name, "payload": "<hex>"}` replies 200 with
  an empty body: "Emit an event to be extended to RTMR3 on TDX platform. This API requires
  dstack OS 0.5.0 or later" (sdk/curl/api.md at commit 94c72495, which added it). Later
  agents removed it (commit 10898e63, "guest-agent: remove EmitEvent API"): they answer
  that method with an error status, which `emit_event` reports as `DstackMethodMissing`, so
  the caller can extend RTMR3 through the kernel instead.
- Errors: "400 Bad Request", "500 Internal Server Error" with `{"error": "..."}`.

The endpoint is found as dstack's SDKs find it (sdk/python/src/dstack_sdk/dstack_client.py,
`get_endpoint`): `DSTACK_SIMULATOR_ENDPOINT` (a unix socket path or an http(s) URL), else the
first of its socket paths that exists. Standard library only: http.client over AF_UNIX.
Errors never carry key material: a GetKey reply's body is never quoted.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# dstack_client.py `get_endpoint`: the override, then these sockets in this order.
ENDPOINT_ENV = "DSTACK_SIMULATOR_ENDPOINT"
DEFAULT_SOCKETS = (
    Path("/var/run/dstack.sock"),
    Path("/run/dstack.sock"),
    Path("/var/run/dstack/dstack.sock"),
    Path("/run/dstack/dstack.sock"),
)
# sdk/curl/api.md: requests go to http://dstack/<Method> over the socket.
_SOCKET_HOST = "dstack"
# GetKeyResponse.key: secp256k1 key material, 32 bytes.
KEY_SIZE = 32
# A GetQuote reply carries a quote (~5 KB) and the event log (tens of KB); far below this.
MAX_REPLY_BYTES = 4 << 20
DEFAULT_TIMEOUT_SECONDS = 10.0
_ERROR_EXCERPT = 200
_HEX = frozenset("0123456789abcdefABCDEF")


class DstackAgentError(Exception):
    """dstack's guest agent cannot do what was asked; the message says why and what to do."""


class DstackUnreachable(DstackAgentError):
    """Nothing answers at the endpoint (no socket, refused, timed out)."""


class DstackHttpError(DstackAgentError):
    """The agent answered with a status other than 200."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class DstackMethodMissing(DstackHttpError):
    """The agent does not offer this method (404, or its error names an unknown method)."""


class DstackReplyError(DstackAgentError):
    """The reply is truncated, too large, not JSON, or lacks a field."""


class DstackKeyError(DstackReplyError):
    """GetKey's key is not hex or not 32 bytes."""


def find_endpoint(environ: Mapping[str, str] = os.environ) -> str | None:
    """The guest agent's endpoint: the environment override, else the first existing socket;
    None when there is neither (not a dstack CVM, or the socket is not mounted)."""
    override = environ.get(ENDPOINT_ENV)
    if override:
        return override
    for path in DEFAULT_SOCKETS:
        if path.exists():
            return str(path)
    return None


class _UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a unix stream socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(_SOCKET_HOST, timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class DstackAgent:
    """The guest agent at `endpoint`: a unix socket path, or an http(s):// URL."""

    def __init__(self, endpoint: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.endpoint = endpoint
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"DstackAgent(endpoint={self.endpoint!r})"

    def get_key(self, path: str, purpose: str) -> bytes:
        """The 32-byte key the agent derives for `path` from the KMS-provisioned app key.

        Raises:
            DstackUnreachable, DstackHttpError, DstackReplyError: the call failed.
            DstackKeyError: the key is not 64 hex digits. No message quotes the key.
        """
        reply = self._call("GetKey", {"path": path, "purpose": purpose}, secret=True)
        key = reply.get("key")
        if not isinstance(key, str):
            raise DstackKeyError(
                f"dstack GetKey at {self.endpoint} replied without a string `key` field"
            )
        if len(key) != 2 * KEY_SIZE or not _HEX.issuperset(key):
            shape = "hex" if _HEX.issuperset(key) else "not hex"
            raise DstackKeyError(
                f"dstack GetKey at {self.endpoint} returned a key of {len(key)} characters "
                f"({shape}); expected {2 * KEY_SIZE} hex digits ({KEY_SIZE} bytes)"
            )
        return bytes.fromhex(key)

    def emit_event(self, event: str, payload: bytes) -> None:
        """Ask the agent to extend RTMR3 with a runtime event and log it.

        Raises:
            DstackMethodMissing: this agent has no EmitEvent (removed in later dstack).
            DstackUnreachable, DstackHttpError, DstackReplyError: the call failed.
        """
        self._call("EmitEvent", {"event": event, "payload": payload.hex()}, empty_ok=True)

    def event_log(self) -> str:
        """The agent's event log (its JSON text, as GetQuote returns it).

        Raises:
            DstackUnreachable, DstackHttpError, DstackReplyError: the call failed, or the
                reply has no `event_log` string.
        """
        reply = self._call("GetQuote", {"report_data": bytes(64).hex()})
        log = reply.get("event_log")
        if not isinstance(log, str):
            raise DstackReplyError(
                f"dstack GetQuote at {self.endpoint} replied without an `event_log` string"
            )
        return log

    def _call(
        self, method: str, body: dict[str, Any], *, secret: bool = False, empty_ok: bool = False
    ) -> dict[str, Any]:
        connection, path = self._connection(method)
        where = f"dstack {method} at {self.endpoint}"
        response: http.client.HTTPResponse | None = None
        try:
            connection.request(
                "POST",
                path,
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            declared = response.getheader("Content-Length")
            if declared is None:  # chunked or until close: read one byte past the limit
                data = response.read(MAX_REPLY_BYTES + 1)
            elif not declared.strip().isdigit() or int(declared) > MAX_REPLY_BYTES:
                raise DstackReplyError(
                    f"{where} announced a reply of {declared[:20]!r} bytes; the limit is "
                    f"{MAX_REPLY_BYTES}"
                )
            else:  # read() without a size raises IncompleteRead when fewer bytes come
                data = response.read()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DstackUnreachable(
                f"{where}: nothing listens there ({exc.strerror}): is this a dstack CVM with "
                f"the guest agent's socket mounted into the container (see sdk/curl/api.md), "
                f"or is {ENDPOINT_ENV} wrong?"
            ) from None
        except TimeoutError:
            raise DstackUnreachable(
                f"{where} did not answer within {self.timeout} s: is the guest agent running?"
            ) from None
        except http.client.IncompleteRead as exc:
            raise DstackReplyError(
                f"{where}: the reply was truncated ({len(exc.partial)} bytes read, more announced)"
            ) from None
        except (http.client.HTTPException, OSError) as exc:
            raise DstackUnreachable(
                f"{where} failed: {type(exc).__name__}: {exc}"[: _ERROR_EXCERPT * 2]
            ) from None
        finally:
            if response is not None:
                response.close()
            connection.close()
        if len(data) > MAX_REPLY_BYTES:
            raise DstackReplyError(f"{where}: the reply exceeds {MAX_REPLY_BYTES} bytes")
        if response.status != 200:
            detail = "" if secret else _error_detail(data)
            kind = (
                DstackMethodMissing if _method_missing(response.status, data) else DstackHttpError
            )
            raise kind(f"{where} answered HTTP {response.status}{detail}", response.status)
        if empty_ok and not data.strip():
            return {}
        try:
            reply = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            raise DstackReplyError(f"{where}: the reply ({len(data)} bytes) is not JSON") from None
        if not isinstance(reply, dict):
            if empty_ok:
                return {}
            raise DstackReplyError(f"{where}: the reply is JSON but not an object")
        return reply

    def _connection(self, method: str) -> tuple[http.client.HTTPConnection, str]:
        if self.endpoint.startswith(("http://", "https://")):
            url = urlsplit(self.endpoint)
            kind = (
                http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
            )
            host = url.hostname or "localhost"
            return kind(host, url.port, timeout=self.timeout), f"{url.path.rstrip('/')}/{method}"
        return _UnixConnection(self.endpoint, self.timeout), f"/{method}"


def _error_detail(data: bytes) -> str:
    """`: <error>` from an `{"error": ...}` body, shortened; empty when there is none."""
    try:
        message = json.loads(data).get("error")
    except (ValueError, AttributeError, UnicodeDecodeError):
        message = None
    if not isinstance(message, str) or not message:
        return ""
    return f": {message[:_ERROR_EXCERPT]}"


def _method_missing(status: int, data: bytes) -> bool:
    if status == 404:
        return True
    text = data[: _ERROR_EXCERPT * 4].decode(errors="replace").lower()
    return status == 400 and "method" in text and ("not found" in text or "unknown" in text)
