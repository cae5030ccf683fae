"""`tee-agent vault deploy`: deploy a GuardedVault, allowlist a router and markets.

    tee-agent vault deploy --rpc URL --key FILE --quote-token ADDR [--twap-window S]
                           [--twap-max-age S] [--max-deviation-bps N] [--router ADDR]
                           [--market BASE=PAIR]... [--json]

The key's account becomes the vault's owner. Prints the vault's address, and each
transaction. Exit codes: `host.cli.vault_chain`.
"""

from __future__ import annotations

import argparse

from host.chain.vault_owner import TwapSettings, VaultOwner, deploy_vault
from host.cli.outcome import EXIT_OK, UsageError
from host.cli.vault_chain import (
    connect,
    parse_address,
    print_result,
    run_on_chain,
    token,
    transaction,
)
from host.cli.vault_key import load_owner_key

_BPS = 10_000


def run(args: argparse.Namespace) -> int:
    """Carry out `vault deploy`; print the result; return the exit code."""
    return run_on_chain(args, _deploy)


def _markets(texts: list[str]) -> list[tuple[str, str]]:
    markets = []
    for text in texts:
        base, separator, pair = text.partition("=")
        if not separator:
            raise UsageError(f"--market: expected BASE=PAIR (two addresses), found {text!r}")
        markets.append((parse_address(base, "--market BASE"), parse_address(pair, "--market PAIR")))
    return markets


def _twap(args: argparse.Namespace) -> TwapSettings:
    # The constructor's own bounds (GuardedVault._setTwap), checked first so that a bad
    # setting is a usage error, not a reverted deployment.
    if not 1 <= args.twap_window <= args.twap_max_age < 2**32:
        raise UsageError(
            f"--twap-window ({args.twap_window}) must be at least 1 and at most --twap-max-age "
            f"({args.twap_max_age}), which must be below 2**32 seconds"
        )
    if not 1 <= args.max_deviation_bps < _BPS:
        raise UsageError(
            f"--max-deviation-bps: expected 1 to {_BPS - 1}, found {args.max_deviation_bps}"
        )
    return TwapSettings(args.twap_window, args.twap_max_age, args.max_deviation_bps)


def _deploy(args: argparse.Namespace) -> int:
    quote = parse_address(args.quote_token, "--quote-token")
    router = parse_address(args.router, "--router") if args.router else None
    markets = _markets(args.market)
    twap = _twap(args)
    owner = load_owner_key(args.key)
    w3 = connect(args.rpc)
    token(w3, quote)  # an ERC-20 with decimals, or exit 2 before anything is sent
    vault, receipt = deploy_vault(w3, owner, quote, twap)
    owner_calls = VaultOwner(vault, owner)
    router_tx = None if router is None else transaction(owner_calls.set_router(router))
    market_txs = [
        {"base": base, "pair": pair, **transaction(owner_calls.set_market(base, pair))}
        for base, pair in markets
    ]
    result = {
        "address": vault.address,
        **transaction(receipt),
        "owner": owner.address,
        "quote_token": quote,
        "chain_id": w3.eth.chain_id,
        "twap": {
            "window_seconds": twap.window_seconds,
            "max_age_seconds": twap.max_age_seconds,
            "max_deviation_bps": twap.max_deviation_bps,
        },
        "router": None if router is None else {"address": router, **(router_tx or {})},
        "markets": market_txs,
    }
    lines = [
        f"deployed GuardedVault at {vault.address} (tx {result['tx']}, block {result['block']})",
        f"owner {owner.address}, quote token {quote}",
        f"twap: window {twap.window_seconds} s, max age {twap.max_age_seconds} s, "
        f"max deviation {twap.max_deviation_bps} bps",
    ]
    if router_tx is not None:
        lines.append(f"router {router} allowed (tx {router_tx['tx']})")
    lines += [f"market {m['base']} in pair {m['pair']} allowed (tx {m['tx']})" for m in market_txs]
    print_result(args, result, lines)
    return EXIT_OK
