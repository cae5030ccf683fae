"""`tee-agent vault revoke|deposit|withdraw|pause|unpause`: the owner's calls on a vault.

    tee-agent vault revoke   --agent ADDR                         --rpc URL --key FILE --vault ADDR
    tee-agent vault deposit  --token ADDR --amount N              (same)
    tee-agent vault withdraw --token ADDR --amount N [--to ADDR]  (same)
    tee-agent vault pause | unpause                               (same)

Amounts are whole tokens ("1.5"), converted with the token's own decimals(). Each command
checks that the key is the vault's owner (and, for a deposit or withdrawal, that the tokens
are there) before it sends anything, then prints the transaction and the vault's event.
Exit codes: `host.cli.vault_chain`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from web3.types import TxReceipt

from host.chain.vault_owner import VaultOwner
from host.cli.connection import ClientError
from host.cli.outcome import EXIT_CHECK_FAILED, EXIT_OK
from host.cli.vault_chain import (
    Token,
    balance_of,
    connect,
    describe_event,
    open_vault,
    parse_address,
    parse_amount,
    print_result,
    run_on_chain,
    token,
    transaction,
    units_of,
    vault_events,
    whole,
)
from host.cli.vault_key import load_owner_key


@dataclass(frozen=True)
class _Done:
    """What a call did: its receipt, a line saying so, and what JSON adds to the receipt."""

    receipt: TxReceipt
    summary: str
    details: dict[str, object]


def run(args: argparse.Namespace) -> int:
    """Carry out the owner's call named by the command; print it; return the exit code."""
    return run_on_chain(args, _call)


def _call(args: argparse.Namespace) -> int:
    action: Callable[[argparse.Namespace, VaultOwner], _Done] = _ACTIONS[args.vault_command]
    _check_inputs(args)
    account = load_owner_key(args.key)
    w3 = connect(args.rpc)
    vault = open_vault(w3, args.vault)
    owner = vault.state().owner
    if owner != account.address:
        raise ClientError(
            f"--key: {account.address} is not the vault's owner ({owner}); nothing sent",
            EXIT_CHECK_FAILED,
        )
    done = action(args, VaultOwner(vault, account))
    events = vault_events(vault, done.receipt)
    result = {"action": args.vault_command, "vault": vault.address, **done.details,
              **transaction(done.receipt), "events": events}  # fmt: skip
    lines = [f"{done.summary} (tx {result['tx']}, block {result['block']})"]
    lines += [f"  event {describe_event(event)}" for event in events]
    print_result(args, result, lines)
    return EXIT_OK


def _check_inputs(args: argparse.Namespace) -> None:
    """Refuse a malformed address or amount before the node is asked anything."""
    for option in ("agent", "token", "to"):
        text = vars(args).get(option)
        if text is not None:
            parse_address(text, f"--{option}")
    if vars(args).get("amount") is not None:
        parse_amount(args.amount)


def _revoke(args: argparse.Namespace, owner: VaultOwner) -> _Done:
    agent = parse_address(args.agent, "--agent")
    receipt = owner.revoke(agent)
    return _Done(receipt, f"revoked agent {agent}", {"agent": agent})


def _amount(args: argparse.Namespace, owner: VaultOwner) -> tuple[Token, int]:
    found = token(owner.vault.w3, parse_address(args.token, "--token"))
    return found, units_of(parse_amount(args.amount), found)


def _token_details(found: Token, units: int) -> dict[str, object]:
    return {
        "token": {"address": found.address, "symbol": found.symbol, "decimals": found.decimals},
        "amount": whole(units, found.decimals),
        "units": units,
    }


def _shown(found: Token, units: int) -> str:
    return f"{whole(units, found.decimals)} {found.symbol or found.address}"


def _deposit(args: argparse.Namespace, owner: VaultOwner) -> _Done:
    found, units = _amount(args, owner)
    held = balance_of(owner.vault.w3, found.address, owner.account.address)
    if held < units:
        raise ClientError(
            f"the owner holds {_shown(found, held)}, less than {_shown(found, units)}; "
            "nothing sent",
            EXIT_CHECK_FAILED,
        )
    receipt = owner.deposit(found.address, units)
    return _Done(receipt, f"deposited {_shown(found, units)}", _token_details(found, units))


def _withdraw(args: argparse.Namespace, owner: VaultOwner) -> _Done:
    found, units = _amount(args, owner)
    to = parse_address(args.to, "--to") if args.to else owner.account.address
    held = balance_of(owner.vault.w3, found.address, owner.vault.address)
    if held < units:
        raise ClientError(
            f"the vault holds {_shown(found, held)}, less than {_shown(found, units)}; "
            "nothing sent",
            EXIT_CHECK_FAILED,
        )
    receipt = owner.withdraw(found.address, units, to)
    details = {**_token_details(found, units), "to": to}
    return _Done(receipt, f"withdrew {_shown(found, units)} to {to}", details)


def _pause(_args: argparse.Namespace, owner: VaultOwner) -> _Done:
    return _Done(owner.pause(), f"paused the vault {owner.vault.address}", {})


def _unpause(_args: argparse.Namespace, owner: VaultOwner) -> _Done:
    return _Done(owner.unpause(), f"unpaused the vault {owner.vault.address}", {})


_ACTIONS: dict[str, Callable[[argparse.Namespace, VaultOwner], _Done]] = {
    "revoke": _revoke,
    "deposit": _deposit,
    "withdraw": _withdraw,
    "pause": _pause,
    "unpause": _unpause,
}
