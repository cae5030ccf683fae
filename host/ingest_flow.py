"""Keeping the enclave busy with batches of ticks, and storing what it hands back in order.

A flow is one stretch of work under the agent's lock. Batches go to the enclave on one
IngestStream, up to DEPTH of them on their way at a time, so the enclave starts on the
next as soon as it has answered one. For each response, in order, the host stores the
outputs it released, then its sealed state (so no stored state ever lacks outputs the store
does not have), while the enclave already works on the next batch. A batch's outputs are
collected by a later request's `release_through`, and at the end of the flow by Release.

When the enclave dies or the stream breaks, everything answered is stored already: the
supervisor restarts the enclave on the newest stored state (which hands out anything still
pending), and the batches not yet answered go again, in order, on a new stream. No tick is
lost and none is counted twice: a batch is counted when its answer arrives, and stored
before the next answer is read.

When storing an answer's released outputs fails, the flow stops there: the enclave already
dropped them from its pending list, so it is restarted on the newest stored state (which
still holds them) and no later answer is read or stored, nor Release called.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
from tee_agent_rpc import enclave_pb2 as epb

from host.outcomes import AgentError, BatchResult

if TYPE_CHECKING:
    from host.agent import Agent

# Batches on their way to the enclave at once: one it works on, two waiting behind it.
DEPTH = 3
# Batches in one flow; then it settles, and lets other changes in.
MAX_BATCHES = 64
# Longest wait for one answer from the enclave.
ENCLAVE_CALL_TIMEOUT = 120.0
# Tries of one change (a flow's unanswered batches, an owner command) across enclave
# restarts before the host gives up on it.
ATTEMPTS = 5
# Codes that say the call broke off rather than that the enclave refused it.
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNKNOWN,
}


def release_through(version: int) -> bytes:
    """IngestRequest's `release_through` field alone, serialized: appended to a serialized
    request it sets the field (fields of concatenated messages merge)."""
    return bytes(epb.IngestRequest(release_through=version).SerializeToString())


class IngestFlow:
    """Batches on one IngestStream; `on_result` gets each batch's counts as it is stored."""

    def __init__(self, agent: Agent, on_result: Callable[[BatchResult], None]) -> None:
        self._agent = agent
        self._on_result = on_result
        self._unanswered: deque[tuple[bytes, float]] = deque()
        self._sent = 0
        self._failures = 0
        self._stored = agent.stored_version
        # Set when storing released outputs failed: nothing more may be read or stored.
        self._stopped = False
        self._open()

    @property
    def busy(self) -> bool:
        """Whether a batch waits for its answer."""
        return bool(self._unanswered)

    @property
    def room(self) -> bool:
        """Whether another batch may go now."""
        return len(self._unanswered) < DEPTH and self._sent < MAX_BATCHES

    def send(self, request: bytes) -> None:
        """Put a serialized IngestRequest on its way."""
        self._unanswered.append((request, time.perf_counter()))
        self._sent += 1
        self._outbox.put(request + release_through(self._stored))

    def receive(self) -> None:
        """Wait for the oldest batch's answer; store its outputs, then its state.

        Raises:
            AgentError: the enclave refused the batch (the flow then stops: nothing after
                it was taken), or it keeps failing.
            Exception: storing the released outputs failed; the flow has stopped and the
                enclave was restarted on the newest stored state.
        """
        while True:
            # An answer that takes longer than ENCLAVE_CALL_TIMEOUT means a stuck enclave:
            # the stream is cancelled, and the enclave restarted like a dead one.
            stuck = threading.Event()
            late = threading.Timer(ENCLAVE_CALL_TIMEOUT, self._give_up, args=(stuck,))
            late.daemon = True
            late.start()
            try:
                response = next(self._responses)
                break
            except StopIteration:
                self._recover("the enclave ended the stream before answering")
            except grpc.RpcError as exc:
                if exc.code() not in RETRYABLE and self._agent.supervisor.alive():
                    self._unanswered.clear()
                    raise AgentError(exc.code(), exc.details() or "refused") from None
                self._recover(
                    f"no answer within {ENCLAVE_CALL_TIMEOUT:.0f} s"
                    if stuck.is_set()
                    else f"{exc.code().name}: {exc.details()}"
                )
            finally:
                late.cancel()
        _, sent_at = self._unanswered.popleft()
        self._failures = 0
        agent = self._agent
        agent.observe_enclave_call("IngestStream", time.perf_counter() - sent_at)
        try:
            released = agent.store_released_or_rewind(response.released)
        except Exception:
            # The enclave working on the batches behind this one is gone (restarted on the
            # stored state): their answers would come from a state that lacks the outputs
            # just lost, so none is read, and the client's stream ends with the error.
            self._stopped = True
            self._unanswered.clear()
            self._outbox.put(None)
            raise
        agent.save_sealed_state(response.state_version, response.sealed_state)
        self._stored = response.state_version
        refused = [(item.seq, item.reason) for item in response.refused]
        agent.count(response.accepted, refused, list(response.decision_seconds))
        self._on_result(
            BatchResult(
                response.accepted, refused, len(released.receipts), len(released.transactions)
            )
        )

    def finish(self) -> None:
        """Wait for every answer, end the stream, and collect what the enclave still holds
        back (outputs of the stored state)."""
        try:
            while self._unanswered:
                self.receive()
        finally:
            self._outbox.put(None)
        if self._stopped:
            return  # the enclave was restarted: what it holds back, it handed out on opening
        released = self._agent.release(self._stored)
        if released.receipts or released.transactions:
            self._on_result(BatchResult(0, [], len(released.receipts), len(released.transactions)))

    def _open(self) -> None:
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._responses: Any = self._agent.supervisor.ingest_stream(iter(self._outbox.get, None))
        for request, _ in self._unanswered:
            self._outbox.put(request + release_through(self._stored))

    def _give_up(self, stuck: threading.Event) -> None:
        stuck.set()
        self._responses.cancel()

    def _recover(self, reason: str) -> None:
        """Restart the enclave on the newest stored state and send the unanswered again."""
        self._failures += 1
        if self._failures >= ATTEMPTS:
            raise AgentError(grpc.StatusCode.UNAVAILABLE, "the enclave keeps failing; try again")
        self._outbox.put(None)
        self._agent.recover(reason)
        self._stored = self._agent.stored_version
        self._open()
