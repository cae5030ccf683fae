"""GuardedVault against a leaked agent key, and through an agent's rotation, on a real chain
(anvil, the real Uniswap V2 contracts, the committed artifact).

A test that holds the agent's key tries every way to move the vault's funds and reaches
none beyond trades within the caps; a second agent with another config replaces the first
without the funds moving. Skipped, with the reason, when anvil is not installed
(./scripts/bootstrap installs it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.needs_anvil import skip_without_anvil

skip_without_anvil()

from eth_utils import keccak, to_checksum_address  # noqa: E402

from devnet.accounts import DEPLOYER  # noqa: E402
from devnet.dex import TOKEN_SUPPLY  # noqa: E402
from host.chain.transact import ChainError, send_transaction  # noqa: E402
from tests.vault_harness import (  # noqa: E402
    AGENT,
    BPS,
    CAP_PER_DAY,
    CAP_PER_TRADE,
    CONFIG_HASH,
    SECOND_AGENT,
    UNIT,
    ZERO_ADDRESS,
    VaultWorld,
    fresh,
    register,
    reverts,
    vault_world,
)

TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)")


@pytest.fixture(scope="module")
def world_once() -> Iterator[VaultWorld]:
    with vault_world() as built:
        yield built


@pytest.fixture
def world(world_once: VaultWorld) -> Iterator[VaultWorld]:
    """The module's world, put back (state and clock) after each test."""
    with fresh(world_once.w3):
        yield world_once


# -- a leaked agent key ----------------------------------------------------------------------


# Calldata a leaked key might send the vault to reach its tokens: ERC-20 approve, transfer and
# transferFrom for the agent, and a made-up "execute" call. The vault has no such function
# and no fallback.
def _raw_calls(world: VaultWorld) -> list[bytes]:
    agent = bytes.fromhex(AGENT.address[2:]).rjust(32, b"\0")
    vault = bytes.fromhex(world.vault.address[2:]).rjust(32, b"\0")
    everything = (2**256 - 1).to_bytes(32, "big")
    return [
        keccak(text="approve(address,uint256)")[:4] + agent + everything,
        keccak(text="transfer(address,uint256)")[:4] + agent + everything,
        keccak(text="transferFrom(address,address,uint256)")[:4] + vault + agent + everything,
        keccak(text="execute(address,bytes)")[:4] + agent + (64).to_bytes(32, "big") + bytes(32),
        b"",
    ]


def test_a_leaked_agent_key_moves_nothing_beyond_trades_within_the_caps(world: VaultWorld) -> None:
    dex, fn, key = world.dex, world.fn, AGENT
    start_block = world.w3.eth.block_number + 1
    vault_before = world.vault_balances()
    agent_before = {
        symbol: world.balance(token, key.address) for symbol, token in dex.tokens.items()
    }
    refused: list[str] = []

    def attempt(error: str, send: Callable[[], object]) -> None:
        with reverts(error):
            send()
        refused.append(error)

    # The owner's powers, tried with the agent's key.
    for call in (
        fn.withdraw(dex.usd, UNIT, key.address),
        fn.withdraw(dex.weth, UNIT, key.address),
        fn.transferOwnership(key.address),
        fn.acceptOwnership(),
        fn.registerAgent(key.address, 2**127, 2**127, CONFIG_HASH, CONFIG_HASH, CONFIG_HASH),
        fn.setCaps(key.address, 2**127, 2**127),
        fn.setRouter(key.address, True),
        fn.setMarket(dex.wbtc, dex.eth_usd_pair, True),
        fn.setTwap(1, 2**63, BPS - 1),
        fn.pause(),
    ):
        attempt("OwnableUnauthorizedAccount", lambda call=call: world.send(key, call))
    # Calls the vault does not have.
    for data in _raw_calls(world):
        with pytest.raises(ChainError, match="would revert"):
            send_transaction(world.w3, key, {"to": world.vault.address, "data": data}, what="raw")
    # Swaps the vault refuses: a router of the key's own, a token of its own, no minimum
    # output, more than the per-trade cap (a buy, and a sale valued at the TWAP).
    unknown = world.deploy("ERC20", TOKEN_SUPPLY)
    attempt("RouterNotAllowed", lambda: world.buy(key, CAP_PER_TRADE, router=key.address))
    attempt("PathNotAllowed", lambda: world.swap(key, dex.weth, unknown, UNIT, min_out=0))
    attempt("PathNotAllowed", lambda: world.swap(key, dex.weth, dex.wbtc, UNIT, min_out=0))
    attempt("MinOutBelowTwap", lambda: world.buy(key, CAP_PER_TRADE, min_out=0))
    attempt("MinOutBelowTwap", lambda: world.sell(key, UNIT // 4, min_out=0))
    attempt("TradeCapExceeded", lambda: world.buy(key, CAP_PER_TRADE + 1))
    attempt("TradeCapExceeded", lambda: world.sell(key, 10 * UNIT))
    # As many swaps as it can in a day, each about at the worst price the vault allows.
    passed = 0
    for round_ in range(12):
        token_in, token_out, amount = (
            (dex.usd, dex.weth, CAP_PER_TRADE) if round_ % 2 else (dex.weth, dex.usd, UNIT * 2 // 5)
        )
        notional, floor = world.floor(token_in, token_out, amount)
        trade = (token_in, token_out, amount, floor * 1001 // 1000)
        if world.notional_used(key.address) + notional <= CAP_PER_DAY:
            world.swap(key, *trade)
            passed += 1
        else:
            attempt("DailyCapExceeded", lambda trade=trade: world.swap(key, *trade))
    assert passed == 5
    # The owner revokes the key: nothing it signs trades any more.
    world.owner.revoke(key.address)
    attempt("NotAgent", lambda: world.buy(key, 100 * UNIT))
    attempt("NotAgent", lambda: world.sell(key, UNIT // 100))

    trades = world.vault.trades(from_block=start_block)
    assert len(trades) == passed
    assert all(t.notional <= CAP_PER_TRADE for t in trades)
    assert sum(t.notional for t in trades) <= CAP_PER_DAY
    # Every token the vault lost went out in those trades, and nothing else changed.
    expected = dict(vault_before)
    for t in trades:
        symbol_in = "USD" if t.token_in == dex.usd else "WETH"
        symbol_out = "USD" if t.token_out == dex.usd else "WETH"
        expected[symbol_in] -= t.amount_in
        expected[symbol_out] += t.amount_out
    assert world.vault_balances() == expected
    agent_after = {
        symbol: world.balance(token, key.address) for symbol, token in dex.tokens.items()
    }
    assert agent_after == agent_before
    recipients = [
        recipient
        for token in dex.tokens.values()
        for recipient in _transfers_from(world, token, start_block)
    ]
    assert recipients == [dex.eth_usd_pair] * passed  # the pool of each trade, no one else
    for token in dex.tokens.values():
        for spender in (dex.router, key.address):
            assert world.token(token).functions.allowance(world.vault.address, spender).call() == 0
    assert world.fn.owner().call() == DEPLOYER.address
    assert world.fn.pendingOwner().call() == ZERO_ADDRESS
    assert len(refused) == 10 + 7 + (12 - passed) + 2


def _transfers_from(world: VaultWorld, token: str, from_block: int) -> list[str]:
    """The recipients of every Transfer of `token` out of the vault since `from_block`."""
    sender = "0x" + world.vault.address[2:].lower().rjust(64, "0")
    logs = world.w3.eth.get_logs(
        {
            "address": to_checksum_address(token),
            "fromBlock": from_block,
            "toBlock": "latest",
            "topics": ["0x" + TRANSFER_TOPIC.hex(), sender],
        }
    )
    return [to_checksum_address(bytes(log["topics"][2])[-20:]) for log in logs]


# -- rotation -------------------------------------------------------------------------------


def test_rotation_registers_the_new_agent_revokes_the_old_and_moves_no_funds(
    world: VaultWorld,
) -> None:
    world.buy(AGENT, 500 * UNIT)
    before = world.vault_balances()
    register(world.owner, SECOND_AGENT, config_hash=b"\x22" * 32)
    world.owner.revoke(AGENT.address)
    assert world.vault_balances() == before
    old = world.vault.state(AGENT.address).agent
    new = world.vault.state(SECOND_AGENT.address).agent
    assert old is not None and new is not None
    assert (old.active, old.config_hash) == (False, CONFIG_HASH)
    assert (new.active, new.config_hash, new.notional_24h) == (True, b"\x22" * 32, 0)
    with reverts("NotAgent") as raised:
        world.buy(AGENT, 100 * UNIT)
    assert AGENT.address.lower() in str(raised.value)
    with reverts("NotAgent"):
        world.owner.revoke(AGENT.address)
    with reverts("NotAgent"):
        world.send(DEPLOYER, world.fn.setCaps(AGENT.address, 1, 1))
    world.buy(SECOND_AGENT, 500 * UNIT, seq=1)
    assert world.vault.trades()[-1].agent == SECOND_AGENT.address
    assert world.notional_used(SECOND_AGENT.address) == 500 * UNIT


def test_a_revoked_agent_registered_again_keeps_its_receipt_number_and_spends(
    world: VaultWorld,
) -> None:
    world.buy(AGENT, CAP_PER_TRADE, seq=7)
    world.owner.revoke(AGENT.address)
    register(world.owner, AGENT)
    with reverts("ReceiptSeqNotIncreasing") as raised:  # its old receipts cannot trade again
        world.buy(AGENT, CAP_PER_TRADE, seq=7)
    assert "ReceiptSeqNotIncreasing(7, 7)" in str(raised.value)
    assert world.notional_used(AGENT.address) == CAP_PER_TRADE
    world.buy(AGENT, CAP_PER_TRADE, seq=8)
    assert world.notional_used(AGENT.address) == 2 * CAP_PER_TRADE
