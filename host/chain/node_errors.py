"""What a node's answers and errors say, in words safe for a log line.

A revert payload becomes its reason (Error(string), Panic(uint256), a custom error's
selector); text from the chain is cut to printable characters; and an error from talking to
a node loses the RPC URL's path, query and credentials, which often hold an API key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector

from host.chain.vault_artifact import ArtifactError, load_artifact

# Solidity's revert payloads: Error(string) and Panic(uint256) (selectors are the first four
# bytes of keccak256 of the signature).
_ERROR_SELECTOR = bytes.fromhex("08c379a0")
_PANIC_SELECTOR = bytes.fromhex("4e487b71")
# https://docs.soliditylang.org/en/latest/control-structures.html#panic-via-assert-and-error-via-require
_PANIC_CODES = {
    0x00: "generic compiler panic",
    0x01: "assert failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "invalid storage byte array",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialized function",
}
_MAX_REASON = 200


class NodeDown(Exception):
    """The node could not be reached or gave no JSON-RPC answer: an outage, not a refusal."""


class NodeRpcError(Exception):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, method: str, error: object) -> None:
        error = error if isinstance(error, dict) else {"message": str(error)}
        self.code = error.get("code")
        self.message = str(error.get("message", "")) or "(no message)"
        self.data = error.get("data")
        super().__init__(f"{method}: {self.message}")


def printable(text: str) -> str:
    """A string from the chain (revert reasons are anyone's), safe for one log line."""
    cleaned = "".join(c if c.isprintable() else "\ufffd" for c in text)
    return cleaned if len(cleaned) <= _MAX_REASON else cleaned[:_MAX_REASON] + "..."


def revert_payload(data: object) -> bytes | None:
    """The revert payload inside a JSON-RPC error's `data` (nodes nest it differently)."""
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return None


def decode_revert(payload: bytes) -> str:
    """A revert payload as a person reads it: the string, the panic, or the error selector."""
    if not payload:
        return "no reason given"
    selector, body = payload[:4], payload[4:]
    try:
        if selector == _ERROR_SELECTOR:
            (reason,) = abi_decode(["string"], body)
            return printable(str(reason))
        if selector == _PANIC_SELECTOR:
            (code,) = abi_decode(["uint256"], body)
            return f"panic 0x{code:02x} ({_PANIC_CODES.get(code, 'unknown panic code')})"
    except Exception:  # eth_abi raises several types for malformed data; all mean the same
        return f"undecodable revert data 0x{payload[:36].hex()}"
    if len(payload) >= 4:
        try:
            known = custom_error("0x" + payload.hex(), load_artifact().abi)
        except ArtifactError:
            known = "revert data"
        if not known.startswith("revert data"):
            return known  # one of the GuardedVault's errors, by name
        return f"custom error 0x{selector.hex()} (data 0x{body[:64].hex()})"
    return f"revert data 0x{payload.hex()}"


def revert_reason(rpc: Callable[[str, list[Any]], Any], tx_hash: str, block: int) -> str:
    """Why transaction `tx_hash` (0x hex) reverted: its call replayed with eth_call at
    `block` through `rpc` (method, params -> result; raises NodeRpcError for an error answer).
    """
    tx = rpc("eth_getTransactionByHash", [tx_hash])
    if tx is None:
        return "reason unknown (the node no longer returns the transaction)"
    call = {
        "from": tx["from"],
        "to": tx.get("to"),
        "data": tx.get("input") or tx.get("data") or "0x",
        "value": tx.get("value", "0x0"),
        "gas": tx.get("gas"),
    }
    try:
        rpc("eth_call", [call, hex(block)])
    except NodeRpcError as error:
        payload = revert_payload(error.data)
        if payload is not None:
            return decode_revert(payload)
        return printable(error.message)
    return "reason unknown (the call does not revert when replayed)"


def redacted_url(url: str) -> str:
    """scheme://host:port of an RPC URL: its path or query may hold an API key."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


# Any URL in an error message, and the form requests and urllib3 print the path in
# ("Max retries exceeded with url: /v3/KEY (Caused by ...)").
_ANY_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]+")
_URL_PATH = re.compile(r"\b(url: )/[^\s'\"<>()]*")


def _cut(url: str) -> str:
    """`_redacted`, for a URL found in a message: never raises (a bad port is possible)."""
    try:
        return redacted_url(url)
    except ValueError:
        return "[url redacted]"


def redact_error(exc: BaseException, rpc_url: str | None = None) -> str:
    """`Type: message` of an error from talking to a node, safe for a log line.

    requests, urllib3 and web3 put the request's URL, or only its path, in their messages,
    and an RPC URL's path, query or credentials often hold an API key. Every URL is cut to
    scheme://host:port and a bare request path becomes the redacted node (or a marker
    without `rpc_url`); then whatever is left of `rpc_url`'s path, query or credentials
    (printed some other way) is replaced too.
    """
    node = _cut(rpc_url) if rpc_url else "[path redacted]"
    text = _ANY_URL.sub(lambda match: _cut(match.group(0)), f"{type(exc).__name__}: {exc}")
    text = _URL_PATH.sub(lambda match: match.group(1) + node, text)
    if rpc_url:
        parts = urlsplit(rpc_url)
        after_host = rpc_url.split(parts.netloc, 1)[-1] if parts.netloc else rpc_url
        pieces = {after_host, parts.path, parts.query, parts.username, parts.password}
        # Longest first, so a piece inside another is not replaced half-way; "" and "/"
        # are in every message and hide nothing.
        for piece in sorted((p for p in pieces if p and len(p) > 1), key=len, reverse=True):
            text = text.replace(piece, "[redacted]")
    return text


def custom_error(data: str, abi: Sequence[Mapping[str, Any]]) -> str:
    """A Solidity custom error's revert data as `Name(arg, ...)`, by the contract's ABI; the
    raw hex when no error of the ABI has its selector or its arguments do not decode."""
    raw = bytes.fromhex(data.removeprefix("0x"))
    for entry in abi:
        if entry.get("type") != "error":
            continue
        types = [str(item["type"]) for item in entry.get("inputs", [])]
        signature = f"{entry['name']}({','.join(types)})"
        if raw[:4] != function_signature_to_4byte_selector(signature):
            continue
        try:
            values = abi_decode(types, raw[4:])
        except Exception:
            break
        shown = ", ".join(
            "0x" + value.hex() if isinstance(value, bytes) else str(value) for value in values
        )
        return f"{entry['name']}({shown})"
    return f"revert data {data}"
