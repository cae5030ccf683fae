"""Filling a signed swap without a chain: at the candle's close, less the pool's fee and a
slippage against the trader, within the swap's own minimum out.

Uniswap V2 takes its fee (0.3 %) from the amount paid in; the rest is converted at the
close, and the slippage then takes `slippage_bps` off what comes out. A fill below the
signed minimum out is what the router would revert (`INSUFFICIENT_OUTPUT_AMOUNT`), so it
is a revert here too, as is a swap paying in more than the balance holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, localcontext

from enclave.transactions import SwapPlan

# Token amounts reach 78 digits (uint256): at this precision nothing below rounds but the
# final conversion to the token's smallest unit, which rounds down (against the trader).
_PRECISION = 120


@dataclass(frozen=True)
class FillCosts:
    """The pool's fee and the slippage, in basis points."""

    fee_bps: int = 30
    slippage_bps: int = 10


@dataclass(frozen=True)
class Fill:
    """A filled swap: what went in and out (smallest units), and its costs in quote units."""

    amount_in: int
    amount_out: int
    fee_quote: Decimal
    slippage_quote: Decimal


@dataclass(frozen=True)
class Revert:
    """A swap the chain would revert, and why."""

    reason: str


def fill_swap(
    plan: SwapPlan,
    *,
    selling: bool,
    price: Decimal,
    base_decimals: int,
    quote_decimals: int,
    balance_in: int,
    costs: FillCosts,
) -> Fill | Revert:
    """Fill `plan` (selling base for quote, or buying base with quote) at `price` (quote per
    base), or say why it reverts: the balance is short of `amount_in`, or what comes out is
    below the plan's minimum out."""
    if plan.amount_in > balance_in:
        return Revert("balance")
    with localcontext() as arithmetic:
        arithmetic.prec = _PRECISION
        keep_fee = 1 - Decimal(costs.fee_bps) / 10_000
        keep_slip = 1 - Decimal(costs.slippage_bps) / 10_000
        if selling:
            paid = Decimal(plan.amount_in).scaleb(-base_decimals)
            gross = paid * price  # quote, before the fee
            out = gross * keep_fee * keep_slip
            out_units = int(out.scaleb(quote_decimals).to_integral_value(rounding=ROUND_FLOOR))
            fee = gross - gross * keep_fee
            slippage = gross * keep_fee - out
        else:
            paid = Decimal(plan.amount_in).scaleb(-quote_decimals)
            out = paid * keep_fee / price * keep_slip
            out_units = int(out.scaleb(base_decimals).to_integral_value(rounding=ROUND_FLOOR))
            fee = paid - paid * keep_fee
            slippage = (paid * keep_fee / price - out) * price
    if out_units < plan.min_out:
        return Revert("min_out")
    return Fill(plan.amount_in, out_units, fee, slippage)
