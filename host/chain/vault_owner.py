"""The vault owner's transactions: deploy, allowlist, register and revoke agents, deposit,
withdraw, pause. Each is signed by the owner's local account and waited for; a revert raises
`ChainError` naming the contract's own error (`NotAgent(0x…)`, `DailyCapExceeded(…)`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.types import TxReceipt

from attestation.binding import AgentAttestation
from attestation.report import VerificationReport
from host.chain.transact import ChainError, send_transaction
from host.chain.vault import Vault, VaultError, artifact

# The standard ERC-20 approve, for the owner's deposit.
_APPROVE_ABI = [
    {
        "type": "function",
        "name": "approve",
        "stateMutability": "nonpayable",
        "inputs": [
            {"name": "spender", "type": "address"},
            {"name": "amount", "type": "uint256"},
        ],
        "outputs": [{"name": "", "type": "bool"}],
    }
]


@dataclass(frozen=True)
class TwapSettings:
    """The vault's TWAP bounds: shortest and longest span (seconds), largest deviation (bps)."""

    window_seconds: int
    max_age_seconds: int
    max_deviation_bps: int


def deploy_vault(
    w3: Web3, owner: LocalAccount, quote_token: str, twap: TwapSettings
) -> tuple[Vault, TxReceipt]:
    """Deploy the committed GuardedVault artifact with `owner` as its owner.

    Raises:
        ChainError: the deployment reverted (a setting out of range) or was refused.
        VaultError: the artifact is missing, or the code deployed is not the artifact's.
    """
    built = artifact()
    factory = w3.eth.contract(abi=built.abi, bytecode=built.bytecode)
    receipt = send_transaction(
        w3,
        owner,
        factory.constructor(
            owner.address,
            to_checksum_address(quote_token),
            twap.window_seconds,
            twap.max_age_seconds,
            twap.max_deviation_bps,
        ),
        what="deploying the GuardedVault",
    )
    address = receipt["contractAddress"]
    if address is None:
        raise VaultError("deploying the GuardedVault: the receipt names no contract address")
    vault = Vault(w3, address)
    vault.check_deployed()
    return vault, receipt


def measurement_digest(report: VerificationReport) -> bytes:
    """What the vault records as an agent's measurement: SHA-256 of the canonical JSON of the
    verified quote's measurement registers (`{"mrtd": hex, "rtmr0": hex, …}`, sorted keys, no
    whitespace), so anyone holding the quote recomputes it."""
    canonical = json.dumps(report.measurements, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


def quote_hash(attestation: AgentAttestation) -> bytes:
    """SHA-256 of the quote bytes the owner verified."""
    return hashlib.sha256(attestation.quote).digest()


class VaultOwner:
    """The owner's calls on one vault, signed by `account`."""

    def __init__(self, vault: Vault, account: LocalAccount) -> None:
        self.vault = vault
        self.account = account

    def _send(self, call: object, what: str) -> TxReceipt:
        return send_transaction(self.vault.w3, self.account, call, what=what)  # type: ignore[arg-type]

    def set_router(self, router: str, allowed: bool = True) -> TxReceipt:
        functions = self.vault.contract.functions
        return self._send(functions.setRouter(to_checksum_address(router), allowed), "setRouter")

    def set_market(self, base: str, pair: str, allowed: bool = True) -> TxReceipt:
        call = self.vault.contract.functions.setMarket(
            to_checksum_address(base), to_checksum_address(pair), allowed
        )
        return self._send(call, "setMarket")

    def set_twap(self, twap: TwapSettings) -> TxReceipt:
        call = self.vault.contract.functions.setTwap(
            twap.window_seconds, twap.max_age_seconds, twap.max_deviation_bps
        )
        return self._send(call, "setTwap")

    def register(
        self,
        agent: str,
        cap_per_trade: int,
        cap_per_day: int,
        config_hash: bytes,
        measurement: bytes,
        quote_sha256: bytes,
    ) -> TxReceipt:
        call = self.vault.contract.functions.registerAgent(
            to_checksum_address(agent),
            cap_per_trade,
            cap_per_day,
            config_hash,
            measurement,
            quote_sha256,
        )
        return self._send(call, "registerAgent")

    def revoke(self, agent: str) -> TxReceipt:
        call = self.vault.contract.functions.revokeAgent(to_checksum_address(agent))
        return self._send(call, "revokeAgent")

    def deposit(self, token: str, amount: int) -> TxReceipt:
        """Approve the vault for `amount` of `token`, then deposit it."""
        w3, token = self.vault.w3, to_checksum_address(token)
        erc20 = w3.eth.contract(address=token, abi=_APPROVE_ABI)
        self._send(erc20.functions.approve(self.vault.address, amount), "approve for deposit")
        return self._send(self.vault.contract.functions.deposit(token, amount), "deposit")

    def withdraw(self, token: str, amount: int, to: str | None = None) -> TxReceipt:
        recipient = to_checksum_address(to or self.account.address)
        call = self.vault.contract.functions.withdraw(to_checksum_address(token), amount, recipient)
        return self._send(call, "withdraw")

    def pause(self) -> TxReceipt:
        return self._send(self.vault.contract.functions.pause(), "pause")

    def unpause(self) -> TxReceipt:
        return self._send(self.vault.contract.functions.unpause(), "unpause")

    def observe(self, base: str) -> TxReceipt:
        call = self.vault.contract.functions.observe(to_checksum_address(base))
        return self._send(call, "observe")


__all__ = ["ChainError", "TwapSettings", "VaultOwner", "deploy_vault"]
