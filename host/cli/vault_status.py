"""`tee-agent vault status`: a vault's settings, allowlists and balances, and one agent's record.

    tee-agent vault status --rpc URL --vault ADDR [--agent ADDR] [--json]

Everything is read at one block. The markets and routers are those the vault's MarketSet
and RouterSet events ever named, each with whether it is allowed now; the balances are the
vault's own, of the quote token and of every market's base token. With --json, amounts are
whole tokens as decimal strings beside their smallest units (`…_units`, integers).
Exit codes: `host.cli.vault_chain` (0 when the vault could be read).
"""

from __future__ import annotations

import argparse
from typing import Any

from host.chain.vault import AgentRecord, Vault, VaultState
from host.cli.outcome import EXIT_OK
from host.cli.vault_chain import (
    Token,
    balance_of,
    connect,
    json_value,
    open_vault,
    parse_address,
    print_result,
    run_on_chain,
    token,
    whole,
)


def run(args: argparse.Namespace) -> int:
    """Print the vault's status as a summary or JSON; return the exit code."""
    return run_on_chain(args, _status)


def _status(args: argparse.Namespace) -> int:
    agent = parse_address(args.agent, "--agent") if args.agent else None
    w3 = connect(args.rpc)
    vault = open_vault(w3, args.vault)
    state = vault.state(agent)
    quote = token(w3, state.quote_token)
    markets = _markets(vault, state.block)
    routers = _routers(vault, state.block)
    held = [quote, *(token(w3, market["base"]) for market in markets)]
    balances = [
        _amounts(found, balance_of(w3, found.address, vault.address, state.block)) for found in held
    ]
    result = {
        "vault": vault.address,
        "chain_id": w3.eth.chain_id,
        "block": state.block,
        "owner": state.owner,
        "paused": state.paused,
        "quote_token": _token(quote),
        "twap": {
            "window_seconds": state.twap_window,
            "max_age_seconds": state.twap_max_age,
            "max_deviation_bps": state.max_deviation_bps,
        },
        "routers": routers,
        "markets": markets,
        "balances": balances,
        "agent": None if state.agent is None else _agent(state.agent, quote),
    }
    print_result(args, result, _lines(state, quote, result))
    return EXIT_OK


def _token(found: Token) -> dict[str, object]:
    return {"address": found.address, "symbol": found.symbol, "decimals": found.decimals}


def _amounts(found: Token, units: int) -> dict[str, object]:
    return {**_token(found), "amount": whole(units, found.decimals), "units": units}


def _markets(vault: Vault, block: int) -> list[dict[str, Any]]:
    """Every base token a MarketSet event named, oldest first, with its pair now."""
    logs = vault.contract.events.MarketSet().get_logs(from_block=0, to_block=block)
    bases = list(dict.fromkeys(str(json_value(log["args"]["base"])) for log in logs))
    markets = []
    for base in bases:
        pair, _base_is_token0, allowed = vault.contract.functions.markets(base).call(
            block_identifier=block
        )
        markets.append({"base": base, "pair": json_value(pair), "allowed": bool(allowed)})
    return markets


def _routers(vault: Vault, block: int) -> list[dict[str, object]]:
    """Every router a RouterSet event named, oldest first, with whether it is allowed now."""
    logs = vault.contract.events.RouterSet().get_logs(from_block=0, to_block=block)
    routers = dict.fromkeys(str(json_value(log["args"]["router"])) for log in logs)
    return [
        {"address": router, "allowed": bool(vault.contract.functions.routers(router).call(
            block_identifier=block))}
        for router in routers
    ]  # fmt: skip


def _agent(record: AgentRecord, quote: Token) -> dict[str, object]:
    out: dict[str, object] = {"address": record.address, "active": record.active}
    for name, units in (
        ("cap_per_trade", record.cap_per_trade),
        ("cap_per_day", record.cap_per_day),
        ("notional_24h", record.notional_24h),
        ("left_24h", record.left_today),
    ):
        out[name] = whole(units, quote.decimals)
        out[f"{name}_units"] = units
    out["last_receipt_seq"] = record.last_receipt_seq
    for name, value in (
        ("config_hash", record.config_hash),
        ("measurement", record.measurement),
        ("quote_hash", record.quote_hash),
    ):
        out[name] = "0x" + value.hex()
    return out


def _lines(state: VaultState, quote: Token, result: dict[str, Any]) -> list[str]:
    symbol = quote.symbol or quote.address
    lines = [
        f"vault {state.address} on chain {result['chain_id']} at block {state.block}",
        f"owner: {state.owner}",
        f"paused: {'yes' if state.paused else 'no'}",
        f"quote token: {symbol} {quote.address} ({quote.decimals} decimals)",
        f"twap: window {state.twap_window} s, max age {state.twap_max_age} s, "
        f"max deviation {state.max_deviation_bps} bps",
    ]
    for router in result["routers"]:
        lines.append(f"router {router['address']}: {_allowed(router['allowed'])}")
    for market in result["markets"]:
        lines.append(f"market {market['base']} in pair {market['pair']}: "
                     f"{_allowed(market['allowed'])}")  # fmt: skip
    shown = [f"{b['amount']} {b['symbol'] or b['address']}" for b in result["balances"]]
    lines.append(f"balances: {', '.join(shown)}")
    agent = result["agent"]
    if agent is not None:
        lines += [
            f"agent {agent['address']}: {'active' if agent['active'] else 'not active'}",
            f"  caps: {agent['cap_per_trade']} {symbol} per trade, {agent['cap_per_day']} "
            f"{symbol} per 24 h",
            f"  last 24 h: {agent['notional_24h']} {symbol} used, {agent['left_24h']} {symbol} "
            "left",
            f"  last receipt seq: {agent['last_receipt_seq']}",
            f"  config hash {agent['config_hash']}",
            f"  measurement {agent['measurement']}",
            f"  quote hash {agent['quote_hash']}",
        ]
    return lines


def _allowed(allowed: bool) -> str:
    return "allowed" if allowed else "not allowed"
