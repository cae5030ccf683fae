"""The dstack guest agent client against a real server speaking its protocol over a real
unix socket (tests/fake_dstack.py), honest and hostile."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from enclave.platform.dstack_agent import (
    DEFAULT_SOCKETS,
    ENDPOINT_ENV,
    MAX_REPLY_BYTES,
    DstackAgent,
    DstackHttpError,
    DstackKeyError,
    DstackMethodMissing,
    DstackReplyError,
    DstackUnreachable,
    find_endpoint,
)
from enclave.platform.runtime_events import RuntimeEvent, parse_event_log
from tests.fake_dstack import FakeDstackAgent, raw_reply

KEY_HEX = "ab" * 32


@pytest.fixture
def agent() -> Iterator[FakeDstackAgent]:
    with FakeDstackAgent() as running:
        yield running


def test_get_key_sends_the_documented_request_and_returns_32_bytes(
    agent: FakeDstackAgent,
) -> None:
    client = DstackAgent(agent.socket)
    key = client.get_key("tee-agent/sealing", "sealing")
    assert len(key) == 32
    assert agent.requests == [("GetKey", {"path": "tee-agent/sealing", "purpose": "sealing"})]
    # Deterministic per path, different across paths (the server's derivation).
    assert client.get_key("tee-agent/sealing", "other purpose") == key
    assert client.get_key("another/path", "sealing") != key


def test_emit_event_sends_name_and_hex_payload(agent: FakeDstackAgent) -> None:
    DstackAgent(agent.socket).emit_event("tee-agent.config-hash", b"\x01\x02")
    assert agent.requests == [("EmitEvent", {"event": "tee-agent.config-hash", "payload": "0102"})]
    [entry] = parse_event_log(DstackAgent(agent.socket).event_log(), "test")
    assert entry == RuntimeEvent("tee-agent.config-hash", b"\x01\x02").log_entry()


def test_an_agent_without_emit_event_says_so() -> None:
    with FakeDstackAgent(emit_event=False) as agent, pytest.raises(DstackMethodMissing) as missing:
        DstackAgent(agent.socket).emit_event("tee-agent.config-hash", b"\x01")
    assert missing.value.status == 404


def test_an_http_endpoint_is_accepted_as_the_sdks_accept_it() -> None:
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            data = json.dumps({"key": KEY_HEX, "signature_chain": []}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            seen.append(self.path)

        def log_message(self, format: str, *args: object) -> None:
            pass

    seen: list[str] = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/prefix/"
        assert DstackAgent(url).get_key("p", "q") == bytes.fromhex(KEY_HEX)
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["/prefix/GetKey"]


def test_a_missing_socket_is_unreachable_with_what_to_check(tmp_path: Path) -> None:
    with pytest.raises(DstackUnreachable, match="socket mounted"):
        DstackAgent(str(tmp_path / "absent.sock")).get_key("p", "q")


def test_a_socket_nobody_listens_on_is_unreachable(tmp_path: Path) -> None:
    import socket as sockets
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ds-") as directory:
        path = str(Path(directory) / "dead.sock")
        dead = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
        dead.bind(path)
        dead.close()  # the file stays; nothing listens
        with pytest.raises(DstackUnreachable):
            DstackAgent(path).get_key("p", "q")


def hostile(agent: FakeDstackAgent, method: str, reply: bytes) -> None:
    agent.raw[method] = reply


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (raw_reply(200, b'{"key": "ab'), DstackReplyError, "not JSON"),
        (
            raw_reply(200, b'{"key": "' + b"ab" * 32 + b'"}', content_length=500),
            DstackReplyError,
            "truncated",
        ),
        (raw_reply(200, b"{}", content_length=MAX_REPLY_BYTES + 1), DstackReplyError, "limit"),
        (raw_reply(200, b'{"key": "' + b"zz" * 32 + b'"}'), DstackKeyError, "not hex"),
        (raw_reply(200, b'{"key": "' + b"ab" * 16 + b'"}'), DstackKeyError, "32 characters"),
        (raw_reply(200, b'{"key": "' + b"ab" * 33 + b'"}'), DstackKeyError, "66 characters"),
        (raw_reply(200, b'{"key": 7}'), DstackKeyError, "without a string"),
        (raw_reply(200, b"[1, 2]"), DstackReplyError, "not an object"),
        (raw_reply(500, b'{"error": "' + b"cd" * 32 + b'"}'), DstackHttpError, "HTTP 500"),
        (b"garbage that is not HTTP\r\n\r\n", DstackUnreachable, "failed"),
    ],
)
def test_hostile_get_key_replies_are_refused_without_quoting_the_key(
    agent: FakeDstackAgent, reply: bytes, error: type[Exception], words: str
) -> None:
    hostile(agent, "GetKey", reply)
    with pytest.raises(error, match=words) as refused:
        DstackAgent(agent.socket).get_key("p", "q")
    message = str(refused.value)
    for secret in ("ab" * 16, "zz" * 16, "cd" * 16):
        assert secret not in message


def test_an_oversized_reply_without_a_length_is_cut_at_the_limit(agent: FakeDstackAgent) -> None:
    body = b'{"key": "' + b"a" * (MAX_REPLY_BYTES + 10) + b'"}'
    hostile(agent, "GetKey", b"HTTP/1.1 200 X\r\nConnection: close\r\n\r\n" + body)
    with pytest.raises(DstackReplyError, match="exceeds"):
        DstackAgent(agent.socket).get_key("p", "q")


def test_errors_of_other_methods_carry_the_agents_error(agent: FakeDstackAgent) -> None:
    hostile(agent, "GetQuote", raw_reply(400, b'{"error": "bad report data"}'))
    with pytest.raises(DstackHttpError, match="HTTP 400: bad report data"):
        DstackAgent(agent.socket).event_log()


def test_the_endpoint_is_found_as_dstacks_sdks_find_it(tmp_path: Path) -> None:
    assert find_endpoint({ENDPOINT_ENV: "/tmp/sim.sock"}) == "/tmp/sim.sock"
    assert find_endpoint({ENDPOINT_ENV: "http://127.0.0.1:8090"}) == "http://127.0.0.1:8090"
    expected = next((str(p) for p in DEFAULT_SOCKETS if p.exists()), None)
    assert find_endpoint({}) == expected


def test_repr_shows_only_the_endpoint(agent: FakeDstackAgent) -> None:
    assert repr(DstackAgent(agent.socket)) == f"DstackAgent(endpoint={agent.socket!r})"
