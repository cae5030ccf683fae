"""The enclave's measured configuration: chain, vault, tokens, pairs, market checks,
guardrails, policy.

Everything that decides the agent's behaviour lives here, and all of it is measured: the
config hash is SHA-256 over the canonical JSON of the validated model (sorted keys, no
whitespace), so comments and formatting in the TOML file do not change it and every value
does. The hash is extended into `rtmr0` under the simulated TEE, bound into report_data, and
written into every receipt.

`parse_config` and `load_config` read the TOML; `enclave.config_toml` writes it, commented
from the models' own docstrings and field descriptions, so the schema documents itself in
one place. The [policy] table's models live in `enclave.policy_config`, and are handed on
from here with the rest of the schema.
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

# Handed on: whoever builds a whole config (the host's `init`, devnet) imports it from here.
from enclave.policy_config import FewShotExample as FewShotExample
from enclave.policy_config import LlmPolicyConfig as LlmPolicyConfig
from enclave.policy_config import PolicyConfig as PolicyConfig
from enclave.policy_config import RulePolicyConfig as RulePolicyConfig

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
    """The chain the agent trades on, and the router its vault swaps through.

    `router` is the Uniswap V2 Router02 the vault ([vault]) must have on its allowlist: the
    enclave names it in every vault call and refuses to name any other.
    """

    model_config = _MODEL
    chain_id: int = Field(
        ge=1, description="The chain's id (EIP-155), signed into every transaction."
    )
    router: Address = Field(
        description="Uniswap V2 Router02: the only router the vault's swaps may go through "
        "(the vault must allowlist it)."
    )
    replace_after_blocks: int = Field(
        default=3,
        ge=1,
        le=10_000,
        description="Blocks a signed transaction may wait unmined (by the chain's block number "
        "as the host reports it) before the enclave replaces it: same nonce and call, fees "
        "up at least 12.5 % and never above max_fee_per_gas_gwei.",
    )


class VaultConfig(BaseModel):
    """The GuardedVault that holds the funds: the agent trades only through it.

    The vault's owner registers the agent's attested address on it, with caps: the
    guardrails' max_notional_per_trade_usd and max_notional_per_day_usd, valued in the
    pair's quote token, are the caps to register for this agent, so the enclave and the
    vault hold it to the same limits. The vault values every trade at the pool's
    time-weighted average price (TWAP) and reverts a trade whose minimum output sits further
    below the TWAP-implied output than max_twap_deviation_bps; the settings here should be
    those the vault was deployed with.
    """

    model_config = _MODEL
    address: Address = Field(
        description="The GuardedVault the agent trades through: the only contract it calls."
    )
    twap_window_seconds: int = Field(
        default=1800,
        ge=60,
        description="The shortest span of pool history the vault's time-weighted average "
        "price covers, in seconds.",
    )
    twap_max_age_seconds: int = Field(
        default=7200,
        lt=2**32,
        description="The longest span of pool history the vault's time-weighted average "
        "price covers, in seconds; at least twap_window_seconds.",
    )
    max_twap_deviation_bps: int = Field(
        default=300,
        ge=1,
        le=5000,
        description="How far a trade's minimum output and a decision's price may sit from "
        "the time-weighted average price, in basis points.",
    )

    @model_validator(mode="after")
    def _spans_ordered(self) -> VaultConfig:
        if self.twap_max_age_seconds < self.twap_window_seconds:
            raise ValueError(
                f"twap_max_age_seconds ({self.twap_max_age_seconds}) must be at least "
                f"twap_window_seconds ({self.twap_window_seconds})"
            )
        return self


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
        description="A tick whose price moves more than this from its pair's anchor (an "
        "earlier accepted price, see price_move_window_seconds) is refused.",
    )
    price_move_window_seconds: int = Field(
        default=3600,
        ge=1,
        le=31_536_000,
        description="Seconds of market time (at most a year) after which an accepted tick "
        "becomes its pair's new anchor price: within one window the price cannot leave the "
        "anchor by more than max_price_move_percent, however many ticks arrive.",
    )
    decision_interval_seconds: int = Field(
        default=3600,
        ge=0,
        description="The policy decides at most once per this many seconds of market time.",
    )
    max_seq_gap: int = Field(
        default=1_000_000_000_000,
        ge=1,
        le=2**64 - 1,
        description="A tick whose seq is more than this above the last accepted one is "
        "refused (seq_gap), so no single tick can push the sequence to its end. The default "
        "covers the on-chain feed (1,000,000 per block) across a million blocks.",
    )
    max_timestamp_gap_seconds: int = Field(
        default=604_800,
        ge=1,
        le=31_536_000_000,
        description="A tick more than this many seconds after the last accepted one is "
        "refused (time_gap), so no single tick can push market time far ahead (clock "
        '"replay" only: on "wall" the enclave\'s clock bounds it, and a gap would refuse '
        "every tick after a longer downtime).",
    )


class GuardrailConfig(BaseModel):
    """Hard limits, enforced after the policy, deny by default.

    max_notional_per_trade_usd and max_notional_per_day_usd are also the caps the vault's
    owner registers for this agent on the vault ([vault]), which counts them on chain.
    """

    model_config = _MODEL
    allowed_chain_ids: list[int] = Field(
        min_length=1, description="Chains the agent may sign transactions for."
    )
    allowed_tokens: list[Symbol] = Field(
        min_length=1, description="Tokens (keys of [tokens]) a swap may pay or receive."
    )
    max_notional_per_trade_usd: Decimal = Field(
        gt=0,
        description="The largest trade, valued in the pair's quote token (the vault's "
        "per-trade cap for this agent).",
    )
    max_notional_per_day_usd: Decimal = Field(
        gt=0,
        description="All trades of the last 24 hours (rolling), valued in the quote token "
        "(the vault's daily cap for this agent).",
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
    vault: VaultConfig
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
