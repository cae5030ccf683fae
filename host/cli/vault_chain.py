"""What every `tee-agent vault …` command shares: the node, the vault, tokens, amounts, output.

Each command runs through `run_on_chain`, which ends it the usual way: exit 0 done; 1 the
chain refused (a transaction would revert or reverted, named by the contract's own error)
or a check failed; 2 bad input, an unreachable node, or an address that holds no vault.
The RPC URL shows in messages as scheme://host:port only (its path often holds an API key).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, cast
from urllib.parse import urlsplit

from eth_typing import ABIEvent
from eth_utils import event_abi_to_log_topic, is_hex_address, to_checksum_address
from web3 import Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError, Web3Exception
from web3.types import BlockIdentifier, TxReceipt

from host.chain.fees import ChainReadError
from host.chain.node_errors import redact_error, redacted_url
from host.chain.transact import ChainError
from host.chain.vault import Vault, VaultError, artifact
from host.cli.connection import ClientError, report_failure
from host.cli.outcome import EXIT_CHECK_FAILED, UsageError, print_json

_RPC_TIMEOUT = 30
# The ERC-20 reads the commands make (decimals and symbol are optional in the standard,
# but every token the vault trades has decimals: amounts are converted with them).
_ERC20_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": name, "stateMutability": "view", "inputs": inputs,
     "outputs": [{"name": "", "type": kind}]}
    for name, inputs, kind in (
        ("decimals", [], "uint8"),
        ("symbol", [], "string"),
        ("balanceOf", [{"name": "owner", "type": "address"}], "uint256"),
    )
]  # fmt: skip


@dataclass(frozen=True)
class Token:
    """An ERC-20 token as the chain describes it (symbol None when it has none)."""

    address: str
    symbol: str | None
    decimals: int


def run_on_chain(args: argparse.Namespace, command: Callable[[argparse.Namespace], int]) -> int:
    """Run a vault command; an error prints `error: ...` (and `{"error": ...}` with --json)
    and returns its exit code (see the module docstring)."""
    error: ClientError | UsageError
    try:
        return command(args)
    except (ClientError, UsageError) as exc:
        error = exc
    except ChainError as exc:  # a revert, named by the contract's error: the chain refused
        error = ClientError(str(exc), EXIT_CHECK_FAILED)
    except ChainReadError as exc:  # e.g. no base fee: not a chain these commands can use
        error = ClientError(f"the chain at {_node(args)}: {exc}")
    except (OSError, Web3Exception) as exc:  # requests' errors are OSErrors
        error = ClientError(f"the chain at {_node(args)} failed: {redact_error(exc, args.rpc)}")
    return report_failure(error, {"error": str(error)} if args.json else None)


def _node(args: argparse.Namespace) -> str:
    try:
        return redacted_url(args.rpc)
    except ValueError:
        return "[url redacted]"


def connect(rpc: str) -> Web3:
    """A Web3 on the node at `rpc` (http or https), after asking it for its chain id.

    Raises:
        UsageError: not an http(s) URL with a host.
        ClientError: (exit 2) the node cannot be reached or does not answer JSON-RPC.
    """
    parts = urlsplit(rpc)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("--rpc: expected an http:// or https:// URL with a host")
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": _RPC_TIMEOUT}))
    try:
        w3.eth.chain_id  # noqa: B018 (the probe: does a node answer?)
    except (OSError, Web3Exception, ValueError) as exc:
        raise ClientError(
            f"cannot reach the chain at {redacted_url(rpc)}: {redact_error(exc, rpc)}"
        ) from None
    return w3


def parse_address(text: str, option: str) -> str:
    """An address argument, checksummed.

    Raises:
        UsageError: not 0x and 40 hex digits, or mixed case with a wrong EIP-55 checksum.
    """
    if not text.startswith("0x") or not is_hex_address(text):
        raise UsageError(f"{option}: expected a 0x-prefixed 20-byte hex address, found {text!r}")
    checksummed = to_checksum_address(text)
    if text not in (checksummed, text.lower(), "0x" + text[2:].upper()):
        raise UsageError(f"{option}: {text} has a wrong EIP-55 checksum (expected {checksummed})")
    return checksummed


def open_vault(w3: Web3, address: str) -> Vault:
    """The GuardedVault at `address` (--vault), once its code is known to be the committed one.

    Raises:
        UsageError: a malformed address.
        ClientError: (exit 2) no contract, or another one, at the address.
    """
    vault = Vault(w3, parse_address(address, "--vault"))
    try:
        vault.check_deployed()
    except VaultError as exc:
        raise ClientError(f"--vault: {exc}") from None
    return vault


def token(w3: Web3, address: str) -> Token:
    """The ERC-20 token at `address`: its decimals, and its symbol when it has one.

    Raises:
        ClientError: (exit 2) no ERC-20 token with decimals() at the address.
    """
    contract = w3.eth.contract(address=to_checksum_address(address), abi=_ERC20_ABI)
    try:
        decimals = int(contract.functions.decimals().call())
    except (BadFunctionCallOutput, ContractLogicError):
        raise ClientError(f"{address} is not an ERC-20 token (decimals() failed)") from None
    try:
        symbol: str | None = str(contract.functions.symbol().call())
    except (BadFunctionCallOutput, ContractLogicError, OverflowError, UnicodeDecodeError):
        symbol = None
    return Token(address=contract.address, symbol=symbol, decimals=decimals)


def balance_of(w3: Web3, token_address: str, holder: str, block: BlockIdentifier = "latest") -> int:
    """`holder`'s balance of the token at `block`, in its smallest units."""
    contract = w3.eth.contract(address=to_checksum_address(token_address), abi=_ERC20_ABI)
    call = contract.functions.balanceOf(to_checksum_address(holder))
    return int(call.call(block_identifier=block))


def parse_amount(text: str) -> Decimal:
    """An `--amount` of whole tokens ("1.5", "20").

    Raises:
        UsageError: not a decimal number above 0.
    """
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise UsageError(f"--amount: expected a decimal number of tokens, found {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise UsageError(f"--amount: expected an amount above 0, found {text!r}")
    return value


def units_of(amount: Decimal, found: Token) -> int:
    """Whole tokens in the token's smallest units, exactly.

    Raises:
        UsageError: the amount is finer than the token's smallest unit.
    """
    units = amount.scaleb(found.decimals)
    if units != units.to_integral_value():
        raise UsageError(
            f"--amount: {amount} has more decimal places than the token's {found.decimals} decimals"
        )
    return int(units)


def whole(units: int, decimals: int) -> str:
    """Smallest units as a whole-token decimal string ("1.5", "1000"), exact."""
    text = format(Decimal(units).scaleb(-decimals), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def vault_events(vault: Vault, receipt: TxReceipt) -> list[dict[str, object]]:
    """The vault's events in a transaction receipt, each as {"event": name, **its arguments}
    (addresses checksummed, bytes as 0x-hex)."""
    by_topic = {
        event_abi_to_log_topic(cast(ABIEvent, entry)): str(entry["name"])
        for entry in artifact().abi
        if entry.get("type") == "event"
    }
    found: list[dict[str, object]] = []
    for log in receipt["logs"]:
        name = by_topic.get(bytes(log["topics"][0])) if log["topics"] else None
        if name is None or to_checksum_address(log["address"]) != vault.address:
            continue
        decoded = vault.contract.events[name]().process_log(log)
        found.append({"event": name, **{k: json_value(v) for k, v in decoded["args"].items()}})
    return found


def json_value(value: object) -> object:
    """A value read from the chain as JSON: bytes as 0x-hex, addresses checksummed."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and is_hex_address(value):
        return to_checksum_address(value)
    return value


def describe_event(event: dict[str, object]) -> str:
    """An event as one line: `Name(key=value, ...)`."""
    fields = ", ".join(f"{key}={value}" for key, value in event.items() if key != "event")
    return f"{event['event']}({fields})"


def transaction(receipt: TxReceipt) -> dict[str, object]:
    """A mined transaction's hash, block and gas, as every command reports them."""
    return {
        "tx": receipt["transactionHash"].to_0x_hex(),
        "block": int(receipt["blockNumber"]),
        "gas_used": int(receipt["gasUsed"]),
    }


def print_result(args: argparse.Namespace, result: dict[str, object], lines: list[str]) -> None:
    """`result` as one JSON object with --json, else the human lines."""
    if args.json:
        print_json(result)
    else:
        print("\n".join(lines))
