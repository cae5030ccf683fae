"""Broadcast the enclave's signed transactions and follow each one to its end on chain.

The host only ever holds signed bytes: it sends them, resends the very same bytes when a
node lost them (a restart empties its mempool, or one restarted from an older state forgot
the last blocks) or could not be reached, and records what happened (storage status
"signed" -> "pending" -> "mined" | "reverted" | "dropped" | "replaced"). It never changes a
transaction. The enclave may sign a nonce again at a higher fee (`host.chain.tx_versions`):
only the newest version of a nonce is sent, and once one is mined the others are "replaced".

Every call to the node goes through raw JSON-RPC (`make_request`), because the conditions
web3's helpers raise on are expected here: a duplicate ("already imported", "nonce too
low" for our own mined transaction), a revert, an unknown hash. A node that cannot be
reached (connection refused, timeout, a proxy's HTTP error) is an outage: statuses stay as
they are, one warning is logged when it starts and one line when it ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import requests
from eth_account import Account
from eth_hash.auto import keccak
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

from host.chain.node_errors import (
    NodeDown,
    NodeRpcError,
    printable,
    redact_error,
    redacted_url,
    revert_reason,
)
from host.chain.tx_versions import (
    LANDED_STATUSES,
    highest_landed,
    landed_version,
    newest_versions,
    open_rivals,
)
from host.metrics import HostMetrics
from host.storage.base import Storage
from wire.records import TransactionRecord, TxStatus

log = logging.getLogger("tee_agent.host.chain")

FINAL_STATUSES: frozenset[TxStatus] = frozenset({"mined", "reverted", "dropped", "replaced"})
DEFAULT_REQUEST_TIMEOUT = 5.0


def _hex(tx_hash: bytes) -> str:
    return "0x" + tx_hash.hex()


class Broadcaster:
    """Sends the stored signed transactions to one node and records their fate.

    Thread-safe: its public methods may be called from several threads (they run one at a
    time), e.g. `run` in a thread of its own and `wait_mined` in another.
    """

    def __init__(
        self,
        rpc_url: str,
        storage: Storage,
        metrics: HostMetrics | None = None,
        *,
        poll_seconds: float = 0.5,
        drop_after_seconds: float = 600,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.drop_after_seconds = drop_after_seconds
        self._rpc_url = rpc_url  # only for redact_error: never logged as it is
        self._node = redacted_url(rpc_url)
        self._clock = clock
        # Our own session, closed by close(); no retries inside web3: an outage is handled
        # here, by the next poll, and must not stall a poll for seconds of back-off.
        self._session = requests.Session()
        self.w3 = Web3(
            HTTPProvider(
                rpc_url,
                request_kwargs={"timeout": request_timeout},
                session=self._session,
                exception_retry_configuration=None,
            )
        )
        self._lock = threading.RLock()
        self._down_since: float | None = None
        # When each transaction was first seen without a receipt (for "dropped").
        self._unknown_since: dict[bytes, float] = {}
        # Transactions the node refused (hash -> its last refusal), each logged once.
        self._refused: dict[bytes, str] = {}
        self._senders: dict[bytes, str] = {}
        # The highest nonce recorded mined or reverted, and its sender (None: not read yet).
        self._highest_landed: tuple[int, str] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Broadcaster:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def run(self, stop: threading.Event) -> None:
        """Submit and follow transactions every `poll_seconds` until `stop` is set.

        Survives node restarts and outages (logged once each) and storage errors (logged
        when they change); never raises.
        """
        log.info("broadcaster started", extra={"node": self._node})
        last_error = ""
        while not stop.is_set():
            try:
                self.poll_once()
                last_error = ""
            except Exception as exc:  # keep broadcasting whatever one poll ran into
                message = f"{type(exc).__name__}: {exc}"
                if message != last_error:
                    log.error("broadcaster poll failed; retrying", exc_info=exc)
                    last_error = message
            stop.wait(self.poll_seconds)
        log.info("broadcaster stopped")

    def poll_once(self) -> None:
        """One round: take back what the chain forgot, send what is not on the node yet,
        then collect receipts."""
        with self._lock:
            self.recover_forgotten()
            self.submit_pending()
            self.check_receipts()

    def wait_mined(self, tx_hashes: Iterable[bytes], timeout: float) -> dict[bytes, TxStatus]:
        """Poll until every transaction in `tx_hashes` is mined, reverted or dropped.

        Returns each one's status at that point, or when `timeout` seconds have passed (then
        some may still be "signed" or "pending").

        Raises:
            KeyError: a hash is not a stored transaction.
        """
        wanted = list(tx_hashes)
        deadline = time.monotonic() + timeout
        while True:
            self.poll_once()
            stored = {record.tx_hash: record.status for record in self.storage.transactions()}
            missing = [_hex(h) for h in wanted if h not in stored]
            if missing:
                raise KeyError(f"not stored transactions: {', '.join(missing)}")
            statuses = {h: stored[h] for h in wanted}
            if all(status in FINAL_STATUSES for status in statuses.values()):
                return statuses
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return statuses
            time.sleep(min(self.poll_seconds, remaining))

    # -- sending --------------------------------------------------------------------------

    def submit_pending(self) -> int:
        """Send every "signed" transaction, and resend every "pending" one the node lost.

        In nonce order, the stored bytes as they are; of a nonce the enclave signed more than
        once, only the newest version (the highest receipt seq). Returns how many were sent.
        A node outage stops the round (the rest is sent by a later one) and changes no status.
        """
        sent = 0
        with self._lock:
            records = newest_versions(
                self.storage.transactions("signed") + self.storage.transactions("pending")
            )
            try:
                for record in records:
                    if self._submit(record):
                        sent += 1
            except NodeDown as exc:
                self._outage(exc)
        return sent

    def _submit(self, record: TransactionRecord) -> bool:
        if keccak(record.raw_transaction) != record.tx_hash:
            # The stored bytes are not the transaction the enclave released: never send them.
            self._refuse(record, "stored raw bytes do not hash to the transaction hash")
            return False
        if record.status == "pending" and self._on_node(record.tx_hash):
            return False
        try:
            answer = self._rpc("eth_sendRawTransaction", [_hex(record.raw_transaction)])
        except NodeRpcError as error:
            # "already imported" / "already known", or "nonce too low" because this very
            # transaction is mined: the node has it, which is what sending was for.
            if not self._on_node(record.tx_hash):
                self._refuse(record, f"rejected by the node: {printable(error.message)}")
                return False
        else:
            if isinstance(answer, str) and answer.lower() != _hex(record.tx_hash):
                log.error(
                    "the node reports another hash for a transaction",
                    extra={"tx_hash": _hex(record.tx_hash), "node_hash": answer},
                )
        self._refused.pop(record.tx_hash, None)
        if record.status == "pending":
            log.info(
                "transaction rebroadcast: the node had lost it",
                extra={"tx_hash": _hex(record.tx_hash), "nonce": record.nonce},
            )
        else:
            self._set(record, "pending", "sent")
        return True

    def _refuse(self, record: TransactionRecord, reason: str) -> None:
        """Note a refusal (status unchanged: it is tried again), logged once per reason."""
        if self._refused.get(record.tx_hash) == reason:
            return
        self._refused[record.tx_hash] = reason
        log.warning(
            "transaction not accepted; will retry with the same bytes",
            extra={"tx_hash": _hex(record.tx_hash), "nonce": record.nonce, "reason": reason},
        )
        self.storage.set_transaction_status(record.tx_hash, record.status, reason)

    def _on_node(self, tx_hash: bytes) -> bool:
        """Whether the node knows this transaction (in its mempool or mined)."""
        return self._rpc("eth_getTransactionByHash", [_hex(tx_hash)]) is not None

    # -- following ------------------------------------------------------------------------

    def check_receipts(self) -> None:
        """Record the receipt of every pending transaction, or drop the ones that lost.

        Status 1 -> "mined" ("block N, gas used G"), 0 -> "reverted" ("reverted: reason",
        the reason from replaying the call at that block); the nonce's other versions ->
        "replaced". No receipt for `drop_after_seconds`, and the sender's nonce on chain
        past this one (a transaction the enclave did not sign took it) -> "dropped". A
        signed transaction the node keeps refusing is checked the same way.
        """
        with self._lock:
            refused = [r for r in self.storage.transactions("signed") if r.tx_hash in self._refused]
            records = self.storage.transactions("pending") + refused
            records.sort(key=lambda record: record.nonce)
            try:
                for record in records:
                    self._check(record)
            except NodeDown as exc:
                self._outage(exc)

    def _check(self, record: TransactionRecord) -> None:
        receipt = self._rpc("eth_getTransactionReceipt", [_hex(record.tx_hash)])
        if receipt is None:
            self._maybe_drop(record)
            return
        block = int(receipt["blockNumber"], 16)
        if int(receipt.get("status", "0x1"), 16) == 1:
            gas_used = int(receipt["gasUsed"], 16)
            detail = f"block {block} ({receipt['blockHash']}), gas used {gas_used}"
            self._set(record, "mined", detail)
        else:
            reason = revert_reason(self._rpc, _hex(record.tx_hash), block)
            self._set(record, "reverted", f"reverted: {reason}")
        self._forget(record.tx_hash)
        if self._highest_landed is None or record.nonce > self._highest_landed[0]:
            self._highest_landed = (record.nonce, self._sender(record))
        self._retire_other_versions(record)

    def _retire_other_versions(self, landed: TransactionRecord) -> None:
        """Mark every other open version of `landed`'s nonce "replaced", naming it."""
        for other in open_rivals(self.storage, landed):
            detail = f"replaced: nonce {landed.nonce} went to {_hex(landed.tx_hash)}"
            self._set(other, "replaced", detail)
            self._forget(other.tx_hash)

    def recover_forgotten(self) -> int:
        """Every "mined" or "reverted" transaction whose receipt the node no longer has, its
        nonce not yet used on chain (a node restarted from an older state), goes back to
        "pending" to be sent again. Returns how many. One nonce read a call at most."""
        with self._lock:
            if self._highest_landed is None:
                top = highest_landed(self.storage)
                self._highest_landed = (-1, "") if top is None else (top.nonce, self._sender(top))
            highest, sender = self._highest_landed
            try:
                chain_nonce = self._chain_nonce(sender) if highest >= 0 else 0
                if chain_nonce > highest:
                    return 0
                recovered = 0
                for record in self.storage.transactions_from_nonce(chain_nonce):
                    if record.status not in LANDED_STATUSES:
                        continue
                    if self._rpc("eth_getTransactionReceipt", [_hex(record.tx_hash)]) is not None:
                        continue
                    was = f"was {record.status}: {record.detail}"
                    self._set(record, "pending", f"the chain forgot it ({was}); sent again")
                    recovered += 1
            except NodeDown as exc:
                self._outage(exc)
                return 0
            return recovered

    def _maybe_drop(self, record: TransactionRecord) -> None:
        landed = landed_version(self.storage, record)
        if landed is not None:  # its nonce went to another version of it
            self._retire_other_versions(landed)
            return
        now = self._clock()
        since = self._unknown_since.setdefault(record.tx_hash, now)
        if now - since < self.drop_after_seconds:
            return
        chain_nonce = self._chain_nonce(self._sender(record))
        if chain_nonce <= record.nonce:
            return  # its nonce is still free: it may yet be mined (e.g. a low fee)
        # Checked again after the nonce: ours may have been mined in between.
        if self._rpc("eth_getTransactionReceipt", [_hex(record.tx_hash)]) is not None:
            return
        detail = (
            f"dropped: nonce {record.nonce} was used by another transaction "
            f"(account nonce on chain {chain_nonce}); no receipt after "
            f"{now - since:.0f} s"
        )
        self._set(record, "dropped", detail)
        self._forget(record.tx_hash)

    def _sender(self, record: TransactionRecord) -> str:
        sender = self._senders.get(record.tx_hash)
        if sender is None:
            sender = str(Account.recover_transaction(record.raw_transaction))
            self._senders[record.tx_hash] = sender
        return sender

    def _chain_nonce(self, sender: str) -> int:
        return int(self._rpc("eth_getTransactionCount", [sender, "latest"]), 16)

    def _forget(self, tx_hash: bytes) -> None:
        self._unknown_since.pop(tx_hash, None)
        self._refused.pop(tx_hash, None)
        self._senders.pop(tx_hash, None)

    # -- plumbing -------------------------------------------------------------------------

    def _set(self, record: TransactionRecord, status: TxStatus, detail: str) -> None:
        self.storage.set_transaction_status(record.tx_hash, status, detail)
        if status == record.status:
            return
        if self.metrics is not None:
            self.metrics.transaction(status)
        level = logging.WARNING if status in ("reverted", "dropped") else logging.INFO
        log.log(
            level,
            f"transaction {status}",
            extra={"tx_hash": _hex(record.tx_hash), "nonce": record.nonce, "detail": detail},
        )

    def _rpc(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call; its `result`.

        Raises:
            NodeDown: no answer (refused, timed out, HTTP error, not JSON-RPC).
            NodeRpcError: the node answered with an error.
        """
        try:
            response = self.w3.provider.make_request(RPCEndpoint(method), params)
        except (requests.RequestException, OSError, ValueError) as exc:
            # Redacted here, where the library's text comes in: it names the URL's path.
            raise NodeDown(f"{method}: {redact_error(exc, self._rpc_url)}") from None
        if not isinstance(response, dict):
            raise NodeDown(f"{method}: not a JSON-RPC answer")
        self._node_up()
        if response.get("error") is not None:
            raise NodeRpcError(method, response["error"])
        return response.get("result")

    def _outage(self, exc: NodeDown) -> None:
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        log.warning(
            "node unreachable; statuses kept, the same signed bytes will be retried",
            # Already redacted: _rpc builds every NodeDown with redact_error.
            extra={"node": self._node, "error": str(exc)},
        )

    def _node_up(self) -> None:
        if self._down_since is None:
            return
        seconds = time.monotonic() - self._down_since
        self._down_since = None
        log.info(
            "node reachable again", extra={"node": self._node, "outage_seconds": round(seconds, 1)}
        )
