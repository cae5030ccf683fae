"""The host's side of the agent: feed the enclave, store what it hands back, tell watchers.

Changes run one at a time, under the agent's lock. Ticks go through `host.ingest_flow`:
batches on one IngestStream, and for each answer, in order, the outputs it released are
stored (the receipt chain checked on insert) and published, then its sealed state; the
flow ends with Release of the newest stored state. An owner command is a single change:
send it, store the sealed state it returns (durably), then release that version's outputs,
store and publish them.

When the enclave dies on the way, the supervisor restarts it on the newest stored state and
a change goes again only if its state was never stored: no tick is lost or counted twice.
The enclave forgets outputs once it has released them, so when storing them fails the
enclave is restarted on the stored state (which still holds them as pending) before the
error is raised: it must not go on and have a newer state stored without them.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from tee_agent_rpc import enclave_pb2 as epb

from attestation.receipt import Receipt, receipt_hash
from host.ingest_flow import ATTEMPTS, ENCLAVE_CALL_TIMEOUT, RETRYABLE, IngestFlow
from host.outcomes import AgentError, BatchResult, Released
from host.storage.base import ReceiptRecord, Storage, TransactionRecord
from host.supervisor import EnclaveSupervisor, EnclaveUnavailable
from host.tick_stream import JoinedBatches

WATCHER_QUEUE = 10_000


class Agent:
    """The host's agent: one enclave, one store, any number of watchers."""

    def __init__(
        self,
        storage: Storage,
        make_supervisor: Callable[[Callable[[], bytes], Callable[[Any], None]], EnclaveSupervisor],
        *,
        observer: Any = None,
    ) -> None:
        self.storage = storage
        self.started = time.time()
        self._lock = threading.RLock()
        # Changes waiting for the lock: a stream in full flow lets them in between batches.
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._watchers: list[queue.Queue[Any]] = []
        self._watchers_lock = threading.Lock()
        self._observer = observer
        self.chain_id = 0
        # The newest sealed state version in storage (set at every open and every save).
        self.stored_version = 0
        self.supervisor = make_supervisor(self._stored_sealed_state, self._on_open)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the enclave and collect anything a previous run left pending.

        Raises:
            EnclaveUnavailable: it cannot start or refuses the stored state.
        """
        self.supervisor.start()

    def stop(self) -> None:
        self.supervisor.stop()
        with self._watchers_lock:
            for watcher in self._watchers:
                watcher.put(None)

    def _stored_sealed_state(self) -> bytes:
        latest = self.storage.latest_sealed_state()
        return latest[1] if latest else b""

    def _on_open(self, opened: Any) -> None:
        """After every (re)start: store the new sealed state, then release what is pending."""
        self.chain_id = opened.identity.chain_id
        self.save_sealed_state(opened.state_version, opened.sealed_state)
        released = self.supervisor.stub.Release(
            epb.ReleaseRequest(state_version=opened.state_version), timeout=ENCLAVE_CALL_TIMEOUT
        )
        self.store_released(released)
        if self._observer is not None:
            self._observer.enclave_open(opened)

    # -- changes --------------------------------------------------------------------------

    def ingest(self, request: bytes) -> BatchResult:
        """Send one batch of ticks (a serialized enclave IngestRequest) through the enclave,
        retried across enclave restarts; returns once its outputs are stored.

        Raises:
            AgentError: the enclave refused the batch itself (INVALID_ARGUMENT and the
                like), or it cannot be brought back.
        """
        results: list[BatchResult] = []
        with self._turn():
            flow = IngestFlow(self, results.append)
            try:
                flow.send(request)
                flow.receive()
            finally:
                flow.finish()
        first = results[0]
        return BatchResult(
            first.accepted,
            first.refused,
            sum(result.receipts for result in results),
            sum(result.transactions for result in results),
        )

    def owner_command(self, ciphertext: bytes) -> tuple[int, bool]:
        """Relay an owner command; returns (receipt seq, paused).

        Raises:
            AgentError: PERMISSION_DENIED when the enclave refuses it (forged, replayed...).
        """
        request = epb.OwnerCommandRequest(ciphertext=ciphertext)
        # Held to the end: a stream waiting for the lock would otherwise store receipts of
        # its own before the head is read, and the seq returned would be one of those.
        with self._turn():
            self._change(
                "SubmitOwnerCommand",
                lambda enclave: enclave.stub.SubmitOwnerCommand(
                    request, timeout=ENCLAVE_CALL_TIMEOUT
                ),
            )
            status = self.enclave_status()
            return self.storage.head()[0], bool(status.paused)

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """Hold the agent's lock; a stream holding it gives way while others wait."""
        with self._waiting_lock:
            self._waiting += 1
        with self._lock:
            with self._waiting_lock:
                self._waiting -= 1
            yield

    def _others_waiting(self) -> bool:
        with self._waiting_lock:
            return self._waiting > 0

    def _change(self, name: str, call: Callable[[Any], Any]) -> BatchResult:
        """Make the enclave call `name` (`call`), store its sealed state, release and store
        its outputs; retried across enclave restarts."""
        with self._turn():
            for _attempt in range(ATTEMPTS):
                try:
                    started = time.perf_counter()
                    response = call(self.supervisor)
                    self.observe_enclave_call(name, time.perf_counter() - started)
                except grpc.RpcError as exc:
                    if exc.code() not in RETRYABLE and self.supervisor.alive():
                        raise AgentError(exc.code(), exc.details() or "refused") from None
                    # The outcome is unknown (the enclave died, or the call broke off): go
                    # back to the stored state by restarting the enclave on it, then retry.
                    self.recover(f"{exc.code().name}: {exc.details()}")
                    continue
                # The state of this change is stored before anything of it is released.
                self.save_sealed_state(response.state_version, response.sealed_state)
                released = self.release(response.state_version)
                refused = [(item.seq, item.reason) for item in response.refused]
                self.count(response.accepted, refused, list(response.decision_seconds))
                return BatchResult(
                    response.accepted, refused, len(released.receipts), len(released.transactions)
                )
            raise AgentError(grpc.StatusCode.UNAVAILABLE, "the enclave keeps failing; try again")

    def ingest_stream(
        self, requests: JoinedBatches, on_result: Callable[[BatchResult], None]
    ) -> None:
        """Send a client stream's joined batches through the enclave, keeping it busy
        (`host.ingest_flow`); `on_result` gets each batch's counts and the outputs it
        released. Before waiting for the client, or when another change waits for the
        agent, everything is settled: stored and released.

        Raises:
            AgentError: as `ingest`; InvalidBatch and read errors from `requests`, after
                the batches before them are settled.
        """
        while True:
            try:
                request = next(requests)  # outside the lock: this may wait for the client
            except StopIteration:
                return
            with self._turn():
                flow = IngestFlow(self, on_result)
                try:
                    flow.send(request[0])
                    while flow.busy:
                        while flow.room and requests.ready() and not self._others_waiting():
                            try:
                                flow.send(next(requests)[0])
                            except StopIteration:
                                break
                        flow.receive()
                finally:
                    flow.finish()

    def release(self, version: int) -> Released:
        """Collect and store the outputs of the stored sealed state `version`.

        Raises:
            AgentError: the enclave failed, and cannot be brought back.
            Exception: storing the outputs failed (the enclave was restarted on the stored
                state first, so they are pending there again).
        """
        try:
            released = self.supervisor.stub.Release(
                epb.ReleaseRequest(state_version=version), timeout=ENCLAVE_CALL_TIMEOUT
            )
        except grpc.RpcError as exc:
            # The sealed state is stored: the restarted enclave releases these outputs when
            # it opens (see _on_open), so nothing is lost and the batch is not sent again.
            self.recover(f"Release failed: {exc.code().name}")
            return Released()
        return self.store_released_or_rewind(released)

    def recover(self, reason: str) -> None:
        """Restart the enclave on the newest stored sealed state (even a live one: after a
        call whose outcome is unknown, it must go back to what is stored).

        Raises:
            AgentError: UNAVAILABLE when it cannot be brought back.
        """
        if self._observer is not None:
            self._observer.restart()
        try:
            self.supervisor.recover(reason)
        except EnclaveUnavailable as exc:
            raise AgentError(grpc.StatusCode.UNAVAILABLE, str(exc)) from None

    def save_sealed_state(self, version: int, blob: bytes) -> None:
        """Store a sealed state durably, and remember its version as the newest stored."""
        self.storage.save_sealed_state(version, blob)
        self.stored_version = version

    def store_released(self, released: Any) -> Released:
        """Store and publish the outputs of a ReleaseResponse; returns them."""
        outputs = self._convert(released)
        self._store_and_publish(outputs)
        return outputs

    def store_released_or_rewind(self, released: Any) -> Released:
        """As `store_released`; when storing fails, restart the enclave on the newest stored
        sealed state, then raise.

        The enclave dropped these outputs from its pending list as it released them: left
        running, it would go on and hand the host a newer state without them, and they would
        be lost for good (the next receipt stored would leave a gap in the chain). The stored
        state still holds them as pending, so the restarted enclave hands them out again.

        Raises:
            Exception: whatever storing raised (with a note if the restart failed too).
        """
        try:
            return self.store_released(released)
        except Exception as exc:
            try:
                self.recover(f"storing released outputs failed: {type(exc).__name__}")
            except Exception as failed:  # the store's own error says more: raise that
                exc.add_note(f"restarting the enclave on the stored state failed too: {failed}")
            raise

    def _convert(self, released: Any) -> Released:
        outputs = Released()
        for item in released.receipts:
            receipt = Receipt.from_message(item)
            outputs.receipts.append(
                ReceiptRecord(
                    receipt=receipt,
                    receipt_hash=receipt_hash(receipt, self.chain_id),
                    decision_json=item.decision_json,
                    input_json=item.input_json,
                )
            )
        for tx in released.transactions:
            outputs.transactions.append(
                TransactionRecord(
                    tx_hash=tx.tx_hash,
                    nonce=tx.nonce,
                    raw_transaction=tx.raw_transaction,
                    receipt_seq=tx.receipt_seq,
                )
            )
        return outputs

    def _store_and_publish(self, outputs: Released) -> None:
        if outputs.receipts:
            self.storage.append_receipts(outputs.receipts)
        if outputs.transactions:
            self.storage.add_transactions(outputs.transactions)
        if self._observer is not None:
            for record in outputs.receipts:
                self._observer.receipt(record.receipt.verdict)
        if outputs.receipts:
            by_receipt = {tx.receipt_seq: tx for tx in outputs.transactions}
            with self._watchers_lock:
                for watcher in list(self._watchers):
                    for record in outputs.receipts:
                        self._offer(watcher, (record, by_receipt.get(record.receipt.seq)))

    def _offer(self, watcher: queue.Queue[Any], event: Any) -> None:
        try:
            watcher.put_nowait(event)
        except queue.Full:
            # A watcher that cannot keep up is told so and dropped; it can resume from a seq.
            self._watchers.remove(watcher)
            while True:
                try:
                    watcher.get_nowait()
                except queue.Empty:
                    break
            watcher.put_nowait("overflow")

    def count(self, accepted: int, refused: list[tuple[int, str]], decisions: list[float]) -> None:
        if self._observer is not None:
            self._observer.ticks(accepted, [reason for _, reason in refused], decisions)

    def observe_enclave_call(self, call: str, seconds: float) -> None:
        """Time one call into the enclave, by the name of its RPC."""
        if self._observer is not None:
            self._observer.enclave_call(call, seconds)

    # -- reading --------------------------------------------------------------------------

    def attest(self, nonce: bytes) -> Any:
        """A fresh quote from the enclave over `nonce` (32 bytes).

        Raises:
            AgentError: INVALID_ARGUMENT for a bad nonce, UNAVAILABLE without an enclave.
        """
        return self._read(lambda stub: stub.Attest(epb.AttestRequest(nonce=nonce), timeout=60))

    def enclave_status(self) -> Any:
        return self._read(lambda stub: stub.GetStatus(epb.GetStatusRequest(), timeout=10))

    def _read(self, call: Callable[[Any], Any]) -> Any:
        try:
            return call(self.supervisor.stub)
        except grpc.RpcError as exc:
            if exc.code() in RETRYABLE:
                raise AgentError(
                    grpc.StatusCode.UNAVAILABLE, "the enclave is restarting; try again shortly"
                ) from None
            raise AgentError(exc.code(), exc.details() or "refused") from None

    def watch(
        self, from_seq: int, stop: Callable[[], bool]
    ) -> Iterator[tuple[ReceiptRecord, TransactionRecord | None]]:
        """Stored receipts from `from_seq`, then live ones, until `stop()` or the host stops.

        Raises:
            AgentError: RESOURCE_EXHAUSTED when this watcher fell too far behind.
        """
        live: queue.Queue[Any] = queue.Queue(maxsize=WATCHER_QUEUE)
        with self._watchers_lock:
            self._watchers.append(live)
        try:
            last = 0
            if from_seq > 0:
                transactions = {tx.receipt_seq: tx for tx in self.storage.transactions()}
                next_seq = from_seq
                while True:
                    page = self.storage.receipts(next_seq, 500)
                    for record in page:
                        yield record, transactions.get(record.receipt.seq)
                        last = record.receipt.seq
                    if len(page) < 500:
                        break
                    next_seq = last + 1
            while not stop():
                try:
                    event = live.get(timeout=0.5)
                except queue.Empty:
                    continue
                if event is None:
                    return
                if event == "overflow":
                    raise AgentError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"this watcher fell behind; reconnect with from_seq={last + 1}",
                    )
                record, transaction = event
                if record.receipt.seq > last:
                    last = record.receipt.seq
                    yield record, transaction
        finally:
            with self._watchers_lock:
                if live in self._watchers:
                    self._watchers.remove(live)
