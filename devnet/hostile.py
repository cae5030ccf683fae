"""Hostile hosts against a finished demo run: what a lying operator, or a thief holding the
agent's key, can make the vault do (`./scripts/demo --hostile-host KIND`).

- `price-walk`: the host lies about the market. A burst of ticks with one timestamp walks
  the price (the enclave's move bound per unit of market time refuses it); then ticks 25
  hours apart walk it down and up again, with a TWAP that lies along (the replay clock
  believes the host's time), so the enclave signs trades valued at the lie. The vault
  values them at the pool's own TWAP and reverts them.
- `rollback`: the host starts forks of the enclave on a day-old sealed state, five times,
  burns the nonces the chain already used, and broadcasts what each fork signs
  (`devnet.rollback_attack`).
- `leaked-key`: the agent's key, unsealed with the simulated platform's secret (as an
  attacker who broke the TEE would), signs vault calls directly: withdrawals, an ownership
  transfer, swaps through another router, at a zero minimum output, over the caps, and as
  many at the cap as the day allows. Only trades within the caps go through.

Each returns the `attack` object of the demo's summary: what was tried, how many calls the
vault reverted (and with which of its errors), the most notional that passed in any 24
hours, the cap, and the value that left the vault other than through trades within the
limits or owner withdrawals (which must be 0).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.contract.contract import ContractFunction
from web3.types import TxParams, Wei

from devnet.demo_run import Session, say
from devnet.dex import pool_price
from devnet.rollback_attack import revert_name, rollback
from devnet.vault import DEMO_TWAP, advance, observe_all
from enclave.platform.sim import SimPlatform
from enclave.sealing import Sealer
from enclave.state import EnclaveState
from host.chain.fees import fee_hint
from wire.ticks import Tick

KINDS = ("price-walk", "rollback", "leaked-key")
DAY = 86_400
# The ERC-20 Transfer event's topic: keccak256("Transfer(address,address,uint256)").
_TRANSFER = bytes.fromhex("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")
# Gas for the thief's own transactions: enough for any vault call, so each one is mined and
# its revert happens on chain rather than in gas estimation.
_ATTACK_GAS = 600_000


def run_attack(kind: str, session: Session) -> dict[str, Any]:
    """Run the attack `kind` against the session and summarize it.

    Raises:
        ValueError: an unknown kind.
    """
    first_block = session.w3.eth.block_number + 1
    reasons = Counter[str]()
    if kind == "price-walk":
        tried, reverted = _price_walk(session, reasons)
    elif kind == "rollback":
        tried, reverted = rollback(session, reasons)
    elif kind == "leaked-key":
        tried, reverted = _leaked_key(session, reasons)
    else:
        raise ValueError(f"unknown attack {kind!r}: expected one of {', '.join(KINDS)}")
    record = session.vault.vault.state(session.address).agent
    if record is None:  # state() was asked for the agent: it always reads its record
        raise AssertionError("the vault read no agent record")
    decimals = session.tokens["USD"][1]
    return {
        "kind": kind,
        "tried": tried,
        "reverted": reverted,
        "max_notional_24h_usd": float(Decimal(max_notional_24h(session)).scaleb(-decimals)),
        "cap_per_day_usd": float(Decimal(record.cap_per_day).scaleb(-decimals)),
        "value_lost_usd": float(value_lost(session, first_block)),
        "reverted_by": dict(reasons.most_common()),
    }


def _price_walk(session: Session, reasons: Counter[str]) -> tuple[int, int]:
    agent, storage = session.host.agent, session.host.storage
    before = {tx.tx_hash for tx in storage.transactions()}
    status = agent.enclave_status()
    seq, when = status.last_tick_seq + 1, status.last_tick_timestamp_ms
    price = float(pool_price(session.w3, session.dex, "ETH/USD"))
    say("hostile host: a burst of ticks with one timestamp walking ETH down 15% a step")
    burst_time = when + 3_600_000
    burst = []
    for step in range(20):
        burst.append(Tick(seq + step, burst_time, "ETH/USD", price * 0.85 ** (step + 1), 1.0))
    session.send(burst, {"ETH/USD": burst[-1].price})
    seq += len(burst)
    say("hostile host: ticks 25 hours apart walking ETH down, then up, the TWAP lying along")
    lie, when = price, burst_time
    for step in range(24):
        lie *= 0.85 if step < 12 else 1 / 0.85
        when += 25 * 3_600_000
        session.send([Tick(seq, when, "ETH/USD", lie, 1.0)], {"ETH/USD": lie})
        seq += 1
    signed = [tx for tx in storage.transactions() if tx.tx_hash not in before]
    for tx in signed:
        if tx.status == "reverted":
            reasons[revert_name(session.w3, tx.tx_hash)] += 1
    return len(signed), sum(1 for tx in signed if tx.status == "reverted")


def _leaked_key(session: Session, reasons: Counter[str]) -> tuple[int, int]:
    thief = leaked_account(session)
    w3, dex = session.w3, session.dex
    # A day later, so that the thief meets the whole daily cap, not what the agent left.
    advance(w3, 86_400)
    observe_all(session.vault, dex)
    advance(w3, DEMO_TWAP.window_seconds)
    observe_all(session.vault, dex)
    say(f"thief: the agent's key {thief.address} unsealed; trying every way to move funds")
    vault = session.vault.vault.contract.functions
    usd, weth = dex.usd, dex.weth
    last_seq = session.vault.vault.state(session.address).agent
    seq = (last_seq.last_receipt_seq if last_seq else 0) + 1_000
    per_trade = last_seq.cap_per_trade if last_seq else 0
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 3600
    stranger = to_checksum_address("0x" + os.urandom(20).hex())

    def swap(token_in: str, token_out: str, amount: int, min_out: int, router: str) -> Any:
        nonlocal seq
        seq += 1
        return vault.swap(router, token_in, token_out, amount, min_out, deadline, seq,
                          os.urandom(32))  # fmt: skip

    price = pool_price(w3, dex, "ETH/USD")
    fair_weth = int(Decimal(per_trade) / price * Decimal("0.98"))
    calls: list[Callable[[], ContractFunction]] = [
        lambda: vault.withdraw(usd, 10**18, thief.address),
        lambda: vault.withdraw(weth, 10**17, stranger),
        lambda: vault.transferOwnership(thief.address),
        lambda: vault.registerAgent(stranger, 2**127, 2**127, bytes(32), bytes(32), bytes(32)),
        lambda: vault.setRouter(stranger, True),
        lambda: vault.unpause(),
        lambda: swap(usd, weth, per_trade // 2, 0, dex.router),
        lambda: swap(usd, weth, per_trade // 2, fair_weth // 2, stranger),
        lambda: swap(usd, weth, per_trade + 1, fair_weth, dex.router),
        lambda: swap(usd, dex.wbtc, per_trade // 2, 1, dex.router),
    ]
    # Then as many trades at the cap as the vault lets through: the daily cap ends them.
    calls += [lambda: swap(usd, weth, per_trade, fair_weth, dex.router)] * 8
    calls.append(lambda: swap(weth, usd, 10**18, 0, dex.router))
    tried = reverted = 0
    for call in calls:
        tried += 1
        tx_hash = _send_as(session, thief, call())
        if tx_hash is not None:
            reverted += 1
            reasons[revert_name(w3, tx_hash)] += 1
    return tried, reverted


def leaked_account(session: Session) -> LocalAccount:
    """The agent's account key, unsealed from the host's latest sealed state with the
    simulated platform's secret: what an attacker who broke the TEE would hold."""
    latest = session.host.storage.latest_sealed_state()
    if latest is None:
        raise SystemExit("error: no sealed state stored: nothing to unseal")
    identity = session.host.agent.supervisor.identity
    if identity is None:
        raise SystemExit("error: the enclave opened without an identity")
    model = None if identity.model_hash == bytes(32) else identity.model_hash
    platform = SimPlatform(
        session.workdir / "agent" / "sim",
        config_hash=session.config.config_hash(),
        model_hash=model,
    )
    state = EnclaveState.from_bytes(
        Sealer(
            platform.sealing_key(),
            platform.measurement(),
            config_hash=session.config.config_hash(),
            model_hash=identity.model_hash,
        ).unseal(latest[1])
    )
    account: LocalAccount = Account.from_key(state.account_secret)
    if account.address != identity.address:
        raise SystemExit("error: the unsealed key is not the agent's")
    return account


def _send_as(session: Session, account: LocalAccount, call: ContractFunction) -> bytes | None:
    """Sign and send `call` from `account` with a fixed gas limit (so it is mined even when
    it reverts); the transaction's hash when it reverted, None when it succeeded."""
    w3 = session.w3
    max_fee, priority = fee_hint(w3)
    fields: TxParams = {
        "from": account.address,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id,
        "gas": _ATTACK_GAS,
        "maxFeePerGas": Wei(max_fee),
        "maxPriorityFeePerGas": Wei(priority),
    }
    signed = account.sign_transaction(dict(call.build_transaction(fields)))  # type: ignore[arg-type]
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction), timeout=60, poll_latency=0.05
    )
    return None if int(receipt["status"]) == 1 else bytes(receipt["transactionHash"])


def max_notional_24h(session: Session) -> int:
    """The most notional of the agent's vault trades within any 24 hours of chain time, in
    quote units."""
    w3 = session.w3
    trades = sorted(
        (int(w3.eth.get_block(t.block)["timestamp"]), t.notional)
        for t in session.vault.vault.trades()
        if t.agent == session.address
    )
    best, window, start = 0, 0, 0
    for when, notional in trades:
        window += notional
        while when - trades[start][0] >= DAY:
            window -= trades[start][1]
            start += 1
        best = max(best, window)
    return best


def value_lost(session: Session, from_block: int) -> Decimal:
    """Value (whole USD at the pool's price) of tokens that left the vault from `from_block`
    other than as the input of a trade within the caps or an owner withdrawal."""
    w3, vault = session.w3, session.vault.vault
    record = vault.state(session.address).agent
    per_trade = record.cap_per_trade if record else 0
    explained: set[tuple[bytes, str, int]] = set()
    for trade in vault.trades(from_block):
        if trade.notional <= per_trade:
            explained.add((trade.tx_hash, trade.token_in, trade.amount_in))
    withdrawn = vault.contract.events.Withdrawn().get_logs(from_block=from_block)
    for log in withdrawn:
        explained.add(
            (bytes(log["transactionHash"]), to_checksum_address(log["args"]["token"]),
             int(log["args"]["amount"]))
        )  # fmt: skip
    prices = {
        "WETH": pool_price(w3, session.dex, "ETH/USD"),
        "WBTC": pool_price(w3, session.dex, "BTC/USD"),
        "USD": Decimal(1),
    }
    lost = Decimal(0)
    topic_from = "0x" + bytes(12).hex() + vault.address[2:].lower()
    for symbol in ("WETH", "USD", "WBTC"):
        token, decimals = session.tokens[symbol]
        logs = w3.eth.get_logs(
            {
                "address": to_checksum_address(token),
                "fromBlock": from_block,
                "toBlock": "latest",
                "topics": ["0x" + _TRANSFER.hex(), topic_from],
            }
        )
        for log in logs:
            amount = int.from_bytes(bytes(log["data"]), "big")
            if (bytes(log["transactionHash"]), to_checksum_address(token), amount) in explained:
                continue
            lost += Decimal(amount).scaleb(-decimals) * prices[symbol]
    return lost
