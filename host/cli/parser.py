"""The `tee-agent` parser: every command, its arguments and their help.

Each command's parser records, as `command_module`, the module that carries it out (a
module of this package with a `run(args) -> int`); `host.cli.entry` imports only that one.
This module imports no command module and nothing heavier than argparse, so that building
the parser, and `--help`, costs next to nothing: `verify agent`, `run` and `vault` need
web3, which takes over a second to import, and no other command should wait for it.
"""

from __future__ import annotations

import argparse
from importlib import metadata
from pathlib import Path

from host.cli.command_parser import CommandParser, Subparsers
from host.cli.parser_vault import add_vault

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
With --host, the quote (over a fresh nonce) with its event log, the receipts and the head
hash come from a running agent. With --receipts, they come from files: `tee-agent receipts
--out FILE` and `tee-agent attest --out FILE`. A non-empty event log must replay to the
quote's RTMR0-3 (as `verify quote --event-log` checks) and record the attested config hash;
a policy's [event_log] rules read it, and fail without one. With --vault, the agent trades through that guarded vault:
its trades are linked to receipts by digest, and the vault itself is checked (its code, its
active agents, its trades, what left it). In an agent's directory (its tee-agent.toml,
or --config), --rpc, --host and --vault default to the config's chain, listen address and
vault. Exit codes as `verify quote`: 0 everything holds, 1 a check fails, 2 the input
cannot be used.
"""
_RUN_DESCRIPTION = (
    "Run the agent until stopped. A second start on the same data directory resumes "
    "from the stored sealed state and receipts."
)
_INIT_DESCRIPTION = """\
`tee-agent init [--dir D] [--force] [--json]` writes, in D:
- `tee-agent.toml`, the host's config, every key present with a comment giving its default;
- `enclave.toml`, the measured enclave config: the rule policy replaying the bundled
  ETH/USDT candles (`clock = "replay"`) on a local chain (id 31337);
- `owner.key` (mode 0600), the owner's new Ed25519 key as a hex seed, whose public key is
  put in `enclave.toml` so that only its holder can pause and resume the agent;
- `auth-token` (mode 0600), a random bearer token for the host's write RPCs.
Existing files are only overwritten with `--force`. Exit 0: written; 1: refused (files
exist) or the directory cannot be written.
"""
_FORWARDED = (
    ("enclave", "run the enclave process: `tee-agent enclave serve --help`"),
    ("sim", "the simulated TEE platform: `tee-agent sim init`, `tee-agent sim quote`"),
    ("replay-decision", "recompute a receipt's LLM decision: RECEIPT --config F --model M"),
)
_RECEIPTS_FILE_HELP = "an array; with --seq one object: for `verify agent` and `replay-decision`"
_ATTEST_HELP = (
    "fetch a fresh quote over a nonce and verify it, the event log served with it, its "
    "binding to the agent's identity and the nonce, and the policy. Exit 0: all hold; "
    "1: a check failed; 2: bad input or no agent"
)


FORWARDED_COMMANDS = frozenset(name for name, _ in _FORWARDED)
_VERBOSE_HELP = "log details, and the traceback of an internal error, to stderr"


def build_parser() -> argparse.ArgumentParser:
    """The full `tee-agent` parser; each command sets `command_module` (see the docstring)."""
    parser = CommandParser(
        prog="tee-agent",
        description="Autonomous DeFi agent whose keys live in a TEE: run it, verify it.",
        epilog="Exit codes, everywhere: 0 success; 1 the input is well-formed but a check "
        "failed; 2 bad input, misuse, or an agent or node that cannot be reached.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=_VERBOSE_HELP)
    parser.add_argument("--version", action="version", version=f"tee-agent {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    _add_verify(commands)
    _add_forwarded(commands)
    _add_run(commands)
    _add_init(commands)
    _add_clients(commands)
    add_vault(commands)
    _add_owner(commands)
    _add_backtest(commands)
    _add_completion(commands)
    for command in subcommands(parser):
        _verbose_after_the_command(command)
    return parser


def _version() -> str:
    try:
        return metadata.version("tee-agent")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below `parser`, depth first (forwarded commands included)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += [child, *subcommands(child)]
    return found


def _verbose_after_the_command(parser: argparse.ArgumentParser) -> None:
    """`-v` after the command too (`tee-agent run -v`), where the command has no `-v` of its
    own; it leaves the top-level flag alone when not given."""
    if "-v" not in parser._option_string_actions and parser.add_help:
        parser.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP
        )


def _add_completion(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "completion",
        help='print a shell completion script: eval "$(tee-agent completion bash)"',
        description="Print a completion script for bash or zsh, made from this parser: "
        'add `eval "$(tee-agent completion bash)"` to ~/.bashrc (or `zsh` to ~/.zshrc).',
    )
    parser.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete in")
    parser.set_defaults(command_module="host.cli.completion")


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
    quote.add_argument(
        "--event-log",
        metavar="FILE",
        help="the TD's event log: dstack's JSON form (or its GetQuote reply) or the CCEL "
        "binary; it must replay to the quote's RTMR0-3",
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
    agent.add_argument("--rpc", help="JSON-RPC URL of the chain the agent uses")
    agent.add_argument("--config", type=Path, metavar="FILE",
                       help="the agent's tee-agent.toml, for the defaults of --rpc, --host and "
                       "--vault (default: ./tee-agent.toml when there is one)")  # fmt: skip
    source = agent.add_mutually_exclusive_group()
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
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object: the files and the public key"
    )
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
        help="also save the quote, nonce, identity and event log as JSON (for `verify agent "
        "--attestation`; also an event log file for `verify quote --event-log`)")  # fmt: skip
    attest.set_defaults(command_module="host.cli.attest")

    for parser in (status, receipts, attest):
        add = parser.add_argument
        add("--host", metavar="HOST:PORT", help=f"default $TEE_AGENT_HOST or {DEFAULT_HOST}")
        add("--tls-ca", metavar="PEM", help="use TLS, trusting this CA certificate")
        add("--json", action="store_true", help="print JSON")
        add("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)


_OWNER_DESCRIPTION = """\
Send the owner's pause or resume to a running agent: verify its attestation over a fresh
nonce first (as `tee-agent attest`: --trust-root, --policy, --at), sign the command with the
owner's Ed25519 key (--key, default ./owner.key, which `tee-agent init` wrote), seal it to
the attested enclave key, send it with the host's bearer token ($TEE_AGENT_TOKEN, or
--token-file, default ./auth-token), and print the receipt the enclave made of it. To stop
the funds on chain as well: `tee-agent vault pause`. Exit 0: applied; 1: the attestation, a
check or the enclave refused; 2: bad input or no agent.
"""


def _add_owner(commands: Subparsers) -> None:
    owner = commands.add_parser(
        "owner",
        help="the owner's commands to a running agent: pause, resume",
        description=_OWNER_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    owner.add_argument("action", choices=("pause", "resume"), help="what the agent should do")
    add = owner.add_argument
    add("--key", type=Path, default=Path("owner.key"), metavar="FILE",
        help="the owner's Ed25519 seed, hex, mode 0600 (default: ./owner.key)")  # fmt: skip
    add("--token-file", type=Path, metavar="FILE",
        help="the host's bearer token (default: $TEE_AGENT_TOKEN, else ./auth-token)")  # fmt: skip
    add("--counter", type=int, metavar="N",
        help="the command's counter, above every one sent before (default: now in µs)")  # fmt: skip
    add("--config", type=Path, metavar="FILE",
        help="the agent's enclave.toml: its hash must be the one attested, its owner this key")  # fmt: skip
    add("--host", metavar="HOST:PORT", help=f"default $TEE_AGENT_HOST or {DEFAULT_HOST}")
    add("--tls-ca", metavar="PEM", help="use TLS, trusting this CA certificate")
    add("--trust-root", metavar="PEM", action="append", default=[], help="also trust this root")
    add("--policy", metavar="FILE", help="validation policy (TOML)")
    add("--at", metavar="RFC3339", help="verify as of this time (default now)")
    add("--json", action="store_true", help="print one JSON object")
    owner.set_defaults(command_module="host.cli.owner")


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
