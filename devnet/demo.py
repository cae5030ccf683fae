"""The demo: the agent on the simulated enclave, trading real ETH/USDT history on a local chain
through the guarded vault.

    python -m devnet.demo [--policy llm|rule] [--model PATH] [--hours N] [--start-row R]
                          [--hostile-host price-walk|rollback|leaked-key] [--chart PNG] [--json]

Starts anvil, deploys WETH, a USD stablecoin, a second token, the Uniswap V2 factory and
router and the GuardedVault, adds liquidity at the first candle's price, starts the host
with the simulated enclave, registers the agent's attested address on the vault and funds
the vault (`devnet.demo_run`), then for every hourly candle moves the pool to the candle's
close (an independent market mover), feeds the pool's price and the vault's TWAP to the
agent, broadcasts what it signs and waits for it to be mined. With `--hostile-host` it then
attacks the vault (`devnet.hostile`). At the end it verifies the attestation, the receipt
chain and the chain's record (`verify agent --vault`), prints a summary and writes the
run's chart (`devnet.demo_chart`; var/demo/chart.png unless `--chart` says otherwise).

Run it from the repository root (it reads data/ and the npm tools of tools/chain), or with
`./scripts/demo`, which sets everything up first.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from attestation.checks import CheckName
from attestation.receipt_chain import verify_receipts
from attestation.receipt_texts import ReceiptTexts
from backtest.chart import ChartError
from devnet.demo_chart import DEFAULT_CHART, write_demo_chart
from devnet.demo_run import Session, demo_session
from devnet.dex import pool_price
from devnet.hostile import KINDS, run_attack
from host.chain.audit import AuditCheck, audit_agent

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
        "--hostile-host",
        choices=KINDS,
        help="after the run, attack the vault as a lying host "
        "(price-walk) or a thief holding the agent's key (leaked-key), and report what held",
    )
    parser.add_argument(
        "--chart",
        type=Path,
        default=DEFAULT_CHART,
        metavar="PNG",
        help=f"write the run's chart here: price, trades, value beside holding "
        f"(default: {DEFAULT_CHART})",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object on the last line"
    )
    args = parser.parse_args(argv)
    try:  # found out now, not after the run
        args.chart.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"--chart {args.chart}: cannot make its directory: {exc.strerror or exc}")
    if not os.access(args.chart.parent, os.W_OK):
        parser.error(f"--chart {args.chart}: its directory is not writable")
    return args


def run_demo(args: argparse.Namespace) -> DemoResult:
    """Run the whole demo and summarize it; everything it started is stopped on return.

    Raises:
        SystemExit: no candles at the rows asked for.
        devnet.anvil.AnvilError, devnet.transactions.ChainError: the local chain failed.
    """
    started = time.monotonic()
    with demo_session(args) as session:
        attack = None if args.hostile_host is None else run_attack(args.hostile_host, session)
        summary, ok = _summarize(args, session, started)
        write_demo_chart(args.chart, session, summary)
        summary["chart"] = str(args.chart)
    if attack is not None:
        summary["attack"] = attack
        # Under attack the audit's job is to flag what the attacker did (a trade signed off
        # the record fails it); the run succeeds when the vault held.
        ok = (
            summary["receipts_verified"]
            and summary["attestation_verified"]
            and attack["value_lost_usd"] == 0
            and attack["max_notional_24h_usd"] <= attack["cap_per_day_usd"]
        )
    return DemoResult(summary, ok)


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
    trades = [t for t in session.vault.vault.trades() if t.agent == address]
    buys = sum(1 for t in trades if t.token_in == dex.usd)
    refusals = Counter(
        r.verdict.removeprefix("refused:") for r in receipts if r.verdict.startswith("refused:")
    )
    for record in records:  # refused ticks: one receipt per Ingest, counted by reason
        if record.receipt.verdict.startswith("ticks_refused:"):
            refusals.update(json.loads(record.input_json)["by_reason"])
    holds = sum(1 for r in receipts if r.verdict == "hold")
    audit = audit_agent(attestation, receipts, w3, anchors=session.anchors,
                        at=datetime.now(UTC), expected_head_hash=storage.head()[1],
                        vault=session.vault.vault.address,
                        texts=[ReceiptTexts(decision_json=r.decision_json,
                                            input_json=r.input_json) for r in records])  # fmt: skip
    attestation_ok = all(
        c.passed
        for c in audit.checks
        if c.name in (AuditCheck.ATTESTATION, CheckName.REPORT_DATA_BINDING)
    )

    end_balances = session.vault_balances()
    price = pool_price(w3, dex, "ETH/USD")
    weth_decimals, usd_decimals = tokens["WETH"][1], tokens["USD"][1]

    def value(balances: dict[str, int], at_price: Decimal) -> Decimal:
        return (Decimal(balances["WETH"]).scaleb(-weth_decimals) * at_price
                + Decimal(balances["USD"]).scaleb(-usd_decimals))  # fmt: skip

    # What the portfolio was worth at the start and is now, each at its own price, and what
    # trading added over holding the starting portfolio (both valued at the end price).
    start_value = value(start_balances, session.start_price)
    end_value = value(end_balances, price)
    vs_hold = end_value - value(start_balances, price)
    summary = {
        "policy": args.policy,
        "candles": args.hours,
        "agent": address,
        "trades": len(trades),
        "buys": buys,
        "sells": len(trades) - buys,
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
        "value_start_usd": _cents(start_value),
        "value_end_usd": _cents(end_value),
        "change_usd": _cents(end_value - start_value),
        "vs_hold_usd": _cents(vs_hold),
        "vault": vault_summary(session),
        "receipts": len(receipts),
        "receipts_verified": chain.valid,
        "attestation_verified": attestation_ok,
        "audit_verified": audit.valid,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    ok = chain.valid and attestation_ok and audit.valid
    return summary, ok


def _cents(amount: Decimal) -> float:
    return float(amount.quantize(Decimal("0.01")))


def vault_summary(session: Session) -> dict[str, Any]:
    """The vault's address, the agent's caps and notional of the last 24 hours (whole USD),
    and how many of the agent's transactions the vault reverted."""
    state = session.vault.vault.state(session.address)
    record = state.agent
    if record is None:  # state() was asked for the agent: it always reads its record
        raise AssertionError("the vault read no agent record")
    decimals = session.tokens["USD"][1]

    def usd(units: int) -> float:
        return float(Decimal(units).scaleb(-decimals))

    reverted = sum(1 for tx in session.host.storage.transactions() if tx.status == "reverted")
    return {
        "address": state.address,
        "cap_per_trade_usd": usd(record.cap_per_trade),
        "cap_per_day_usd": usd(record.cap_per_day),
        "notional_24h_usd": usd(record.notional_24h),
        "reverted": reverted,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the demo and print its summary; 0 when every verification passed, 1 when one
    failed, 130 on Ctrl-C."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        result = run_demo(args)
    except KeyboardInterrupt:
        return 130
    except ChartError as exc:
        print(f"error: the chart: {exc}", file=sys.stderr)
        return 2
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
        print(
            f"  portfolio         {summary['value_start_usd']:,.2f} -> "
            f"{summary['value_end_usd']:,.2f} USD ({summary['change_usd']:+,.2f} USD)"
        )
        print(f"  vs holding        {summary['vs_hold_usd']:+,.2f} USD (the start portfolio, held)")
        print(
            f"  receipts          {summary['receipts']}, chain verified: {summary['receipts_verified']}"
        )
        print(f"  attestation       verified: {summary['attestation_verified']}; "
              f"end-to-end audit: {summary['audit_verified']}")  # fmt: skip
        print(f"  chart             {summary['chart']}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
