"""The `tee-agent` parser: every command, its arguments and their help.

Each command's parser records, as `command_module`, the module that carries it out (a
module of this package with a `run(args) -> int`); `host.cli.entry` imports only that one.
This module imports no command module and nothing heavier than argparse, so that building
the parser, and `--help`, costs next to nothing: `verify agent`, `run` and `vault` need
web3, which takes over a second to import, and no other command should wait for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeAlias

# A string: argparse's action class is generic to type checkers only.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# The address client commands call when neither --host nor $TEE_AGENT_HOST is given.
DEFAULT_HOST = "127.0.0.1:50051"
# attestation.binding.NONCE_SIZE, written out: importing attestation (pydantic models) would
# cost every command, even `--help`, a fifth of a second. tests/test_cli.py checks it.
NONCE_SIZE = 32

_VERIFY_QUOTE_DESCRIPTION = (
    "Verify signatures and certificate chains of attestation evidence at a time, "
    "up to pinned vendor roots, and optionally apply a validation policy. "
    "Exit 0: genuine (and the policy holds, when given); 1: well-formed but a check "
    "failed; 2: input cannot be parsed or the command was misused."
)
_VERIFY_AGENT_DESCRIPTION = """\
With --host, the quote (over a fresh nonce), the receipts and the head hash come from a
running agent. With --receipts, they come from files: `tee-agent receipts --out FILE` and
`tee-agent attest --out FILE`. With --vault, the agent trades through that guarded vault:
its trades are linked to receipts by digest, and the vault itself is checked (its code, its
active agents, its trades, what left it). Exit codes as `verify quote`: 0 everything holds,
1 a check fails, 2 the input cannot be used.
"""
_RUN_DESCRIPTION = (
    "Run the agent until stopped. A second start on the same data directory resumes "
    "from the stored sealed state and receipts."
)
_INIT_DESCRIPTION = """\
`tee-agent init [--dir D] [--force]` writes, in D:
- `tee-agent.toml`, the host's config, every key present with a comment giving its default;
- `enclave.toml`, the measured enclave config: the rule policy replaying the bundled
  ETH/USDT candles (`clock = "replay"`) on a local chain (id 31337);
- `owner.key` (mode 0600), the owner's new Ed25519 key as a hex seed, whose public key is
  put in `enclave.toml` so that only its holder can pause and resume the agent;
- `auth-token` (mode 0600), a random bearer token for the host's write RPCs.
Existing files are only overwritten with `--force`.
"""
_FORWARDED = (
    ("enclave", "run the enclave process: `tee-agent enclave serve --help`"),
    ("sim", "the simulated TEE platform: `tee-agent sim init`, `tee-agent sim quote`"),
    ("replay-decision", "recompute a receipt's LLM decision: RECEIPT --config F --model M"),
)
_RECEIPTS_FILE_HELP = "an array; with --seq one object: for `verify agent` and `replay-decision`"
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
_ATTEST_HELP = (
    "fetch a fresh quote over a nonce and verify it, its binding to the agent's identity "
    "and the nonce, and the policy. Exit 0: all hold; 1: a check failed; 2: bad input or no agent"
)


def build_parser() -> argparse.ArgumentParser:
    """The full `tee-agent` parser; each command sets `command_module` (see the docstring)."""
    parser = argparse.ArgumentParser(
        prog="tee-agent",
        description="Autonomous DeFi agent whose keys live in a TEE: run it, verify it.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log details, and the traceback of an internal error, to stderr",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    _add_verify(commands)
    _add_forwarded(commands)
    _add_run(commands)
    _add_init(commands)
    _add_clients(commands)
    _add_vault(commands)
    _add_backtest(commands)
    return parser


def _add_verify(commands: Subparsers) -> None:
    verify = commands.add_parser("verify", help="verify attestation evidence offline")
    kinds = verify.add_subparsers(dest="verify_command", metavar="WHAT")
    kinds.required = True
    quote = kinds.add_parser(
        "quote",
        help="verify a TDX/SGX quote, Nitro document, SEV-SNP report or simulated quote",
        description=_VERIFY_QUOTE_DESCRIPTION,
    )
    quote.add_argument(
        "file",
        metavar="FILE",
        help="the evidence: raw bytes, hex or base64 text ('-' reads standard input)",
    )
    quote.add_argument(
        "--collateral",
        metavar="FILE",
        action="append",
        default=[],
        help="Intel collateral (one dcap-qvl JSON bundle or several PCS files) or, for "
        "SEV-SNP, the VCEK certificate; may be given several times",
    )
    quote.add_argument("--policy", metavar="FILE", help="validation policy (TOML)")
    quote.add_argument(
        "--nonce",
        metavar="HEX",
        help=f"the {NONCE_SIZE}-byte nonce a policy's [report_data] prefix expects",
    )
    quote.add_argument(
        "--at",
        metavar="RFC3339",
        help="verify as of this time, with a zone (e.g. 2025-07-01T00:00:00Z); default now",
    )
    quote.add_argument(
        "--trust-root",
        metavar="PEM",
        action="append",
        default=[],
        help="also trust this root certificate (e.g. the simulated root); may be repeated",
    )
    quote.add_argument("--json", action="store_true", help="print one JSON object")
    quote.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log details"
    )
    quote.set_defaults(command_module="host.cli.verify_quote")

    agent = kinds.add_parser(
        "agent",
        help="audit an agent: attestation, receipt chain, and its transactions on chain",
        description=_VERIFY_AGENT_DESCRIPTION,
    )
    agent.add_argument("--rpc", required=True, help="JSON-RPC URL of the chain the agent uses")
    source = agent.add_mutually_exclusive_group(required=True)
    source.add_argument("--host", help="a running agent's public API, HOST:PORT")
    source.add_argument("--receipts", type=Path, help="receipts file (tee-agent receipts --out)")
    agent.add_argument("--attestation", type=Path, help="attestation file (tee-agent attest --out)")
    agent.add_argument("--trust-root", action="append", default=[], help="extra trusted root")
    agent.add_argument("--policy", type=Path, help="validation policy (TOML)")
    agent.add_argument("--at", help="verify as of this RFC 3339 time (default now)")
    agent.add_argument("--from-block", type=int, default=0, help="first block to scan")
    agent.add_argument("--vault", metavar="ADDRESS", help="the agent's guarded vault: audit it too")
    agent.add_argument("--json", action="store_true", help="print one JSON object")
    agent.set_defaults(command_module="host.cli.verify_agent")


def _add_forwarded(commands: Subparsers) -> None:
    # Run in the enclave's own process: host.cli.forward hands the arguments over untouched.
    for name, summary in _FORWARDED:
        parser = commands.add_parser(name, help=summary, add_help=False)
        parser.add_argument("arguments", nargs=argparse.REMAINDER)
        parser.set_defaults(command_module="host.cli.forward")


def _add_run(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "run",
        help="run the agent: host, enclave, public API, metrics and market replay",
        description=_RUN_DESCRIPTION,
    )
    parser.add_argument("--config", type=Path, help="host config (TOML); see `tee-agent init`")
    parser.add_argument("--listen", help="public API address HOST:PORT (overrides the config)")
    parser.add_argument("--data-dir", type=Path, help="where state lives (overrides the config)")
    parser.set_defaults(command_module="host.cli.run")


def _add_init(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "init",
        help="write a ready-to-run agent directory: configs, owner key, auth token",
        description=_INIT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dir", type=Path, default=Path(), help="directory to write into (default: .)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.set_defaults(command_module="host.cli.init")


def _add_clients(commands: Subparsers) -> None:
    """`status`, `receipts` and `attest`: clients of a running agent's public API."""
    status = commands.add_parser("status", help="a running agent's health and counters")
    status.set_defaults(command_module="host.cli.status")

    receipts = commands.add_parser("receipts", help="a running agent's decision receipts")
    add = receipts.add_argument
    add("--from", dest="from_seq", type=int, default=1, metavar="SEQ", help="first seq (default 1)")
    add("--limit", type=int, metavar="N", help="at most N receipts")
    add("--follow", action="store_true", help="then new ones until Ctrl-C (--from 0: new only)")
    add("--seq", type=int, metavar="N", help="only the receipt with seq N")
    add("--out", type=Path, metavar="FILE", help=f"write them as JSON ({_RECEIPTS_FILE_HELP})")
    receipts.set_defaults(command_module="host.cli.receipts")

    attest = commands.add_parser("attest", help=_ATTEST_HELP, description=_ATTEST_HELP)
    add = attest.add_argument
    add("--nonce", metavar="HEX", help=f"{NONCE_SIZE}-byte nonce (default: random)")
    add("--trust-root", metavar="PEM", action="append", default=[], help="also trust this root")
    add("--at", metavar="RFC3339", help="verify as of this time (default now)")
    add("--policy", metavar="FILE", help="validation policy (TOML)")
    add("--out", type=Path, metavar="FILE",
        help="also save the quote, nonce and identity (for `verify agent --attestation`)")  # fmt: skip
    attest.set_defaults(command_module="host.cli.attest")

    for parser in (status, receipts, attest):
        add = parser.add_argument
        add("--host", metavar="HOST:PORT", help=f"default $TEE_AGENT_HOST or {DEFAULT_HOST}")
        add("--tls-ca", metavar="PEM", help="use TLS, trusting this CA certificate")
        add("--json", action="store_true", help="print JSON")
        add("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)


def _add_vault(commands: Subparsers) -> None:
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


_BACKTEST_DESCRIPTION = """\
Run a policy over a candles file through the enclave's own decision path and guardrails,
without a chain: each candle is one tick, its close the price and the TWAP, and each swap
the enclave signs is filled at the close less the pool's fee and a slippage (a fill below
the swap's signed minimum out is a revert). Reports the portfolio's start and end value,
its return beside holding and buy-and-hold, the max drawdown, trades, fees and refusals by
guardrail; gaps in the candles are reported, never filled. See docs/backtest.md.
Exit 0: done; 2: the input cannot be used.
"""


def _add_backtest(commands: Subparsers) -> None:
    """`backtest`: carried out by backtest.cli (outside host/: it drives the enclave's code)."""
    parser = commands.add_parser(
        "backtest",
        help="run a policy over a candles file through the enclave's decision path",
        description=_BACKTEST_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--candles", required=True, type=Path, metavar="FILE",
        help="OHLCV candles: CSV (timestamp,open,high,low,close,volume) or freqtrade JSON")  # fmt: skip
    add("--config", type=Path, metavar="FILE",
        help="the measured enclave config (default: the one `tee-agent init` writes)")  # fmt: skip
    add("--policy", choices=["rule", "llm"], help="who decides (default: the config's policy)")
    add("--model", type=Path, metavar="GGUF", help="the LLM policy's model (default: SmolLM2)")
    add(
        "--pair",
        metavar="BASE/QUOTE",
        help="the config's pair the candles are (default: its first)",
    )
    add("--start", metavar="T", help="first candle at or after T (ISO 8601 or epoch ms)")
    add("--end", metavar="T", help="last candle before T (ISO 8601 or epoch ms)")
    add("--balance", action="append", default=[], metavar="SYMBOL=AMOUNT",
        help="starting balance in whole tokens; may be repeated (default: 2 base, 10000 quote)")  # fmt: skip
    add(
        "--fee-bps",
        type=int,
        default=30,
        metavar="N",
        help="the pool's fee (default 30: Uniswap V2)",
    )
    add("--slippage-bps", type=int, default=10, metavar="N",
        help="slippage against the trader on each fill (default 10)")  # fmt: skip
    add("--chart", type=Path, metavar="PNG", help="write a chart of price, trades and value")
    add(
        "--report",
        type=Path,
        metavar="HTML",
        help="write an HTML report: the figures and the chart",
    )
    add("--receipts", type=Path, metavar="FILE",
        help="write every receipt with its decision and input as JSON lines")  # fmt: skip
    add("--json", action="store_true", help="print one JSON object on one line")
    add("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    parser.set_defaults(command_module="backtest.cli")
