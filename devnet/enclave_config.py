"""The measured enclave config for a local deployment, written as commented TOML.

`enclave_config_toml` builds the enclave's own `EnclaveConfig` for a `Dex` and the vault the
agent trades through (its chain id and router, the vault's address and TWAP settings,
WETH/USD/WBTC, the ETH/USD and BTC/USD pairs, guardrails allowing this chain and these
tokens, the given limits and owner key) and writes it through
`enclave.config_toml.config_toml`, the one TOML writer of the enclave config. With the LLM
policy, the model gets the strategy below and the worked examples of examples/enclave-llm.toml.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from devnet.dex import PAIRS, TOKEN_DECIMALS, Dex
from enclave.config import (
    ChainConfig,
    ConfigError,
    EnclaveConfig,
    FewShotExample,
    GuardrailConfig,
    LlmPolicyConfig,
    MarketConfig,
    OwnerConfig,
    Pair,
    PolicyConfig,
    RulePolicyConfig,
    Token,
    VaultConfig,
    load_config,
)
from enclave.config_toml import config_toml
from host.bundled import bundled_example
from host.chain.transact import Amount

# The worked examples for the LLM policy come from here.
LLM_EXAMPLE_CONFIG = bundled_example("enclave-llm.toml")

DEFAULT_LLM_STRATEGY = """You are the trading policy of an autonomous agent on the ETH/USD market.
Each message is the market view as JSON. Act on it:
- trend up: buy.
- trend down: sell.
- otherwise: hold."""

HEADER = """\
tee-agent enclave configuration for a local Uniswap V2 deployment (devnet.enclave_config).
All of it is measured: change a value and the agent's attested identity changes with it."""


def llm_examples() -> list[tuple[str, str]]:
    """The worked examples of examples/enclave-llm.toml, for this deployment's ETH/USD pair
    (the example speaks of USDT; here the stablecoin is USD).

    Raises:
        ConfigError: the example config cannot be read, does not validate, or has no LLM
            policy.
    """
    llm = load_config(LLM_EXAMPLE_CONFIG).policy.llm
    if llm is None:
        raise ConfigError(f"{LLM_EXAMPLE_CONFIG}: no [policy.llm] table, so no examples")
    return [
        (example.market.replace("USDT", "USD"), example.decision.replace("USDT", "USD"))
        for example in llm.examples
    ]


def _decimal(amount: Amount) -> Decimal:
    # Through the text, as the config file carries it: 0.25 stays "0.25", 20 stays "20".
    return Decimal(str(amount))


def enclave_config_toml(
    dex: Dex,
    owner_public_hex: str,
    *,
    vault: str,
    twap_window_seconds: int = 1800,
    twap_max_age_seconds: int = 7200,
    max_twap_deviation_bps: int = 300,
    policy: Literal["rule", "llm"] = "rule",
    clock: Literal["wall", "replay"] = "replay",
    max_notional_per_trade_usd: Amount = 1000,
    max_notional_per_day_usd: Amount = 5000,
    max_slippage_bps: int = 100,
    max_fee_per_gas_gwei: Amount = 100,
    min_seconds_between_trades: int = 3600,
    max_price_move_percent: Amount = 20,
    decision_interval_seconds: int = 3600,
    short_window: int = 12,
    long_window: int = 48,
    trade_fraction: Amount = "0.25",
    slippage_bps: int = 50,
    llm_strategy: str = DEFAULT_LLM_STRATEGY,
    llm_model_sha256: str | None = None,
    path: Path | None = None,
) -> str:
    """The measured enclave config (TOML) for this deployment: its chain id and router, the
    GuardedVault at `vault` with the given TWAP settings (those it was deployed with),
    WETH/USD/WBTC, the ETH/USD and BTC/USD pairs, guardrails allowing this chain and these
    tokens, and the given limits (the caps to register for the agent on the vault) and
    owner key. Also written to `path` when given.

    Raises:
        ValueError: an owner key that is not 32 bytes of hex, or a value the enclave's
            config refuses (pydantic's ValidationError is a ValueError).
        ConfigError: with the LLM policy, examples/enclave-llm.toml cannot be read.
        OSError: `path` cannot be written.
    """
    owner = owner_public_hex.removeprefix("0x")
    if len(owner) != 64 or any(c not in "0123456789abcdefABCDEF" for c in owner):
        raise ValueError(f"the owner key must be 32 bytes of hex, found {owner_public_hex!r}")
    llm = None
    if policy == "llm":
        llm = LlmPolicyConfig(
            model_sha256=llm_model_sha256,
            strategy=llm_strategy,
            examples=[
                FewShotExample(market=market, decision=decision)
                for market, decision in llm_examples()
            ],
        )
    config = EnclaveConfig(
        chain=ChainConfig(chain_id=dex.chain_id, router=dex.router),
        vault=VaultConfig(
            address=vault,
            twap_window_seconds=twap_window_seconds,
            twap_max_age_seconds=twap_max_age_seconds,
            max_twap_deviation_bps=max_twap_deviation_bps,
        ),
        tokens={
            symbol: Token(address=address, decimals=TOKEN_DECIMALS[symbol])
            for symbol, address in dex.tokens.items()
        },
        pairs=[
            Pair(symbol=symbol, base=base, quote=quote) for symbol, (base, quote) in PAIRS.items()
        ],
        market=MarketConfig(
            clock=clock,
            max_price_move_percent=_decimal(max_price_move_percent),
            decision_interval_seconds=decision_interval_seconds,
        ),
        guardrails=GuardrailConfig(
            allowed_chain_ids=[dex.chain_id],
            allowed_tokens=list(dex.tokens),
            max_notional_per_trade_usd=_decimal(max_notional_per_trade_usd),
            max_notional_per_day_usd=_decimal(max_notional_per_day_usd),
            max_slippage_bps=max_slippage_bps,
            max_fee_per_gas_gwei=_decimal(max_fee_per_gas_gwei),
            min_seconds_between_trades=min_seconds_between_trades,
        ),
        policy=PolicyConfig(
            kind=policy,
            rule=RulePolicyConfig(
                short_window=short_window,
                long_window=long_window,
                trade_fraction=_decimal(trade_fraction),
                slippage_bps=slippage_bps,
            ),
            llm=llm,
        ),
        owner=OwnerConfig(public_key=owner.lower()),
    )
    text = config_toml(config, header=HEADER)
    if path is not None:
        path.write_text(text, encoding="utf-8")
    return text
