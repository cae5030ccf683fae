"""Target `enclave_requests`: every enclave RPC's request bytes, as a hostile host sends
them, decoded as the enclave's server decodes them (`enclave.service_handlers`) and handled
by `EnclaveService` against a real `EnclaveCore` on a fresh copy of a state that traded.

The first byte picks the RPC; for IngestStream the rest is cut into several requests
(`fuzz.harness.split`). Documented outcomes: a response, or an abort with any status but
INTERNAL or UNKNOWN (INVALID_ARGUMENT, FAILED_PRECONDITION, PERMISSION_DENIED ...).
"""

from __future__ import annotations

import logging
import traceback

from tee_agent_rpc import enclave_pb2 as pb

from enclave.owner import make_owner_command
from enclave.service import EnclaveService
from enclave.service_handlers import behaviour, decode_request
from fuzz.enclave_world import maker, traded_state
from fuzz.harness import NEVER, AbortContext, Aborted, Finding, choose, join, split, with_choice
from tests.enclave_harness import balances, serialized, ticks, twaps

METHODS = (
    "Open",
    "GetIdentity",
    "Attest",
    "Ingest",
    "IngestStream",
    "Release",
    "SubmitOwnerCommand",
    "GetStatus",
)


class _LastError(logging.Handler):
    """Keeps the traceback the service logs before it answers INTERNAL (for the report)."""

    def __init__(self) -> None:
        super().__init__()
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.text = "".join(traceback.format_exception(*record.exc_info))


_LAST = _LastError()
_LOG = logging.getLogger("tee_agent.enclave")
_LOG.addHandler(_LAST)
_LOG.propagate = False


def TestOneInput(data: bytes) -> None:
    index, payload = choose(data, len(METHODS))
    method = METHODS[index]
    core = maker().core()
    if method != "Open":
        core.open(traded_state().sealed_state)
    service = EnclaveService(core)
    context = AbortContext()
    _LAST.text = ""
    try:
        handler = behaviour(service, method)
        if method == "IngestStream":
            requests = (decode_request(method, part) for part in split(payload, 4))
            for _ in handler(requests, context):  # type: ignore[attr-defined]
                pass
        else:
            handler(decode_request(method, payload), context)
    except Aborted as aborted:
        if aborted.code in NEVER:
            raise Finding(f"{method} answered {aborted}\n{_LAST.text}") from None


def seeds() -> list[bytes]:
    state = traded_state()
    world = maker().world
    batch = serialized(ticks([88.0, 90.0, 96.0, 104.0], first_seq=len(state.receipts) + 20))
    ingest = pb.IngestRequest(
        tick_batches=batch,
        balances=balances(weth=1, usdt=500),
        release_through=state.state_version,
        twap_prices=twaps(95.0),
        fees=pb.FeeHint(max_fee_per_gas_wei=10**9, max_priority_fee_per_gas_wei=10**8),
    ).SerializeToString()
    command = make_owner_command(world.owner, state.box_public_key, state.address, "pause", 1)
    requests = {
        "Open": [pb.OpenRequest(sealed_state=state.sealed_state).SerializeToString(), b""],
        "GetIdentity": [b""],
        "Attest": [pb.AttestRequest(nonce=bytes(range(32))).SerializeToString()],
        "Ingest": [ingest],
        "IngestStream": [join([ingest, pb.IngestRequest().SerializeToString()])],
        "Release": [pb.ReleaseRequest(state_version=state.state_version).SerializeToString()],
        "SubmitOwnerCommand": [pb.OwnerCommandRequest(ciphertext=command).SerializeToString()],
        "GetStatus": [b""],
    }
    return [
        with_choice(METHODS.index(method), payload)
        for method, payloads in requests.items()
        for payload in payloads
    ]
