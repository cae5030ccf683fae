"""The enclave's measured configuration: chain, tokens, pairs, market checks, guardrails, policy.

Everything that decides the agent's behaviour lives here, and all of it is measured: the
config hash is SHA-256 over the canonical JSON of the validated model (sorted keys, no
whitespace), so comments and formatting in the TOML file do not change it and every value
does. The hash is extended into `rtmr0` under the simulated TEE, bound into report_data, and
written into every receipt.

`parse_config` and `load_config` read the TOML; `enclave.config_toml` writes it, commented
from the models' own docstrings and field descriptions, so the schema documents itself in
one place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from eth_utils import is_checksum_address, to_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

_MODEL = ConfigDict(frozen=True, extra="forbid")


class ConfigError(Exception):
    """The configuration file cannot be read or does not fit the schema; says where and why."""


def _address(value: str) -> str:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise ValueError(f"expected a 0x-prefixed 20-byte hex address, found {value!r}")
    try:
        checksummed = to_checksum_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a hex address") from None
    if value != value.lower() and not is_checksum_address(value):
        raise ValueError(f"{value!r} has a wrong EIP-55 checksum (expected {checksummed})")
    return checksummed


Address = Annotated[str, AfterValidator(_address)]
Symbol = Annotated[str, Field(pattern=r"^[A-Z0-9]{1,12}$")]
PairSymbol = Annotated[str, Field(pattern=r"^[A-Z0-9]{1,12}/[A-Z0-9]{1,12}$")]


class Token(BaseModel):
    """An ERC-20 token the agent may hold: its contract address and decimals."""

    model_config = _MODEL
    address: Address = Field(description="The token's ERC-20 contract address.")
    decimals: int = Field(
        ge=0, le=36, description="The token's decimals: amounts count in units of 10**-decimals."
    )


class Pair(BaseModel):
    """A market the agent may trade: `symbol` as the ticks name it, base and quote tokens."""

    model_config = _MODEL
    symbol: PairSymbol = Field(description="The symbol ticks carry, BASE/QUOTE.")
    base: Symbol = Field(description="The token bought and sold: a key of [tokens].")
    quote: Symbol = Field(
        description="The token it is priced in, a key of [tokens]: notional limits are valued "
        "in it, so use a USD stablecoin."
    )


class ChainConfig(BaseModel):
    """The chain the agent trades on, and the one contract it swaps through."""

    model_config = _MODEL
    chain_id: int = Field(
        ge=1, description="The chain's id (EIP-155), signed into every transaction."
    )
    router: Address = Field(
        description="Uniswap V2 Router02: the only contract the agent swaps through."
    )


class MarketConfig(BaseModel):
    """Sanity checks on market data, applied before anything else sees a tick."""

    model_config = _MODEL
    clock: Literal["wall", "replay"] = Field(
        default="wall",
        description="\"wall\": a tick's age is measured against the enclave's clock. "
        '"replay": historical data; only the order of timestamps is checked (an auditor '
        "sees this in the config).",
    )
    max_tick_age_seconds: int = Field(
        default=120, ge=1, description='The oldest tick accepted, in seconds (clock "wall" only).'
    )
    max_future_skew_seconds: int = Field(
        default=5,
        ge=0,
        description="How far ahead of the enclave's clock a tick may be, in seconds "
        '(clock "wall" only).',
    )
    max_price_move_percent: Decimal = Field(
        default=Decimal(20),
        gt=0,
        le=1000,
        description="A tick moving more than this from the last accepted one is refused.",
    )
    decision_interval_seconds: int = Field(
        default=3600,
        ge=0,
        description="The policy decides at most once per this many seconds of market time.",
    )


class GuardrailConfig(BaseModel):
    """Hard limits, enforced after the policy, deny by default."""

    model_config = _MODEL
    allowed_chain_ids: list[int] = Field(
        min_length=1, description="Chains the agent may sign transactions for."
    )
    allowed_tokens: list[Symbol] = Field(
        min_length=1, description="Tokens (keys of [tokens]) a swap may pay or receive."
    )
    max_notional_per_trade_usd: Decimal = Field(
        gt=0, description="The largest trade, valued in the pair's quote token."
    )
    max_notional_per_day_usd: Decimal = Field(
        gt=0, description="All trades of the last 24 hours (rolling), valued in the quote token."
    )
    max_slippage_bps: int = Field(
        ge=0,
        le=10_000,
        description="A swap's minimum out must be at least the quote at the accepted price "
        "less this many basis points.",
    )
    max_fee_per_gas_gwei: Decimal = Field(
        gt=0, description="The highest max fee per gas a transaction may offer, in gwei."
    )
    min_seconds_between_trades: int = Field(
        ge=0, description="Seconds of market time that must pass between two trades."
    )


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
        default=60, ge=8, le=200, description="The longest rationale a decision may give."
    )


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


class OwnerConfig(BaseModel):
    """The agent's owner: the one key that may pause and resume it."""

    model_config = _MODEL
    public_key: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] = Field(
        description="Ed25519 public key (32 bytes, hex) whose signatures may pause and resume "
        "the agent."
    )


class EnclaveConfig(BaseModel):
    """The whole measured configuration."""

    model_config = _MODEL
    chain: ChainConfig
    tokens: dict[Symbol, Token] = Field(min_length=1)
    pairs: list[Pair] = Field(min_length=1)
    market: MarketConfig = MarketConfig()
    guardrails: GuardrailConfig
    policy: PolicyConfig = PolicyConfig()
    owner: OwnerConfig

    @model_validator(mode="after")
    def _references_resolve(self) -> EnclaveConfig:
        for pair in self.pairs:
            for symbol in (pair.base, pair.quote):
                if symbol not in self.tokens:
                    raise ValueError(f"pair {pair.symbol} names token {symbol}, not in [tokens]")
        for symbol in self.guardrails.allowed_tokens:
            if symbol not in self.tokens:
                raise ValueError(f"guardrails.allowed_tokens names {symbol}, not in [tokens]")
        if len({pair.symbol for pair in self.pairs}) != len(self.pairs):
            raise ValueError("pairs must have distinct symbols")
        return self

    def pair(self, symbol: str) -> Pair | None:
        return self._pairs_by_symbol.get(symbol)

    @functools.cached_property
    def _pairs_by_symbol(self) -> dict[str, Pair]:
        return {pair.symbol: pair for pair in self.pairs}

    def canonical_bytes(self) -> bytes:
        """The canonical JSON the config hash is taken over."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()

    def config_hash(self) -> bytes:
        """SHA-256 of the canonical JSON (32 bytes)."""
        return hashlib.sha256(self.canonical_bytes()).digest()


def parse_config(text: str, *, source: str = "config") -> EnclaveConfig:
    """Validate TOML text into an `EnclaveConfig`.

    Raises:
        ConfigError: the TOML is malformed or a value does not fit; the message names the
            key path and the problem.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        return EnclaveConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None


def load_config(path: Path) -> EnclaveConfig:
    """Read and validate a TOML config file.

    Raises:
        ConfigError: unreadable file, malformed TOML, or a value that does not fit.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    return parse_config(text, source=str(path))
