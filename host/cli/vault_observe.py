"""`tee-agent vault observe --base ADDR [--base ADDR ...]`: record a price observation.

    tee-agent vault observe --base ADDR --rpc URL --key FILE --vault ADDR [--json]

The vault values trades at a TWAP between two observations of a pool's cumulative price; it
records one when `observe(base)` is called and the newest is at least a TWAP window old.
Anyone may call it: the key only pays the gas (it need not be the owner's). Without
observations at least once per `twapMaxAge`, trades revert (`TwapUnavailable`), so a keeper
runs this from cron about once per TWAP window. A call within a window of the last
observation records nothing and says so. Exit codes: `host.cli.vault_chain`.
"""

from __future__ import annotations

import argparse

from host.chain.transact import send_transaction
from host.cli.vault_chain import (
    connect,
    open_vault,
    parse_address,
    print_result,
    run_on_chain,
    transaction,
    vault_events,
)
from host.cli.vault_key import load_owner_key


def run(args: argparse.Namespace) -> int:
    """Observe each base token's pool; print what was recorded; return the exit code."""
    return run_on_chain(args, _observe)


def _observe(args: argparse.Namespace) -> int:
    bases = [parse_address(text, "--base") for text in args.base]
    account = load_owner_key(args.key)
    w3 = connect(args.rpc)
    vault = open_vault(w3, args.vault)
    results: list[dict[str, object]] = []
    lines = []
    for base in bases:
        receipt = send_transaction(
            w3, account, vault.contract.functions.observe(base), what=f"observe({base})"
        )
        recorded = [e for e in vault_events(vault, receipt) if e["event"] == "Observed"]
        results.append({"base": base, "recorded": bool(recorded), **transaction(receipt)})
        lines.append(
            f"{base}: "
            + (
                f"observation recorded at {recorded[0]['timestamp']}"
                if recorded
                else "nothing recorded: the newest observation is younger than the TWAP window"
            )
            + f" (tx {results[-1]['tx']}, block {results[-1]['block']})"
        )
    print_result(args, {"vault": vault.address, "observations": results}, lines)
    return 0
