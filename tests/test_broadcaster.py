"""The broadcaster against a real local node (anvil): sends, receipts, reverts, restarts, outages.

Each test starts its own anvil on a free 127.0.0.1 port (`--state FILE`, so a SIGTERM dumps
the chain and a restart on the same file resumes it) and stores real transactions, signed
by anvil's well-known account 0 through the enclave's `AccountSigner`, in a real SQLite
store behind a real receipt chain. Skipped, with the reason, when the anvil binary is
missing (`npm ci` in tools/chain installs it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_hash.auto import keccak
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

from attestation.receipt import ZERO_HASH, receipt_hash
from enclave.receipts import make_receipt
from enclave.signer import AccountSigner, Eip1559Transaction, SignedTransaction
from host.chain.broadcaster import Broadcaster
from host.chain.fees import ChainReadError, agent_balances, fee_hint
from host.chain.node_errors import redact_error
from host.logs import JsonLinesFormatter
from host.metrics import HostMetrics
from host.storage.sqlite import SqliteStorage
from wire.records import ReceiptRecord, TransactionRecord

REPO = Path(__file__).resolve().parent.parent
ANVIL = REPO / "tools/chain/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
UNISWAP_PERIPHERY = REPO / "tools/chain/node_modules/@uniswap/v2-periphery/build"
CHAIN_ID = 31337
# anvil's (and hardhat's) well-known dev accounts 0 and 1, funded with 10000 ETH each.
AGENT = AccountSigner.from_bytes(
    bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
)
DEPLOYER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
DEPLOYER = Account.from_key(DEPLOYER_KEY).address
GWEI = 10**9

# A contract whose every call reverts with the reason string "nope", exactly as solc's
# `revert("nope")` does: the ABI encoding of Error(string) ("nope") in memory, then REVERT.
#   PUSH4 0x08c379a0 PUSH1 0xe0 SHL PUSH1 0x00 MSTORE   selector Error(string) at [0, 4)
#   PUSH1 0x20 PUSH1 0x04 MSTORE                        offset of the string: 32
#   PUSH1 0x04 PUSH1 0x24 MSTORE                        its length: 4
#   PUSH4 "nope" PUSH1 0xe0 SHL PUSH1 0x44 MSTORE       its bytes, left-aligned
#   PUSH1 0x64 PUSH1 0x00 REVERT                        revert with memory [0, 100)
REVERT_NOPE_RUNTIME = bytes.fromhex(
    "".join(
        [
            "6308c379a060e01b600052",
            "6020600452",
            "6004602452",
            "636e6f706560e01b604452",
            "60646000fd",
        ]
    )
)
# Constructor: copy the runtime (which follows these 11 bytes) to memory and return it.
#   PUSH1 len DUP1 PUSH1 0x0b PUSH1 0x00 CODECOPY PUSH1 0x00 RETURN
REVERT_NOPE_INIT = (
    bytes([0x60, len(REVERT_NOPE_RUNTIME), 0x80, 0x60, 0x0B, 0x60, 0x00, 0x39, 0x60, 0x00, 0xF3])
    + REVERT_NOPE_RUNTIME
)

pytestmark = pytest.mark.skipif(
    not ANVIL.is_file(),
    reason=f"anvil is missing at {ANVIL.relative_to(REPO)}: run `npm ci` in tools/chain",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Anvil:
    """One anvil process on a fixed port and state file, stopped and started at will."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.state = directory / "anvil-state.json"
        self.log = directory / "anvil.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [str(ANVIL), "--port", str(self.port), "--host", "127.0.0.1",
                 "--chain-id", str(CHAIN_ID), "--state", str(self.state)],
                stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"anvil exited: {self.log.read_text()[-2000:]}")
            try:
                requests.post(self.url, json=rpc_body("web3_clientVersion", []), timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("anvil did not answer within 15 s")

    def stop(self) -> int:
        """SIGTERM (anvil dumps its state to the file), then wait; the exit code."""
        assert self.process is not None
        process, self.process = self.process, None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise


def rpc_body(method: str, params: list[Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[Anvil]:
    node = Anvil(tmp_path)
    node.start()
    try:
        yield node
    finally:
        if node.process is not None:
            node.stop()


@pytest.fixture
def w3(anvil: Anvil) -> Iterator[Web3]:
    with requests.Session() as session:
        yield Web3(HTTPProvider(anvil.url, session=session, request_kwargs={"timeout": 5}))


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[SqliteStorage]:
    store = SqliteStorage(tmp_path / "agent.db")
    try:
        yield store
    finally:
        store.close()


class Ledger:
    """Stores signed transactions the way the host does: the receipt first, chained."""

    def __init__(self, storage: SqliteStorage) -> None:
        self.storage = storage
        self.head = ZERO_HASH
        self.seq = 0

    def add(self, signed: SignedTransaction, nonce: int) -> TransactionRecord:
        self.seq += 1
        decision_json = json.dumps({"action": "transfer", "nonce": nonce})
        input_json = json.dumps({"tick": self.seq})
        receipt = make_receipt(
            AGENT,
            chain_id=CHAIN_ID,
            seq=self.seq,
            prev_hash=self.head,
            input_digest=hashlib.sha256(input_json.encode()).digest(),
            model_hash=hashlib.sha256(b"model").digest(),
            config_hash=hashlib.sha256(b"config").digest(),
            decision_hash=hashlib.sha256(decision_json.encode()).digest(),
            verdict="signed",
            tx_hash=signed.hash,
            timestamp=1_700_000_000 + self.seq,
        )
        record = ReceiptRecord(
            receipt=receipt,
            receipt_hash=receipt_hash(receipt, CHAIN_ID),
            decision_json=decision_json,
            input_json=input_json,
        )
        self.storage.append_receipts([record])
        self.head = record.receipt_hash
        tx = TransactionRecord(
            tx_hash=signed.hash,
            nonce=nonce,
            raw_transaction=signed.raw_transaction,
            receipt_seq=self.seq,
        )
        self.storage.add_transactions([tx])
        return tx


def sign(
    nonce: int, to: bytes, value: int = 0, data: bytes = b"", gas: int = 21_000
) -> SignedTransaction:
    return AGENT.sign_transaction(
        Eip1559Transaction(
            chain_id=CHAIN_ID,
            nonce=nonce,
            max_priority_fee_per_gas=1 * GWEI,
            max_fee_per_gas=20 * GWEI,
            gas=gas,
            to=to,
            value=value,
            data=data,
        )
    )


def recipient(n: int) -> bytes:
    return hashlib.sha256(f"recipient {n}".encode()).digest()[:20]


def deploy(w3: Web3, init_code: bytes) -> str:
    """Create a contract from the deployer account (not the agent's: its nonce stays ours)."""
    nonce = w3.eth.get_transaction_count(DEPLOYER)
    signed = Account.sign_transaction(
        {"chainId": CHAIN_ID, "nonce": nonce, "gas": 3_000_000, "maxFeePerGas": 20 * GWEI,
         "maxPriorityFeePerGas": GWEI, "to": b"", "value": 0, "data": init_code},
        DEPLOYER_KEY,
    )  # fmt: skip
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert receipt["status"] == 1
    return str(receipt["contractAddress"])


def statuses(storage: SqliteStorage) -> dict[int, str]:
    return {record.nonce: record.status for record in storage.transactions()}


def counted(metrics: HostMetrics, status: str) -> float:
    return (
        metrics.registry.get_sample_value("tee_agent_transactions_total", {"status": status}) or 0.0
    )


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "tee_agent.host.chain" and text in r.message]


def test_signed_transactions_are_mined_in_their_block_and_resending_is_harmless(
    anvil: Anvil, w3: Web3, storage: SqliteStorage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tee_agent.host.chain")
    ledger, metrics = Ledger(storage), HostMetrics()
    signed = [sign(nonce, recipient(1), value=(nonce + 1) * 10**15) for nonce in range(3)]
    # The host sent nonce 0 and crashed before recording it: it is on chain, stored "signed".
    w3.eth.send_raw_transaction(signed[0].raw_transaction)
    for nonce, tx in enumerate(signed):
        ledger.add(tx, nonce)
    with Broadcaster(anvil.url, storage, metrics, poll_seconds=0.1) as broadcaster:
        assert broadcaster.submit_pending() == 3  # nonce 0's "nonce too low" is our own tx
        assert set(statuses(storage).values()) == {"pending"}
        assert broadcaster.submit_pending() == 0  # all on the node: nothing sent again
        # The same bytes sent once more by anyone: refused by the node, nothing changes.
        again = w3.provider.make_request(
            RPCEndpoint("eth_sendRawTransaction"), ["0x" + signed[1].raw_transaction.hex()]
        )
        assert "error" in again
        hashes = [tx.hash for tx in signed]
        assert broadcaster.wait_mined(hashes, timeout=10) == dict.fromkeys(hashes, "mined")
    assert statuses(storage) == {0: "mined", 1: "mined", 2: "mined"}
    for record in storage.transactions():
        receipt = w3.eth.get_transaction_receipt(HexBytes(record.tx_hash))
        assert record.detail.startswith(f"block {receipt['blockNumber']} (")
        assert record.detail.endswith(f"gas used {receipt['gasUsed']}")
        assert receipt["status"] == 1
    assert w3.eth.get_transaction_count(Web3.to_checksum_address(AGENT.address)) == 3
    assert w3.eth.get_balance(Web3.to_checksum_address(recipient(1))) == 6 * 10**15
    assert (counted(metrics, "pending"), counted(metrics, "mined")) == (3, 3)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_reverted_transaction_is_recorded_with_its_reason(
    anvil: Anvil, w3: Web3, storage: SqliteStorage
) -> None:
    contract = deploy(w3, REVERT_NOPE_INIT)
    assert w3.eth.get_code(Web3.to_checksum_address(contract)) == REVERT_NOPE_RUNTIME
    ledger, metrics = Ledger(storage), HostMetrics()
    ledger.add(sign(0, bytes.fromhex(contract[2:]), data=b"\x12\x34", gas=100_000), 0)
    ledger.add(sign(1, recipient(2), value=1), 1)
    with Broadcaster(anvil.url, storage, metrics) as broadcaster:
        assert broadcaster.submit_pending() == 2
        finals = broadcaster.wait_mined([r.tx_hash for r in storage.transactions()], timeout=10)
    assert sorted(finals.values()) == ["mined", "reverted"]
    reverted, transfer = storage.transactions()
    assert (reverted.status, reverted.detail) == ("reverted", "reverted: nope")
    assert w3.eth.get_transaction_receipt(HexBytes(reverted.tx_hash))["status"] == 0
    assert transfer.status == "mined"
    assert (counted(metrics, "reverted"), counted(metrics, "mined")) == (1, 1)


def test_a_transaction_whose_nonce_another_took_is_dropped(
    anvil: Anvil, w3: Web3, storage: SqliteStorage
) -> None:
    ledger, metrics = Ledger(storage), HostMetrics()
    ours = ledger.add(sign(0, recipient(3), value=1), 0)
    # Another transaction with the same nonce (same key, another recipient) is mined first.
    theirs = w3.eth.send_raw_transaction(sign(0, recipient(4), value=2).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(theirs, timeout=10)["status"] == 1
    with Broadcaster(anvil.url, storage, metrics) as patient:
        patient.poll_once()
    (record,) = storage.transactions()
    assert (record.status, record.detail) == ("signed", "rejected by the node: nonce too low")
    with Broadcaster(anvil.url, storage, metrics, drop_after_seconds=0) as broadcaster:
        broadcaster.poll_once()
    (record,) = storage.transactions()
    assert record.status == "dropped"
    assert "nonce 0 was used by another transaction" in record.detail
    assert record.raw_transaction == ours.raw_transaction
    assert counted(metrics, "dropped") == 1


def test_a_node_restart_loses_nothing_and_nothing_is_signed_twice(
    anvil: Anvil, storage: SqliteStorage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tee_agent.host.chain")
    ledger, metrics = Ledger(storage), HostMetrics()
    signed = [sign(nonce, recipient(5), value=nonce + 1) for nonce in range(5)]
    broadcaster = Broadcaster(anvil.url, storage, metrics, poll_seconds=0.1, request_timeout=1.0)
    stop = threading.Event()
    loop = threading.Thread(target=broadcaster.run, args=(stop,), daemon=True)
    loop.start()
    try:
        hashes = [ledger.add(tx, nonce).tx_hash for nonce, tx in enumerate(signed[:2])]
        assert broadcaster.wait_mined(hashes, timeout=10) == dict.fromkeys(hashes, "mined")

        # Nonces 2 and 3 reach the node's mempool, unmined, when it stops.
        with requests.Session() as session:
            answer = session.post(anvil.url, json=rpc_body("evm_setAutomine", [False]), timeout=5)
            assert "error" not in answer.json()
            for nonce in (2, 3):
                ledger.add(signed[nonce], nonce)
            wait_until(
                lambda: statuses(storage) == {0: "mined", 1: "mined", 2: "pending", 3: "pending"}
            )
            for tx in signed[2:4]:
                on_node = session.post(
                    anvil.url, json=rpc_body("eth_getTransactionByHash", ["0x" + tx.hash.hex()]),
                    timeout=5,
                ).json()["result"]  # fmt: skip
                assert on_node is not None and on_node["blockNumber"] is None
        assert anvil.stop() == 0
        assert anvil.state.is_file()

        # The node is down: nonce 4 arrives, nothing changes status, one warning only.
        ledger.add(signed[4], 4)
        time.sleep(1.0)
        assert statuses(storage) == {
            0: "mined",
            1: "mined",
            2: "pending",
            3: "pending",
            4: "signed",
        }
        assert len(messages(caplog, "node unreachable")) == 1

        anvil.start()  # same port, same state file; its mempool is gone
        all_hashes = [tx.hash for tx in signed]
        assert broadcaster.wait_mined(all_hashes, timeout=15) == dict.fromkeys(all_hashes, "mined")
    finally:
        stop.set()
        loop.join(timeout=10)
        broadcaster.close()

    assert not loop.is_alive()
    with requests.Session() as session:
        chain = Web3(HTTPProvider(anvil.url, session=session, request_kwargs={"timeout": 5}))
        assert chain.eth.get_transaction_count(Web3.to_checksum_address(AGENT.address)) == 5
        for tx in signed:
            receipt = chain.eth.get_transaction_receipt(HexBytes(tx.hash))
            assert receipt["status"] == 1
            stored = next(r for r in storage.transactions() if r.tx_hash == tx.hash)
            assert stored.detail.startswith(f"block {receipt['blockNumber']} (")
    # The very bytes the enclave signed, unchanged; each mined exactly once.
    assert [r.raw_transaction for r in storage.transactions()] == [
        tx.raw_transaction for tx in signed
    ]
    assert all(keccak(r.raw_transaction) == r.tx_hash for r in storage.transactions())
    assert (counted(metrics, "pending"), counted(metrics, "mined")) == (5, 5)
    rebroadcast = {r.__dict__["tx_hash"] for r in messages(caplog, "rebroadcast")}
    assert rebroadcast == {"0x" + tx.hash.hex() for tx in signed[2:4]}
    assert len(messages(caplog, "node unreachable")) == 1
    assert len(messages(caplog, "node reachable again")) == 1


def test_an_unreachable_node_changes_no_status_and_is_logged_once(
    storage: SqliteStorage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tee_agent.host.chain")
    ledger = Ledger(storage)
    for nonce in range(2):
        ledger.add(sign(nonce, recipient(6), value=1), nonce)
    before = storage.transactions()
    # Connection refused: nothing listens on the port.
    with Broadcaster(f"http://127.0.0.1:{free_port()}", storage, request_timeout=1) as refused:
        for _ in range(5):
            refused.poll_once()
    # Timeout: a socket that takes connections and never answers. Each poll gives up after
    # request_timeout and tries once: no retries with back-off inside web3, which would
    # stall a poll for seconds (and show here as more connections than polls).
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent.settimeout(0.1)
        connections: list[socket.socket] = []
        polled = threading.Event()

        def take_connections() -> None:
            # Until the polls are over and nothing is left in the backlog.
            while True:
                try:
                    connections.append(silent.accept()[0])
                except TimeoutError:
                    if polled.is_set():
                        return

        taker = threading.Thread(target=take_connections, daemon=True)
        taker.start()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        try:
            with Broadcaster(url, storage, request_timeout=0.2) as hanging:
                for _ in range(3):
                    hanging.poll_once()
        finally:
            polled.set()
            taker.join(timeout=10)
            for connection in connections:
                connection.close()
        # One poll sends the first transaction only (an outage stops the round): one
        # HTTP attempt, so one connection, per poll.
        assert len(connections) == 3
    assert storage.transactions() == before
    assert len(messages(caplog, "node unreachable")) == 2  # one per broadcaster (outage)
    assert not messages(caplog, "transaction ")


def test_an_outage_is_logged_without_the_api_key_in_the_node_url(
    storage: SqliteStorage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tee_agent.host.chain")
    Ledger(storage).add(sign(0, recipient(6), value=1), 0)
    # Hosted nodes take the API key in the URL's path or query; requests names the path in
    # its connection errors.
    port = free_port()
    url = f"http://127.0.0.1:{port}/v3/SECRETKEY123?apikey=SECRETKEY123"
    with Broadcaster(url, storage, request_timeout=1) as refused:
        refused.poll_once()
    (outage,) = messages(caplog, "node unreachable")
    assert outage.__dict__["node"] == f"http://127.0.0.1:{port}"
    assert "ConnectionError" in outage.__dict__["error"]  # what went wrong is still told
    # Everything an operator would see: the messages and each record's fields as logged.
    formatter = JsonLinesFormatter(tracebacks=True)
    logged = caplog.text + "\n".join(formatter.format(record) for record in caplog.records)
    assert "SECRETKEY123" not in logged


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (
            requests.ConnectionError(
                "HTTPConnectionPool(host='h.io', port=443): Max retries exceeded with url:"
                " /v3/SECRETKEY123 (Caused by NewConnectionError(...))"
            ),
            "ConnectionError: HTTPConnectionPool(host='h.io', port=443): Max retries exceeded"
            " with url: https://h.io (Caused by NewConnectionError(...))",
        ),
        (
            requests.HTTPError("401 Client Error: for url: https://h.io/v3/SECRETKEY123?a=b"),
            "HTTPError: 401 Client Error: for url: https://h.io",
        ),
        (
            ValueError("bad answer from user:SECRETKEY123"),
            "ValueError: bad answer from [redacted]:[redacted]",
        ),
    ],
)
def test_redact_error_keeps_the_error_and_drops_the_key(error: Exception, shown: str) -> None:
    assert redact_error(error, "https://user:SECRETKEY123@h.io/v3/SECRETKEY123") == shown


def test_redact_error_cuts_any_url_and_request_path_without_the_node_url() -> None:
    error = requests.ConnectionError(
        "Max retries exceeded with url: /v3/SECRETKEY123 (for https://h.io:8545/v3/SECRETKEY123)"
    )
    assert redact_error(error) == (
        "ConnectionError: Max retries exceeded with url: [path redacted] (for https://h.io:8545)"
    )
    assert redact_error(ValueError("at https://h.io:bad/SECRETKEY123")) == (
        "ValueError: at [url redacted]"
    )


def test_fee_hint_and_token_balances(anvil: Anvil, w3: Web3) -> None:
    max_fee, priority_fee = fee_hint(w3)
    base_fee = w3.eth.get_block("latest")["baseFeePerGas"]
    assert max_fee >= base_fee and 0 <= priority_fee <= max_fee
    assert max_fee == 2 * base_fee + priority_fee
    assert priority_fee == int(
        w3.provider.make_request(RPCEndpoint("eth_maxPriorityFeePerGas"), [])["result"], 16
    )

    # A real ERC-20 (Uniswap v2-periphery's test token) minting its supply to the deployer.
    artifact = json.loads((UNISWAP_PERIPHERY / "ERC20.json").read_text())
    supply = 1_000_000 * 10**18
    token = deploy(w3, bytes.fromhex(artifact["bytecode"]) + abi_encode(["uint256"], [supply]))
    tokens = {"TKN": (token, 18)}
    fresh = Account.create().address
    assert agent_balances(w3, tokens, fresh) == {"TKN": 0}
    assert agent_balances(w3, tokens, DEPLOYER) == {"TKN": supply}
    with pytest.raises(ChainReadError, match="NOPE"):
        agent_balances(w3, {"NOPE": ("0x" + recipient(7).hex(), 18)}, fresh)


def wait_until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)
