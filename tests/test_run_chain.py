"""`tee-agent run` on a chain: the pool's own price as market data, the broadcaster sending
what the enclave signs through the guarded vault, and the vault's balances and TWAP and the
fees read from the node."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path

from nacl.signing import SigningKey

from tests.needs_anvil import skip_without_anvil

skip_without_anvil()

import devnet.dex  # noqa: E402
from devnet.accounts import DEPLOYER  # noqa: E402
from devnet.anvil import Anvil  # noqa: E402
from devnet.enclave_config import enclave_config_toml  # noqa: E402
from devnet.market import deploy_market, fund  # noqa: E402
from devnet.market_mover import MarketMover  # noqa: E402
from devnet.vault import advance, deploy_guarded_vault, observe_all  # noqa: E402
from host.chain.vault_owner import TwapSettings  # noqa: E402
from host.config import load_host_config  # noqa: E402
from host.market.feed import follow_pool  # noqa: E402
from host.metrics import HostMetrics  # noqa: E402
from host.run import start_host  # noqa: E402


def settle(condition, timeout: float = 300.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_run_trades_on_the_pools_own_price_and_broadcasts(tmp_path: Path) -> None:
    # The chain starts 100 s behind the wall clock, so that a minute of time travel (for the
    # vault's first TWAP) leaves its blocks, the ticks' time, within the enclave's 120 s.
    with Anvil.start(genesis_timestamp=int(time.time()) - 100) as anvil:
        w3 = anvil.web3()
        dex = deploy_market(w3, 2000, 30000)
        # A one-minute TWAP, and 10% of deviation: the test moves the pool 6% in seconds.
        twap = TwapSettings(window_seconds=60, max_age_seconds=3600, max_deviation_bps=1000)
        vault = deploy_guarded_vault(w3, dex, twap=twap)
        advance(w3, 60)
        observe_all(vault, dex)
        enclave = tmp_path / "enclave.toml"
        enclave_config_toml(
            dex, SigningKey.generate().verify_key.encode().hex(), vault=vault.vault.address,
            twap_window_seconds=60, twap_max_age_seconds=3600, max_twap_deviation_bps=1000,
            clock="wall", decision_interval_seconds=0, min_seconds_between_trades=0,
            short_window=2, long_window=4, path=enclave,
        )  # fmt: skip
        host_toml = tmp_path / "tee-agent.toml"
        host_toml.write_text(f"""
[host]
data_dir = "{tmp_path / "data"}"
auth_token = "chain-test-token"
metrics_listen = ""
[enclave]
config = "{enclave}"
[market]
source = "pool"
pair = "ETH/USD"
pool = "{dex.pairs["ETH/USD"]}"
[chain]
rpc_url = "{anvil.url}"
poll_seconds = 0.2
""")
        config = load_host_config(host_toml)
        metrics = HostMetrics()
        host = start_host(config, listen="127.0.0.1:0", metrics=metrics)
        stop = threading.Event()
        follower = threading.Thread(
            target=follow_pool,
            args=(host.agent, config.market, host.chain, host.enclave, stop),
            daemon=True,
        )
        try:
            identity = host.agent.supervisor.identity
            address = identity.address
            vault.register(address, 1000 * 10**18, 5000 * 10**18, identity.config_hash,
                           bytes(32), bytes(32))  # fmt: skip
            fund(w3, dex, DEPLOYER, address, eth=5)
            fund(w3, dex, DEPLOYER, DEPLOYER.address, weth=1)
            vault.deposit(dex.weth, 10**18)
            vault.deposit(dex.usd, 5000 * 10**18)
            follower.start()
            mover = MarketMover(w3, dex)
            for price in (2010, 2020, 2030, 2060, 2090, 2120, 2080, 2030, 1980, 1930):
                seen = host.storage.head()[0]
                mover.move_to(Decimal(price))
                # Let the tick be read and decided, and what it signed be mined, before the
                # market moves again (else a swap may meet a moved pool and revert).
                settle(lambda seen=seen: host.storage.head()[0] > seen)
                settle(lambda: all(tx.status in ("mined", "reverted")
                                   for tx in host.storage.transactions()))  # fmt: skip
            transactions = host.storage.transactions()
            receipts = [r.receipt for r in host.storage.receipts(1, 10_000)]
        finally:
            stop.set()
            follower.join(10)
            host.stop()
        assert transactions, [r.verdict for r in receipts]
        # Every transaction ends mined, or reverted with the reason the chain gave (a swap can
        # meet a pool the market already moved: that is the router's minimum-out at work).
        assert all(tx.status in ("mined", "reverted") for tx in transactions)
        assert all(
            tx.detail.startswith("reverted: ") for tx in transactions if tx.status == "reverted"
        )
        assert sum(tx.status == "mined" for tx in transactions) >= 2
        assert w3.eth.get_transaction_count(address) == len(transactions)
        # Each transaction carries its receipt (the receipt cannot carry the transaction's
        # hash, since the transaction carries the receipt's digest).
        signed = {r.seq for r in receipts if r.verdict == "signed"}
        assert signed == {tx.receipt_seq for tx in transactions}
        assert {t.receipt_seq for t in vault.vault.trades()} <= signed
        balances = devnet.dex.balances(w3, dex, vault.vault.address)
        assert balances["WETH"] != 10**18 or balances["USD"] != 5000 * 10**18
        # The host read the vault with every batch, for GetStatus.
        reading = host.agent.vault_watch.latest if host.agent.vault_watch else None
        assert reading is not None and reading.state is not None
        assert reading.state.agent is not None and reading.state.agent.active
