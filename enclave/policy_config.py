"""The policy's part of the measured enclave configuration: who decides, and how.

The rule policy's moving averages and trade sizing (which the LLM policy's market view and
trades use too), and the LLM policy's model, prompt and limits. `enclave.config.EnclaveConfig` holds
them as its [policy] table; they are measured with the rest of it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_MODEL = ConfigDict(frozen=True, extra="forbid")

# What a market view may show the LLM (`enclave.llm_prompt.market_view` computes each).
ViewField = Literal[
    "trend",
    "can_buy",
    "can_sell",
    "pair",
    "price",
    "change_1h_pct",
    "sma_short",
    "sma_long",
    "volatility_pct",
    "base_balance",
    "quote_balance",
]


class RulePolicyConfig(BaseModel):
    """Moving-average crossover with position sizing."""

    model_config = _MODEL
    short_window: int = Field(
        default=12, ge=1, description="Prices (one per decision) in the short moving average."
    )
    long_window: int = Field(
        default=48,
        ge=2,
        description="Prices (one per decision) in the long moving average; above short_window.",
    )
    trade_fraction: Decimal = Field(
        default=Decimal("0.25"),
        gt=0,
        le=1,
        description="Fraction of the available balance moved per trade.",
    )
    slippage_bps: int = Field(
        default=50,
        ge=0,
        le=10_000,
        description="The slippage a trade allows, in basis points (the guardrails' "
        "max_slippage_bps caps it).",
    )

    @model_validator(mode="after")
    def _windows_ordered(self) -> RulePolicyConfig:
        if self.short_window >= self.long_window:
            raise ValueError(
                f"short_window ({self.short_window}) must be below long_window ({self.long_window})"
            )
        return self


class FewShotExample(BaseModel):
    """A worked example for the LLM: a market view and the decision it should lead to."""

    model_config = _MODEL
    market: str = Field(
        min_length=2, max_length=2000, description="A market view, as the prompt shows it (JSON)."
    )
    decision: str = Field(
        min_length=2, max_length=1000, description="The decision it should lead to (JSON)."
    )


class LlmPolicyConfig(BaseModel):
    """The LLM policy: llama.cpp on a GGUF model, greedy and deterministic."""

    model_config = _MODEL
    model_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        default=None,
        description="SHA-256 the model file must have (lowercase hex); unset accepts any "
        "model, whose hash is then measured (rtmr1) and written into every receipt all the same.",
    )
    strategy: str = Field(
        min_length=1,
        max_length=8000,
        description="The fixed system part of every prompt: the strategy, in the model's own words.",
    )
    examples: list[FewShotExample] = Field(
        default_factory=list,
        max_length=16,
        description="Worked examples the prompt shows before each market view.",
    )
    view: list[ViewField] = Field(
        default_factory=lambda: list[ViewField](["trend"]),
        min_length=1,
        description="The market view's fields, in order: trend (up, down or flat: the short "
        "moving average against the long one), can_buy, can_sell (whether the enclave would "
        "size a trade above 0), pair, price, change_1h_pct, sma_short, sma_long, "
        "volatility_pct, base_balance, quote_balance. Each costs prompt tokens on every "
        "decision: show the model what its strategy uses.",
    )
    seed: int = Field(
        default=42,
        ge=0,
        le=2**31 - 1,
        description="Sampling seed. The same inputs and these settings give the same decision bytes.",
    )
    threads: int = Field(default=2, ge=1, le=64, description="CPU threads llama.cpp runs on.")
    batch_size: int = Field(
        default=64, ge=8, le=4096, description="Tokens llama.cpp evaluates per batch."
    )
    context_size: int = Field(
        default=2048, ge=256, le=32768, description="The model's context window, in tokens."
    )
    max_tokens: int = Field(
        default=192,
        ge=16,
        le=1024,
        description="Tokens generated per decision at most; past it, the decision is a hold "
        '("policy timeout").',
    )
    timeout_seconds: Decimal = Field(
        default=Decimal(30),
        gt=0,
        le=600,
        description="Seconds per decision at most; past it, the decision is a hold "
        '("policy timeout").',
    )
    rationale_max_chars: int = Field(
        default=32,
        ge=8,
        le=200,
        description="The longest rationale the model may write, in characters (every token "
        "of it the model writes costs one model evaluation).",
    )

    @model_validator(mode="after")
    def _view_fields_once(self) -> LlmPolicyConfig:
        repeated = sorted({name for name in self.view if self.view.count(name) > 1})
        if repeated:
            raise ValueError(f"view names {', '.join(repeated)} more than once")
        return self


class PolicyConfig(BaseModel):
    """Who decides: the rule policy or the LLM."""

    model_config = _MODEL
    kind: Literal["rule", "llm"] = Field(
        default="rule",
        description='"rule": the moving-average crossover of [policy.rule]; "llm": the model '
        "of [policy.llm].",
    )
    rule: RulePolicyConfig = Field(
        default=RulePolicyConfig(),
        description="Moving-average windows and trade sizing: the market features and trade "
        "sizes both policies use.",
    )
    llm: LlmPolicyConfig | None = Field(
        default=None, description='The LLM policy; required when kind is "llm".'
    )

    @model_validator(mode="after")
    def _llm_configured(self) -> PolicyConfig:
        if self.kind == "llm" and self.llm is None:
            raise ValueError("policy.kind is 'llm' but there is no [policy.llm] table")
        return self
