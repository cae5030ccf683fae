"""anvil's default dev accounts, and the part each plays in the kit.

They come from the mnemonic "test test test test test test test test test test test junk"
(m/44'/60'/0'/0/i) and hold 10,000 ETH each on a fresh anvil: `DEPLOYER` deploys the DEX and
holds the test tokens' supply, `MOVER` moves the market, `LIQUIDITY_PROVIDER` seeds the
pools; `DEV_ACCOUNTS[3:]` are free for tests. Public test keys: never use them on a real
network.
"""

from __future__ import annotations

from typing import Final

from eth_account import Account
from eth_account.signers.local import LocalAccount

DEV_PRIVATE_KEYS: Final = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
)
DEV_ACCOUNTS: Final[tuple[LocalAccount, ...]] = tuple(
    Account.from_key(key) for key in DEV_PRIVATE_KEYS
)
DEPLOYER, MOVER, LIQUIDITY_PROVIDER = DEV_ACCOUNTS[0], DEV_ACCOUNTS[1], DEV_ACCOUNTS[2]
