"""Hard limits on every transaction the enclave would sign, enforced after the policy.

Deny by default: a transaction is signed only when every check below passes, in this order,
and each refusal names its guardrail in a machine-readable reason. The guardrails judge the
transaction as built (decoded target, selector and arguments), valued at the enclave's last
accepted price, never at anything the policy or the host claims.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from pydantic import BaseModel

from enclave.config import EnclaveConfig, Pair
from enclave.transactions import decode_call

DAY_SECONDS = 86_400
GWEI = 10**9


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
    """The enclave's own view at decision time."""

    address: str
    pair: Pair
    price: Decimal
    now: int
    paused: bool
    last_trade: int | None
    spent: list[SpendEntry]
    max_slippage_bps_requested: int


def notional_spent(spent: list[SpendEntry], now: int) -> Decimal:
    """Notional of swaps signed in the 24 hours up to `now`."""
    return sum(
        (entry.notional_usd for entry in spent if now - entry.timestamp < DAY_SECONDS),
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
        return _refuse("paused", "the owner paused the agent")
    if tx.chain_id not in rails.allowed_chain_ids:
        return _refuse("chain_id", f"chain {tx.chain_id} is not in {rails.allowed_chain_ids}")
    fee_cap = int(rails.max_fee_per_gas_gwei * GWEI)
    if tx.max_fee_per_gas > fee_cap:
        return _refuse(
            "max_fee_per_gas", f"max fee per gas {tx.max_fee_per_gas} wei exceeds {fee_cap} wei"
        )
    call = decode_call(tx.data)
    tokens = {config.tokens[symbol].address: symbol for symbol in rails.allowed_tokens}
    router = config.chain.router
    if call is not None and call.function == "approve":
        if tx.to in tokens and call.spender == router and tx.value == 0:
            return GuardrailVerdict(True, None, f"approve {tokens[tx.to]} to the router")
        return _refuse(
            "call_not_allowed", "approve is allowed only on allowed tokens, to the router"
        )
    if (
        call is None
        or tx.to != router
        or tx.value != 0
        or call.recipient != context.address
        or len(call.path) != 2
        or any(token not in tokens for token in call.path)
    ):
        return _refuse(
            "call_not_allowed",
            "only swapExactTokensForTokens through the router, between allowed tokens, "
            "paying the agent itself, is allowed",
        )
    base = config.tokens[context.pair.base]
    quote = config.tokens[context.pair.quote]
    if set(call.path) != {base.address, quote.address}:
        return _refuse("call_not_allowed", f"the swap path is not the pair {context.pair.symbol}")
    selling = call.path[0] == base.address
    amount_in = Decimal(call.amount_in).scaleb(-(base.decimals if selling else quote.decimals))
    notional = amount_in * context.price if selling else amount_in
    if notional > rails.max_notional_per_trade_usd:
        return _refuse(
            "max_notional_per_trade",
            f"notional {notional:.2f} USD exceeds {rails.max_notional_per_trade_usd} USD",
        )
    spent = notional_spent(context.spent, context.now)
    if spent + notional > rails.max_notional_per_day_usd:
        return _refuse(
            "max_notional_per_day",
            f"{spent:.2f} USD in the last 24 h plus {notional:.2f} USD exceeds "
            f"{rails.max_notional_per_day_usd} USD",
        )
    if context.max_slippage_bps_requested > rails.max_slippage_bps:
        return _refuse(
            "max_slippage",
            f"the decision allows {context.max_slippage_bps_requested} bps; the limit is "
            f"{rails.max_slippage_bps} bps",
        )
    expected_out = amount_in * context.price if selling else amount_in / context.price
    out_decimals = quote.decimals if selling else base.decimals
    floor = expected_out * (1 - Decimal(rails.max_slippage_bps) / 10_000)
    minimum = Decimal(call.min_out).scaleb(-out_decimals)
    if minimum < floor:
        return _refuse(
            "max_slippage",
            f"minimum out {minimum} is below {floor:.8f}, the quote at the accepted price "
            f"{context.price} less {rails.max_slippage_bps} bps",
        )
    if (
        context.last_trade is not None
        and context.now - context.last_trade < rails.min_seconds_between_trades
    ):
        return _refuse(
            "min_seconds_between_trades",
            f"{context.now - context.last_trade} s since the last trade; the minimum is "
            f"{rails.min_seconds_between_trades} s",
        )
    return GuardrailVerdict(True, None, f"within every limit ({notional:.2f} USD)", notional)


def _refuse(reason: str, detail: str) -> GuardrailVerdict:
    return GuardrailVerdict(False, reason, detail)
