"""Keeping the enclave busy with batches of ticks, and storing what it hands back in order.

A flow is one stretch of work under the agent's lock. Batches go to the enclave on one
IngestStream, up to DEPTH of them on their way at a time, so the enclave starts on the
next as soon as it has answered one. For each answer, in order, the host stores the
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

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import grpc

from host.enclave_client import CALL_TIMEOUT as ENCLAVE_CALL_TIMEOUT
from host.enclave_client import Ingested, IngestInput, IngestStream
from host.outcomes import AgentError, BatchResult, Released
from host.supervisor import EnclaveSupervisor

# Batches on their way to the enclave at once: one it works on, two waiting behind it.
DEPTH = 3
# Batches in one flow; then it settles, and lets other changes in.
MAX_BATCHES = 64
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


class FlowStore(Protocol):
    """What a flow needs of the agent: each answer stored in order, the stored state's
    outputs released, the enclave restarted when it fails, and the answers counted."""

    @property
    def stored_version(self) -> int:
        """The newest sealed state version in storage."""
        ...

    def store_released(self, released: Released) -> None:
        """Store and publish released outputs; when that fails, restart the enclave on the
        newest stored state (which still holds them), then raise."""
        ...

    def save_sealed_state(self, version: int, blob: bytes) -> None:
        """Store a sealed state durably."""
        ...

    def release(self, version: int) -> Released:
        """Collect and store the outputs of the stored sealed state `version`."""
        ...

    def counted(self, answer: Ingested, seconds: float) -> None:
        """Count a stored answer's ticks and decisions, and the time the enclave took."""
        ...

    def oversized(self, call: str, detail: str) -> AgentError:
        """A call failed for size: raise the alarm, restart the enclave on the stored
        state, and return the error to raise."""
        ...

    def recover(self, reason: str) -> None:
        """Restart the enclave on the newest stored sealed state.

        Raises:
            AgentError: UNAVAILABLE when it cannot be brought back.
        """
        ...


class IngestFlow:
    """Batches on one IngestStream; `on_result` gets each batch's counts as it is stored."""

    def __init__(
        self,
        store: FlowStore,
        enclave: EnclaveSupervisor,
        on_result: Callable[[BatchResult], None],
    ) -> None:
        self._store = store
        self._enclave = enclave
        self._on_result = on_result
        self._unanswered: deque[tuple[IngestInput, float]] = deque()
        self._sent = 0
        self._failures = 0
        self._stored = store.stored_version
        # Set when storing released outputs failed: nothing more may be read or stored.
        self._stopped = False
        self._stream = self._open()

    @property
    def busy(self) -> bool:
        """Whether a batch waits for its answer."""
        return bool(self._unanswered)

    @property
    def room(self) -> bool:
        """Whether another batch may go now."""
        return len(self._unanswered) < DEPTH and self._sent < MAX_BATCHES

    def send(self, work: IngestInput) -> None:
        """Put a batch on its way."""
        self._unanswered.append((work, time.perf_counter()))
        self._sent += 1
        self._stream.send(work, self._stored)

    def receive(self) -> None:
        """Wait for the oldest batch's answer; store its outputs, then its state.

        Raises:
            AgentError: the enclave refused the batch (the flow then stops: nothing after
                it was taken), or it keeps failing.
            Exception: storing the released outputs failed; the flow has stopped and the
                enclave was restarted on the newest stored state.
        """
        while True:
            # An answer that takes longer than ENCLAVE_CALL_TIMEOUT means a stuck enclave: the
            # stream is cancelled, and the enclave restarted like a dead one.
            stuck = threading.Event()
            late = threading.Timer(ENCLAVE_CALL_TIMEOUT, self._give_up, args=(self._stream, stuck))
            late.daemon = True
            late.start()
            try:
                answer = next(self._stream)
                break
            except StopIteration:
                self._recover("the enclave ended the stream before answering")
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    self._stopped = True
                    self._unanswered.clear()
                    raise self._store.oversized("IngestStream", exc.details() or "") from None
                if exc.code() not in RETRYABLE and self._enclave.alive():
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
        took = time.perf_counter() - sent_at
        self._failures = 0
        store = self._store
        try:
            store.store_released(answer.released)
        except Exception:
            # The enclave working on the batches behind this one is gone (restarted on the
            # stored state): their answers would come from a state that lacks the outputs
            # just lost, so none is read, and the client's stream ends with the error.
            self._stopped = True
            self._unanswered.clear()
            self._stream.close()
            raise
        store.save_sealed_state(answer.state_version, answer.sealed_state)
        self._stored = answer.state_version
        store.counted(answer, took)
        released = answer.released
        self._on_result(
            BatchResult(
                answer.accepted, answer.refused, len(released.receipts), len(released.transactions)
            )
        )

    def finish(self) -> None:
        """Wait for every answer, end the stream, and collect what the enclave still holds
        back (outputs of the stored state)."""
        try:
            while self._unanswered:
                self.receive()
        finally:
            self._stream.close()
        if self._stopped:
            return  # the enclave was restarted: what it holds back, it handed out on opening
        released = self._store.release(self._stored)
        if released.receipts or released.transactions:
            self._on_result(BatchResult(0, (), len(released.receipts), len(released.transactions)))

    def _open(self) -> IngestStream:
        stream = self._enclave.client.ingest_stream()
        for work, _ in self._unanswered:
            stream.send(work, self._stored)
        return stream

    @staticmethod
    def _give_up(stream: IngestStream, stuck: threading.Event) -> None:
        stuck.set()
        stream.cancel()

    def _recover(self, reason: str) -> None:
        """Restart the enclave on the newest stored state and send the unanswered again."""
        self._failures += 1
        if self._failures >= ATTEMPTS:
            raise AgentError(grpc.StatusCode.UNAVAILABLE, "the enclave keeps failing; try again")
        self._stream.close()
        self._store.recover(reason)
        self._stored = self._store.stored_version
        self._stream = self._open()
