"""The guarded vault on the local chain: deployed, allowlisted and warmed up for a `Dex`.

`deploy_guarded_vault` deploys the committed GuardedVault artifact (owner `DEPLOYER` unless
told otherwise) valued in the DEX's USD token, allowlists Router02 and the WETH/USD and
WBTC/USD pools, and records the first price observation of each, so that a TWAP exists one
window later. `advance` moves the chain's clock and mines a block (anvil's time travel).
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3 import Web3

from devnet.accounts import DEPLOYER
from devnet.dex import PAIRS, Dex
from host.chain.vault import Vault
from host.chain.vault_owner import TwapSettings, VaultOwner, deploy_vault

# The demo's TWAP settings: the average covers at least 30 minutes and at most 2 hours of
# pool history, and a trade's minimum output may sit at most 3% below it.
DEMO_TWAP = TwapSettings(window_seconds=1800, max_age_seconds=7200, max_deviation_bps=300)


def deploy_guarded_vault(
    w3: Web3, dex: Dex, owner: LocalAccount = DEPLOYER, twap: TwapSettings = DEMO_TWAP
) -> VaultOwner:
    """Deploy and configure a vault for `dex`; returns the owner's handle on it.

    Raises:
        host.chain.transact.ChainError: a deployment or configuration transaction failed.
    """
    vault, _ = deploy_vault(w3, owner, dex.usd, twap)
    owner_calls = VaultOwner(vault, owner)
    owner_calls.set_router(dex.router)
    for symbol, (base, _quote) in PAIRS.items():
        owner_calls.set_market(dex.tokens[base], dex.pairs[symbol])
        owner_calls.observe(dex.tokens[base])
    return owner_calls


def observe_all(owner: VaultOwner, dex: Dex) -> None:
    """Record a price observation of every market (a no-op within a TWAP window of the last)."""
    for base, _quote in PAIRS.values():
        owner.observe(dex.tokens[base])


def advance(w3: Web3, seconds: int) -> int:
    """Move the chain's clock `seconds` ahead and mine a block; returns its timestamp."""
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return int(w3.eth.get_block("latest")["timestamp"])


__all__ = ["DEMO_TWAP", "Vault", "advance", "deploy_guarded_vault", "observe_all"]
