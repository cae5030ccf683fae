"""GuardedVault on a real chain: anvil, the real Uniswap V2 contracts, the committed artifact.

Roles, caps at their boundaries, the rolling 24-hour window across time travel, the TWAP
bound and its availability, a manipulated pool, and receipt sequence numbers; every revert
is asserted by the contract's own error. (A leaked key and rotation: test_vault_keys.py; the
artifact and the deployed code: test_vault_build.py.) Skipped, with the reason, when anvil is
not installed (./scripts/bootstrap installs it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.needs_anvil import skip_without_anvil

skip_without_anvil()

from eth_account.signers.local import LocalAccount  # noqa: E402

from devnet.accounts import DEPLOYER, MOVER  # noqa: E402
from devnet.artifacts import load_artifact  # noqa: E402
from devnet.dex import TOKEN_SUPPLY  # noqa: E402
from devnet.market_mover import MarketMover  # noqa: E402
from devnet.vault import DEMO_TWAP, deploy_guarded_vault  # noqa: E402
from host.chain.transact import ChainError  # noqa: E402
from tests.vault_harness import (  # noqa: E402
    AGENT,
    BPS,
    CAP_PER_DAY,
    CAP_PER_TRADE,
    DAY,
    Q112,
    STRANGER,
    UNIT,
    ZERO_ADDRESS,
    VaultWorld,
    fresh,
    register,
    reverts,
    set_next_block_time,
    vault_world,
)


@pytest.fixture(scope="module")
def world_once() -> Iterator[VaultWorld]:
    with vault_world() as built:
        yield built


@pytest.fixture
def world(world_once: VaultWorld) -> Iterator[VaultWorld]:
    """The module's world, put back (state and clock) after each test."""
    with fresh(world_once.w3):
        yield world_once


# -- owner and agent roles ------------------------------------------------------------------

OWNER_ONLY: dict[str, Callable[[VaultWorld, LocalAccount], Any]] = {
    "deposit": lambda w, who: w.fn.deposit(w.dex.usd, UNIT),
    "withdraw": lambda w, who: w.fn.withdraw(w.dex.usd, UNIT, who.address),
    "pause": lambda w, who: w.fn.pause(),
    "unpause": lambda w, who: w.fn.unpause(),
    "setRouter": lambda w, who: w.fn.setRouter(who.address, True),
    "setMarket": lambda w, who: w.fn.setMarket(w.dex.wbtc, w.dex.btc_usd_pair, False),
    "setTwap": lambda w, who: w.fn.setTwap(1, 2**63, BPS - 1),
    "registerAgent": lambda w, who: w.fn.registerAgent(
        who.address, 2**127, 2**127, b"\x00" * 32, b"\x00" * 32, b"\x00" * 32
    ),
    "setCaps": lambda w, who: w.fn.setCaps(AGENT.address, 2**127, 2**127),
    "revokeAgent": lambda w, who: w.fn.revokeAgent(AGENT.address),
    "renounceOwnership": lambda w, who: w.fn.renounceOwnership(),
    "transferOwnership": lambda w, who: w.fn.transferOwnership(who.address),
}


@pytest.mark.parametrize("caller", [AGENT, STRANGER], ids=["agent", "stranger"])
@pytest.mark.parametrize("function", OWNER_ONLY)
def test_owner_only_functions_revert_for_the_agent_and_a_stranger(
    world: VaultWorld, function: str, caller: LocalAccount
) -> None:
    with reverts("OwnableUnauthorizedAccount") as raised:
        world.send(caller, OWNER_ONLY[function](world, caller))
    assert caller.address.lower() in str(raised.value)


def test_the_owner_cannot_renounce_ownership(world: VaultWorld) -> None:
    with reverts("OwnershipCannotBeRenounced"):
        world.send(DEPLOYER, world.fn.renounceOwnership())
    assert world.fn.owner().call() == DEPLOYER.address


def test_ownership_moves_in_two_steps(world: VaultWorld) -> None:
    world.send(DEPLOYER, world.fn.transferOwnership(STRANGER.address))
    assert world.fn.owner().call() == DEPLOYER.address
    assert world.fn.pendingOwner().call() == STRANGER.address
    with reverts("OwnableUnauthorizedAccount"):
        world.send(AGENT, world.fn.acceptOwnership())
    world.send(STRANGER, world.fn.acceptOwnership())
    assert world.fn.owner().call() == STRANGER.address
    assert world.fn.pendingOwner().call() == ZERO_ADDRESS
    with reverts("OwnableUnauthorizedAccount"):
        world.send(DEPLOYER, world.fn.withdraw(world.dex.usd, UNIT, DEPLOYER.address))
    world.send(STRANGER, world.fn.withdraw(world.dex.usd, UNIT, STRANGER.address))
    assert world.balance(world.dex.usd, STRANGER.address) == UNIT


def test_a_stranger_cannot_swap(world: VaultWorld) -> None:
    with reverts("NotAgent") as raised:
        world.buy(STRANGER, 100 * UNIT, seq=1)
    assert STRANGER.address.lower() in str(raised.value)


def test_the_agent_cannot_use_a_router_off_the_allowlist(world: VaultWorld) -> None:
    other = world.deploy("UniswapV2Router02", world.dex.factory, world.dex.weth)
    other_router = world.w3.eth.contract(address=other, abi=load_artifact("UniswapV2Router02").abi)
    assert other_router.functions.factory().call() == world.dex.factory  # a working Router02
    with reverts("RouterNotAllowed") as raised:
        world.buy(AGENT, 100 * UNIT, router=other)
    assert other.lower() in str(raised.value)
    world.owner.set_router(other)
    world.buy(AGENT, 100 * UNIT, router=other)
    world.owner.set_router(world.dex.router, False)
    with reverts("RouterNotAllowed"):
        world.buy(AGENT, 100 * UNIT)


def test_the_agent_cannot_trade_off_the_allowed_paths(world: VaultWorld) -> None:
    dex = world.dex
    unknown = world.deploy("ERC20", TOKEN_SUPPLY)
    paths = [
        (dex.wbtc, dex.weth),  # two allowlisted base tokens, no quote token
        (dex.weth, dex.wbtc),
        (dex.usd, unknown),
        (unknown, dex.usd),
        (dex.usd, dex.usd),
        (dex.weth, dex.weth),
    ]
    for token_in, token_out in paths:
        with reverts("PathNotAllowed"):
            world.swap(AGENT, token_in, token_out, UNIT, min_out=0)
    world.swap(AGENT, dex.usd, dex.wbtc, 500 * UNIT)
    world.owner.set_market(dex.wbtc, dex.btc_usd_pair, False)
    with reverts("PathNotAllowed"):
        world.swap(AGENT, dex.usd, dex.wbtc, 500 * UNIT, min_out=0)


def test_pause_stops_trading_and_the_owner_still_withdraws(world: VaultWorld) -> None:
    world.owner.pause()
    with reverts("EnforcedPause"):
        world.buy(AGENT, 100 * UNIT)
    before = world.balance(world.dex.weth, DEPLOYER.address)
    world.owner.withdraw(world.dex.weth, 2 * UNIT)
    assert world.balance(world.dex.weth, DEPLOYER.address) == before + 2 * UNIT
    world.owner.unpause()
    world.buy(AGENT, 100 * UNIT)


# -- caps at their boundaries ---------------------------------------------------------------


def test_a_buy_of_exactly_the_per_trade_cap_passes_and_one_unit_more_reverts(
    world: VaultWorld,
) -> None:
    with reverts("TradeCapExceeded") as raised:
        world.buy(AGENT, CAP_PER_TRADE + 1)
    assert f"TradeCapExceeded({CAP_PER_TRADE + 1}, {CAP_PER_TRADE})" in str(raised.value)
    world.buy(AGENT, CAP_PER_TRADE)
    assert world.vault.trades()[-1].notional == CAP_PER_TRADE
    assert world.notional_used(AGENT.address) == CAP_PER_TRADE


def test_a_sale_is_valued_at_the_twap_up_to_exactly_the_per_trade_cap(world: VaultWorld) -> None:
    price = world.twap(world.dex.weth)
    # The pool has not moved since the first observation: its TWAP is its price exactly.
    assert price == world.spot_price(world.dex.weth)
    largest = ((CAP_PER_TRADE + 1) * Q112 - 1) // price  # the most WETH worth <= the cap
    worth = largest * price // Q112
    over = (largest + 1) * price // Q112
    assert worth <= CAP_PER_TRADE < over
    with reverts("TradeCapExceeded") as raised:
        world.sell(AGENT, largest + 1)
    assert f"TradeCapExceeded({over}, {CAP_PER_TRADE})" in str(raised.value)
    world.sell(AGENT, largest)
    trade = world.vault.trades()[-1]
    assert (trade.amount_in, trade.notional) == (largest, worth)


def test_trades_summing_to_exactly_the_daily_cap_pass_and_one_unit_more_reverts(
    world: VaultWorld,
) -> None:
    last = 10**15  # a thousandth of a dollar: small, but the pool still pays out for it
    for _ in range(4):
        world.buy(AGENT, CAP_PER_TRADE)
    world.buy(AGENT, CAP_PER_TRADE - last)
    with reverts("DailyCapExceeded") as raised:
        world.buy(AGENT, last + 1)
    assert f"DailyCapExceeded({CAP_PER_DAY - last}, {last + 1}, {CAP_PER_DAY})" in str(raised.value)
    world.buy(AGENT, last)
    assert world.notional_used(AGENT.address) == CAP_PER_DAY
    with reverts("DailyCapExceeded") as raised:
        world.buy(AGENT, 1, min_out=0)
    assert f"DailyCapExceeded({CAP_PER_DAY}, 1, {CAP_PER_DAY})" in str(raised.value)
    with reverts("DailyCapExceeded"):
        world.sell(AGENT, UNIT // 100)


def test_the_daily_window_rolls_at_exactly_24_hours(world: VaultWorld) -> None:
    dex, agent = world.dex, AGENT.address

    def buy_at(timestamp: int) -> None:
        min_out = world.spot_out(dex.usd, dex.weth, CAP_PER_TRADE) * 99 // 100
        call = world.swap_call(dex.usd, dex.weth, CAP_PER_TRADE, min_out, world.next_seq(agent))
        world.send_at(timestamp, AGENT, call)

    first = world.now() + 10
    for offset in range(5):  # the daily cap in five buys, one a second
        buy_at(first + offset)
    assert world.notional_used(agent) == CAP_PER_DAY
    # A fresh observation, so that a TWAP exists a day later (the first one is too old then).
    world.send_at(first + DAY - 3600, STRANGER, world.fn.observe(dex.weth))

    set_next_block_time(world.w3, first + DAY - 1)
    assert world.notional_used(agent, "pending") == CAP_PER_DAY
    with reverts("DailyCapExceeded") as raised:
        buy_at(first + DAY - 1)
    assert f"DailyCapExceeded({CAP_PER_DAY}, {CAP_PER_TRADE}, {CAP_PER_DAY})" in str(raised.value)
    set_next_block_time(world.w3, first + DAY)
    assert world.notional_used(agent, "pending") == CAP_PER_DAY - CAP_PER_TRADE
    buy_at(first + DAY)
    assert world.notional_used(agent) == CAP_PER_DAY
    with reverts("DailyCapExceeded"):
        buy_at(first + DAY)  # the same second: the second buy still counts ...
    buy_at(first + DAY + 1)  # ... and a second later it has expired too


def test_a_day_after_the_newest_spend_the_whole_daily_cap_is_free(world: VaultWorld) -> None:
    dex, agent = world.dex, AGENT.address
    at = world.now() + 10
    for _ in range(5):  # the daily cap in five buys, all in one second
        buy = world.swap_call(dex.usd, dex.weth, CAP_PER_TRADE, 0, world.next_seq(agent))
        world.send_at(at, AGENT, _with_floor(world, buy))
    world.send_at(at + DAY - 3600, STRANGER, world.fn.observe(dex.weth))
    set_next_block_time(world.w3, at + DAY - 1)
    assert world.notional_used(agent, "pending") == CAP_PER_DAY
    buy = world.swap_call(dex.usd, dex.weth, CAP_PER_TRADE, 0, world.next_seq(agent))
    with reverts("DailyCapExceeded"):
        world.send_at(at + DAY - 1, AGENT, _with_floor(world, buy))
    for _ in range(5):  # a day later every one of them has expired at once
        buy = world.swap_call(dex.usd, dex.weth, CAP_PER_TRADE, 0, world.next_seq(agent))
        world.send_at(at + DAY, AGENT, _with_floor(world, buy))
    assert world.notional_used(agent) == CAP_PER_DAY


def _with_floor(world: VaultWorld, call: Any) -> Any:
    """`call` (a vault swap) with its minimum output 1% under the router's quote."""
    router, token_in, token_out, amount, _, deadline, seq, digest = call.args
    min_out = world.spot_out(token_in, token_out, amount) * 99 // 100
    return world.fn.swap(router, token_in, token_out, amount, min_out, deadline, seq, digest)


def test_an_agent_trades_at_most_64_times_a_day(world: VaultWorld) -> None:
    world.send(DEPLOYER, world.fn.setCaps(AGENT.address, CAP_PER_TRADE, 10**6 * UNIT))
    assert world.fn.MAX_TRADES_PER_DAY().call() == 64
    for _ in range(64):
        world.buy(AGENT, UNIT)
    with reverts("TooManyTrades"):
        world.buy(AGENT, UNIT)
    assert world.notional_used(AGENT.address) == 64 * UNIT


# -- the TWAP bound -------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_min_out_at_the_twap_floor_passes_and_one_unit_under_reverts(
    world: VaultWorld, side: str
) -> None:
    dex = world.dex
    token_in, token_out, amount = (
        (dex.usd, dex.weth, 500 * UNIT) if side == "buy" else (dex.weth, dex.usd, UNIT // 4)
    )
    _, floor = world.floor(token_in, token_out, amount)
    assert floor == _floor_by_hand(world, side, amount)
    with reverts("MinOutBelowTwap") as raised:
        world.swap(AGENT, token_in, token_out, amount, min_out=floor - 1)
    assert f"MinOutBelowTwap({floor - 1}, {floor})" in str(raised.value)
    world.swap(AGENT, token_in, token_out, amount, min_out=floor)
    trade = world.vault.trades()[-1]
    assert trade.amount_out >= floor


def _floor_by_hand(world: VaultWorld, side: str, amount: int) -> int:
    """The floor from the TWAP setting itself: 3% under the TWAP-implied output."""
    assert DEMO_TWAP.max_deviation_bps == 300
    price = world.twap(world.dex.weth)
    fair = amount * Q112 // price if side == "buy" else amount * price // Q112
    return fair * 9700 // BPS


def test_no_twap_until_a_window_has_passed_since_the_first_observation(
    world: VaultWorld,
) -> None:
    new_owner = deploy_guarded_vault(world.w3, world.dex)
    new_vault = VaultWorld(w3=world.w3, dex=world.dex, owner=new_owner)
    register(new_owner, AGENT)
    new_owner.deposit(world.dex.usd, 1000 * UNIT)
    observed = int(new_vault.fn.observations(world.dex.weth).call()[1])
    window = DEMO_TWAP.window_seconds
    set_next_block_time(world.w3, observed + window - 1)
    with reverts("TwapUnavailable"):
        new_vault.twap_or_error(new_vault.dex.weth, "pending")
    min_out = world.spot_out(world.dex.usd, world.dex.weth, 100 * UNIT) * 99 // 100
    call = new_vault.swap_call(world.dex.usd, world.dex.weth, 100 * UNIT, min_out, 1)
    with reverts("TwapUnavailable"):
        new_vault.send_at(observed + window - 1, AGENT, call)
    set_next_block_time(world.w3, observed + window)
    assert new_vault.twap_or_error(new_vault.dex.weth, "pending") == world.spot_price(
        world.dex.weth
    )
    new_vault.send_at(observed + window, AGENT, call)


def test_no_twap_when_the_only_observations_are_older_than_the_max_age(
    world: VaultWorld,
) -> None:
    weth = world.dex.weth
    older, newer = (int(value) for value in world.fn.observations(weth).call()[:2])
    assert older == 0 and newer > 0  # the deployment's single observation
    max_age, window = DEMO_TWAP.max_age_seconds, DEMO_TWAP.window_seconds
    set_next_block_time(world.w3, newer + max_age)
    assert world.twap_or_error(world.dex.weth, "pending") > 0
    set_next_block_time(world.w3, newer + max_age + 1)
    with reverts("TwapUnavailable"):
        world.twap_or_error(world.dex.weth, "pending")
    call = world.swap_call(world.dex.usd, weth, 100 * UNIT, 0, 1)
    with reverts("TwapUnavailable"):
        world.send_at(newer + max_age + 1, AGENT, call)
    # Observing now gives a new observation too young to use and leaves the old one too old:
    # still no TWAP (withholding observations stops trading; it never loosens a limit).
    world.send_at(newer + max_age + 1, STRANGER, world.fn.observe(weth))
    set_next_block_time(world.w3, newer + max_age + window)
    with reverts("TwapUnavailable"):
        world.twap_or_error(world.dex.weth, "pending")
    set_next_block_time(world.w3, newer + max_age + 1 + window)
    assert world.twap_or_error(world.dex.weth, "pending") > 0


# -- a lying price: the pool's spot moved, its TWAP barely -----------------------------------


@pytest.mark.parametrize(("side", "moved_to"), [("sell", 0.7), ("buy", 1.3)])
def test_a_trade_priced_at_a_manipulated_spot_reverts(
    world: VaultWorld, side: str, moved_to: float
) -> None:
    dex = world.dex
    before = world.twap(dex.weth)
    MarketMover(world.w3, dex, MOVER).move_to(round(2000 * moved_to))
    after = world.twap(dex.weth)
    assert abs(after - before) * 100 < before  # under 1%: the 30% move lasted seconds
    token_in, token_out, amount = (
        (dex.weth, dex.usd, UNIT // 4) if side == "sell" else (dex.usd, dex.weth, 500 * UNIT)
    )
    at_spot = world.spot_out(token_in, token_out, amount)  # what the lying host would quote
    _, floor = world.floor(token_in, token_out, amount)
    assert at_spot < floor
    with reverts("MinOutBelowTwap"):
        world.swap(AGENT, token_in, token_out, amount, min_out=at_spot)
    # At the TWAP's floor the pool cannot deliver: nothing is sold at the manipulated price.
    with pytest.raises(ChainError, match="INSUFFICIENT_OUTPUT_AMOUNT"):
        world.swap(AGENT, token_in, token_out, amount, min_out=floor)
    assert world.vault.trades() == []


# -- receipts -------------------------------------------------------------------------------


def test_receipt_sequence_numbers_must_rise_and_trades_carry_them(world: VaultWorld) -> None:
    with reverts("ReceiptSeqNotIncreasing") as raised:
        world.buy(AGENT, 100 * UNIT, seq=0)
    assert "ReceiptSeqNotIncreasing(0, 0)" in str(raised.value)
    first = world.buy(AGENT, 100 * UNIT, seq=5, digest=b"\x05" * 32)
    for seq in (5, 4):
        with reverts("ReceiptSeqNotIncreasing") as raised:
            world.buy(AGENT, 100 * UNIT, seq=seq, digest=b"\x06" * 32)
        assert f"ReceiptSeqNotIncreasing({seq}, 5)" in str(raised.value)
    second = world.sell(AGENT, UNIT // 20, seq=9, digest=b"\x09" * 32)
    trades = world.vault.trades()
    assert [(t.receipt_seq, t.receipt_digest) for t in trades] == [
        (5, b"\x05" * 32),
        (9, b"\x09" * 32),
    ]
    assert [t.tx_hash for t in trades] == [first["transactionHash"], second["transactionHash"]]
    assert {t.agent for t in trades} == {AGENT.address}
    assert world.last_seq(AGENT.address) == 9


# -- settings -------------------------------------------------------------------------------


def test_twap_settings_are_bounded_and_read_back(world: VaultWorld) -> None:
    for window, max_age, deviation in ((0, 10, 300), (11, 10, 300), (1, 2**32, 300),
                                       (1, 10, 0), (1, 10, BPS)):  # fmt: skip
        with reverts("InvalidArgument"):
            world.send(DEPLOYER, world.fn.setTwap(window, max_age, deviation))
    world.send(DEPLOYER, world.fn.setTwap(2**32 - 1, 2**32 - 1, BPS - 1))
    state = world.vault.state()
    assert (state.twap_window, state.twap_max_age, state.max_deviation_bps) == (
        2**32 - 1,
        2**32 - 1,
        BPS - 1,
    )
    assert not state.paused
