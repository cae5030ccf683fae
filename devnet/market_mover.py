"""The market mover: an account of its own that trades a pool to a target price.

The demo and the tests move the market with it, independently of the agent: one swap
through the router whose input comes from the constant-product formula with the 0.3% fee
solved exactly (`swap_input`).
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import TxReceipt

from devnet.accounts import MOVER
from devnet.dex import (
    PRICE_CONTEXT,
    TOKEN_DECIMALS,
    Dex,
    pair_tokens,
    pool_price,
    reserves,
    swap_deadline,
)
from devnet.market import ensure_allowance, ensure_balance
from host.chain.transact import Amount, ChainError, send_transaction


def swap_input(reserve_in: int, reserve_out: int, target_ratio: Decimal) -> int:
    """The input amount that takes a Uniswap V2 pool (0.3% fee) from reserves
    (`reserve_in`, `reserve_out`) to `reserve_in' / reserve_out' == target_ratio`.

    With a = input, the pair pays out 997 a R_out / (1000 R_in + 997 a), which leaves
    R_out' = 1000 R_in R_out / (1000 R_in + 997 a); so (R_in + a) / R_out' = T is the
    quadratic 997 a^2 + 1997 R_in a + 1000 R_in (R_in - T R_out) = 0, whose positive root
    is the answer (0 when the ratio is already at or above the target).
    """
    r_in, r_out = Decimal(reserve_in), Decimal(reserve_out)
    c = PRICE_CONTEXT.multiply(1000 * r_in, r_in - PRICE_CONTEXT.multiply(target_ratio, r_out))
    if c >= 0:
        return 0
    b = 1997 * r_in
    root = PRICE_CONTEXT.sqrt(b * b - 4 * 997 * c)
    return int(((root - b) / (2 * 997)).to_integral_value(rounding=ROUND_FLOOR))


class MarketMover:
    """An account of its own (not the agent's) that trades a pool to a target price.

    It needs funds: WETH is wrapped from its ETH as needed; USD and WBTC must be sent to it
    first (`devnet.market.deploy_market` does so).
    """

    def __init__(self, w3: Web3, dex: Dex, account: LocalAccount = MOVER) -> None:
        self.w3 = w3
        self.dex = dex
        self.account = account

    def move_to(
        self, price: Amount, pair_symbol: str = "ETH/USD", *, tolerance: Decimal = Decimal("0.001")
    ) -> Decimal:
        """Swap through the router (swapExactTokensForTokens) until the pool is at `price`
        (quote per base); returns the pool price after, within `tolerance` (relative).

        One swap normally lands within 1e-12; up to two more correct any rounding.

        Raises:
            ChainError: the pool does not get within `tolerance`, or a swap failed.
            ValueError: an unknown pair, or a target price that is not above 0.
        """
        base, quote = pair_tokens(pair_symbol)
        target = Decimal(price)
        if not target.is_finite() or target <= 0:
            raise ValueError(f"a target price must be above 0, found {price!r}")
        # The target in raw units: quote units per base unit.
        raw_target = target.scaleb(TOKEN_DECIMALS[quote] - TOKEN_DECIMALS[base])
        current = pool_price(self.w3, self.dex, pair_symbol)
        for _ in range(3):
            if abs(current - target) <= target * Decimal("1e-9"):
                break
            base_reserve, quote_reserve = reserves(self.w3, self.dex, pair_symbol)
            if target > current:
                # Buy base with quote: quote reserve / base reserve rises to the target.
                token_in, token_out = quote, base
                amount = swap_input(quote_reserve, base_reserve, raw_target)
            else:
                token_in, token_out = base, quote
                amount = swap_input(
                    base_reserve, quote_reserve, PRICE_CONTEXT.divide(1, raw_target)
                )
            if amount == 0:
                break
            self._swap(token_in, token_out, amount)
            current = pool_price(self.w3, self.dex, pair_symbol)
        if abs(current - target) > target * tolerance:
            raise ChainError(
                f"could not move {pair_symbol} to {target}: the pool is at {current:.6f}"
            )
        return current

    def _swap(self, token_in: str, token_out: str, amount: int) -> TxReceipt:
        ensure_balance(self.w3, self.dex, self.account, token_in, amount)
        ensure_allowance(self.w3, self.dex, self.account, token_in, amount)
        router = self.dex.router_contract(self.w3)
        return send_transaction(
            self.w3,
            self.account,
            router.functions.swapExactTokensForTokens(
                amount,
                0,  # the mover takes whatever the pool gives: the price is checked after
                [self.dex.tokens[token_in], self.dex.tokens[token_out]],
                self.account.address,
                swap_deadline(self.w3),
            ),
            what=f"moving the market: {amount} units of {token_in} for {token_out}",
        )
