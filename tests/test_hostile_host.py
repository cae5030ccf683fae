"""A hostile host against a running agent and its vault: the demo's attacks, on a real
chain, a real host and a real simulated enclave.

One run of 30 hourly candles through the vault, then, in turn: batches replayed as they
were, a price walk (a burst with one timestamp, then ticks 25 hours apart with a TWAP that
lies along), five rollbacks of the sealed state (forks of the enclave that burn the used
nonces and trade again), and the agent's key unsealed and used directly. After each, the
on-chain notional in every 24 hours stays within the daily cap, no trade executed below the
TWAP bound, and no value left the vault other than through trades within the caps.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.needs_anvil import skip_without_anvil

skip_without_anvil()

from devnet.demo_run import Session, demo_session  # noqa: E402
from devnet.hostile import max_notional_24h, run_attack, value_lost  # noqa: E402
from devnet.vault import DEMO_TWAP  # noqa: E402
from wire.ticks import Tick  # noqa: E402

CAP_PER_DAY = 5000 * 10**18
Q112 = 2**112


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    args = argparse.Namespace(
        policy="rule", model=None, hours=30, start_row=3060,
        keep=tmp_path_factory.mktemp("hostile"), json=False, hostile_host=None,
    )  # fmt: skip
    with demo_session(args) as running:
        yield running


def _holds(session: Session) -> None:
    """What must hold after any attack."""
    assert max_notional_24h(session) <= CAP_PER_DAY
    assert value_lost(session, 0) == 0
    vault = session.vault.vault
    weth = session.dex.weth
    for trade in vault.trades():
        # The vault's TWAP just before the trade's block, as the vault valued it (to within
        # the seconds between the two); the output never fell below its bound.
        price = int(vault.contract.functions.twap(weth).call(block_identifier=trade.block - 1))
        selling = trade.token_in == weth
        fair = trade.amount_in * price // Q112 if selling else trade.amount_in * Q112 // price
        floor = Decimal(fair) * (1 - Decimal(DEMO_TWAP.max_deviation_bps) / 10_000)
        assert trade.amount_out >= floor * Decimal("0.999"), trade


def test_the_honest_run_traded_within_the_caps(session: Session) -> None:
    trades = [t for t in session.vault.vault.trades() if t.agent == session.address]
    assert trades
    assert all(tx.status == "mined" for tx in session.host.storage.transactions())
    _holds(session)


def test_replayed_batches_sign_nothing(session: Session) -> None:
    storage = session.host.storage
    before = len(storage.transactions()), storage.head()[0]
    last = session.candles[-1]
    status = session.host.agent.enclave_status()
    replayed = Tick(status.last_tick_seq, last.timestamp_ms, "ETH/USD", last.price, last.volume)
    session.send([replayed], session.twaps())
    # A replayed tick is refused as a duplicate, without a receipt (it is no new observation).
    assert (len(storage.transactions()), storage.head()[0]) == before


def test_a_price_walk_is_reverted_by_the_vault(session: Session) -> None:
    attack = run_attack("price-walk", session)
    assert attack["tried"] > 0 and attack["reverted"] == attack["tried"], attack
    # Priced from the lie (MinOutBelowTwap, TradeCapExceeded), or a day of the host's time
    # that is seconds of the chain's (DailyCapExceeded).
    assert set(attack["reverted_by"]) <= {
        "MinOutBelowTwap",
        "TradeCapExceeded",
        "DailyCapExceeded",
    }, attack
    assert attack["value_lost_usd"] == 0
    _holds(session)


def test_five_rollbacks_of_the_sealed_state_stay_within_the_caps(session: Session) -> None:
    attack = run_attack("rollback", session)
    # Each fork's caps start afresh, the vault's do not: most of what the forks sign reverts
    # on its receipt number or the day's notional. A fork whose receipt numbers have passed
    # the chain's may still trade, within the caps the vault counts, which _holds checks.
    assert attack["tried"] > 0 and attack["reverted"] > 0, attack
    # (The router may refuse one too: the pool moved past its minimum out.)
    assert attack["reverted_by"].keys() <= {
        "ReceiptSeqNotIncreasing",
        "DailyCapExceeded",
        "MinOutBelowTwap",
        "TradeCapExceeded",
        "UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT",
    }, attack
    assert "ReceiptSeqNotIncreasing" in attack["reverted_by"]
    assert attack["value_lost_usd"] == 0
    _holds(session)


def test_a_leaked_key_moves_nothing_beyond_the_caps(session: Session, tmp_path: Path) -> None:
    balances = session.vault_balances()
    attack = run_attack("leaked-key", session)
    assert attack["value_lost_usd"] == 0, attack
    # Owner functions, another router, a zero minimum out, an over-cap trade all revert; of
    # the trades at the per-trade cap, the daily cap lets five through.
    assert {"OwnableUnauthorizedAccount", "RouterNotAllowed", "MinOutBelowTwap",
            "TradeCapExceeded", "DailyCapExceeded"} <= attack["reverted_by"].keys()  # fmt: skip
    assert attack["tried"] - attack["reverted"] == 5
    assert attack["max_notional_24h_usd"] <= attack["cap_per_day_usd"]
    after = session.vault_balances()
    assert after["USD"] == balances["USD"] - 5 * 1000 * 10**18
    assert after["WETH"] > balances["WETH"]
    _holds(session)
