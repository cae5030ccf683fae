"""The local chain: a real anvil node, the real Uniswap V2 contracts from the npm artifacts.

Skipped, with the reason, when anvil is not installed (./scripts/bootstrap installs it).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.types import Wei

from devnet.accounts import DEPLOYER, DEV_ACCOUNTS, LIQUIDITY_PROVIDER, MOVER
from devnet.anvil import Anvil, AnvilError, AnvilNotFound, anvil_package, find_anvil
from devnet.artifacts import load_artifact
from devnet.dex import PAIRS, Dex, balances, pool_price, pool_ticks, reserves
from devnet.enclave_config import enclave_config_toml
from devnet.market import deploy_market, fund
from devnet.market_mover import MarketMover, swap_input
from enclave.config import parse_config
from host.chain.transact import ChainError, send_transaction
from host.market.onchain import SEQ_PER_BLOCK, PoolTicks
from host.market.replay import read_candles

ROOT = Path(__file__).resolve().parents[1]
ETH_CANDLES = ROOT / "data/market/eth-usdt-binance-1h-2022-2023.csv"
BTC_CANDLES = ROOT / "data/market/btc-usdt-binance-1h-2022-2023.csv"
TRADER = DEV_ACCOUNTS[3]  # a funded test account: neither the mover nor the provider
OWNER_KEY = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"


def _missing() -> str | None:
    try:
        find_anvil()
        load_artifact("UniswapV2Router02")
    except (AnvilNotFound, ChainError) as exc:
        return str(exc)
    return None


_MISSING = _missing()
# Tests that run a node; the others check pure helpers and run everywhere.
needs_anvil = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


def _first_close(path: Path) -> Decimal:
    # The file's text, not the float: the pool must sit at exactly this decimal price.
    candle = next(read_candles(path, "X/Y"))
    text = path.read_text(encoding="utf-8").splitlines()[1].split(",")[4]
    assert float(text) == candle.price
    return Decimal(text)


ETH_PRICE = _first_close(ETH_CANDLES)
BTC_PRICE = _first_close(BTC_CANDLES)


@pytest.fixture(scope="module")
def chain() -> Iterator[tuple[Anvil, Web3, Dex]]:
    with Anvil.start() as anvil:
        w3 = anvil.web3()
        dex = deploy_market(w3, ETH_PRICE, BTC_PRICE)
        yield anvil, w3, dex


def _rel(a: Decimal, b: Decimal) -> Decimal:
    return abs(a - b) / b


@needs_anvil
def test_anvil_listens_on_localhost_with_the_default_accounts(
    chain: tuple[Anvil, Web3, Dex],
) -> None:
    anvil, w3, _ = chain
    assert anvil.url.startswith("http://127.0.0.1:")
    assert w3.eth.chain_id == 31337
    assert [to_checksum_address(a) for a in w3.eth.accounts[: len(DEV_ACCOUNTS)]] == [
        account.address for account in DEV_ACCOUNTS
    ]
    assert DEV_ACCOUNTS[0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_find_anvil_names_bootstrap_when_missing(tmp_path: Path) -> None:
    with pytest.raises(AnvilNotFound, match=r"\./scripts/bootstrap"):
        find_anvil(tmp_path)


def test_anvil_package_names_per_platform() -> None:
    assert anvil_package("linux", "x86_64") == "@foundry-rs/anvil-linux-amd64"
    assert anvil_package("linux", "aarch64") == "@foundry-rs/anvil-linux-arm64"
    assert anvil_package("darwin", "arm64") == "@foundry-rs/anvil-darwin-arm64"
    assert anvil_package("darwin", "x86_64") == "@foundry-rs/anvil-darwin-amd64"
    assert anvil_package("win32", "AMD64") == "@foundry-rs/anvil-win32-amd64"
    with pytest.raises(AnvilNotFound, match="no npm build"):
        anvil_package("sunos5", "sparc")


@needs_anvil
def test_pairs_sit_at_the_create2_address_of_the_pair_init_code(
    chain: tuple[Anvil, Web3, Dex],
) -> None:
    _, w3, dex = chain
    # Computed here from the artifact, independently of the module's helper.
    pair_code = load_artifact("UniswapV2Pair").bytecode
    init_hash = keccak(pair_code)
    assert dex.init_code_hash == init_hash
    factory = dex.factory_contract(w3)
    for symbol, (base, quote) in PAIRS.items():
        a, b = dex.tokens[base], dex.tokens[quote]
        token0, token1 = sorted((a, b), key=lambda address: int(address, 16))
        salt = keccak(bytes.fromhex(token0[2:]) + bytes.fromhex(token1[2:]))
        expected = to_checksum_address(
            keccak(b"\xff" + bytes.fromhex(dex.factory[2:]) + salt + init_hash)[12:]
        )
        assert factory.functions.getPair(a, b).call() == expected == dex.pairs[symbol]
        pair = dex.pair_contract(w3, symbol)
        assert pair.functions.token0().call() == token0
        assert dex.base_is_token0(symbol) == (token0 == dex.tokens[base])
    # The router finds the pairs itself: its quote reads the reserves at the same address.
    router = dex.router_contract(w3)
    amounts = router.functions.getAmountsOut(10**18, [dex.weth, dex.usd]).call()
    assert amounts[0] == 10**18 and amounts[1] > 0


@needs_anvil
def test_liquidity_at_the_first_candle_close(chain: tuple[Anvil, Web3, Dex]) -> None:
    _, w3, dex = chain
    assert Decimal("3723.04") == ETH_PRICE
    # The shared pools are moved by other tests: the LP tokens show they were seeded.
    lp = dex.pair_contract(w3, "ETH/USD").functions.balanceOf(LIQUIDITY_PROVIDER.address).call()
    assert lp > 0
    # A fresh deployment shows the seeded price itself.
    fresh = Anvil.start()
    try:
        w3_fresh = fresh.web3()
        dex_fresh = deploy_market(w3_fresh, ETH_PRICE, BTC_PRICE)
        assert _rel(pool_price(w3_fresh, dex_fresh, "ETH/USD"), ETH_PRICE) < Decimal("1e-9")
        assert _rel(pool_price(w3_fresh, dex_fresh, "BTC/USD"), BTC_PRICE) < Decimal("1e-9")
        base, quote = reserves(w3_fresh, dex_fresh, "ETH/USD")
        assert (base, quote) == (1000 * 10**18, int(1000 * ETH_PRICE * 10**18))
    finally:
        fresh.stop()


@needs_anvil
def test_swap_by_a_test_account_moves_balances_by_the_router_amounts(
    chain: tuple[Anvil, Web3, Dex],
) -> None:
    _, w3, dex = chain
    fund(w3, dex, DEPLOYER, TRADER.address, eth=1, usd=5000)
    before = balances(w3, dex, TRADER.address)
    assert before["USD"] >= 5000 * 10**18

    # A direct Router02 swap, signed as EIP-1559 (the agent itself trades through the vault,
    # which approves the router; a test account approves it itself).
    approve = send_transaction(
        w3, TRADER, dex.token(w3, "USD").functions.approve(dex.router, 2**256 - 1), what="approve"
    )
    amount_in = 2500 * 10**18
    router = dex.router_contract(w3)
    quoted = router.functions.getAmountsOut(amount_in, [dex.usd, dex.weth]).call()
    deadline = w3.eth.get_block("latest")["timestamp"] + 600
    call = router.functions.swapExactTokensForTokens(
        amount_in, quoted[1] * 995 // 1000, [dex.usd, dex.weth], TRADER.address, deadline
    )
    simulated = call.call({"from": TRADER.address})
    assert simulated == quoted
    swap = send_transaction(w3, TRADER, call, what="swap")
    assert swap["type"] == 2
    after = balances(w3, dex, TRADER.address)

    assert before["USD"] - after["USD"] == simulated[0]
    assert after["WETH"] - before["WETH"] == simulated[1]
    assert after["WBTC"] == before["WBTC"]
    gas = sum(r["gasUsed"] * r["effectiveGasPrice"] for r in (approve, swap))
    assert before["ETH"] - after["ETH"] == gas


@needs_anvil
def test_a_swap_that_cannot_meet_its_minimum_raises_with_the_reason(
    chain: tuple[Anvil, Web3, Dex],
) -> None:
    _, w3, dex = chain
    fund(w3, dex, DEPLOYER, TRADER.address, usd=10)
    router = dex.router_contract(w3)
    send_transaction(
        w3, TRADER, dex.token(w3, "USD").functions.approve(dex.router, 2**256 - 1), what="approve"
    )
    deadline = w3.eth.get_block("latest")["timestamp"] + 600
    call = router.functions.swapExactTokensForTokens(
        10**18, 10**18, [dex.usd, dex.weth], TRADER.address, deadline
    )
    with pytest.raises(ChainError, match="INSUFFICIENT_OUTPUT_AMOUNT"):
        send_transaction(w3, TRADER, call, what="greedy swap")


@needs_anvil
def test_market_mover_lands_within_a_tenth_of_a_percent(chain: tuple[Anvil, Web3, Dex]) -> None:
    _, w3, dex = chain
    mover = MarketMover(w3, dex)
    assert mover.account.address == MOVER.address != TRADER.address
    start = pool_price(w3, dex, "ETH/USD")
    for factor in ("1.2", "0.8", "1.3", "0.7"):
        target = start * Decimal(factor)
        landed = mover.move_to(target)
        assert landed == pool_price(w3, dex, "ETH/USD")
        assert _rel(landed, target) < Decimal("0.001")
        # In fact the closed form lands far closer than the tolerance.
        assert _rel(landed, target) < Decimal("1e-12")
    btc_target = pool_price(w3, dex, "BTC/USD") * Decimal("0.8")
    assert _rel(mover.move_to(btc_target, "BTC/USD"), btc_target) < Decimal("0.001")
    mover.move_to(start)


def test_market_mover_swap_input_matches_the_pair_formula() -> None:
    # Constant product with the 0.3% fee, in integers as UniswapV2Library computes it.
    r_in, r_out = 3_723_040 * 10**18, 1000 * 10**18
    target = Decimal("4467.648")  # quote per base, the ratio r_in'/r_out'
    a = swap_input(r_in, r_out, target)
    out = a * 997 * r_out // (r_in * 1000 + a * 997)
    ratio = Decimal(r_in + a) / Decimal(r_out - out)
    assert _rel(ratio, target) < Decimal("1e-15")
    assert swap_input(r_in, r_out, Decimal(3000)) == 0


@needs_anvil
def test_pool_ticks_follow_every_swap(chain: tuple[Anvil, Web3, Dex]) -> None:
    _, w3, dex = chain
    ticks = pool_ticks(w3, dex, "ETH/USD")
    from_block = w3.eth.block_number + 1
    mover = MarketMover(w3, dex)
    start = pool_price(w3, dex, "ETH/USD")
    seen = []
    for factor in ("1.05", "0.97", "1.01"):
        mover.move_to(start * Decimal(factor))
        got, from_block = ticks.poll(from_block)
        assert len(got) == 1
        tick = got[0]
        price = pool_price(w3, dex, "ETH/USD")
        assert tick.pair == "ETH/USD" and tick.volume == 0.0
        assert tick.price == pytest.approx(float(price), rel=1e-12)
        block = w3.eth.get_block(tick.seq // SEQ_PER_BLOCK)
        assert tick.timestamp_ms == block["timestamp"] * 1000
        seen.append(tick)
        latest = ticks.latest()
        assert latest.price == pytest.approx(float(price), rel=1e-12)
        assert latest.seq > tick.seq
    assert [t.seq for t in seen] == sorted({t.seq for t in seen})
    assert ticks.poll(from_block) == ([], from_block)
    # The same ticks again from a block range, in pages smaller than the range.
    paged = PoolTicks.for_base_token(
        w3, dex.eth_usd_pair, dex.weth, 18, 18, "ETH/USD", max_block_range=2
    )
    again, _ = paged.poll(seen[0].seq // SEQ_PER_BLOCK)
    assert [t.seq for t in again] == [t.seq for t in seen]


@needs_anvil
def test_anvil_restart_with_a_state_file_keeps_balances_and_nonces(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    with Anvil.start(state_file=state) as anvil:
        w3 = anvil.web3()
        dex = deploy_market(w3, ETH_PRICE, BTC_PRICE)
        fund(w3, dex, DEPLOYER, TRADER.address, eth=2, weth=3, usd=100)
        MarketMover(w3, dex).move_to(ETH_PRICE * Decimal("1.1"))
        accounts = [a.address for a in (*DEV_ACCOUNTS[:4],)]
        held = {address: balances(w3, dex, address) for address in accounts}
        nonces = {address: w3.eth.get_transaction_count(address) for address in accounts}
        head = w3.eth.block_number
        price = pool_price(w3, dex, "ETH/USD")
        port, pid = anvil.port, anvil.pid
        ticks_before, _ = pool_ticks(w3, dex).poll(0)

        anvil.restart()
        assert anvil.pid != pid and anvil.port == port and state.stat().st_size > 0
        assert {address: balances(w3, dex, address) for address in accounts} == held
        assert {a: w3.eth.get_transaction_count(a) for a in accounts} == nonces
        assert w3.eth.block_number == head
        assert pool_price(w3, dex, "ETH/USD") == price
        assert pool_ticks(w3, dex).latest().price == pytest.approx(float(price), rel=1e-12)
        # Blocks and their logs survive too, so the tick history reads the same.
        assert pool_ticks(w3, dex).poll(0)[0] == ticks_before
        # And the chain carries on: the next transaction takes the next nonce and block.
        fund(w3, dex, DEPLOYER, TRADER.address, usd=1)
        assert w3.eth.get_transaction_count(DEPLOYER.address) == (nonces[DEPLOYER.address] + 1)
        assert w3.eth.block_number == head + 1
    assert not anvil.running()


def _dumped_block(state: Path) -> int:
    try:
        return int(json.loads(state.read_text(encoding="utf-8"))["best_block_number"])
    except (OSError, ValueError, KeyError):
        return -1  # not written yet, or caught mid-write


@needs_anvil
def test_a_killed_anvil_keeps_what_its_state_interval_dumped(tmp_path: Path) -> None:
    # SIGKILL gives anvil no chance to dump on exit: only the periodic dump survives.
    state = tmp_path / "anvil-state.json"
    with Anvil.start(state_file=state, state_interval=1) as anvil:
        w3 = anvil.web3()
        receiver = DEV_ACCOUNTS[5].address
        before = w3.eth.get_balance(receiver)
        send_transaction(w3, TRADER, {"to": receiver, "value": Wei(10**18)}, what="transfer")
        nonce = w3.eth.get_transaction_count(TRADER.address)
        deadline = time.monotonic() + 10
        while _dumped_block(state) < 1:
            assert time.monotonic() < deadline, "anvil never dumped its state"
            time.sleep(0.2)
        assert anvil.pid is not None
        os.kill(anvil.pid, signal.SIGKILL)
        anvil.restart()
        assert w3.eth.get_balance(receiver) == before + 10**18
        assert w3.eth.get_transaction_count(TRADER.address) == nonce


@needs_anvil
def test_restart_without_a_state_file_is_refused() -> None:
    with Anvil.start() as anvil, pytest.raises(AnvilError, match="state_file"):
        anvil.restart()


def _address(n: int) -> str:
    return to_checksum_address(keccak(n.to_bytes(32, "big"))[12:])


def test_enclave_config_loads(tmp_path: Path) -> None:
    # Needs no node: the config only reads the deployment's addresses.
    dex = Dex(
        chain_id=31337,
        weth=_address(1),
        usd=_address(2),
        wbtc=_address(3),
        factory=_address(4),
        router=_address(5),
        eth_usd_pair=_address(6),
        btc_usd_pair=_address(7),
        init_code_hash=bytes(32),
    )
    vault = _address(8)
    config = parse_config(enclave_config_toml(dex, OWNER_KEY, vault=vault), source="devnet")
    assert config.chain.chain_id == 31337 and config.chain.router == dex.router
    assert config.vault.address == vault
    assert (config.vault.twap_window_seconds, config.vault.twap_max_age_seconds) == (1800, 7200)
    assert config.vault.max_twap_deviation_bps == 300
    assert {s: t.address for s, t in config.tokens.items()} == dex.tokens
    assert {s: t.decimals for s, t in config.tokens.items()} == {"WETH": 18, "USD": 18, "WBTC": 18}
    assert [(p.symbol, p.base, p.quote) for p in config.pairs] == [
        ("ETH/USD", "WETH", "USD"),
        ("BTC/USD", "WBTC", "USD"),
    ]
    assert config.market.clock == "replay"
    assert config.guardrails.allowed_chain_ids == [31337]
    assert config.guardrails.allowed_tokens == ["WETH", "USD", "WBTC"]
    assert config.owner.public_key == OWNER_KEY
    path = tmp_path / "enclave.toml"
    llm = parse_config(
        enclave_config_toml(
            dex,
            OWNER_KEY,
            vault=vault,
            policy="llm",
            max_notional_per_trade_usd=250,
            path=path,
        )
    )
    assert path.read_text(encoding="utf-8").startswith("# tee-agent enclave configuration")
    assert llm.policy.kind == "llm" and llm.policy.llm is not None
    assert llm.guardrails.max_notional_per_trade_usd == Decimal(250)
    assert llm.config_hash() != config.config_hash()
    with pytest.raises(ValueError, match="32 bytes"):
        enclave_config_toml(dex, "abcd", vault=vault)
    with pytest.raises(ValueError, match="20-byte hex address"):
        enclave_config_toml(dex, OWNER_KEY, vault="0x1234")


@needs_anvil
def test_anvil_stops_within_its_timeout() -> None:
    anvil = Anvil.start()
    # The process itself, to read how it ended: stop() forgets it.
    process = anvil._process
    assert process is not None and anvil.pid == process.pid
    anvil.stop()
    anvil.stop()  # idempotent
    assert not anvil.running()
    # It ended on the SIGTERM (exit 0 after dumping, or the signal itself), not on the
    # SIGKILL that stop() sends when the timeout runs out (-9).
    assert process.returncode in (0, -signal.SIGTERM)
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)  # gone and reaped
