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

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol, TypeVar

import grpc

from attestation.binding import AgentAttestation
from host.enclave_client import EnclaveClient, EnclaveStatus, Ingested, IngestInput, Opened
from host.ingest_flow import ATTEMPTS, RETRYABLE, IngestFlow
from host.outcomes import AgentError, BatchResult, Released, refuse_when_following
from host.storage.base import Storage
from host.supervisor import EnclaveSupervisor, EnclaveUnavailable, OnOpen
from host.tick_stream import JoinedBatches
from host.watchers import Decision, Watchers

if TYPE_CHECKING:  # web3 is not needed to run an agent without a vault
    from host.vault_watch import VaultWatch

Answer = TypeVar("Answer")

log = logging.getLogger("tee_agent.host.agent")


class AgentObserver(Protocol):
    """What the agent reports as it works (metrics and logs, `host.metrics`)."""

    def enclave_open(self, opened: Opened) -> None: ...
    def restart(self) -> None: ...
    def receipt(self, verdict: str) -> None: ...
    def ticks(self, accepted: int, refused: Iterable[str], decisions: Sequence[float]) -> None: ...
    def enclave_call(self, call: str, seconds: float) -> None: ...
    def oversized(self, call: str) -> None: ...


class Agent:
    """The host's agent: one enclave, one store, any number of watchers."""

    def __init__(
        self,
        storage: Storage,
        make_supervisor: Callable[[Callable[[], bytes], OnOpen], EnclaveSupervisor],
        *,
        observer: AgentObserver | None = None,
        vault_watch: VaultWatch | None = None,
    ) -> None:
        self.storage = storage
        # The vault as last read (GetStatus serves it; the feed refreshes it), or None.
        self.vault_watch = vault_watch
        # With a chain: adds fees, vault balances and TWAPs to batches (`ChainLink.enrich`).
        self.enrich: Callable[[IngestInput], IngestInput] | None = None
        self.started = time.time()
        self._lock = threading.RLock()
        # Changes waiting for the lock: a stream in full flow lets them in between batches.
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._watchers = Watchers(storage)
        self._observer = observer
        # The newest sealed state version in storage (set at every open and every save).
        self.stored_version = 0
        # Why a person must look (`oversized`): NOT_SERVING until a change goes through.
        self.alarm = ""
        # When (time.time()) the enclave last accepted a tick; None: not since the start.
        self.last_accepted_at: float | None = None
        # While this host follows (`host.leadership`): who leads; changes are then refused.
        self.following = ""
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
        # A change in progress ends soon without its enclave: let it finish storing or fail.
        if self._lock.acquire(timeout=10):
            self._lock.release()
        self._watchers.close()

    def _stored_sealed_state(self) -> bytes:
        latest = self.storage.latest_sealed_state()
        return latest[1] if latest else b""

    def _on_open(self, opened: Opened) -> None:
        """After every (re)start: store the new sealed state, then release what is pending."""
        self.save_sealed_state(opened.state_version, opened.sealed_state)
        while self._store_and_publish(self.supervisor.client.release(opened.state_version)):
            pass  # a reply carries a bounded part of the outputs: ask until none is left
        if self._observer is not None:
            self._observer.enclave_open(opened)

    # -- changes --------------------------------------------------------------------------

    def ingest(self, work: IngestInput) -> BatchResult:
        """Send one batch of ticks through the enclave, retried across enclave restarts;
        returns once its outputs are stored.

        Raises:
            AgentError: the enclave refused the batch itself (INVALID_ARGUMENT and the
                like), or it cannot be brought back.
        """
        results: list[BatchResult] = []
        with self._turn():
            flow = IngestFlow(self, self.supervisor, results.append)
            try:
                flow.send(work)
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
        # Held to the end: a stream waiting for the lock would otherwise store receipts of
        # its own before the head is read, and the seq returned would be one of those.
        with self._turn():
            self._change("SubmitOwnerCommand", lambda enclave: enclave.owner_command(ciphertext))
            status = self.enclave_status()
            return self.storage.head()[0], status.paused

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """Hold the agent's lock; a stream holding it gives way while others wait."""
        refuse_when_following(self.following)
        with self._waiting_lock:
            self._waiting += 1
        with self._lock:
            with self._waiting_lock:
                self._waiting -= 1
            yield

    def _others_waiting(self) -> bool:
        with self._waiting_lock:
            return self._waiting > 0

    def _change(self, name: str, call: Callable[[EnclaveClient], Ingested]) -> BatchResult:
        """Make the enclave call `name` (`call`), store its sealed state, release and store
        its outputs; retried across enclave restarts."""
        with self._turn():
            for _attempt in range(ATTEMPTS):
                try:
                    started = time.perf_counter()
                    answer = call(self.supervisor.client)
                    self._observe_call(name, time.perf_counter() - started)
                except grpc.RpcError as exc:
                    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        raise self.oversized(name, exc.details() or "") from None
                    if exc.code() not in RETRYABLE and self.supervisor.alive():
                        raise AgentError(exc.code(), exc.details() or "refused") from None
                    # The outcome is unknown (the enclave died, or the call broke off): go
                    # back to the stored state by restarting the enclave on it, then retry.
                    self.recover(f"{exc.code().name}: {exc.details()}")
                    continue
                # The state of this change is stored before anything of it is released. If
                # storing it fails, the enclave goes back to the stored state, so that what
                # it holds (a pause, say) is never ahead of storage: the caller sees the
                # error and can send the change again.
                try:
                    self.save_sealed_state(answer.state_version, answer.sealed_state)
                except Exception as exc:
                    self._restart_after(exc, "storing the sealed state failed")
                    raise
                released = self.release(answer.state_version)
                self._count(answer)
                self.alarm = ""
                return BatchResult(
                    answer.accepted,
                    answer.refused,
                    len(released.receipts),
                    len(released.transactions),
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
                work = self._enriched(next(requests))  # outside the lock: may wait
            except StopIteration:
                return
            with self._turn():
                flow = IngestFlow(self, self.supervisor, on_result)
                try:
                    flow.send(work)
                    while flow.busy:
                        while flow.room and requests.ready() and not self._others_waiting():
                            try:
                                flow.send(self._enriched(next(requests)))
                            except StopIteration:
                                break
                        flow.receive()
                finally:
                    flow.finish()

    def _enriched(self, work: IngestInput) -> IngestInput:
        return work if self.enrich is None else self.enrich(work)

    def release(self, version: int) -> Released:
        """Collect and store the outputs of the stored sealed state `version`.

        Raises:
            AgentError: the enclave failed, and cannot be brought back.
            Exception: storing the outputs failed (the enclave was restarted on the stored
                state first, so they are pending there again).
        """
        total = Released()
        while True:  # a reply carries a bounded part of the outputs: ask until none is left
            try:
                released = self.supervisor.client.release(version)
            except grpc.RpcError as exc:
                # The sealed state is stored: the restarted enclave releases these outputs
                # when it opens (see _on_open), so nothing is lost and the batch is not sent
                # again.
                self.recover(f"Release failed: {exc.code().name}")
                return total
            self.store_released(released)
            total.receipts.extend(released.receipts)
            total.transactions.extend(released.transactions)
            if not released.more:
                return total

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

    def store_released(self, released: Released) -> None:
        """Store and publish released outputs; when storing fails, restart the enclave on
        the newest stored sealed state, then raise.

        The enclave dropped these outputs from its pending list as it released them: left
        running, it would go on and hand the host a newer state without them, and they would
        be lost for good (the next receipt stored would leave a gap in the chain). The stored
        state still holds them as pending, so the restarted enclave hands them out again.

        Raises:
            Exception: whatever storing raised (with a note if the restart failed too).
        """
        try:
            self._store_and_publish(released)
        except Exception as exc:
            self._restart_after(exc, "storing released outputs failed")
            raise

    def _restart_after(self, exc: Exception, what: str) -> None:
        """Restart the enclave on the stored state after `exc`, noting on `exc` when that
        fails too (the store's own error says more: the caller raises that)."""
        try:
            self.recover(f"{what}: {type(exc).__name__}")
        except Exception as failed:
            exc.add_note(f"restarting the enclave on the stored state failed too: {failed}")

    def oversized(self, call: str, detail: str) -> AgentError:
        """An enclave call failed for size (RESOURCE_EXHAUSTED): a bug or an attack, never
        to pass in silence. Raise the alarm (health NOT_SERVING until a change goes through,
        an error in the log, a metric), restart the enclave on the stored state so nothing
        of the call stays in its memory, and return the error for the caller to raise."""
        self.alarm = f"the enclave's {call} failed for size: {detail[:200]}"
        log.error(
            "an enclave call failed for size; health is NOT_SERVING until a change goes "
            "through", extra={"call": call, "detail": detail[:200]},
        )  # fmt: skip
        if self._observer is not None:
            self._observer.oversized(call)
        # The supervisor logs a failed restart; the size failure is what the caller must see.
        with contextlib.suppress(AgentError):
            self.recover(f"{call} failed for size")
        return AgentError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"the enclave's {call} failed for size ({detail[:200]}); nothing of it was "
            "stored, the enclave went back to the stored state, and the agent reports "
            "NOT_SERVING until a change goes through",
        )

    def counted(self, answer: Ingested, seconds: float) -> None:
        """Count a streamed answer and the time the enclave took over it."""
        self._observe_call("IngestStream", seconds)
        self._count(answer)
        self.alarm = ""

    def _store_and_publish(self, released: Released) -> bool:
        """Store and publish `released`; returns whether more wait in the enclave."""
        if released.receipts:
            self.storage.append_receipts(released.receipts)
        if released.transactions:
            self.storage.add_transactions(released.transactions)
        if self._observer is not None:
            for record in released.receipts:
                self._observer.receipt(record.receipt.verdict)
        self._watchers.publish(released.receipts, released.transactions)
        return released.more

    def _count(self, answer: Ingested) -> None:
        if answer.accepted:
            self.last_accepted_at = time.time()
        if self._observer is not None:
            refused = [reason for _, reason in answer.refused]
            self._observer.ticks(answer.accepted, refused, answer.decision_seconds)

    def _observe_call(self, call: str, seconds: float) -> None:
        if self._observer is not None:
            self._observer.enclave_call(call, seconds)

    # -- reading --------------------------------------------------------------------------

    def attest(self, nonce: bytes) -> AgentAttestation:
        """A fresh quote from the enclave over `nonce` (32 bytes).

        Raises:
            AgentError: INVALID_ARGUMENT for a bad nonce, UNAVAILABLE without an enclave.
        """
        return self._read(lambda enclave: enclave.attest(nonce))

    def enclave_status(self) -> EnclaveStatus:
        """The enclave's own counters.

        Raises:
            AgentError: UNAVAILABLE while the enclave restarts.
        """
        return self._read(lambda enclave: enclave.status())

    def _read(self, call: Callable[[EnclaveClient], Answer]) -> Answer:
        refuse_when_following(self.following)
        try:
            return call(self.supervisor.client)
        except grpc.RpcError as exc:
            if exc.code() in RETRYABLE:
                raise AgentError(
                    grpc.StatusCode.UNAVAILABLE, "the enclave is restarting; try again shortly"
                ) from None
            raise AgentError(exc.code(), exc.details() or "refused") from None

    def watch(self, from_seq: int, stop: Callable[[], bool]) -> Iterator[Decision]:
        """Stored receipts from `from_seq`, then live ones, until `stop()` or the host stops.

        Raises:
            AgentError: RESOURCE_EXHAUSTED when this watcher fell too far behind.
        """
        return self._watchers.watch(from_seq, stop)
