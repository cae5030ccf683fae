"""A guarded vault on a real local chain, for the vault tests: anvil, Uniswap V2 from the npm
artifacts, the committed GuardedVault artifact deployed and configured as the demo does it,
one agent registered and the vault funded.

The world is built once per test module; each test runs between an anvil snapshot and its
revert (`fresh`), so every test starts from the same chain, clock included. Trades that
must land at an exact second go through `send_at`, which checks the call at the pending
block (the one mined at that second) and then sends it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import TxReceipt

from devnet.accounts import DEPLOYER, DEV_ACCOUNTS
from devnet.anvil import Anvil
from devnet.artifacts import load_artifact
from devnet.dex import Dex, reserves
from devnet.market import deploy_market, fund
from devnet.vault import DEMO_TWAP, advance, deploy_guarded_vault
from host.chain.node_errors import custom_error
from host.chain.transact import ChainError, send_transaction
from host.chain.vault import Vault
from host.chain.vault_owner import VaultOwner

# UQ112x112 and basis points, as GuardedVault.sol computes with them.
Q112 = 2**112
BPS = 10_000
DAY = 86_400
UNIT = 10**18  # every devnet token has 18 decimals
ETH_PRICE = 2000
BTC_PRICE = 60_000
CAP_PER_TRADE = 1000 * UNIT
CAP_PER_DAY = 5000 * UNIT
CONFIG_HASH = b"\xc1" * 32
MEASUREMENT = b"\xd1" * 32
QUOTE_HASH = b"\xe1" * 32
DEPOSIT_USD = 100_000 * UNIT
DEPOSIT_WETH = 50 * UNIT
DEPOSIT_WBTC = 1 * UNIT
# A router deadline no test reaches.
FAR_DEADLINE = 2**40
# The world's clock after deployment: a TWAP window since the first observation, and a
# minute of slack for the tests' own wall-clock time (anvil's clock follows it).
WARM_UP_SECONDS = DEMO_TWAP.window_seconds + 60

AGENT, STRANGER, SECOND_AGENT = DEV_ACCOUNTS[3], DEV_ACCOUNTS[4], DEV_ACCOUNTS[5]
ZERO_ADDRESS = "0x" + "00" * 20


def reverts(error: str) -> Any:
    """Expect a ChainError naming the contract's custom error `error` (`NotAgent`, ...)."""
    return pytest.raises(ChainError, match=re.escape(f"{error}("))


@functools.cache
def _erc20_abi() -> list[dict[str, Any]]:
    return load_artifact("ERC20").abi


@dataclass(frozen=True)
class VaultWorld:
    """The chain, the DEX, the vault and its owner's handle; amounts in smallest units."""

    w3: Web3
    dex: Dex
    owner: VaultOwner

    @property
    def vault(self) -> Vault:
        return self.owner.vault

    @property
    def contract(self) -> Contract:
        return self.owner.vault.contract

    @property
    def fn(self) -> Any:
        """The vault's contract functions, by name."""
        return self.owner.vault.contract.functions

    def token(self, address: str) -> Contract:
        return self.w3.eth.contract(address=to_checksum_address(address), abi=_erc20_abi())

    def balance(self, token: str, holder: str) -> int:
        return int(self.token(token).functions.balanceOf(to_checksum_address(holder)).call())

    def vault_balances(self) -> dict[str, int]:
        return {
            symbol: self.balance(address, self.vault.address)
            for symbol, address in self.dex.tokens.items()
        }

    def now(self) -> int:
        """The latest block's timestamp."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def twap(self, base: str, block: str = "latest") -> int:
        """The vault's TWAP of `base`: quote units per base unit, UQ112x112."""
        return int(self.fn.twap(base).call(block_identifier=block))

    def twap_or_error(self, base: str, block: str = "latest") -> int:
        """`twap`, with a revert raised as ChainError naming the contract's error."""
        try:
            return self.twap(base, block)
        except ContractLogicError as exc:
            if isinstance(exc.data, str):
                raise ChainError(custom_error(exc.data, self.contract.abi)) from None
            raise

    def notional_used(self, agent: str, block: str = "latest") -> int:
        return int(self.fn.notionalUsed(agent).call(block_identifier=block))

    def last_seq(self, agent: str) -> int:
        return int(self.fn.agentOf(agent).call()[3])

    def next_seq(self, agent: str) -> int:
        return self.last_seq(agent) + 1

    def spot_price(self, base: str) -> int:
        """The pool's price of `base`, quote units per base unit, UQ112x112 (as the vault
        computes it from the reserves)."""
        symbol = "ETH/USD" if base == self.dex.weth else "BTC/USD"
        base_reserve, quote_reserve = reserves(self.w3, self.dex, symbol)
        return (quote_reserve << 112) // base_reserve

    def spot_out(self, token_in: str, token_out: str, amount_in: int) -> int:
        """What Router02 would pay for `amount_in` now (the pool's spot, fee and impact)."""
        router = self.dex.router_contract(self.w3)
        return int(router.functions.getAmountsOut(amount_in, [token_in, token_out]).call()[-1])

    def floor(self, token_in: str, token_out: str, amount_in: int) -> tuple[int, int]:
        """(notional, least minOut) of a trade, computed as GuardedVault._admit does, at the
        TWAP of the latest block."""
        selling = token_out == self.dex.usd
        base = token_in if selling else token_out
        price = self.twap(base)
        notional = amount_in * price // Q112 if selling else amount_in
        fair_out = notional if selling else amount_in * Q112 // price
        deviation = int(self.fn.maxDeviationBps().call())
        return notional, fair_out * (BPS - deviation) // BPS

    def swap_call(
        self,
        token_in: str,
        token_out: str,
        amount_in: int,
        min_out: int,
        seq: int,
        digest: bytes = b"\x5e" * 32,
        router: str | None = None,
    ) -> ContractFunction:
        call: ContractFunction = self.fn.swap(
            to_checksum_address(router or self.dex.router),
            to_checksum_address(token_in),
            to_checksum_address(token_out),
            amount_in,
            min_out,
            FAR_DEADLINE,
            seq,
            digest,
        )
        return call

    def swap(
        self,
        account: LocalAccount,
        token_in: str,
        token_out: str,
        amount_in: int,
        min_out: int | None = None,
        seq: int | None = None,
        **options: Any,
    ) -> TxReceipt:
        """The vault swap from `account`; `min_out` defaults to 1% under the router's quote,
        `seq` to one above the agent's last."""
        if min_out is None:
            min_out = self.spot_out(token_in, token_out, amount_in) * 99 // 100
        if seq is None:
            seq = self.next_seq(account.address)
        call = self.swap_call(token_in, token_out, amount_in, min_out, seq, **options)
        return send_transaction(self.w3, account, call, what="vault swap")

    def buy(self, account: LocalAccount, usd: int, **options: Any) -> TxReceipt:
        return self.swap(account, self.dex.usd, self.dex.weth, usd, **options)

    def sell(self, account: LocalAccount, weth: int, **options: Any) -> TxReceipt:
        return self.swap(account, self.dex.weth, self.dex.usd, weth, **options)

    def send(self, account: LocalAccount, call: ContractFunction) -> TxReceipt:
        return send_transaction(self.w3, account, call, what=call.fn_name)

    def deploy(self, name: str, *args: Any) -> str:
        """Deploy one of the Uniswap V2 npm artifacts (a second Router02, a token) as DEPLOYER."""
        artifact = load_artifact(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = send_transaction(self.w3, DEPLOYER, factory.constructor(*args), what=name)
        address = receipt["contractAddress"]
        assert address is not None
        return to_checksum_address(address)

    def send_at(self, timestamp: int, account: LocalAccount, call: ContractFunction) -> TxReceipt:
        """Mine `call` from `account` in a block at exactly `timestamp`.

        Raises:
            ChainError: naming the contract's error, when the call reverts at that second.
        """
        set_next_block_time(self.w3, timestamp)
        try:
            call.call({"from": account.address}, block_identifier="pending")
        except (ContractCustomError, ContractLogicError) as exc:
            reason = custom_error(exc.data, self.contract.abi) if isinstance(exc.data, str) else ""
            raise ChainError(f"{call.fn_name} at {timestamp} would revert: {reason}") from None
        data = self.contract.encode_abi(call.fn_name, args=call.args)
        # An explicit gas limit: an estimate would run at the latest block's second instead.
        fields = {"to": call.address, "data": data, "gas": 1_000_000}
        receipt = send_transaction(self.w3, account, fields, what=call.fn_name)  # type: ignore[arg-type]
        mined = int(self.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
        assert mined == timestamp, f"mined at {mined}, not {timestamp}"
        return receipt


def set_next_block_time(w3: Web3, timestamp: int) -> None:
    """The next block is mined at `timestamp` (pending calls see it already)."""
    answer = w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]
    assert "error" not in answer, answer


def snapshot(w3: Web3) -> str:
    return str(w3.provider.make_request("evm_snapshot", [])["result"])  # type: ignore[arg-type]


def revert(w3: Web3, snapshot_id: str) -> None:
    answer = w3.provider.make_request("evm_revert", [snapshot_id])  # type: ignore[arg-type]
    assert answer.get("result") is True, answer


@contextmanager
def fresh(w3: Web3) -> Iterator[None]:
    """Run the block, then put the chain (state and clock) back as it was."""
    taken = snapshot(w3)
    try:
        yield
    finally:
        revert(w3, taken)


def register(owner: VaultOwner, agent: LocalAccount, config_hash: bytes = CONFIG_HASH) -> None:
    owner.register(agent.address, CAP_PER_TRADE, CAP_PER_DAY, config_hash, MEASUREMENT, QUOTE_HASH)


@contextmanager
def vault_world() -> Iterator[VaultWorld]:
    """anvil with Uniswap V2 (ETH at 2,000 USD, BTC at 60,000), the demo's vault (TWAP over
    30 min to 2 h, 3% deviation) with `AGENT` registered (1,000 USD a trade, 5,000 a day),
    100,000 USD, 50 WETH and 1 WBTC deposited, and a TWAP window past the first
    observation with no pool move since: the TWAP equals the pool's price exactly."""
    with Anvil.start() as anvil:
        w3 = anvil.web3()
        dex = deploy_market(w3, ETH_PRICE, BTC_PRICE)
        owner = deploy_guarded_vault(w3, dex)
        register(owner, AGENT)
        fund(w3, dex, DEPLOYER, DEPLOYER.address, weth=DEPOSIT_WETH // UNIT)
        owner.deposit(dex.usd, DEPOSIT_USD)
        owner.deposit(dex.weth, DEPOSIT_WETH)
        owner.deposit(dex.wbtc, DEPOSIT_WBTC)
        for account in (AGENT, STRANGER, SECOND_AGENT):
            assert w3.eth.get_balance(account.address) > 10**18  # anvil's dev accounts
        advance(w3, WARM_UP_SECONDS)
        yield VaultWorld(w3=w3, dex=dex, owner=owner)
