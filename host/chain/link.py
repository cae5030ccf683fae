"""The host's side of the chain while it runs: the broadcaster thread, and the chain's fees
and the agent's balances sent with every batch of ticks."""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass

from web3 import Web3

from enclave.config import EnclaveConfig
from host.chain.broadcaster import Broadcaster
from host.chain.fees import agent_balances, fee_hint
from host.chain.node_errors import redact_error
from host.enclave_client import FeeHint, IngestInput
from host.metrics import HostMetrics
from host.storage.base import Storage

log = logging.getLogger("tee_agent.host")


@dataclass
class ChainLink:
    """The broadcaster's thread, and a client of the node for fees and balances."""

    rpc_url: str
    w3: Web3
    broadcaster: Broadcaster
    # Token symbol -> (contract address, decimals), from the measured enclave config.
    tokens: dict[str, tuple[str, int]]
    address: str
    # Seconds between polls of the node (the broadcaster's and the pool reader's).
    poll_seconds: float
    stopping: threading.Event
    thread: threading.Thread

    def enrich(self, work: IngestInput) -> IngestInput:
        """`work` with the chain's current fees and the agent's balances; unchanged (and a
        warning logged) when the node cannot be read."""
        try:
            max_fee, priority = fee_hint(self.w3)
            balances = agent_balances(self.w3, self.tokens, self.address)
        except Exception as exc:
            log.warning(
                "chain read failed, batch sent without fees and balances: %s",
                redact_error(exc, self.rpc_url),
            )
            return work
        return dataclasses.replace(work, fees=FeeHint(max_fee, priority), balances=balances)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        self.broadcaster.close()


def connect_chain(
    rpc_url: str,
    poll_seconds: float,
    enclave: EnclaveConfig,
    address: str,
    storage: Storage,
    metrics: HostMetrics,
) -> ChainLink:
    """Start broadcasting the transactions in `storage` to the node at `rpc_url`, and read
    fees and the balances of `address` (in the enclave config's tokens) from it."""
    tokens = {symbol: (token.address, token.decimals) for symbol, token in enclave.tokens.items()}
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    broadcaster = Broadcaster(rpc_url, storage, metrics, poll_seconds=poll_seconds)
    stopping = threading.Event()
    thread = threading.Thread(
        target=broadcaster.run, args=(stopping,), name="broadcaster", daemon=True
    )
    thread.start()
    return ChainLink(rpc_url, w3, broadcaster, tokens, address, poll_seconds, stopping, thread)
