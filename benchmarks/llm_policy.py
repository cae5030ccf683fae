"""The LLM policy: latency cold vs warm beside llama-cpp-python's own decoding loop, and how
sensible SmolLM2's decisions are on real ETH/USDT candles.

Baseline for speed: llama-cpp-python's `create_completion` on the same model, the same
prompt tokens, the same grammar and the same greedy settings, alternated with our policy
decision by decision in the same run (so load on the machine hits both alike); ours is
also timed decoding token by token, to show what jump-forward decoding itself gains.
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
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path

from enclave.config import LlmPolicyConfig, parse_config
from enclave.llm_policy import LlamaPolicy, packaged_model
from enclave.market import features
from enclave.policy import MarketView
from enclave.policy_config import RulePolicyConfig

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


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def speed(name: str, model: Path, views: list[MarketView]) -> None:
    """Our decoding beside llama-cpp-python's `create_completion`, decision by decision.

    Per view, in rotating order so that load on the machine hits every side alike: our
    policy (jump-forward), our policy decoding token by token, and `create_completion` on the
    very prompt tokens our policy evaluates (rewound to the same prefix), with the same
    grammar, greedy. Reported: medians of the per-decision times and of the paired ratios.
    """
    config = _config()
    started = time.perf_counter()
    policy = LlamaPolicy(config, model, RulePolicyConfig())
    load_and_prefix = time.perf_counter() - started
    first = _timed(lambda: policy.decide(views[0]))

    llm, decoder, prefix = policy._llm, policy._decoder, len(policy._prefix_tokens)

    def ours(view: MarketView, jump_forward: bool) -> str:
        decoder.jump_forward = jump_forward
        try:
            return policy.generate(view)[0]
        finally:
            decoder.jump_forward = True

    def baseline(view: MarketView) -> str:
        prompt = policy._prefix_tokens + policy._tokenize(policy.prompt_suffix(view), bos=False)
        llm.n_tokens = prefix  # the same cached prefix ours starts from, the same suffix to eval
        out = llm.create_completion(
            prompt, max_tokens=config.max_tokens, temperature=0.0, top_k=1,
            grammar=policy._grammar,
        )  # fmt: skip
        base_tokens.append(out["usage"]["completion_tokens"])  # type: ignore[index]
        return str(out["choices"][0]["text"])  # type: ignore[index]

    base_tokens: list[int] = []
    times: dict[str, list[float]] = {"jump": [], "token": [], "base": []}
    texts: dict[str, list[str]] = {"jump": [], "token": [], "base": []}
    stats = []
    sides: dict[str, Callable[[MarketView], str]] = {
        "jump": lambda v: ours(v, True),
        "token": lambda v: ours(v, False),
        "base": baseline,
    }
    order = list(sides)
    for index, view in enumerate(views):
        for side in order[index % 3 :] + order[: index % 3]:
            started = time.perf_counter()
            texts[side].append(sides[side](view))
            times[side].append(time.perf_counter() - started)
            if side == "jump":
                stats.append(policy.last_stats)

    def median(values: Iterable[float]) -> float:
        return statistics.median(list(values))

    speedup = median(b / j for b, j in zip(times["base"], times["jump"], strict=True))
    overhead = median(t / b - 1 for t, b in zip(times["token"], times["base"], strict=True))
    same = sum(a == b for a, b in zip(texts["jump"], texts["base"], strict=True))
    same_token = sum(a == b for a, b in zip(texts["token"], texts["base"], strict=True))
    warm, base = median(times["jump"]), median(times["base"])
    ms = 1000
    n = len(views)
    print(f"llm policy: {name}, {n} decisions, greedy, grammar-constrained, paired per decision")
    print(f"  load + prefix ({prefix} tokens)             {load_and_prefix * ms:8.0f} ms")
    print(f"  first decision (cold)                      {first * ms:8.0f} ms")
    print(
        f"  warm decision, median                      {warm * ms:8.0f} ms"
        f"   baseline create_completion: {base * ms:.0f} ms   (target 200 ms)"
    )
    print(
        f"  speedup vs create_completion               {speedup:8.2f} x"
        "    (median of the paired per-decision time ratios)"
    )
    print(
        f"  our token-by-token decoding vs create_completion {overhead * 100:+6.1f} %"
        "  (overhead, median of paired ratios; target < 2 %)"
    )
    print(
        f"  answer tokens, median: forced {median(s.forced_tokens for s in stats):.0f}"
        f" + sampled {median(s.sampled_tokens for s in stats):.0f}"
        f" in {median(s.evals for s in stats):.0f} evaluations"
        f" ({median(s.forced_runs for s in stats):.0f} forced runs)"
        f"   baseline: {median(base_tokens):.0f} tokens, each sampled and evaluated alone"
    )
    other = [
        s.total_seconds - s.prompt_seconds - s.forced_seconds - s.sampled_seconds for s in stats
    ]
    print(
        "  where a warm decision's time goes (medians):"
        f" new prompt tokens ({median(s.prompt_tokens for s in stats):.0f}) eval"
        f" {median(s.prompt_seconds for s in stats) * ms:.0f} ms,"
        f" forced-run evals {median(s.forced_seconds for s in stats) * ms:.0f} ms,"
        f" sampled tokens {median(s.sampled_seconds for s in stats) * ms:.0f} ms,"
        f" other {median(other) * ms:.1f} ms"
    )
    print(
        f"  same answer text as create_completion      {same}/{n} (jump-forward),"
        f" {same_token}/{n} (token by token)"
    )


def quality(model: Path) -> None:
    closes = _closes()
    # The time bound far out: a machine busy with other work must not turn answers into
    # "policy timeout" holds and so change the figures (greedy decoding is deterministic).
    policy = LlamaPolicy(_config(timeout_seconds=600), model, RulePolicyConfig())
    agree = direction_agree = 0
    outcomes: dict[str, list[float]] = {"buy": [], "sell": [], "hold": []}
    rule_outcomes: dict[str, list[float]] = {"buy": [], "sell": [], "hold": []}
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
        move = closes[at + 24] / closes[at - 1] - 1
        outcomes[decision.action].append(move)
        rule_outcomes[rule].append(move)
    n = QUALITY_DECISIONS
    print(f"llm policy: decision sense, SmolLM2-135M on {n} real ETH/USDT 1h views (2022-2023)")
    print(f"  actions                             {json.dumps(counts)}")
    print(
        f"  same action as the trend rule       {agree / n * 100:8.1f} %  (baseline: the rule itself, 100 %)"
    )
    print(f"  never against the trend             {direction_agree / n * 100:8.1f} %")
    print(
        "  ETH move over the next 24 h, mean ± its standard error; baseline: the trend rule's own"
    )
    for action, moves in outcomes.items():
        if moves:
            rule_moves = rule_outcomes[action]
            print(
                f"    after {action:4s} {_mean_and_error(moves):>16s} (n={len(moves)})"
                f"   rule: {_mean_and_error(rule_moves):>16s} (n={len(rule_moves)})"
            )


def _mean_and_error(moves: list[float]) -> str:
    if not moves:
        return "-"
    error = statistics.stdev(moves) / len(moves) ** 0.5 if len(moves) > 1 else float("nan")
    return f"{statistics.fmean(moves) * 100:+.2f} ± {error * 100:.2f} %"


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
