"""The LLM policy on real llama.cpp: a tiny random GGUF for speed, SmolLM2-135M end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclave.config import LlmPolicyConfig, parse_config
from enclave.market import Features, features
from enclave.policy import MarketView, ModelError

llama_policy = pytest.importorskip("enclave.llm_policy", reason="llama-cpp-python not installed")
LlamaPolicy = llama_policy.LlamaPolicy
from tests.enclave_harness import config_toml  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PAIRS = ["ETH/USDT"]


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
    return LlamaPolicy(llm_config(max_tokens=256, timeout_seconds=600), tiny_model, PAIRS)


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
        LlamaPolicy(llm_config(model_sha256="ab" * 32), tiny_model, PAIRS)


def test_a_missing_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read model"):
        LlamaPolicy(llm_config(), tmp_path / "none.gguf", PAIRS)


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
    assert list(answer) == [
        "trend", "can_buy", "can_sell", "action", "pair", "amount", "max_slippage_bps", "rationale"
    ]  # fmt: skip
    assert answer["action"] in ("buy", "sell", "hold") and answer["pair"] == "ETH/USDT"
    decision = tiny_policy.decide(market)  # type: ignore[attr-defined]
    assert decision.pair == "ETH/USDT"
    if decision.action == "hold" and decision.rationale.startswith("invalid policy output"):
        assert "max_slippage_bps" in decision.rationale or "amount" in decision.rationale


def test_the_same_inputs_give_the_same_decision_bytes(
    tiny_model: Path, tiny_policy: object
) -> None:
    market = view(RISING)
    first = tiny_policy.decide(market).canonical_json()  # type: ignore[attr-defined]
    tiny_policy.decide(view(RISING[:30], "0", "50"))  # type: ignore[attr-defined]
    again = tiny_policy.decide(market).canonical_json()  # type: ignore[attr-defined]
    cold = LlamaPolicy(llm_config(max_tokens=256), tiny_model, PAIRS).decide(market)
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
print(LlamaPolicy(llm_config(max_tokens=256), Path({str(tiny_model)!r}), ["ETH/USDT"]).decide(view).canonical_json())
"""
    out = subprocess.run(
        [sys.executable, "-c", program],
        input=market.canonical_json(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == tiny_policy.decide(market).canonical_json()  # type: ignore[attr-defined]


def test_the_prompt_holds_only_enclave_numbers_and_allowlisted_symbols(tiny_policy: object) -> None:
    suffix = tiny_policy.prompt_suffix(view(RISING))  # type: ignore[attr-defined]
    market_json = suffix[suffix.index("{") : suffix.rindex("}") + 1]
    fields = json.loads(market_json)
    assert fields["pair"] == "ETH/USDT" and fields["trend"] in ("up", "down", "flat")
    for key, value in fields.items():
        if key not in ("pair", "trend"):
            assert value is None or isinstance(value, (int, float, bool)), key


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
    policy = LlamaPolicy(llm_config(timeout_seconds="0.000001"), tiny_model, PAIRS)
    decision = policy.decide(view(RISING))
    assert (decision.action, decision.rationale) == ("hold", "policy timeout")


def test_a_tight_token_bound_gives_a_hold_with_policy_timeout(tiny_model: Path) -> None:
    policy = LlamaPolicy(llm_config(max_tokens=16), tiny_model, PAIRS)
    decision = policy.decide(view(RISING))
    assert (decision.action, decision.rationale) == ("hold", "policy timeout")


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ('{"trend":"up","can_buy":true,"can_sell":true,"action":"buy","pair":"ETH/USDT","amount":"1","max_slippage_bps":20000,"rationale":"x"}', "max_slippage_bps"),
        ('{"trend":"up","can_buy":true,"can_sell":true,"action":"buy","pair":"BTC/USDT","amount":"1","max_slippage_bps":5,"rationale":"x"}', "pair"),
        ('{"action":"buy"}', "Field required"),
        ("not json", "Invalid JSON"),
    ],
)  # fmt: skip
def test_invalid_output_becomes_a_hold_with_the_reason(answer: str, reason: str) -> None:
    output = llama_policy.llm_decision_model(PAIRS, 60)
    decision = llama_policy.parse_decision(answer, "ETH/USDT", output)
    assert decision.action == "hold"
    assert decision.rationale.startswith("invalid policy output")
    assert reason in decision.rationale


def test_a_model_changed_on_disk_is_refused_not_reloaded(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model.gguf"
    shutil.copy(tiny_model, copy)
    policy = LlamaPolicy(llm_config(max_tokens=256), copy, PAIRS)
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
    fields = json.loads(llama_policy.market_prompt(market, Decimal("0.25")))
    assert fields["sma_short"] == round(sum(RISING[-12:]) / 12, 2)
    assert fields["trend"] == "up" and fields["can_buy"] is True
