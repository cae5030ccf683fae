"""The LLM policy on real llama.cpp: a tiny random GGUF for speed, SmolLM2-135M end to end."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclave.config import ConfigError, LlmPolicyConfig, parse_config
from enclave.market import Features, features
from enclave.policy import MarketView, ModelError, trade_amount
from enclave.policy_config import RulePolicyConfig, ViewField

llama_policy = pytest.importorskip("enclave.llm_policy", reason="llama-cpp-python not installed")
LlamaPolicy = llama_policy.LlamaPolicy
from enclave.llm_prompt import answer_model, market_view, parse_answer  # noqa: E402
from tests.enclave_harness import config_toml  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# The trade sizing the policy applies to the model's direction (the rule policy's).
SIZING = RulePolicyConfig(trade_fraction=Decimal("0.25"), slippage_bps=50)
EVERY_FIELD: list[ViewField] = list(get_args(ViewField))


def llm_config(**settings: object) -> LlmPolicyConfig:
    # The tiny model spends one token per byte: it needs a longer context than SmolLM2.
    config = parse_config(config_toml("00" * 32, llm={"context_size": 8192, **settings}))
    assert config.policy.llm is not None
    return config.policy.llm


@pytest.fixture(scope="session")
def tiny_policy(tiny_model: Path) -> object:
    # The budget under test is tokens; the time limit is set far out so that a machine busy
    # with other work (llama.cpp's threads slow down many times over when they share cores)
    # cannot cut an answer short.
    return LlamaPolicy(llm_config(max_tokens=256, timeout_seconds=600), tiny_model, SIZING)


def view(closes: list[float], base: str = "2", quote: str = "1000") -> MarketView:
    return MarketView(
        pair="ETH/USDT",
        base="WETH",
        quote="USDT",
        timestamp=1_700_000_000,
        features=features(closes, 12, 48),
        base_balance=Decimal(base),
        quote_balance=Decimal(quote),
        notional_left_today_usd=Decimal(5000),
        max_notional_per_trade_usd=Decimal(1000),
    )


RISING = [1000.0 + 5 * i for i in range(60)]


def test_the_model_hash_is_the_files_sha256(tiny_model: Path, tiny_policy: object) -> None:
    import hashlib

    assert tiny_policy.model_hash == hashlib.sha256(tiny_model.read_bytes()).digest()  # type: ignore[attr-defined]


def test_a_model_other_than_the_configured_one_is_refused(tiny_model: Path) -> None:
    with pytest.raises(ModelError, match="requires"):
        LlamaPolicy(llm_config(model_sha256="ab" * 32), tiny_model, SIZING)


def test_a_missing_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read model"):
        LlamaPolicy(llm_config(), tmp_path / "none.gguf", SIZING)


prices = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    closes=st.lists(prices, min_size=1, max_size=60),
    base=st.decimals(min_value=0, max_value=10**6, places=6),
    quote=st.decimals(min_value=0, max_value=10**9, places=2),
)
def test_grammar_constrained_output_always_parses(
    tiny_policy: object, closes: list[float], base: Decimal, quote: Decimal
) -> None:
    market = view(closes, str(base), str(quote))
    text, cut_short = tiny_policy.generate(market)  # type: ignore[attr-defined]
    assert not cut_short, "every answer the grammar allows fits the token budget"
    answer = json.loads(text)
    assert list(answer) == ["action", "rationale"] and len(answer["rationale"]) <= 32
    decision = tiny_policy.decide(market)  # type: ignore[attr-defined]
    assert decision.pair == "ETH/USDT"
    assert not decision.rationale.startswith("invalid policy output")
    if answer["action"] == "hold" or market.features.sma_long is None:
        assert decision.action == "hold"
    else:  # the model's direction, sized by the enclave; nothing to trade is a hold
        amount = trade_amount(market, answer["action"], SIZING.trade_fraction)
        if amount > 0:
            assert (decision.action, decision.amount) == (answer["action"], amount)
            assert (decision.max_slippage_bps, decision.rationale) == (50, answer["rationale"])
        else:
            assert decision.action == "hold"
            assert decision.rationale.startswith(f"the model chose {answer['action']}, but ")


def test_the_same_inputs_give_the_same_decision_bytes(
    tiny_model: Path, tiny_policy: object
) -> None:
    market = view(RISING)
    first = tiny_policy.decide(market).canonical_json()  # type: ignore[attr-defined]
    tiny_policy.decide(view(RISING[:30], "0", "50"))  # type: ignore[attr-defined]
    again = tiny_policy.decide(market).canonical_json()  # type: ignore[attr-defined]
    cold = LlamaPolicy(llm_config(max_tokens=256), tiny_model, SIZING).decide(market)
    assert first == again == cold.canonical_json()


def test_the_same_decision_across_a_process_restart(tiny_model: Path, tiny_policy: object) -> None:
    market = view(RISING)
    program = f"""
import json, sys
from pathlib import Path
sys.path.insert(0, {str(REPO)!r})
from enclave.llm_policy import LlamaPolicy
from enclave.policy import MarketView
from tests.test_llm_policy import llm_config
view = MarketView.model_validate_json(sys.stdin.read())
from tests.test_llm_policy import SIZING
print(LlamaPolicy(llm_config(max_tokens=256), Path({str(tiny_model)!r}), SIZING).decide(view).canonical_json())
"""
    out = subprocess.run(
        [sys.executable, "-c", program],
        input=market.canonical_json(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == tiny_policy.decide(market).canonical_json()  # type: ignore[attr-defined]


def test_the_prompt_holds_only_enclave_numbers_and_allowlisted_symbols(tiny_model: Path) -> None:
    config = llm_config().model_copy(update={"view": EVERY_FIELD, "examples": []})
    suffix = LlamaPolicy(config, tiny_model, SIZING).prompt_suffix(view(RISING))
    market_json = suffix[suffix.index("{") : suffix.rindex("}") + 1]
    fields = json.loads(market_json)
    assert list(fields) == EVERY_FIELD
    assert fields["pair"] == "ETH/USDT" and fields["trend"] in ("up", "down", "flat")
    for key, value in fields.items():
        if key not in ("pair", "trend"):
            assert value is None or isinstance(value, (int, float, bool)), key


def test_the_default_view_is_the_trend_alone(tiny_policy: object) -> None:
    suffix = tiny_policy.prompt_suffix(view(RISING))  # type: ignore[attr-defined]
    assert '{"trend":"up"}' in suffix and suffix.count("{") == 1


@settings(max_examples=30, deadline=None)
@given(text=st.text(min_size=1, max_size=40))
def test_host_text_in_the_pair_field_is_refused_at_ingestion(text: str) -> None:
    from enclave.market import MarketMemory, refusal_reason
    from wire.ticks import Tick

    config = parse_config(config_toml("00" * 32))
    tick = Tick(seq=1, timestamp_ms=0, pair=text, price=1.0, volume=1.0)
    reason = refusal_reason(tick, MarketMemory(), config, now_ms=0)
    assert reason == ("unknown_pair" if text != "ETH/USDT" else None)


def test_a_tight_time_bound_gives_a_hold_with_policy_timeout(tiny_model: Path) -> None:
    policy = LlamaPolicy(llm_config(timeout_seconds="0.000001"), tiny_model, SIZING)
    decision = policy.decide(view(RISING))
    assert (decision.action, decision.rationale) == ("hold", "policy timeout")


def test_a_tight_token_bound_gives_a_hold_with_policy_timeout(tiny_model: Path) -> None:
    policy = LlamaPolicy(llm_config(max_tokens=16), tiny_model, SIZING)
    decision = policy.decide(view(RISING))
    assert (decision.action, decision.rationale) == ("hold", "policy timeout")


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ('{"action":"buy","rationale":"' + "x" * 33 + '"}', "rationale"),
        ('{"action":"short","rationale":"x"}', "action"),
        ('{"action":"buy","rationale":"x","amount":"9"}', "amount: Extra inputs"),
        ('{"action":"buy"}', "Field required"),
        ("not json", "Invalid JSON"),
    ],
)  # fmt: skip
def test_invalid_output_becomes_a_hold_with_the_reason(answer: str, reason: str) -> None:
    decision = parse_answer(answer, view(RISING), answer_model(32), SIZING)
    assert decision.action == "hold"
    assert decision.rationale.startswith("invalid policy output")
    assert reason in decision.rationale


@pytest.mark.parametrize(
    ("action", "base", "quote", "left", "why"),
    [
        ("buy", "2", "0", "5000", "there is no USDT to spend"),
        ("sell", "0", "1000", "5000", "there is no WETH to sell"),
        ("buy", "2", "1000", "0", "the day's notional limit is used up"),
        ("sell", "0.000001", "1000", "5000", "the trade would be below the smallest amount"),
    ],
)
def test_a_direction_with_nothing_to_trade_is_a_hold_that_says_why(
    action: str, base: str, quote: str, left: str, why: str
) -> None:
    market = view(RISING, base, quote).model_copy(update={"notional_left_today_usd": Decimal(left)})
    answer = f'{{"action":"{action}","rationale":"go"}}'
    decision = parse_answer(answer, market, answer_model(32), SIZING)
    assert (decision.action, decision.amount) == ("hold", 0)
    assert decision.rationale.startswith(f"the model chose {action}, but {why}")


def test_the_enclave_sizes_the_models_trade_within_the_limits() -> None:
    market = view(RISING, "2", "100000")  # a quarter of the USDT is above the per-trade cap
    decision = parse_answer('{"action":"buy","rationale":"up"}', market, answer_model(32), SIZING)
    price = Decimal(repr(market.features.price))
    assert decision.action == "buy" and decision.rationale == "up"
    assert decision.amount == (Decimal(1000) / price).quantize(Decimal("0.000001"), "ROUND_DOWN")
    assert decision.max_slippage_bps == SIZING.slippage_bps
    sell = parse_answer('{"action":"sell","rationale":""}', market, answer_model(32), SIZING)
    assert (sell.action, sell.amount) == ("sell", Decimal("0.5"))


@pytest.mark.parametrize(
    ("market", "decision", "error"),
    [
        ('{"trend":"up","price":1}', '{"action":"buy","rationale":"x"}', "fields in order (trend)"),
        ("[1]", '{"action":"buy","rationale":"x"}', "fields in order"),
        ('{"trend":"up"}', '{"action":"buy","amount":"1","rationale":"x"}', "not an answer"),
        ('{"trend":"up"}', '{"action": "buy", "rationale": "x"}', "compact JSON"),
        ('{"trend":"up"}', '{"rationale":"x","action":"buy"}', "compact JSON"),
    ],
)
def test_worked_examples_the_model_could_not_follow_are_refused(
    tiny_model: Path, market: str, decision: str, error: str
) -> None:
    config = llm_config()
    example = config.examples[0].model_copy(update={"market": market, "decision": decision})
    bad = config.model_copy(update={"examples": [*config.examples, example]})
    number = len(bad.examples)
    with pytest.raises(ModelError, match=rf"example {number}: .*{re.escape(error)}"):
        LlamaPolicy(bad, tiny_model, SIZING)


def test_a_view_naming_a_field_twice_is_refused_at_config() -> None:
    with pytest.raises(ConfigError, match="view names trend more than once"):
        llm_config(view=["trend", "price", "trend"])


def test_a_model_changed_on_disk_is_refused_not_reloaded(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model.gguf"
    shutil.copy(tiny_model, copy)
    policy = LlamaPolicy(llm_config(max_tokens=256), copy, SIZING)
    assert not policy.decide(view(RISING)).rationale.startswith("model file changed")
    copy.write_bytes(copy.read_bytes() + b"\x00")
    changed = policy.decide(view(RISING))
    assert (changed.action, changed.rationale) == (
        "hold",
        "model file changed on disk: refusing to decide",
    )
    assert policy.model_hash != __import__("hashlib").sha256(copy.read_bytes()).digest()


def test_features_in_the_view_are_the_enclaves(tiny_policy: object) -> None:
    market = view(RISING)
    assert isinstance(market.features, Features)
    fields = json.loads(market_view(market, EVERY_FIELD, Decimal("0.25")))
    assert fields["sma_short"] == round(sum(RISING[-12:]) / 12, 2)
    assert fields["trend"] == "up" and fields["can_buy"] is True
