"""Hard limits on every transaction the enclave would sign, enforced after the policy.

Deny by default: a transaction is signed only when every check below passes, in this order,
and each refusal names its guardrail in a machine-readable reason (`GUARDRAIL_REFUSALS`;
receipts carry it as "refused:<reason>"). The only call allowed is the GuardedVault's swap
(`enclave.transactions`). The guardrails judge the call as built (decoded target, selector
and arguments), valued at the enclave's last accepted price, never at anything the policy
or the host claims; and they refuse to value it at all when that price disagrees with the
vault's time-weighted average price as the host reports it (the vault checks the real one
on chain, so a host that lies about both only gets a trade the vault reverts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext

from pydantic import BaseModel

from enclave.config import EnclaveConfig, Pair
from enclave.transactions import decode_call

DAY_SECONDS = 86_400
# A trade keeps counting this long past its 24 hours: the vault counts it from the block
# that mined it, which comes after the tick that decided it, so the enclave must not expect
# room the vault has not freed yet (it would sign a trade the vault reverts).
CHAIN_LAG_SECONDS = 900
SPEND_WINDOW_SECONDS = DAY_SECONDS + CHAIN_LAG_SECONDS
GWEI = 10**9

# Why a guardrail refuses: the reason of a "refused:<reason>" receipt, in the order judged.
PAUSED = "paused"
CHAIN_ID = "chain_id"
MAX_FEE_PER_GAS = "max_fee_per_gas"
CALL_NOT_ALLOWED = "call_not_allowed"
TWAP_UNAVAILABLE = "twap_unavailable"
TWAP_DEVIATION = "twap_deviation"
MAX_NOTIONAL_PER_TRADE = "max_notional_per_trade"
MAX_NOTIONAL_PER_DAY = "max_notional_per_day"
MAX_SLIPPAGE = "max_slippage"
MIN_SECONDS_BETWEEN_TRADES = "min_seconds_between_trades"
GUARDRAIL_REFUSALS = (
    PAUSED, CHAIN_ID, MAX_FEE_PER_GAS, CALL_NOT_ALLOWED, TWAP_UNAVAILABLE, TWAP_DEVIATION,
    MAX_NOTIONAL_PER_TRADE, MAX_NOTIONAL_PER_DAY, MAX_SLIPPAGE, MIN_SECONDS_BETWEEN_TRADES,
)  # fmt: skip


class SpendEntry(BaseModel):
    """One signed swap's notional, for the rolling 24-hour limit (sealed state)."""

    timestamp: int
    notional_usd: Decimal


@dataclass(frozen=True)
class GuardrailVerdict:
    allowed: bool
    # None when allowed; otherwise the guardrail's name, e.g. "max_notional_per_trade".
    reason: str | None
    detail: str
    notional_usd: Decimal = Decimal(0)


@dataclass(frozen=True)
class ProposedTransaction:
    chain_id: int
    to: str
    value: int
    data: bytes
    max_fee_per_gas: int


@dataclass(frozen=True)
class GuardrailContext:
    """The enclave's own view at decision time, and the TWAP the host reported."""

    pair: Pair
    # The last accepted tick's price of the pair (quote per base).
    price: Decimal
    now: int
    paused: bool
    last_trade: int | None
    spent: list[SpendEntry]
    max_slippage_bps_requested: int
    # The vault's TWAP of the pair as the host last reported it (quote per base); None when
    # it reported none. Untrusted: only ever a reason to refuse.
    twap: float | None


def notional_spent(spent: list[SpendEntry], now: int) -> Decimal:
    """Notional of swaps signed in the 24 hours (and `CHAIN_LAG_SECONDS`) up to `now`."""
    return sum(
        [entry.notional_usd for entry in spent if now - entry.timestamp < SPEND_WINDOW_SECONDS],
        Decimal(0),
    )


# Token amounts reach 78 digits (uint256); with this precision no product or quotient of
# them rounds, so "one smallest unit above a limit" is always seen as above it.
_PRECISION = 120


def judge(
    tx: ProposedTransaction, context: GuardrailContext, config: EnclaveConfig
) -> GuardrailVerdict:
    """Every guardrail, in order; the first that fails refuses the transaction."""
    with localcontext() as arithmetic:
        arithmetic.prec = _PRECISION
        return _judge(tx, context, config)


def _judge(
    tx: ProposedTransaction, context: GuardrailContext, config: EnclaveConfig
) -> GuardrailVerdict:
    rails = config.guardrails
    if context.paused:
        return _refuse(PAUSED, "the owner paused the agent")
    if tx.chain_id not in rails.allowed_chain_ids:
        return _refuse(CHAIN_ID, f"chain {tx.chain_id} is not in {rails.allowed_chain_ids}")
    fee_cap = int(rails.max_fee_per_gas_gwei * GWEI)
    if tx.max_fee_per_gas > fee_cap:
        return _refuse(
            MAX_FEE_PER_GAS, f"max fee per gas {tx.max_fee_per_gas} wei exceeds {fee_cap} wei"
        )
    call = decode_call(tx.data)
    tokens = {config.tokens[symbol].address for symbol in rails.allowed_tokens}
    if (
        call is None
        or tx.to != config.vault.address
        or tx.value != 0
        or call.router != config.chain.router
        or call.token_in not in tokens
        or call.token_out not in tokens
    ):
        return _refuse(
            CALL_NOT_ALLOWED,
            "only the vault's swap, through the configured router, between allowed tokens, "
            "is allowed",
        )
    base = config.tokens[context.pair.base]
    quote = config.tokens[context.pair.quote]
    if {call.token_in, call.token_out} != {base.address, quote.address}:
        return _refuse(CALL_NOT_ALLOWED, f"the swap path is not the pair {context.pair.symbol}")
    if context.twap is None or not (math.isfinite(context.twap) and context.twap > 0):
        return _refuse(
            TWAP_UNAVAILABLE, f"the host reported no usable TWAP for {context.pair.symbol}"
        )
    twap = Decimal(repr(context.twap))
    limit = config.vault.max_twap_deviation_bps
    low, high = twap * (1 - Decimal(limit) / 10_000), twap * (1 + Decimal(limit) / 10_000)
    if not low <= context.price <= high:
        return _refuse(
            TWAP_DEVIATION,
            f"the accepted price {context.price} is outside {low} to {high}, the reported "
            f"TWAP {twap} less and plus {limit} bps",
        )
    selling = call.token_in == base.address
    amount_in = Decimal(call.amount_in).scaleb(-(base.decimals if selling else quote.decimals))
    # The vault values a sale at its TWAP: the caps must hold at that and at the tick's price.
    notional = amount_in * max(context.price, twap) if selling else amount_in
    if notional > rails.max_notional_per_trade_usd:
        return _refuse(
            MAX_NOTIONAL_PER_TRADE,
            f"notional {notional:.2f} USD exceeds {rails.max_notional_per_trade_usd} USD",
        )
    spent = notional_spent(context.spent, context.now)
    if spent + notional > rails.max_notional_per_day_usd:
        return _refuse(
            MAX_NOTIONAL_PER_DAY,
            f"{spent:.2f} USD in the last 24 h plus {notional:.2f} USD exceeds "
            f"{rails.max_notional_per_day_usd} USD",
        )
    if context.max_slippage_bps_requested > rails.max_slippage_bps:
        return _refuse(
            MAX_SLIPPAGE,
            f"the decision allows {context.max_slippage_bps_requested} bps; the limit is "
            f"{rails.max_slippage_bps} bps",
        )
    expected_out = amount_in * context.price if selling else amount_in / context.price
    out_decimals = quote.decimals if selling else base.decimals
    floor = expected_out * (1 - Decimal(rails.max_slippage_bps) / 10_000)
    minimum = Decimal(call.min_out).scaleb(-out_decimals)
    if minimum < floor:
        return _refuse(
            MAX_SLIPPAGE,
            f"minimum out {minimum} is below {floor:.8f}, the quote at the accepted price "
            f"{context.price} less {rails.max_slippage_bps} bps",
        )
    # The vault's own bound, so that a trade it would revert (MinOutBelowTwap) is not signed.
    twap_out = amount_in * twap if selling else amount_in / twap
    twap_floor = twap_out * (1 - Decimal(limit) / 10_000)
    if minimum < twap_floor:
        return _refuse(
            TWAP_DEVIATION,
            f"minimum out {minimum} is below {twap_floor:.8f}, the output at the reported "
            f"TWAP {twap} less {limit} bps (the vault would revert it)",
        )
    if (
        context.last_trade is not None
        and context.now - context.last_trade < rails.min_seconds_between_trades
    ):
        return _refuse(
            MIN_SECONDS_BETWEEN_TRADES,
            f"{context.now - context.last_trade} s since the last trade; the minimum is "
            f"{rails.min_seconds_between_trades} s",
        )
    return GuardrailVerdict(True, None, f"within every limit ({notional:.2f} USD)", notional)


def _refuse(reason: str, detail: str) -> GuardrailVerdict:
    return GuardrailVerdict(False, reason, detail)
