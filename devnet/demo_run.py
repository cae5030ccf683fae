"""The demo's run: anvil, Uniswap V2, the guarded vault, the host and the simulated enclave,
and the replay of hourly candles through them (`demo_session`).

The vault holds the funds: the demo deploys it, registers the agent's attested address with
the caps of its measured config after verifying its quote, deposits 2 WETH and 10,000 USD,
and funds the agent's own address with ETH for gas only. For every candle the market mover
moves the pool to the candle's close, the vault's owner account records a price observation
(anyone may), and the host sends the enclave the pool's price, the vault's TWAP and balances.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from nacl.signing import SigningKey
from web3 import Web3

from attestation.trust import TrustAnchors, certificates_from_bytes, default_trust_anchors
from devnet.accounts import DEPLOYER
from devnet.anvil import Anvil
from devnet.dex import PAIRS, TOKEN_DECIMALS, Dex, pool_price, set_next_block_time
from devnet.enclave_config import enclave_config_toml
from devnet.market import deploy_market, fund
from devnet.market_mover import MarketMover
from devnet.vault import DEMO_TWAP, deploy_guarded_vault, observe_all
from enclave.config import EnclaveConfig
from host.chain.broadcaster import Broadcaster
from host.chain.fees import agent_balances, fee_hint
from host.chain.vault_owner import (
    VaultOwner,
)
from host.cli.entry import main as cli_main
from host.config import load_host_config
from host.enclave_client import FeeHint
from host.market.feed import ticks_input
from host.market.replay import Candle, read_candles
from host.run import RunningHost, start_host
from host.vault_watch import VaultWatch
from wire.records import ReceiptRecord
from wire.ticks import Tick

REPO = Path(__file__).resolve().parent.parent
CANDLES = REPO / "data" / "market" / "eth-usdt-binance-1h-2022-2023.csv"
BTC_CANDLES = REPO / "data" / "market" / "btc-usdt-binance-1h-2022-2023.csv"
log = logging.getLogger("tee_agent.demo")


@dataclass(frozen=True)
class Mark:
    """The state after one candle: its time, the pool's price, the vault's balances."""

    timestamp_ms: int
    price: Decimal
    balances: dict[str, int]


@dataclass
class Session:
    """A finished replay, still running: what the summary and the tests look at.

    `address` is the agent's (it holds only ETH for gas); the funds are in `vault`.
    """

    w3: Web3
    dex: Dex
    host: RunningHost
    address: str
    vault: VaultOwner
    config: EnclaveConfig
    anchors: TrustAnchors
    tokens: dict[str, tuple[str, int]]
    start_balances: dict[str, int]
    start_price: Decimal
    anvil: Anvil
    broadcaster: Broadcaster
    mover: MarketMover
    workdir: Path
    # The candles replayed, and a sealed state kept a day before their end with the agent's
    # nonce then: what a hostile host hands back (`devnet.rollback_attack`).
    candles: list[Candle] = dataclasses.field(default_factory=list)
    stale_state: tuple[int, bytes] | None = None
    stale_nonce: int = 0
    stale_receipts: list[ReceiptRecord] = dataclasses.field(default_factory=list)
    # After each candle: its time, the pool's price and the vault's balances (for the chart).
    marks: list[Mark] = dataclasses.field(default_factory=list)

    def vault_balances(self) -> dict[str, int]:
        """The vault's token balances, in smallest units."""
        return agent_balances(self.w3, self.tokens, self.vault.vault.address)

    def twaps(self) -> dict[str, float]:
        """The vault's TWAP of every pair it has one for now (whole quote per whole base)."""
        found: dict[str, float] = {}
        for symbol, (base, quote) in PAIRS.items():
            price = self.vault.vault.twap(
                self.dex.tokens[base], TOKEN_DECIMALS[base], TOKEN_DECIMALS[quote]
            )
            if price is not None:
                found[symbol] = float(price)
        return found

    def feed(self, seq: int, candle: Candle) -> Decimal:
        """One candle, as an honest host relays it: move the pool to its close, record a
        price observation in the vault, send the enclave the pool's price with the fees, the
        vault's TWAP and balances, and wait for what it signed to be mined. Returns the
        pool's price."""
        set_next_block_time(self.w3, candle.timestamp_ms // 1000)
        price = self.mover.move_to(Decimal(repr(candle.price)), "ETH/USD")
        observe_all(self.vault, self.dex)
        tick = Tick(seq, candle.timestamp_ms, "ETH/USD", float(price), candle.volume)
        self.send([tick], self.twaps())
        self.marks.append(Mark(candle.timestamp_ms, price, self.vault_balances()))
        return price

    def send(self, ticks: list[Tick], twaps: dict[str, float]) -> None:
        """Send the enclave `ticks` with the chain's fees, these TWAPs and the vault's
        balances, then wait for every transaction it signed to be mined or to fail."""
        work = dataclasses.replace(
            ticks_input(ticks),
            fees=FeeHint(*fee_hint(self.w3)),
            balances=self.vault_balances(),
            twaps=twaps,
        )
        self.host.agent.ingest(work)
        if self.host.agent.vault_watch is not None:
            self.host.agent.vault_watch.refresh()
        pending = [
            tx.tx_hash
            for tx in self.host.storage.transactions()
            if tx.status in ("signed", "pending")
        ]
        if pending:
            self.broadcaster.wait_mined(pending, timeout=60)


def run_candles(args: argparse.Namespace) -> list[Candle]:
    """The candles of the run: `args.hours` rows of the bundled ETH/USDT file from
    `args.start_row`.

    Raises:
        SystemExit: fewer than two candles there.
    """
    rows = list(read_candles(CANDLES, "ETH/USD"))
    candles = rows[args.start_row : args.start_row + args.hours]
    if len(candles) < 2:
        raise SystemExit(
            f"error: no candles at rows {args.start_row}..{args.start_row + args.hours}"
        )
    return candles


@contextmanager
def demo_session(args: argparse.Namespace, **guardrails: Any) -> Iterator[Session]:
    """Set up the chain, the vault and the agent, replay the candles, and yield the session;
    everything stops when the block ends.

    `guardrails` override the enclave config's limits (e.g. max_notional_per_trade_usd).

    Raises:
        SystemExit: no candles at the rows asked for.
        devnet.anvil.AnvilError, host.chain.transact.ChainError: the local chain failed.
    """
    candles = run_candles(args)
    with started_session(args, candles[0], **guardrails) as session:
        say(f"replaying {len(candles)} hourly candles of real ETH/USDT")
        session.candles = candles
        for index, candle in enumerate(candles):
            if index == max(0, len(candles) - 24):
                session.stale_state = session.host.storage.latest_sealed_state()
                session.stale_receipts = session.host.storage.receipts(1, 1_000_000)
                session.stale_nonce = session.w3.eth.get_transaction_count(
                    to_checksum_address(session.address)
                )
            price = session.feed(index + 1, candle)
            if (index + 1) % 12 == 0:
                say(f"  {index + 1}/{len(candles)} candles, ETH {price:.2f} USD")
        yield session


@contextmanager
def started_session(
    args: argparse.Namespace, first: Candle, **guardrails: Any
) -> Iterator[Session]:
    """Everything up to the first candle: anvil at its time, the DEX, the vault, the host
    and its enclave, the agent registered and the vault funded."""
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="tee-agent-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with _Stack() as stack:
        yield _start(args, first, workdir, stack, guardrails)


class _Stack:
    """Stops what the demo started, in reverse order, whatever happens."""

    def __init__(self) -> None:
        self.stops: list[Callable[[], object]] = []

    def __enter__(self) -> _Stack:
        return self

    def push(self, stop: Callable[[], object]) -> None:
        self.stops.append(stop)

    def __exit__(self, *_: object) -> None:
        for stop in reversed(self.stops):
            try:
                stop()
            except Exception:
                log.debug("cleanup step failed", exc_info=True)


def _start(
    args: argparse.Namespace,
    first: Candle,
    workdir: Path,
    stack: _Stack,
    guardrails: dict[str, Any],
) -> Session:
    btc = list(read_candles(BTC_CANDLES, "BTC/USD"))[args.start_row]
    say(
        f"starting a local chain (anvil) at {datetime.fromtimestamp(first.timestamp_ms / 1000, UTC):%Y-%m-%d %H:%M} market time"
    )
    anvil = Anvil.start(genesis_timestamp=first.timestamp_ms // 1000 - 3600)
    stack.push(anvil.stop)
    w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 60}))
    dex = deploy_market(w3, Decimal(repr(first.price)), Decimal(repr(btc.price)))
    vault = deploy_guarded_vault(w3, dex)
    say(
        f"deployed WETH, USD, WBTC, the Uniswap V2 factory and router (ETH/USD pool at "
        f"{first.price:.2f}) and the guarded vault {vault.vault.address}"
    )

    owner = SigningKey.generate()
    enclave_config = workdir / "enclave.toml"
    # Short moving averages (4 and 12 hours) so that a three-day demo trades after half a day.
    enclave_config_toml(
        dex, owner.verify_key.encode().hex(), policy=args.policy, path=enclave_config,
        vault=vault.vault.address, twap_window_seconds=DEMO_TWAP.window_seconds,
        twap_max_age_seconds=DEMO_TWAP.max_age_seconds,
        max_twap_deviation_bps=DEMO_TWAP.max_deviation_bps,
        short_window=4, long_window=12, **guardrails,
    )  # fmt: skip
    host_config = workdir / "tee-agent.toml"
    host_config.write_text(_host_toml(workdir, enclave_config, args.model))
    say(f"starting the host and the simulated enclave ({args.policy} policy)")
    host = start_host(load_host_config(host_config), listen="127.0.0.1:0")
    stack.push(host.stop)
    sim_root = workdir / "agent" / "sim" / "root.pem"
    anchors = default_trust_anchors().with_extra_roots(
        certificates_from_bytes(sim_root.read_bytes(), source="sim root")
    )
    address = register_agent(workdir, host, anvil.url, vault.vault.address)
    host.agent.vault_watch = VaultWatch(w3, vault.vault.address, address, TOKEN_DECIMALS["USD"])
    fund(w3, dex, DEPLOYER, address, eth=10)
    fund(w3, dex, DEPLOYER, DEPLOYER.address, weth=2)
    vault.deposit(dex.weth, 2 * 10**18)
    vault.deposit(dex.usd, 10_000 * 10**18)
    tokens = {s: (a, TOKEN_DECIMALS[s]) for s, a in dex.tokens.items()}
    say(f"agent {address} registered on the vault; the vault holds 2 WETH and 10,000 USD")

    broadcaster = Broadcaster(anvil.url, host.storage, poll_seconds=0.1)
    stack.push(broadcaster.close)
    return Session(
        w3, dex, host, address, vault, host.enclave, anchors, tokens,
        agent_balances(w3, tokens, vault.vault.address), pool_price(w3, dex, "ETH/USD"),
        anvil, broadcaster, MarketMover(w3, dex), workdir,
    )  # fmt: skip


def register_agent(session_dir: Path, host: RunningHost, rpc_url: str, vault: str) -> str:
    """Register the agent on the vault through the owner's front door, `tee-agent vault
    register`: it verifies the agent's quote (over a fresh nonce, trusting the simulated
    root by name), checks that the quote binds the demo's enclave.toml and that the config
    names this vault, then registers the attested address with the config's caps. Its
    report goes to stderr with the rest of the demo's progress. Returns the address.

    Raises:
        SystemExit: the command refused or failed (its message says which check).
    """
    key = session_dir / "vault-owner.key"
    key.write_text(DEPLOYER.key.hex() + "\n")
    key.chmod(0o600)
    with contextlib.redirect_stdout(sys.stderr):
        code = cli_main(
            ["vault", "register", "--rpc", rpc_url, "--key", str(key), "--vault", vault,
             "--config", str(session_dir / "enclave.toml"), "--host", f"127.0.0.1:{host.port}",
             "--trust-root", str(session_dir / "agent" / "sim" / "root.pem")]
        )  # fmt: skip
    identity = host.agent.supervisor.identity
    if code != 0 or identity is None:
        raise SystemExit(f"error: tee-agent vault register exited {code}")
    return identity.address


def _host_toml(workdir: Path, enclave_config: Path, model: Path | None) -> str:
    return f"""
[host]
listen = "127.0.0.1:50051"
data_dir = "{workdir / "agent"}"
auth_token = "demo-{os.urandom(8).hex()}"
metrics_listen = ""

[enclave]
config = "{enclave_config}"
{f'model = "{model}"' if model else ""}
ready_timeout_seconds = 120

[market]
source = "none"
"""


def say(message: str) -> None:
    """A progress line, on stderr (stdout carries only the summary)."""
    print(message, file=sys.stderr, flush=True)
