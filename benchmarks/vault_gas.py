"""Gas per trade through the guarded vault, beside a direct Router02 swap of the same amount.

On anvil with the real Uniswap V2 contracts and the committed GuardedVault artifact: the
agent swaps through `GuardedVault.swap`; right after, a trader's own account (its router
allowance already set, as a direct trader's would be) calls Router02's
`swapExactTokensForTokens` with the same amount in the same direction. Buys of 500 USD
alternate with sales of 0.25 WETH. Every transaction is mined in a block of its own, 12
seconds after the last, so every swap also updates the pair's price accumulators, as on
mainnet; both accounts hold both tokens from the start and the pool has traded before, so
neither side pays for a balance or an accumulator written for the first time.

Figures: the first trade of each; the steady state (the median of the 12 trades after the
first); the first trade after a day without trades (the 64 spends of its ring all expire);
and the steady state after that, once the ring has wrapped. `registerAgent` writes every
slot of a new agent's ring once (its gas is printed too), so no trade pays for a slot
written for the first time (20,000 gas more than rewriting one) and the two steady states
agree. `added` is the median, pair by pair, of the vault's gas minus the direct swap's. The
target (issue 11): the vault adds less than 60,000 gas.
"""

from __future__ import annotations

import statistics
from decimal import Decimal

from eth_account.signers.local import LocalAccount
from web3 import Web3

from devnet.accounts import DEPLOYER, DEV_ACCOUNTS
from devnet.anvil import Anvil, AnvilNotFound
from devnet.dex import Dex
from devnet.market import deploy_market, ensure_allowance, fund
from devnet.market_mover import MarketMover
from devnet.vault import DEMO_TWAP, advance, deploy_guarded_vault, observe_all
from host.chain.transact import send_transaction
from host.chain.vault_owner import VaultOwner

TARGET_ADDED = 60_000
STEADY_TRADES = 12
RING = 64  # GuardedVault.MAX_TRADES_PER_DAY: the spends one agent may have in 24 hours
BLOCK_SECONDS = 12
BUY_USD = 500 * 10**18
SELL_WETH = 25 * 10**16
AGENT, TRADER = DEV_ACCOUNTS[3], DEV_ACCOUNTS[4]


class _Run:
    """The two traders on one chain, and the gas of each trade: (vault, direct) pairs."""

    def __init__(self, w3: Web3, dex: Dex, owner: VaultOwner, register_gas: int) -> None:
        self.w3, self.dex, self.owner = w3, dex, owner
        self.register_gas = register_gas
        self.router = dex.router_contract(w3)
        self.seq = 0
        self.trades = 0

    def pair(self) -> tuple[int, int]:
        """One vault trade and the same direct trade; buys and sales alternate."""
        self.trades += 1
        buy = self.trades % 2 == 1
        path = [self.dex.usd, self.dex.weth] if buy else [self.dex.weth, self.dex.usd]
        amount = BUY_USD if buy else SELL_WETH
        min_out = int(self.router.functions.getAmountsOut(amount, path).call()[-1]) * 99 // 100
        self.seq += 1
        vault_call = self.owner.vault.contract.functions.swap(
            self.dex.router, *path, amount, min_out, 2**40, self.seq, b"\x11" * 32
        )
        direct_call = self.router.functions.swapExactTokensForTokens(
            amount, min_out, path, TRADER.address, 2**40
        )
        return self._gas(AGENT, vault_call), self._gas(TRADER, direct_call)

    def _gas(self, account: LocalAccount, call: object) -> int:
        self.w3.provider.make_request("evm_increaseTime", [BLOCK_SECONDS])  # type: ignore[arg-type]
        receipt = send_transaction(self.w3, account, call, what="benchmark swap")  # type: ignore[arg-type]
        return int(receipt["gasUsed"])


def _setup(w3: Web3) -> _Run:
    dex = deploy_market(w3, 2000, 60_000)
    # The pool trades once a block later (in the liquidity's own second, a swap would leave
    # the pair's price accumulators at zero and the first measured trade would set them).
    advance(w3, BLOCK_SECONDS)
    MarketMover(w3, dex).move_to(Decimal(2001))
    owner = deploy_guarded_vault(w3, dex)
    registered = owner.register(
        AGENT.address, 10**24, 10**27, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    )
    fund(w3, dex, DEPLOYER, DEPLOYER.address, weth=50)
    owner.deposit(dex.usd, 1_000_000 * 10**18)
    owner.deposit(dex.weth, 50 * 10**18)
    fund(w3, dex, DEPLOYER, TRADER.address, weth=50, usd=1_000_000)
    for symbol in ("USD", "WETH"):
        ensure_allowance(w3, dex, TRADER, symbol, 2**255)
    advance(w3, DEMO_TWAP.window_seconds)
    return _Run(w3, dex, owner, int(registered["gasUsed"]))


def _row(label: str, pairs: list[tuple[int, int]]) -> dict[str, int]:
    vault = int(statistics.median(v for v, _ in pairs))
    direct = int(statistics.median(d for _, d in pairs))
    added = int(statistics.median(v - d for v, d in pairs))
    verdict = "" if len(pairs) == 1 else f"  (target < {TARGET_ADDED:,})"
    print(f"  {label:<44} {vault:>9,} {direct:>9,} {added:>9,}{verdict}")
    return {"vault": vault, "direct": direct, "added": added}


def main() -> dict[str, dict[str, int]]:
    """Measure and print; returns the figures (empty when anvil is not installed)."""
    try:
        anvil = Anvil.start()
    except AnvilNotFound as exc:
        print(f"vault gas: skipped ({exc})")
        return {}
    with anvil:
        run = _setup(anvil.web3())
        first = [run.pair()]
        filling = [run.pair() for _ in range(STEADY_TRADES)]
        while run.trades < RING:  # the rest of the ring's first lap
            run.pair()
        advance(run.w3, 86_400)  # a day without trades, then a fresh TWAP
        observe_all(run.owner, run.dex)
        advance(run.w3, DEMO_TWAP.window_seconds)
        after_gap = [run.pair()]
        wrapped = [run.pair() for _ in range(STEADY_TRADES)]
    print("vault gas: GuardedVault.swap beside a direct Router02 swap of the same amount")
    print(f"  {'':<44} {'vault':>9} {'direct':>9} {'added':>9}")
    print(f"  {'registerAgent, once per agent (the owner pays)':<44} {run.register_gas:>9,}")
    return {
        "first": _row("first trade (a buy)", first),
        "steady": _row(f"steady, ring filling (median of {STEADY_TRADES})", filling),
        "after_gap": _row(f"first after a day without trades ({RING} expire)", after_gap),
        "wrapped": _row(f"steady, ring wrapped (median of {STEADY_TRADES})", wrapped),
    }


if __name__ == "__main__":
    main()
