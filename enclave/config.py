"""The enclave's measured configuration: chain, tokens, pairs, market checks, guardrails, policy.

Everything that decides the agent's behaviour lives here, and all of it is measured: the
config hash is SHA-256 over the canonical JSON of the validated model (sorted keys, no
whitespace), so comments and formatting in the TOML file do not change it and every value
does. The hash is extended into `rtmr0` under the simulated TEE, bound into report_data, and
written into every receipt.
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
    model_config = _MODEL
    address: Address
    decimals: int = Field(ge=0, le=36)


class Pair(BaseModel):
    """A market the agent may trade: `symbol` as the ticks name it, base and quote tokens."""

    model_config = _MODEL
    symbol: PairSymbol
    base: Symbol
    quote: Symbol


class ChainConfig(BaseModel):
    model_config = _MODEL
    chain_id: int = Field(ge=1)
    # Uniswap V2 Router02: the only contract the agent swaps through.
    router: Address


class MarketConfig(BaseModel):
    """Sanity checks on market data, applied before anything else sees a tick."""

    model_config = _MODEL
    # "wall": a tick's age is measured against the enclave's clock. "replay": historical
    # data; only the order of timestamps is checked (an auditor sees this in the config).
    clock: Literal["wall", "replay"] = "wall"
    max_tick_age_seconds: int = Field(default=120, ge=1)
    max_future_skew_seconds: int = Field(default=5, ge=0)
    max_price_move_percent: Decimal = Field(default=Decimal(20), gt=0, le=1000)
    # The policy decides at most once per this many seconds of market time.
    decision_interval_seconds: int = Field(default=3600, ge=0)


class GuardrailConfig(BaseModel):
    """Hard limits, enforced after the policy, deny by default."""

    model_config = _MODEL
    allowed_chain_ids: list[int] = Field(min_length=1)
    allowed_tokens: list[Symbol] = Field(min_length=1)
    max_notional_per_trade_usd: Decimal = Field(gt=0)
    max_notional_per_day_usd: Decimal = Field(gt=0)
    max_slippage_bps: int = Field(ge=0, le=10_000)
    max_fee_per_gas_gwei: Decimal = Field(gt=0)
    min_seconds_between_trades: int = Field(ge=0)


class RulePolicyConfig(BaseModel):
    """Moving-average crossover with position sizing."""

    model_config = _MODEL
    short_window: int = Field(default=12, ge=1)
    long_window: int = Field(default=48, ge=2)
    # Fraction of the available balance moved per trade.
    trade_fraction: Decimal = Field(default=Decimal("0.25"), gt=0, le=1)
    slippage_bps: int = Field(default=50, ge=0, le=10_000)

    @model_validator(mode="after")
    def _windows_ordered(self) -> RulePolicyConfig:
        if self.short_window >= self.long_window:
            raise ValueError(
                f"short_window ({self.short_window}) must be below long_window ({self.long_window})"
            )
        return self


class FewShotExample(BaseModel):
    """One worked example for the LLM: a market view and the decision it should lead to."""

    model_config = _MODEL
    market: str = Field(min_length=2, max_length=2000)
    decision: str = Field(min_length=2, max_length=1000)


class LlmPolicyConfig(BaseModel):
    """The LLM policy: llama.cpp on a GGUF model, greedy and deterministic."""

    model_config = _MODEL
    # SHA-256 the model file must have (lowercase hex); unset accepts any model, whose hash
    # is then measured (rtmr1) and written into every receipt all the same.
    model_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    # The fixed system part of every prompt: the strategy, in the model's own words.
    strategy: str = Field(min_length=1, max_length=8000)
    examples: list[FewShotExample] = Field(default_factory=list, max_length=16)
    # Reproducibility: the same inputs and these settings give the same decision bytes.
    seed: int = Field(default=42, ge=0, le=2**31 - 1)
    threads: int = Field(default=2, ge=1, le=64)
    batch_size: int = Field(default=64, ge=8, le=4096)
    context_size: int = Field(default=2048, ge=256, le=32768)
    # Bounds per decision; past either, the decision is a hold ("policy timeout").
    max_tokens: int = Field(default=192, ge=16, le=1024)
    timeout_seconds: Decimal = Field(default=Decimal(30), gt=0, le=600)
    rationale_max_chars: int = Field(default=60, ge=8, le=200)


class PolicyConfig(BaseModel):
    model_config = _MODEL
    kind: Literal["rule", "llm"] = "rule"
    # The market features both policies see (moving-average windows, trade sizing).
    rule: RulePolicyConfig = RulePolicyConfig()
    llm: LlmPolicyConfig | None = None

    @model_validator(mode="after")
    def _llm_configured(self) -> PolicyConfig:
        if self.kind == "llm" and self.llm is None:
            raise ValueError("policy.kind is 'llm' but there is no [policy.llm] table")
        return self


class OwnerConfig(BaseModel):
    model_config = _MODEL
    # Ed25519 public key (32 bytes, hex) whose signatures may pause and resume the agent.
    public_key: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]


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
