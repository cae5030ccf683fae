"""The `tee-agent vault` commands' parser (a part of `host.cli.parser`, split off for size)."""

from __future__ import annotations

import argparse
from pathlib import Path

from host.cli.command_parser import Subparsers

_VAULT_DESCRIPTION = """\
The owner's side of the GuardedVault, the contract that holds the funds and lets the
attested agent key only swap, within caps and a TWAP bound the chain itself enforces.
Transactions are signed with the owner's key (--key FILE: a secp256k1 private key as hex,
mode 0600); `observe`, which anyone may call, with any funded key. Exit 0: done; 1: a check failed or the chain refused (the contract's error is
named); 2: bad input, an unreachable node, or no vault at --vault.
"""

_VAULT_REGISTER_DESCRIPTION = """\
Verify the agent's attestation first, as `tee-agent attest` does (--trust-root, --policy,
--at), then check that it attests the SHA-256 config hash of --config, that this config names
this vault and prices its pairs in the vault's quote token, and only then register the
attested address with the config's guardrail caps. Any failed check: exit 1, nothing sent.
"""


def add_vault(commands: Subparsers) -> None:
    """`vault deploy|register|revoke|deposit|withdraw|pause|unpause|observe|status`."""
    vault = commands.add_parser(
        "vault",
        help="deploy and run the GuardedVault that holds the agent's funds",
        description=_VAULT_DESCRIPTION,
    )
    actions = vault.add_subparsers(dest="vault_command", metavar="ACTION")
    actions.required = True

    deploy = actions.add_parser("deploy", help="deploy a vault, allowlist a router and markets")
    add = deploy.add_argument
    add("--quote-token", required=True, metavar="ADDR", help="the token caps are valued in")
    add(
        "--twap-window",
        type=int,
        default=1800,
        metavar="S",
        help="shortest span of the TWAP a trade is checked against, in seconds (default 1800)",
    )
    add(
        "--twap-max-age",
        type=int,
        default=7200,
        metavar="S",
        help="longest span of that TWAP, in seconds (default 7200)",
    )
    add(
        "--max-deviation-bps",
        type=int,
        default=300,
        metavar="N",
        help="how far a trade's minimum output may sit below the TWAP's (default 300)",
    )
    add("--router", metavar="ADDR", help="allowlist this Uniswap V2 Router02")
    add("--market", action="append", default=[], metavar="BASE=PAIR",
        help="allowlist trading token BASE in Uniswap V2 pair PAIR; may be repeated")  # fmt: skip
    deploy.set_defaults(command_module="host.cli.vault_deploy")

    register = actions.add_parser(
        "register",
        help="verify an agent's attestation, then register it with its config's caps",
        description=_VAULT_REGISTER_DESCRIPTION,
    )
    add = register.add_argument
    add("--config", required=True, type=Path, metavar="FILE",
        help="the agent's enclave config (enclave.toml): its hash, vault and caps")  # fmt: skip
    source = register.add_mutually_exclusive_group(required=True)
    source.add_argument("--host", metavar="HOST:PORT", help="fetch a fresh quote from this agent")
    source.add_argument("--attestation", type=Path, metavar="FILE",
                        help="an attestation saved by `tee-agent attest --out`")  # fmt: skip
    add("--tls-ca", metavar="PEM", help="with --host: use TLS, trusting this CA certificate")
    add("--trust-root", metavar="PEM", action="append", default=[], help="also trust this root")
    add("--policy", metavar="FILE", help="validation policy (TOML)")
    add("--at", metavar="RFC3339", help="verify as of this time (default now)")
    register.set_defaults(command_module="host.cli.vault_register")

    revoke = actions.add_parser("revoke", help="revoke an agent: its calls revert from now on")
    revoke.add_argument("--agent", required=True, metavar="ADDR", help="the agent's address")
    deposit = actions.add_parser("deposit", help="approve and deposit tokens into the vault")
    withdraw = actions.add_parser("withdraw", help="withdraw tokens from the vault")
    for parser, verb in ((deposit, "deposit"), (withdraw, "withdraw")):
        parser.add_argument("--token", required=True, metavar="ADDR", help="the ERC-20 token")
        parser.add_argument("--amount", required=True, metavar="N",
                            help=f"whole tokens to {verb}, e.g. 1.5 (by the token's decimals)")  # fmt: skip
    withdraw.add_argument("--to", metavar="ADDR", help="recipient (default: the owner)")
    pause = actions.add_parser("pause", help="stop all trading through the vault")
    unpause = actions.add_parser("unpause", help="allow trading again")
    for parser in (revoke, deposit, withdraw, pause, unpause):
        parser.set_defaults(command_module="host.cli.vault_owner_calls")

    observe = actions.add_parser(
        "observe", help="record a price observation of each market (anyone may; for a keeper)"
    )
    observe.add_argument("--base", required=True, action="append", metavar="ADDR",
                         help="the market's base token; may be repeated")  # fmt: skip
    observe.set_defaults(command_module="host.cli.vault_observe")

    status = actions.add_parser("status", help="the vault's settings, balances and an agent")
    status.add_argument("--agent", metavar="ADDR", help="also this agent's caps and spending")
    status.set_defaults(command_module="host.cli.vault_status")

    for parser in (deploy, register, revoke, deposit, withdraw, pause, unpause, observe, status):
        add = parser.add_argument
        add("--rpc", required=True, metavar="URL", help="JSON-RPC URL of the chain")
        if parser is not deploy:
            add("--vault", required=True, metavar="ADDR", help="the GuardedVault's address")
        if parser is observe:
            add("--key", required=True, type=Path, metavar="FILE",
                help="a funded account's secp256k1 private key, hex (mode 0600): it pays the gas")  # fmt: skip
        elif parser is not status:
            add("--key", required=True, type=Path, metavar="FILE",
                help="the owner's secp256k1 private key, hex (mode 0600)")  # fmt: skip
        add("--json", action="store_true", help="print one JSON object")
        add("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
