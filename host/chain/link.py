"""The host's side of the chain while it runs: the broadcaster thread, and what it sends the
enclave with every batch of ticks: the chain's fees, the vault's balances (the funds the
agent trades), and the vault's TWAP of each pair; it also reads the vault's state for
`GetStatus` (`VaultWatch`) once per batch."""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass

from web3 import Web3

from enclave.config import EnclaveConfig
from host.chain.broadcaster import Broadcaster
from host.chain.fees import account_view, agent_balances, fee_hint
from host.chain.node_errors import redact_error
from host.chain.vault import Vault
from host.enclave_client import FeeHint, IngestInput
from host.metrics import HostMetrics
from host.storage.base import Storage
from host.vault_watch import VaultWatch

log = logging.getLogger("tee_agent.host")


@dataclass(frozen=True)
class PairTokens:
    """A configured pair as the vault's TWAP is read: its symbol, base token and decimals."""

    symbol: str
    base: str
    base_decimals: int
    quote_decimals: int


@dataclass
class ChainLink:
    """The broadcaster's thread, and a client of the node for fees, balances and the vault."""

    rpc_url: str
    w3: Web3
    broadcaster: Broadcaster
    # Token symbol -> (contract address, decimals), from the measured enclave config.
    tokens: dict[str, tuple[str, int]]
    vault: Vault
    pairs: tuple[PairTokens, ...]
    vault_watch: VaultWatch
    # Seconds between polls of the node (the broadcaster's and the pool reader's).
    poll_seconds: float
    stopping: threading.Event
    thread: threading.Thread
    # The agent's address, whose account the enclave is told about with every batch.
    agent: str = ""

    def enrich(self, work: IngestInput) -> IngestInput:
        """`work` with the chain's view of the agent's account, its current fees, the vault's
        balances and its TWAP of each pair (a pair without one now is left out: the enclave
        refuses to trade it); unchanged (and a warning logged) when the node cannot be read.
        Refreshes the vault watch."""
        self.vault_watch.refresh()
        try:
            account = account_view(self.w3, self.agent)
            max_fee, priority = fee_hint(self.w3)
            balances = agent_balances(self.w3, self.tokens, self.vault.address)
            twaps = {}
            for pair in self.pairs:
                price = self.vault.twap(pair.base, pair.base_decimals, pair.quote_decimals)
                if price is not None:
                    twaps[pair.symbol] = float(price)
        except Exception as exc:
            log.warning(
                "chain read failed, batch sent without account, fees, balances and TWAPs: %s",
                redact_error(exc, self.rpc_url),
            )
            return work
        return dataclasses.replace(
            work, fees=FeeHint(max_fee, priority), balances=balances, twaps=twaps, account=account
        )

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
    from it fees, the balances of the enclave config's vault (in its tokens) and the vault's
    TWAPs, and the vault's record of the agent at `address`."""
    tokens = {symbol: (token.address, token.decimals) for symbol, token in enclave.tokens.items()}
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    pairs = tuple(
        PairTokens(
            pair.symbol,
            enclave.tokens[pair.base].address,
            enclave.tokens[pair.base].decimals,
            enclave.tokens[pair.quote].decimals,
        )
        for pair in enclave.pairs
    )
    quote_decimals = enclave.tokens[enclave.pairs[0].quote].decimals
    watch = VaultWatch(w3, enclave.vault.address, address, quote_decimals)
    broadcaster = Broadcaster(rpc_url, storage, metrics, poll_seconds=poll_seconds)
    stopping = threading.Event()
    thread = threading.Thread(
        target=broadcaster.run, args=(stopping,), name="broadcaster", daemon=True
    )
    thread.start()
    return ChainLink(
        rpc_url, w3, broadcaster, tokens, Vault(w3, enclave.vault.address), pairs, watch,
        poll_seconds, stopping, thread, address,
    )  # fmt: skip
