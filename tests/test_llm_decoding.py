"""Jump-forward decoding: forced text in one evaluation per run, the grammar still in charge.

The forced-text automaton is checked against llama.cpp's own grammar on the tiny model,
whose vocabulary is the 256 bytes: wherever the automaton says text is forced, the grammar
allows exactly that next byte (or only the end, once the answer is complete).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed")

from llama_cpp import Llama

from enclave.llm_decoding import AnswerShape, GrammarSampler, compact_grammar
from enclave.llm_policy import LlamaPolicy
from enclave.llm_prompt import answer_model
from tests.test_llm_policy import RISING, SIZING, llm_config, view

PAIRS = ["ETH/USDT"]


def rich_answer_model(pairs: list[str], rationale_max: int) -> type[BaseModel]:
    """An answer schema with every kind of piece the automaton knows: enums, booleans, a
    single-valued enum, a patterned string, an integer, a free string."""
    return create_model(
        "RichAnswer",
        __config__=ConfigDict(extra="forbid"),
        trend=(Literal["up", "down", "flat"], ...),
        can_buy=(bool, ...),
        can_sell=(bool, ...),
        action=(Literal["buy", "sell", "hold"], ...),
        pair=(Literal[tuple(pairs)], ...),  # type: ignore[valid-type]
        amount=(str, Field(pattern=r"^[0-9]{1,9}([.][0-9]{1,6})?$")),
        max_slippage_bps=(int, Field(ge=0, le=10_000)),
        rationale=(str, Field(pattern=rf"^[a-zA-Z0-9 ,.:;%+()/=<>-]{{0,{rationale_max}}}$")),
    )


FIELDS = [
    "trend",
    "can_buy",
    "can_sell",
    "action",
    "pair",
    "amount",
    "max_slippage_bps",
    "rationale",
]


ANSWER = ["action", "rationale"]


def shape_for(pairs: list[str]) -> AnswerShape:
    return AnswerShape.from_schema(rich_answer_model(pairs, 60).model_json_schema())


ONE_PAIR = shape_for(PAIRS)
START = '{"trend":"up","can_buy":true,"can_sell":false,"action":"buy"'


@pytest.mark.parametrize(
    ("text", "forced", "complete"),
    [
        ("", '{"trend":"', False),
        ('{"tr', 'end":"', False),
        ('{"trend":"', "", False),
        ('{"trend":"d', 'own","can_buy":', False),
        ('{"trend":"up","can_buy":', "", False),
        ('{"trend":"up","can_buy":t', 'rue,"can_sell":', False),
        ('{"trend":"up","can_buy":true,"can_sell":false,"action":"', "", False),
        ('{"trend":"up","can_buy":true,"can_sell":false,"action":"h', 'old","pair":"ETH/USDT","amount":"', False),
        (START + ',"pair":"ETH/USDT","amount":"0.1', "", False),
        (START + ',"pair":"ETH/USDT","amount":"0.1"', ',"max_slippage_bps":', False),
        (START + ',"pair":"ETH/USDT","amount":"0.1","max_slippage_bps":50', "", False),
        (START + ',"pair":"ETH/USDT","amount":"0.1","max_slippage_bps":50,', '"rationale":"', False),
        (START + ',"pair":"ETH/USDT","amount":"0.1","max_slippage_bps":5,"rationale":"a b', "", False),
        (START + ',"pair":"ETH/USDT","amount":"0.1","max_slippage_bps":5,"rationale":"a"', "}", True),
        (START + ',"pair":"ETH/USDT","amount":"0.1","max_slippage_bps":5,"rationale":""}', "", True),
        ('{"trend":"sideways"', "", False),
    ],
)  # fmt: skip
def test_the_forced_text_after_an_answer_prefix(text: str, forced: str, complete: bool) -> None:
    assert ONE_PAIR.continuation(text) == (forced, complete)


@pytest.mark.parametrize(
    ("text", "forced", "complete"),
    [
        ("", '{"action":"', False),
        ('{"action":"', "", False),
        ('{"action":"s', 'ell","rationale":"', False),
        ('{"action":"hold","rationale":"flat', "", False),
        ('{"action":"hold","rationale":"flat"', "}", True),
    ],
)
def test_the_policys_answer_is_forced_but_for_the_action_and_the_rationale(
    text: str, forced: str, complete: bool
) -> None:
    shape = AnswerShape.from_schema(answer_model(32).model_json_schema())
    assert shape.continuation(text) == (forced, complete)


def test_with_several_pairs_only_their_common_start_is_forced() -> None:
    shape = shape_for(["ETH/USDT", "ETH/USDC", "BTC/USDT"])
    assert shape.continuation(START) == (',"pair":"', False)
    assert shape.continuation(START + ',"pair":"E') == ("TH/USD", False)
    assert shape.continuation(START + ',"pair":"ETH/USDC') == ('","amount":"', False)


def test_a_schema_the_automaton_does_not_know_is_refused() -> None:
    schema = rich_answer_model(PAIRS, 60).model_json_schema()
    schema["properties"]["amount"] = {"type": "number"}
    with pytest.raises(ValueError, match="amount"):
        AnswerShape.from_schema(schema)


@pytest.fixture(scope="module")
def byte_vocab(tiny_model: Path) -> Llama:
    return Llama(model_path=str(tiny_model), vocab_only=True, verbose=False)


def byte_token(byte: int) -> int:
    return 3 + byte  # <unk>, <s>, </s>, then the 256 byte tokens (scripts/make_tiny_gguf.py)


def allowed_next(vocab: Llama, grammar: GrammarSampler) -> set[int | str]:
    allowed: set[int | str] = {b for b in range(256) if grammar.allows(byte_token(b))}
    if grammar.allows(vocab.token_eos()):
        allowed.add("end")
    return allowed


answers = st.fixed_dictionaries(
    {
        "trend": st.sampled_from(["up", "down", "flat"]),
        "can_buy": st.booleans(),
        "can_sell": st.booleans(),
        "action": st.sampled_from(["buy", "sell", "hold"]),
        "pair": st.sampled_from(["ETH/USDT", "ETH/USDC", "BTC/USDT"]),
        "amount": st.from_regex(r"[0-9]{1,9}(\.[0-9]{1,6})?", fullmatch=True),
        "max_slippage_bps": st.integers(min_value=0, max_value=10_000),
        "rationale": st.from_regex(r"[a-zA-Z0-9 ,.:;%+()/=<>-]{0,60}", fullmatch=True),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=answers)
def test_where_the_automaton_forces_text_the_grammar_allows_nothing_else(
    byte_vocab: Llama, answer: dict[str, Any]
) -> None:
    pairs = ["ETH/USDT", "ETH/USDC", "BTC/USDT"]
    model = rich_answer_model(pairs, 60)
    shape = AnswerShape.from_schema(model.model_json_schema())
    text = json.dumps({name: answer[name] for name in FIELDS}, separators=(",", ":"))
    grammar = GrammarSampler(byte_vocab, compact_grammar(json.dumps(model.model_json_schema())))
    forced_chars = 0
    try:
        for index in range(len(text) + 1):
            forced, complete = shape.continuation(text[:index])
            assert text[index:].startswith(forced)
            allowed = allowed_next(byte_vocab, grammar)
            if forced:
                assert allowed == {ord(forced[0])}, (text[:index], forced)
                forced_chars += 1
            elif complete:
                assert allowed == {"end"}
            if index < len(text):
                assert ord(text[index]) in allowed, text[:index]
                grammar.accept(byte_token(ord(text[index])))
    finally:
        grammar.close()
    assert forced_chars > len(text) // 2  # most of an answer is forced


@pytest.fixture(scope="module")
def policy(tiny_model: Path) -> LlamaPolicy:
    return LlamaPolicy(llm_config(max_tokens=256, timeout_seconds=600), tiny_model, SIZING)


def eval_calls(policy: LlamaPolicy, monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    calls: list[list[int]] = []
    real = policy._llm.eval

    def spy(tokens: Sequence[int]) -> None:
        calls.append(list(tokens))
        real(tokens)

    monkeypatch.setattr(policy._llm, "eval", spy)
    return calls


def test_forced_runs_are_appended_in_one_evaluation_each(
    policy: LlamaPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = eval_calls(policy, monkeypatch)
    text, cut_short = policy.generate(view(RISING))
    stats = policy.last_stats
    assert not cut_short and list(json.loads(text)) == ANSWER
    detokenize = policy._llm.detokenize
    # The prompt is evaluated with the answer's forced start, then each sampled token with
    # the forced run after it.
    first, *answer_calls = calls
    assert detokenize(first[stats.prompt_tokens :]) == b'{"action":"'
    # The action's first letter names it: the rest of it and the next key arrive with it.
    action = json.loads(text)["action"]
    assert detokenize(answer_calls[0]) == f'{action}","rationale":"'.encode()
    # One token per byte: every byte of the keys is forced, and each run costs no call.
    assert stats.forced_tokens == len('{"action":"","rationale":"}') + len(action) - 1
    assert stats.forced_tokens + stats.sampled_tokens == policy.last_token_count
    assert len(answer_calls) == stats.evals == len(stats.batches) == stats.sampled_tokens - 1
    assert [len(call) for call in answer_calls] == stats.batches
    # Every answer token is evaluated once, in order, but for the end the answer needs no
    # evaluation after: the closing brace, and the quote sampled before it.
    answer = [*first[stats.prompt_tokens :], *(token for call in answer_calls for token in call)]
    evaluated = detokenize(answer).decode()
    assert text.startswith(evaluated) and text[len(evaluated) :] in ("}", '"}')


def test_decoding_token_by_token_evaluates_every_token_alone(
    policy: LlamaPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = eval_calls(policy, monkeypatch)
    policy._decoder.jump_forward = False
    try:
        text, _ = policy.generate(view(RISING))
    finally:
        policy._decoder.jump_forward = True
    assert json.loads(text)
    assert policy.last_stats.forced_tokens == 0
    assert [len(call) for call in calls[1:]] == [1] * policy.last_token_count


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    closes=st.lists(
        st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=60,
    ),
    base=st.decimals(min_value=0, max_value=10**6, places=6),
    quote=st.decimals(min_value=0, max_value=10**9, places=2),
)
def test_the_answer_always_follows_the_schema(
    policy: LlamaPolicy, closes: list[float], base: Decimal, quote: Decimal
) -> None:
    text, cut_short = policy.generate(view(closes, str(base), str(quote)))
    assert not cut_short
    assert text == json.dumps(json.loads(text), separators=(",", ":"))  # compact JSON
    errors: list[Any] = []
    try:
        policy._output.model_validate_json(text)
    except ValidationError as exc:
        errors = exc.errors()
    assert errors == []


# Every answer is at least 31 tokens (one per byte); these bounds fall in its second forced run.
@pytest.mark.parametrize("max_tokens", [16, 17, 23, 28])
def test_the_token_bound_holds_inside_a_forced_run(tiny_model: Path, max_tokens: int) -> None:
    bounded = LlamaPolicy(
        llm_config(max_tokens=max_tokens, timeout_seconds=600), tiny_model, SIZING
    )
    _, cut_short = bounded.generate(view(RISING))
    assert cut_short and bounded.last_token_count == max_tokens
    assert bounded.decide(view(RISING)).rationale == "policy timeout"


def test_cold_and_warm_answers_are_the_same_bytes_and_the_same_runs(
    tiny_model: Path, policy: LlamaPolicy
) -> None:
    policy.generate(view(RISING[:30], "0", "50"))
    warm = policy.generate(view(RISING)), policy.last_stats.batches
    cold_policy = LlamaPolicy(llm_config(max_tokens=256, timeout_seconds=600), tiny_model, SIZING)
    cold = cold_policy.generate(view(RISING)), cold_policy.last_stats.batches
    assert warm == cold
