"""The hand-written parts of a decision beside the library calls they stand in for, one core.

Each decision hashes its receipt and its transaction with Keccak-256, decodes the vault
call it judges, and writes the texts its receipt commits to. Measured in the same run on
the same inputs: `attestation.keccak.keccak256` beside `eth_hash.auto.keccak` (both
pycryptodome's compiled Keccak underneath); `decode_call` of a swap's calldata beside
eth_abi's `decode` of the same words (plus the EIP-55 spelling decode_call adds, cached in
both); a market view's and a decision's `canonical_json` beside `json.dumps` of their
`model_dump(mode="json")`. Each figure is the best of alternating rounds, after a warm-up.
Tests hold each part to its library's result (tests/test_keccak.py,
tests/test_calldata_encoding.py, tests/test_canonical_json.py).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from decimal import Decimal

from eth_abi import decode
from eth_hash.auto import keccak as eth_hash_keccak
from eth_utils import to_checksum_address

from attestation.keccak import keccak256
from benchmarks.one_core import one_core
from enclave.market import Features
from enclave.policy import Decision, MarketView
from enclave.transactions import SwapPlan, decode_call, vault_swap_calldata

ROUNDS = 5
COUNT = 20_000
ROUTER = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
SWAP_ARGUMENTS = ["address", "address", "address", "uint256", "uint256", "uint256", "uint64", "bytes32"]  # fmt: skip


# decode_call spells the addresses it decodes in EIP-55, from a cache: so does the baseline.
_checksummed = functools.lru_cache(maxsize=256)(to_checksum_address)


def _rate(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(COUNT):
        run()
    return COUNT / (time.perf_counter() - start)


def _cases() -> dict[str, Callable[[], object]]:
    # What one receipt's struct hash covers: ten 32-byte words.
    preimage = bytes(range(256)) + bytes(64)
    calldata = vault_swap_calldata(
        SwapPlan(USDT, WETH, 2_000 * 10**6, 10**18, 10**18), ROUTER, 1_700_001_800, 42,
        bytes(range(32)),
    )  # fmt: skip

    def eth_abi_call() -> object:
        router, token_in, token_out, *rest = decode(SWAP_ARGUMENTS, calldata[4:])
        return _checksummed(router), _checksummed(token_in), _checksummed(token_out), rest

    features = Features(
        price=2007.433878364715, closes=64, return_1=-0.018252470827254452,
        sma_short=2051.176859570934, sma_long=2048.933130205582, volatility=0.02138299320691699,
    )  # fmt: skip
    view = MarketView(
        pair="ETH/USDT", base="WETH", quote="USDT", timestamp=1_700_000_000, features=features,
        base_balance=Decimal("1.234567890123456789"), quote_balance=Decimal("12345.678901"),
        notional_left_today_usd=Decimal("5000"), max_notional_per_trade_usd=Decimal("1000"),
    )  # fmt: skip
    decision = Decision(
        action="buy", pair="ETH/USDT", amount=Decimal("0.123456"), max_slippage_bps=50,
        rationale="SMA 2051.18 above 2048.93",
    )  # fmt: skip

    def dumped(model: MarketView | Decision) -> Callable[[], object]:
        return lambda: json.dumps(
            model.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        )

    assert keccak256(preimage) == eth_hash_keccak(preimage)
    assert (
        view.canonical_json() == dumped(view)() and decision.canonical_json() == dumped(decision)()
    )
    return {
        "keccak256": lambda: keccak256(preimage),
        "eth_hash": lambda: eth_hash_keccak(preimage),
        "decode_call": lambda: decode_call(calldata),
        "eth_abi": eth_abi_call,
        "view_json": view.canonical_json,
        "view_json_dumps": dumped(view),
        "decision_json": decision.canonical_json,
        "decision_json_dumps": dumped(decision),
    }


def main() -> dict[str, float]:
    """Measure on one core and print; returns the figures."""
    with one_core():
        cases = _cases()
        for run in cases.values():
            run()  # warm-up: imports, caches
        best = dict.fromkeys(cases, 0.0)
        for _ in range(ROUNDS):
            for name, run in cases.items():
                best[name] = max(best[name], _rate(run))
    print("decision parts: hand-written beside the library calls, one core")
    dumps = "json.dumps(model_dump) (baseline)"
    rows = [
        ("keccak256 (direct)", "keccak256", "eth_hash.auto.keccak (baseline)", "eth_hash"),
        ("decode_call (word by word)", "decode_call", "eth_abi decode (baseline)", "eth_abi"),
        ("MarketView.canonical_json", "view_json", dumps, "view_json_dumps"),
        ("Decision.canonical_json", "decision_json", dumps, "decision_json_dumps"),
    ]
    for label, ours, baseline_label, baseline in rows:
        print(f"  {label:34s}  {best[ours]:10.0f} /s")
        print(f"  {baseline_label:34s}  {best[baseline]:10.0f} /s")
        print(f"  {'ratio':34s}  {best[ours] / best[baseline]:10.2f}x")
    return best


if __name__ == "__main__":
    main()
