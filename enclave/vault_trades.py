"""A decision to trade, as the vault call the enclave signs: the swap in token units, the
fees offered, and the `GuardedVault.swap` transaction that carries the decision's receipt.

`enclave.decisions` builds these once the policy has decided to trade; the guardrails
(`enclave.guardrails.judge`) then judge the transaction as built.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from enclave.config import EnclaveConfig, Pair
from enclave.guardrails import GWEI, ProposedTransaction
from enclave.policy import Decision
from enclave.transactions import SwapPlan, to_units, vault_swap_calldata

# Token amounts reach 78 digits (uint256); at this precision the plan's arithmetic is
# exact, as in the guardrails.
_PRECISION = 120


@dataclass(frozen=True)
class FeeHint:
    """The host's proposal for EIP-1559 fees (wei); untrusted, used only within the cap."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def plan_swap(config: EnclaveConfig, pair: Pair, decision: Decision, price: Decimal) -> SwapPlan:
    """The swap of a buy or sell `decision` on `pair` at `price` (quote per base): a buy
    spends `amount * price` of the quote (rounded up), a sell `amount` of the base (rounded
    down), and the minimum out is the quote at `price` less the decision's slippage
    (rounded up)."""
    with localcontext() as arithmetic:
        arithmetic.prec = _PRECISION
        return _plan_exact(config, pair, decision, price)


def _plan_exact(config: EnclaveConfig, pair: Pair, decision: Decision, price: Decimal) -> SwapPlan:
    base, quote = config.tokens[pair.base], config.tokens[pair.quote]
    keep = 1 - Decimal(decision.max_slippage_bps) / 10_000
    if decision.action == "buy":
        amount_in = to_units(decision.amount * price, quote.decimals, round_up=True)
        expected = Decimal(amount_in).scaleb(-quote.decimals) / price
        return SwapPlan(
            token_in=quote.address,
            token_out=base.address,
            amount_in=amount_in,
            min_out=to_units(expected * keep, base.decimals, round_up=True),
            expected_out=to_units(expected, base.decimals),
        )
    amount_in = to_units(decision.amount, base.decimals)
    expected = Decimal(amount_in).scaleb(-base.decimals) * price
    return SwapPlan(
        token_in=base.address,
        token_out=quote.address,
        amount_in=amount_in,
        min_out=to_units(expected * keep, quote.decimals, round_up=True),
        expected_out=to_units(expected, quote.decimals),
    )


def offered_fees(config: EnclaveConfig, fees: FeeHint | None) -> tuple[int, int]:
    """(max fee per gas, max priority fee per gas) in wei: the host's hint, or without one
    the guardrails' fee cap and at most 2 gwei of priority. A hint above the cap is passed
    on as it is, for the guardrails to refuse."""
    cap = int(config.guardrails.max_fee_per_gas_gwei * GWEI)
    if fees is None or fees.max_fee_per_gas == 0:
        return cap, min(cap, 2 * GWEI)
    return fees.max_fee_per_gas, min(fees.max_priority_fee_per_gas, fees.max_fee_per_gas)


def vault_swap(
    config: EnclaveConfig,
    plan: SwapPlan,
    max_fee_per_gas: int,
    deadline: int,
    receipt_seq: int,
    receipt_digest: bytes,
) -> ProposedTransaction:
    """The vault's swap of `plan` through the configured router, valid until `deadline`
    (unix seconds), carrying the sequence number and digest of the decision's receipt."""
    return ProposedTransaction(
        chain_id=config.chain.chain_id,
        to=config.vault.address,
        value=0,
        data=vault_swap_calldata(plan, config.chain.router, deadline, receipt_seq, receipt_digest),
        max_fee_per_gas=max_fee_per_gas,
    )
