"""The guarded vault on chain: its committed artifact, its deployment, and what the host reads.

The vault (contracts/GuardedVault.sol, compiled by contracts/build.js into the artifact next
to this module) holds the funds; the attested agent key may only swap through it, within
caps and a TWAP bound the contract itself enforces. The host reads it here: the TWAP it
reports to the enclave beside each batch, the agent's caps and the notional it used in the
last 24 hours, the pause flag, and the Traded events that link each trade to its receipt.
The owner's own transactions are built by `host.chain.vault_owner`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any, Final

from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import BadFunctionCallOutput, ContractLogicError, Web3RPCError

from host.chain.node_errors import custom_error
from host.chain.transact import ChainError
from host.chain.vault_artifact import ArtifactError, VaultArtifact, load_artifact, same_code

# UQ112x112: the vault's TWAP is a ratio of smallest units scaled by 2**112.
_Q112: Final = Decimal(2**112)
_PRICE: Final = Context(prec=60)


class VaultError(ChainError):
    """The vault cannot be read or used as asked: no contract there, a call reverted (named by
    the contract's own error), or the artifact is missing."""


def artifact() -> VaultArtifact:
    """The committed GuardedVault artifact.

    Raises:
        VaultError: it is missing or malformed (the message says how to rebuild it).
    """
    try:
        return load_artifact()
    except ArtifactError as exc:
        raise VaultError(str(exc)) from None


@dataclass(frozen=True)
class AgentRecord:
    """An agent as the vault records it; caps and notional in the quote token's smallest units."""

    address: str
    active: bool
    cap_per_trade: int
    cap_per_day: int
    last_receipt_seq: int
    config_hash: bytes
    measurement: bytes
    quote_hash: bytes
    notional_24h: int

    @property
    def left_today(self) -> int:
        return max(0, self.cap_per_day - self.notional_24h)


@dataclass(frozen=True)
class VaultState:
    """The vault at one block: pause flag, owner, TWAP settings, and one agent's record."""

    address: str
    block: int
    owner: str
    quote_token: str
    paused: bool
    twap_window: int
    twap_max_age: int
    max_deviation_bps: int
    agent: AgentRecord | None


@dataclass(frozen=True)
class Trade:
    """One Traded event: which agent, which receipt, what was paid and received, the notional."""

    agent: str
    receipt_seq: int
    receipt_digest: bytes
    token_in: str
    token_out: str
    amount_in: int
    amount_out: int
    notional: int
    tx_hash: bytes
    block: int


class Vault:
    """A handle on a deployed GuardedVault; reads only (the owner's calls: `vault_owner`)."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.contract: Contract = w3.eth.contract(address=self.address, abi=artifact().abi)

    def check_deployed(self) -> None:
        """Raises VaultError unless the code at the address is the committed vault's."""
        code = bytes(self.w3.eth.get_code(self.address))
        if not code:
            raise VaultError(f"no contract at {self.address}")
        if not same_code(code, artifact()):
            raise VaultError(
                f"the code at {self.address} is not the committed GuardedVault's (a different "
                "build or another contract)"
            )

    def state(self, agent: str | None = None) -> VaultState:
        """The vault's settings and, with `agent`, that agent's record, at the latest block.

        Raises:
            VaultError: a read failed (not a vault, or the node refused).
        """
        functions = self.contract.functions
        block = self.w3.eth.block_number
        record = None
        if agent is not None:
            checksummed = to_checksum_address(agent)
            active, per_trade, per_day, seq, config, measurement, quote = self._read(
                functions.agentOf(checksummed), block
            )
            record = AgentRecord(
                address=checksummed,
                active=bool(active),
                cap_per_trade=int(per_trade),
                cap_per_day=int(per_day),
                last_receipt_seq=int(seq),
                config_hash=bytes(config),
                measurement=bytes(measurement),
                quote_hash=bytes(quote),
                notional_24h=int(self._read(functions.notionalUsed(checksummed), block)),
            )
        return VaultState(
            address=self.address,
            block=block,
            owner=to_checksum_address(self._read(functions.owner(), block)),
            quote_token=to_checksum_address(self._read(functions.quoteToken(), block)),
            paused=bool(self._read(functions.paused(), block)),
            twap_window=int(self._read(functions.twapWindow(), block)),
            twap_max_age=int(self._read(functions.twapMaxAge(), block)),
            max_deviation_bps=int(self._read(functions.maxDeviationBps(), block)),
            agent=record,
        )

    def twap(self, base: str, base_decimals: int, quote_decimals: int) -> Decimal | None:
        """The TWAP of `base` in whole quote tokens per whole base token, or None when the
        vault has none now (too few observations, or stale ones: its trades revert then).

        Raises:
            VaultError: the read failed for another reason (not an allowed market, say).
        """
        try:
            ratio = int(self.contract.functions.twap(to_checksum_address(base)).call())
        except ContractLogicError as exc:
            if "TwapUnavailable" in self._explain(exc):
                return None
            raise VaultError(f"twap({base}) on the vault: {self._explain(exc)}") from None
        except (BadFunctionCallOutput, Web3RPCError) as exc:
            raise VaultError(f"twap({base}) on the vault {self.address}: {exc}") from None
        scale = Decimal(10) ** (base_decimals - quote_decimals)
        return _PRICE.multiply(_PRICE.divide(Decimal(ratio), _Q112), scale)

    def trades(self, from_block: int = 0, to_block: int | str = "latest") -> list[Trade]:
        """Every Traded event of the vault in the block range, oldest first."""
        try:
            logs = self.contract.events.Traded().get_logs(from_block=from_block, to_block=to_block)
        except (ValueError, Web3RPCError) as exc:
            raise VaultError(f"reading the vault's trades: {exc}") from None
        return [
            Trade(
                agent=to_checksum_address(log["args"]["agent"]),
                receipt_seq=int(log["args"]["receiptSeq"]),
                receipt_digest=bytes(log["args"]["receiptDigest"]),
                token_in=to_checksum_address(log["args"]["tokenIn"]),
                token_out=to_checksum_address(log["args"]["tokenOut"]),
                amount_in=int(log["args"]["amountIn"]),
                amount_out=int(log["args"]["amountOut"]),
                notional=int(log["args"]["notional"]),
                tx_hash=bytes(log["transactionHash"]),
                block=int(log["blockNumber"]),
            )
            for log in logs
        ]

    def _read(self, call: Any, block: int) -> Any:
        try:
            return call.call(block_identifier=block)
        except ContractLogicError as exc:
            raise VaultError(f"reading the vault {self.address}: {self._explain(exc)}") from None
        except (BadFunctionCallOutput, Web3RPCError) as exc:
            raise VaultError(
                f"reading the vault {self.address}: {exc} (is it a GuardedVault?)"
            ) from None

    def _explain(self, exc: ContractLogicError) -> str:
        if isinstance(exc.data, str):
            return custom_error(exc.data, artifact().abi)
        return exc.message or str(exc)
