"""The rollback attack: a host that hands the enclave stale sealed state, again and again.

The sealed state holds the enclave's own spend record, receipt sequence and nonce; the host
stores it, so a hostile host can start a second enclave on an old copy (a fork) whose
record knows nothing of the trades since. Its nonce is stale too, so the host first burns
the nonces the chain has already used: it feeds the fork ticks an hour apart on a rising
price, with a tiny balance and a TWAP that agrees, so the fork signs dust buys, and throws
them away until the fork's next nonce is the chain's. Then it replays the last day's
market to the fork and broadcasts every trade it signs. The enclave's caps start afresh in
each fork; the vault's do not: it still counts the day's trades, and it refuses receipt
numbers that do not rise above the last trade's.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections import Counter
from decimal import Decimal

from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.types import TxParams

from devnet.demo_run import Session, say
from devnet.dex import set_next_block_time
from devnet.vault import observe_all
from host.chain.fees import fee_hint
from host.chain.node_errors import decode_revert, revert_payload
from host.config import load_host_config
from host.enclave_client import FeeHint
from host.market.feed import ticks_input
from host.run import RunningHost, start_host
from host.storage.open import open_storage
from wire.ticks import Tick

ROLLBACKS = 5
# Ticks fed to a fork to burn used nonces, at most: a policy that stops buying ends it.
_MAX_BURN_TICKS = 400
# The tiny quote balance the host reports while burning: buys of a few dollars.
_DUST_USD = 10 * 10**18


def rollback(session: Session, reasons: Counter[str]) -> tuple[int, int]:
    """Five forks from the stale sealed state; returns (transactions the forks signed and
    the host broadcast, how many of them the vault reverted), counting in `reasons` the
    vault's error of each revert."""
    if session.stale_state is None:
        raise SystemExit("error: no stale sealed state was kept during the run")
    tried = reverted = 0
    for round_number in range(1, ROLLBACKS + 1):
        fork = _start_fork(session, round_number)
        try:
            burnt = _burn_nonces(session, fork)
            sent, failed = _replay_last_day(session, fork, reasons)
        finally:
            fork.stop()
        say(
            f"hostile host: rollback {round_number}: {burnt} nonces burnt, {sent} trades "
            f"broadcast, {failed} reverted by the vault"
        )
        tried += sent
        reverted += failed
    return tried, reverted


def _start_fork(session: Session, round_number: int) -> RunningHost:
    """A second host on a copy of the stale sealed state, on the same (simulated) machine."""
    assert session.stale_state is not None
    directory = session.workdir / f"fork-{round_number}"
    shutil.rmtree(directory, ignore_errors=True)
    data = directory / "agent"
    data.mkdir(parents=True)
    storage = open_storage(str(data / "agent.db"))
    try:
        # The receipts the host had stored by then, so that the fork's continue its chain.
        storage.append_receipts(session.stale_receipts)
        storage.save_sealed_state(*session.stale_state)
    finally:
        storage.close()
    config = directory / "tee-agent.toml"
    sim = session.workdir / "agent" / "sim"
    config.write_text(
        f"""
[host]
listen = "127.0.0.1:50051"
data_dir = "{data}"
auth_token = "fork-{round_number}"
metrics_listen = ""

[enclave]
config = "{session.workdir / "enclave.toml"}"
sim_dir = "{sim}"
ready_timeout_seconds = 120

[market]
source = "none"
"""
    )
    return start_host(load_host_config(config), listen="127.0.0.1:0")


def _burn_nonces(session: Session, fork: RunningHost) -> int:
    """Feed the fork dust buys until its next nonce is the chain's; returns how many of its
    transactions were thrown away."""
    chain_nonce = session.w3.eth.get_transaction_count(to_checksum_address(session.address))
    status = fork.agent.enclave_status()
    seq, when = status.last_tick_seq + 1, status.last_tick_timestamp_ms
    # From the last price the fork saw (the candle before the stale copy was kept), rising
    # a little each hour: the trend the policy buys on, never a jump the enclave refuses.
    price = session.candles[-25].price if len(session.candles) > 24 else session.candles[0].price
    fees = FeeHint(*fee_hint(session.w3))
    for _ in range(_MAX_BURN_TICKS):
        if _next_nonce(fork, session.stale_nonce) >= chain_nonce:
            break
        price *= 1.001
        when += 3_600_000
        work = dataclasses.replace(
            ticks_input([Tick(seq, when, "ETH/USD", price, 1.0)]),
            fees=fees,
            balances={"USD": _DUST_USD, "WETH": 0},
            twaps={"ETH/USD": price},
        )
        fork.agent.ingest(work)
        seq += 1
    return len(fork.storage.transactions())


def _replay_last_day(session: Session, fork: RunningHost, reasons: Counter[str]) -> tuple[int, int]:
    """The last day's market again, on chain and to the fork; what the fork signs from the
    chain's nonce on is broadcast at once. Returns (broadcast, reverted)."""
    w3 = session.w3
    sent = reverted = 0
    broadcast = {tx.tx_hash for tx in fork.storage.transactions()}
    status = fork.agent.enclave_status()
    seq, when = status.last_tick_seq + 1, status.last_tick_timestamp_ms
    for candle in session.candles[-24:]:
        chain_time = int(w3.eth.get_block("latest")["timestamp"]) + 3600
        set_next_block_time(w3, chain_time)
        price = session.mover.move_to(Decimal(repr(candle.price)), "ETH/USD")
        observe_all(session.vault, session.dex)
        # On the chain's time (so that the router's deadlines hold), or after the fork's own.
        when = max(when + 3_600_000, chain_time * 1000)
        work = dataclasses.replace(
            ticks_input([Tick(seq, when, "ETH/USD", float(price), candle.volume)]),
            fees=FeeHint(*fee_hint(w3)),
            balances=session.vault_balances(),
            twaps=session.twaps(),
        )
        fork.agent.ingest(work)
        seq += 1
        chain_nonce = w3.eth.get_transaction_count(to_checksum_address(session.address))
        for tx in sorted(fork.storage.transactions(), key=lambda tx: tx.nonce):
            if tx.tx_hash in broadcast:
                continue
            broadcast.add(tx.tx_hash)
            if tx.nonce < chain_nonce:
                continue
            tx_hash = w3.eth.send_raw_transaction(tx.raw_transaction)
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.05)
            sent += 1
            if int(receipt["status"]) != 1:
                reverted += 1
                reasons[revert_name(w3, tx_hash)] += 1
    return sent, reverted


def revert_name(w3: Web3, tx_hash: bytes) -> str:
    """The name of the error a mined, reverted transaction reverted with: the call replayed
    on the state before its block (anvil mines one transaction per block)."""
    tx = w3.eth.get_transaction(HexBytes(tx_hash))
    # The block from the receipt: anvil may still answer the transaction from its pool,
    # without a block number, just after mining it.
    block = int(w3.eth.get_transaction_receipt(HexBytes(tx_hash))["blockNumber"])
    call: TxParams = {"from": tx["from"], "to": tx["to"], "data": tx["input"]}
    try:
        w3.eth.call(call, block_identifier=block - 1)
    except ContractLogicError as exc:
        payload = revert_payload(exc.data)
        return decode_revert(payload).split("(")[0] if payload else "no reason given"
    return "did not revert when replayed"


def _next_nonce(fork: RunningHost, stale_nonce: int) -> int:
    """The nonce the fork signs with next: the stale state's until it signed something."""
    return max((tx.nonce + 1 for tx in fork.storage.transactions()), default=stale_nonce)


__all__ = ["ROLLBACKS", "rollback"]
