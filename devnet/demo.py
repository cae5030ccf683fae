"""The demo: the agent on the simulated enclave, trading real ETH/USDT history on a local chain.

    python -m devnet.demo [--policy llm|rule] [--model PATH] [--hours N] [--start-row R] [--json]

Starts anvil, deploys WETH, a USD stablecoin, a second token, the Uniswap V2 factory and
router, adds liquidity at the first candle's price, starts the host with the simulated
enclave, funds the agent's attested address, then for every hourly candle moves the pool
to the candle's close (an independent market mover), feeds the pool's price to the agent,
broadcasts what it signs and waits for it to be mined. At the end it verifies the
attestation, the receipt chain and the chain's record, and prints a summary.

Run it from the repository root (it reads data/ and the npm tools of tools/chain), or with
`./scripts/demo`, which sets everything up first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey
from web3 import Web3

from attestation.checks import CheckName
from attestation.receipt_chain import verify_receipts
from attestation.trust import certificates_from_bytes, default_trust_anchors
from devnet.accounts import DEPLOYER
from devnet.anvil import Anvil
from devnet.dex import TOKEN_DECIMALS, Dex, pool_price, set_next_block_time
from devnet.enclave_config import VAULT_NOT_DEPLOYED, enclave_config_toml
from devnet.market import deploy_market, fund
from devnet.market_mover import MarketMover
from host.chain.audit import AuditCheck, audit_agent
from host.chain.broadcaster import Broadcaster
from host.chain.fees import agent_balances, fee_hint
from host.config import load_host_config
from host.enclave_client import FeeHint, IngestInput
from host.market.feed import ticks_input
from host.market.replay import Candle, read_candles
from host.run import RunningHost, start_host
from wire.ticks import Tick

REPO = Path(__file__).resolve().parent.parent
CANDLES = REPO / "data" / "market" / "eth-usdt-binance-1h-2022-2023.csv"
BTC_CANDLES = REPO / "data" / "market" / "btc-usdt-binance-1h-2022-2023.csv"
log = logging.getLogger("tee_agent.demo")


@dataclass
class DemoResult:
    """The demo's summary, and whether every verification in it passed."""

    summary: dict[str, Any]
    ok: bool


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The demo's options (`./scripts/demo --help`); argparse exits on a bad one."""
    parser = argparse.ArgumentParser(prog="./scripts/demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--policy",
        choices=["llm", "rule"],
        default="llm",
        help="who decides: the LLM (SmolLM2-135M by default) or the rule policy",
    )
    parser.add_argument("--model", type=Path, help="another GGUF model for the LLM policy")
    parser.add_argument("--hours", type=int, default=72, help="hourly candles to replay (3 days)")
    parser.add_argument(
        "--start-row",
        type=int,
        default=3060,
        help="first candle (row of data/market/eth-usdt-binance-1h-2022-2023.csv)",
    )
    parser.add_argument("--keep", type=Path, help="keep the run's files in this directory")
    parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object on the last line"
    )
    return parser.parse_args(argv)  # fmt: skip


@dataclass
class Session:
    """A finished replay, still running: what the summary and the tests look at."""

    w3: Web3
    dex: Dex
    host: RunningHost
    address: str
    tokens: dict[str, tuple[str, int]]
    start_balances: dict[str, int]
    start_price: Decimal
    anvil: Anvil
    broadcaster: Broadcaster
    workdir: Path


def run_demo(args: argparse.Namespace) -> DemoResult:
    """Run the whole demo and summarize it; everything it started is stopped on return.

    Raises:
        SystemExit: no candles at the rows asked for.
        devnet.anvil.AnvilError, devnet.transactions.ChainError: the local chain failed.
    """
    started = time.monotonic()
    with demo_session(args) as session:
        summary, ok = _summarize(args, session, started)
    return DemoResult(summary, ok)


@contextmanager
def demo_session(args: argparse.Namespace, **guardrails: Any) -> Iterator[Session]:
    """Run the replay and yield the session; everything stops when the block ends.

    `guardrails` override the enclave config's limits (e.g. max_notional_per_trade_usd).

    Raises:
        SystemExit: no candles at the rows asked for.
        devnet.anvil.AnvilError, devnet.transactions.ChainError: the local chain failed.
    """
    rows = list(read_candles(CANDLES, "ETH/USD"))
    candles = rows[args.start_row : args.start_row + args.hours]
    if len(candles) < 2:
        raise SystemExit(
            f"error: no candles at rows {args.start_row}..{args.start_row + args.hours}"
        )
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="tee-agent-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with _Stack() as stack:
        yield _run(args, candles, workdir, stack, guardrails)


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


def _run(
    args: argparse.Namespace,
    candles: list[Candle],
    workdir: Path,
    stack: _Stack,
    guardrails: dict[str, Any],
) -> Session:
    first = candles[0]
    btc = list(read_candles(BTC_CANDLES, "BTC/USD"))[args.start_row]
    say(
        f"starting a local chain (anvil) at {datetime.fromtimestamp(first.timestamp_ms / 1000, UTC):%Y-%m-%d %H:%M} market time"
    )
    anvil = Anvil.start(genesis_timestamp=first.timestamp_ms // 1000 - 3600)
    stack.push(anvil.stop)
    w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 60}))
    dex = deploy_market(w3, Decimal(repr(first.price)), Decimal(repr(btc.price)))
    say(
        f"deployed WETH, USD, WBTC, the Uniswap V2 factory and router; ETH/USD pool at {first.price:.2f}"
    )

    owner = SigningKey.generate()
    enclave_config = workdir / "enclave.toml"
    # Short moving averages (4 and 12 hours) so that a three-day demo trades after half a day.
    # No vault yet: the demo trades through a deployed GuardedVault once devnet deploys one
    # for it (devnet.vault); until then every decision to trade is refused twap_unavailable.
    enclave_config_toml(
        dex, owner.verify_key.encode().hex(), vault=VAULT_NOT_DEPLOYED, policy=args.policy,
        path=enclave_config, short_window=4, long_window=12, **guardrails,
    )  # fmt: skip
    host_config = workdir / "tee-agent.toml"
    host_config.write_text(_host_toml(workdir, enclave_config, args.model))
    say(f"starting the host and the simulated enclave ({args.policy} policy)")
    host = start_host(load_host_config(host_config), listen="127.0.0.1:0")
    stack.push(host.stop)
    agent = host.agent
    identity = agent.supervisor.identity
    if identity is None:
        raise SystemExit("error: the enclave opened without an identity")
    address = identity.address
    fund(w3, dex, DEPLOYER, address, eth=10, weth=2, usd=10_000)
    tokens = {s: (a, TOKEN_DECIMALS[s]) for s, a in dex.tokens.items()}
    start_balances = agent_balances(w3, tokens, address)
    start_price = pool_price(w3, dex, "ETH/USD")
    say(f"agent {address} funded with 2 WETH and 10,000 USD")

    broadcaster = Broadcaster(anvil.url, host.storage, poll_seconds=0.1)
    stack.push(broadcaster.close)
    mover = MarketMover(w3, dex)
    say(f"replaying {len(candles)} hourly candles of real ETH/USDT")
    for index, candle in enumerate(candles):
        set_next_block_time(w3, candle.timestamp_ms // 1000)
        price = mover.move_to(Decimal(repr(candle.price)), "ETH/USD")
        fees = fee_hint(w3)
        held = agent_balances(w3, tokens, address)
        agent.ingest(ingest_input(index + 1, candle, price, fees, held))
        pending = [
            tx.tx_hash for tx in host.storage.transactions() if tx.status in ("signed", "pending")
        ]
        if pending:
            broadcaster.wait_mined(pending, timeout=60)
        if (index + 1) % 12 == 0:
            say(f"  {index + 1}/{len(candles)} candles, ETH {price:.2f} USD")

    return Session(
        w3, dex, host, address, tokens, start_balances, start_price, anvil, broadcaster, workdir
    )


def ingest_input(
    seq: int, candle: Candle, price: Decimal, fees: tuple[int, int], balances: dict[str, int]
) -> IngestInput:
    """What the enclave gets for one candle: one ETH/USD tick at the pool's `price` at the
    candle's time, the fee hint (max fee, priority fee) and the agent's balances."""
    tick = Tick(seq, candle.timestamp_ms, "ETH/USD", float(price), candle.volume)
    return dataclasses.replace(ticks_input([tick]), fees=FeeHint(*fees), balances=balances)


def _summarize(
    args: argparse.Namespace, session: Session, started: float
) -> tuple[dict[str, Any], bool]:
    w3, dex, host, address = session.w3, session.dex, session.host, session.address
    tokens, start_balances = session.tokens, session.start_balances
    storage = host.storage
    records = storage.receipts(1, 1_000_000)
    receipts = [r.receipt for r in records]
    attestation = host.agent.attest(os.urandom(32))
    identity = attestation.identity
    chain = verify_receipts(receipts, address=address, chain_id=identity.chain_id,
                            config_hash=identity.config_hash)  # fmt: skip
    decisions = {
        r.receipt.seq: json.loads(r.decision_json) if r.decision_json else {} for r in records
    }
    mined_swaps, actions = 0, Counter[str]()
    for tx in storage.transactions():  # every one a vault swap: the agent signs nothing else
        if tx.status == "mined":
            mined_swaps += 1
            actions[decisions.get(tx.receipt_seq, {}).get("action", "?")] += 1
    refusals = Counter(
        r.verdict.removeprefix("refused:") for r in receipts if r.verdict.startswith("refused:")
    )
    holds = sum(1 for r in receipts if r.verdict == "hold")

    sim_root = session.workdir / "agent" / "sim" / "root.pem"
    anchors = default_trust_anchors().with_extra_roots(
        certificates_from_bytes(sim_root.read_bytes(), source="sim root")
    )
    audit = audit_agent(attestation, receipts, w3, anchors=anchors, at=datetime.now(UTC),
                        expected_head_hash=storage.head()[1])  # fmt: skip
    attestation_ok = all(
        c.passed
        for c in audit.checks
        if c.name in (AuditCheck.ATTESTATION, CheckName.REPORT_DATA_BINDING)
    )

    end_balances = agent_balances(w3, tokens, address)
    price = pool_price(w3, dex, "ETH/USD")
    weth_decimals, usd_decimals = tokens["WETH"][1], tokens["USD"][1]

    def value(balances: dict[str, int], at_price: Decimal) -> Decimal:
        return (Decimal(balances["WETH"]).scaleb(-weth_decimals) * at_price
                + Decimal(balances["USD"]).scaleb(-usd_decimals))  # fmt: skip

    pnl = value(end_balances, price) - value(start_balances, price)
    summary = {
        "policy": args.policy,
        "candles": args.hours,
        "agent": address,
        "trades": mined_swaps,
        "buys": actions["buy"],
        "sells": actions["sell"],
        "holds": holds,
        "refusals": dict(refusals),
        "position": {
            "WETH": str(Decimal(end_balances["WETH"]).scaleb(-weth_decimals).normalize()),
            "USD": str(
                Decimal(end_balances["USD"]).scaleb(-usd_decimals).quantize(Decimal("0.01"))
            ),
        },
        "price_start": float(session.start_price),
        "price_end": float(price),
        "pnl_usd": float(pnl.quantize(Decimal("0.01"))),
        "receipts": len(receipts),
        "receipts_verified": chain.valid,
        "attestation_verified": attestation_ok,
        "audit_verified": audit.valid,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    ok = chain.valid and attestation_ok and audit.valid
    return summary, ok


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


def main(argv: list[str] | None = None) -> int:
    """Run the demo and print its summary; 0 when every verification passed, 1 when one
    failed, 130 on Ctrl-C."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        result = run_demo(args)
    except KeyboardInterrupt:
        return 130
    summary = result.summary
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"\ntee-agent demo ({summary['policy']} policy, {summary['candles']} hourly candles, "
              f"{summary['wall_seconds']} s)")  # fmt: skip
        print(f"  agent             {summary['agent']}")
        print(
            f"  trades executed   {summary['trades']} ({summary['buys']} buys, {summary['sells']} sells), {summary['holds']} holds"
        )
        print(f"  refusals          {summary['refusals'] or 'none'}")
        print(
            f"  position          {summary['position']['WETH']} WETH, {summary['position']['USD']} USD"
        )
        print(f"  ETH price         {summary['price_start']:.2f} -> {summary['price_end']:.2f} USD")
        print(f"  PnL               {summary['pnl_usd']:+.2f} USD")
        print(
            f"  receipts          {summary['receipts']}, chain verified: {summary['receipts_verified']}"
        )
        print(f"  attestation       verified: {summary['attestation_verified']}; "
              f"end-to-end audit: {summary['audit_verified']}")  # fmt: skip
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
