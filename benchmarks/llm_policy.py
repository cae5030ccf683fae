"""The LLM policy: latency cold vs warm, tokens per second beside llama-cpp-python's own loop,
and how sensible SmolLM2's decisions are on real ETH/USDT candles.

Baseline for speed: llama-cpp-python's `create_completion` on the same model, the same
prompt text, the same grammar and the same greedy settings, in the same run.
Baseline for sense: the moving-average trend rule the market view describes (buy in an
up-trend when there is USDT to spend, sell in a down-trend when there is WETH to sell,
hold otherwise), and the price move after each decision.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from llama_cpp.llama_grammar import LlamaGrammar

from enclave.config import LlmPolicyConfig, parse_config
from enclave.llm_policy import LlamaPolicy, packaged_model
from enclave.market import features
from enclave.policy import MarketView

REPO = Path(__file__).resolve().parent.parent
CANDLES = REPO / "data" / "market" / "eth-usdt-binance-1h-2022-2023.csv"
DECISIONS = 12
QUALITY_DECISIONS = 90


def _config(**settings: object) -> LlmPolicyConfig:
    sys.path.insert(0, str(REPO))
    from tests.enclave_harness import config_toml

    config = parse_config(config_toml("00" * 32, llm={"context_size": 8192, **settings}))
    assert config.policy.llm is not None
    return config.policy.llm


def _closes() -> list[float]:
    with CANDLES.open() as handle:
        return [float(row["close"]) for row in csv.DictReader(handle)]


def _view(closes: list[float], base: str, quote: str) -> MarketView:
    return MarketView(
        pair="ETH/USDT",
        base="WETH",
        quote="USDT",
        timestamp=0,
        features=features(closes, 12, 48),
        base_balance=Decimal(base),
        quote_balance=Decimal(quote),
        notional_left_today_usd=Decimal(5000),
        max_notional_per_trade_usd=Decimal(1000),
    )


def _views(closes: list[float], count: int, start: int = 100, step: int = 7) -> list[MarketView]:
    balances = [("0", "10000"), ("3", "0"), ("2", "5000")]
    return [_view(closes[: start + i * step], *balances[i % len(balances)]) for i in range(count)]


def speed(name: str, model: Path, views: list[MarketView]) -> None:
    config = _config()
    started = time.perf_counter()
    policy = LlamaPolicy(config, model, ["ETH/USDT"])
    load_and_prefix = time.perf_counter() - started
    started = time.perf_counter()
    policy.decide(views[0])
    first = time.perf_counter() - started

    ours_tokens, ours_time, warm = 0, 0.0, []
    for view in views:
        started = time.perf_counter()
        policy.generate(view)
        elapsed = time.perf_counter() - started
        warm.append(elapsed)
        ours_time += elapsed
        ours_tokens += policy.last_token_count

    llm = policy._llm
    schema = policy._schema
    # The very tokens our policy evaluates, so llama-cpp-python reuses the same prefix.
    prompts = [
        policy._prefix_tokens + policy._tokenize(policy.prompt_suffix(view), bos=False)
        for view in views
    ]
    base_tokens, base_time = 0, 0.0
    grammar = LlamaGrammar.from_json_schema(schema, verbose=False)  # built once, as ours is
    for prompt in prompts:
        started = time.perf_counter()
        out = llm.create_completion(
            prompt, max_tokens=config.max_tokens, temperature=0.0, top_k=1,
            grammar=grammar,
        )  # fmt: skip
        base_time += time.perf_counter() - started
        base_tokens += out["usage"]["completion_tokens"]  # type: ignore[index]

    suffix_tokens = statistics.fmean(
        len(policy._tokenize(policy.prompt_suffix(v), bos=False)) for v in views
    )
    ours_rate, base_rate = ours_tokens / ours_time, base_tokens / base_time
    print(f"llm policy: {name}, {len(views)} decisions, greedy, grammar-constrained")
    print(
        f"  load + prefix ({len(policy._prefix_tokens)} tokens)  {load_and_prefix * 1000:9.0f} ms"
    )
    print(f"  first decision                      {first * 1000:9.0f} ms")
    print(
        f"  warm decision (median, {suffix_tokens:.0f} new prompt tokens) {statistics.median(warm) * 1000:6.0f} ms"
    )
    print(
        f"  cold decision (load + prefix + warm) {(load_and_prefix + statistics.median(warm)) * 1000:8.0f} ms"
    )
    print(f"  tokens/s, our policy                {ours_rate:9.1f}")
    print(f"  tokens/s, llama-cpp-python create_completion (baseline) {base_rate:6.1f}")
    print(
        f"  overhead vs baseline                {100 * (1 - ours_rate / base_rate):8.1f} %  (target < 5 %)"
    )


def quality(model: Path) -> None:
    closes = _closes()
    policy = LlamaPolicy(_config(), model, ["ETH/USDT"])
    agree = direction_agree = 0
    outcomes: dict[str, list[float]] = {"buy": [], "sell": [], "hold": []}
    counts: dict[str, int] = {}
    start = 500
    step = (len(closes) - start - 24) // QUALITY_DECISIONS
    for index, view in enumerate(_views(closes, QUALITY_DECISIONS, start, step)):
        at = start + index * step
        decision = policy.decide(view)
        f = view.features
        assert f.sma_short is not None and f.sma_long is not None
        trend = "up" if f.sma_short > f.sma_long else "down"
        can_buy, can_sell = view.quote_balance > 0, view.base_balance > 0
        rule = (
            "buy"
            if trend == "up" and can_buy
            else "sell"
            if trend == "down" and can_sell
            else "hold"
        )
        agree += decision.action == rule
        direction_agree += decision.action in ("hold", {"up": "buy", "down": "sell"}[trend])
        counts[decision.action] = counts.get(decision.action, 0) + 1
        outcomes[decision.action].append(closes[at + 24] / closes[at - 1] - 1)
    n = QUALITY_DECISIONS
    print(f"llm policy: decision sense, SmolLM2-135M on {n} real ETH/USDT 1h views (2022-2023)")
    print(f"  actions                             {json.dumps(counts)}")
    print(
        f"  same action as the trend rule       {agree / n * 100:8.1f} %  (baseline: the rule itself, 100 %)"
    )
    print(f"  never against the trend             {direction_agree / n * 100:8.1f} %")
    for action, moves in outcomes.items():
        if moves:
            print(
                f"  ETH move over the next 24 h after {action:4s} {statistics.fmean(moves) * 100:+6.2f} % (n={len(moves)})"
            )


def _write_tiny_gguf(path: Path) -> Path:
    """The tiny-model tool in scripts/, loaded by path (scripts/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_tiny_gguf", REPO / "scripts" / "make_tiny_gguf.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written: Path = module.write_tiny_gguf(path)
    return written


def main() -> None:
    closes = _closes()
    views = _views(closes, DECISIONS)
    with tempfile.TemporaryDirectory() as directory:
        tiny = _write_tiny_gguf(Path(directory) / "tiny.gguf")
        speed("tiny random model", tiny, views)
    model = packaged_model()
    if model is None:
        print("llm policy: SmolLM2 not installed (./scripts/bootstrap installs it); skipped")
        return
    speed("SmolLM2-135M-Instruct Q4_1", model, views)
    quality(model)


if __name__ == "__main__":
    main()
