"""The host's own configuration (`tee-agent.toml`): listen addresses, enclave, market, storage.

Unlike the enclave's config this file is not measured: nothing in it can make the enclave
leave its limits, it only says where the host listens, where it keeps its data, how it
starts the enclave and what market data it relays. Values come from a TOML file and can be
overridden by environment variables named `TEE_AGENT_<SECTION>__<KEY>` (for example
`TEE_AGENT_HOST__LISTEN=0.0.0.0:50051`); the environment wins over the file. Relative paths
resolve against the directory of the config file (the working directory without a file).
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

ENV_PREFIX = "TEE_AGENT_"
ENV_NESTED_DELIMITER = "__"
DEFAULT_MARKET_FILE = "data/market/eth-usdt-binance-1h-2022-2023.csv"

_SECTION = ConfigDict(frozen=True, extra="forbid")


class HostConfigError(Exception):
    """The host config cannot be read or does not fit; names the file, the key and why."""


def split_host_port(value: str) -> tuple[str, int]:
    """Split `host:port` (IPv6 hosts in brackets: `[::1]:50051`) into host and port.

    Raises:
        ValueError: no port, an empty host, or a port outside 1..65535.
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected host:port, found {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 host must be in brackets ([::1]:50051), found {value!r}")
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"expected host:port, found {value!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number in 1..65535, found {port_text!r} in {value!r}")
    return host, int(port_text)


def _listen(value: str) -> str:
    split_host_port(value)
    return value


def _optional_listen(value: str) -> str:
    return value if value == "" else _listen(value)


def _storage_url(value: str) -> str:
    if value and not value.startswith(("postgresql://", "postgres://")):
        raise ValueError(
            "expected an empty string (SQLite in data_dir) or a postgresql:// URL, "
            f"found a URL starting {value.split(':', 1)[0]!r}"
        )
    return value


ListenAddress = Annotated[str, AfterValidator(_listen)]
MIB = 1024 * 1024


class HostSection(BaseModel):
    """`[host]`: the public gRPC API, where data lives, who may write, metrics."""

    model_config = _SECTION
    listen: ListenAddress = "127.0.0.1:50051"
    data_dir: Path = Path("var/agent")
    # Bearer token required by write RPCs; or read from auth_token_file (owner-only mode).
    auth_token: SecretStr | None = None
    auth_token_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Prometheus scrape endpoint; the empty string disables it.
    metrics_listen: Annotated[str, AfterValidator(_optional_listen)] = "127.0.0.1:9464"
    max_message_bytes: int = Field(default=4 * MIB, ge=1024, le=2**31 - 1)
    rpc_deadline_seconds: float = Field(default=30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _pairs_of_settings(self) -> HostSection:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        if self.auth_token is not None and self.auth_token_file is not None:
            raise ValueError("set auth_token or auth_token_file, not both")
        if self.auth_token is not None:
            _check_token(self.auth_token.get_secret_value())
        return self


class EnclaveSection(BaseModel):
    """`[enclave]`: how the host starts and supervises the enclave process."""

    model_config = _SECTION
    config: Path = Path("enclave.toml")
    platform: Literal["sim", "tdx", "sgx"] = "sim"
    # None: data_dir/sim (HostConfig.sim_path), so it follows a data_dir override.
    sim_dir: Path | None = None
    model: Path | None = None
    # TDX only (no hardware sealing key): "dstack-kms" (the default on tdx) asks dstack's
    # guest agent for a KMS-derived key; "file" reads sealing_key_file, which a KMS
    # provisioned. No key is ever written to disk by tee-agent.
    sealing_key_source: Literal["dstack-kms", "file"] | None = None
    sealing_key_file: Path | None = None
    # dstack's guest agent: a unix socket path or an http URL. None: as dstack's SDKs find
    # it (DSTACK_SIMULATOR_ENDPOINT, then /var/run/dstack.sock and its other paths).
    dstack_endpoint: str | None = None
    restart_backoff_initial_seconds: float = Field(default=0.2, gt=0, le=600)
    restart_backoff_max_seconds: float = Field(default=10.0, gt=0, le=3600)
    ready_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _key_source_fits_platform(self) -> EnclaveSection:
        if self.platform != "tdx":
            given = [
                name
                for name in ("sealing_key_source", "sealing_key_file", "dstack_endpoint")
                if getattr(self, name) is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: only the tdx platform takes a sealing key source "
                    f"(platform is {self.platform!r}, which has its own sealing key)"
                )
            return self
        if self.key_source == "file" and self.sealing_key_file is None:
            raise ValueError('sealing_key_source = "file" needs sealing_key_file')
        if self.key_source == "dstack-kms" and self.sealing_key_file is not None:
            raise ValueError(
                'sealing_key_file is set but sealing_key_source is "dstack-kms": set '
                'sealing_key_source = "file" to use the file, or remove sealing_key_file'
            )
        return self

    @property
    def key_source(self) -> str | None:
        """The sealing key source the enclave gets: on tdx the configured one, else
        "dstack-kms"; None on the other platforms (they have their own)."""
        if self.platform != "tdx":
            return None
        return self.sealing_key_source or "dstack-kms"

    @model_validator(mode="after")
    def _backoff_ordered(self) -> EnclaveSection:
        if self.restart_backoff_max_seconds < self.restart_backoff_initial_seconds:
            raise ValueError(
                f"restart_backoff_max_seconds ({self.restart_backoff_max_seconds}) is below "
                f"restart_backoff_initial_seconds ({self.restart_backoff_initial_seconds})"
            )
        return self


class MarketSection(BaseModel):
    """`[market]`: which market data the host relays into the enclave."""

    model_config = _SECTION
    # "replay": a candle CSV file; "pool": the Uniswap V2 pair `pool` on the [chain] node,
    # its reserves read as ticks; "none": only what clients stream in.
    source: Literal["replay", "pool", "none"] = "replay"
    file: Path = Path(DEFAULT_MARKET_FILE)
    # The pair contract whose reserves price `pair` (source "pool"); its base token is the
    # pair's base token in the enclave config.
    pool: str = ""
    pair: str = Field(default="ETH/USDT", pattern=r"^[A-Z0-9]{1,12}/[A-Z0-9]{1,12}$")
    # Seconds of market time per wall-clock second; 0 replays as fast as possible.
    speed: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    start_row: int = Field(default=0, ge=0)
    max_rows: int = Field(default=0, ge=0)
    batch_size: int = Field(default=500, ge=1, le=10_000)


class ChainSection(BaseModel):
    """`[chain]`: the node the agent trades on; empty rpc_url runs without a chain."""

    model_config = _SECTION
    # JSON-RPC URL. With it, the host broadcasts what the enclave signs, follows each
    # transaction to mined/reverted/dropped, and gives the enclave fee proposals and the
    # agent's token balances with every batch.
    rpc_url: str = ""
    poll_seconds: float = Field(default=1.0, gt=0, le=600)


class StorageSection(BaseModel):
    """`[storage]`: empty url = SQLite at data_dir/agent.db; or a PostgreSQL URL."""

    model_config = _SECTION
    url: Annotated[str, AfterValidator(_storage_url)] = ""
    # With PostgreSQL: the lease's time to live. Hosts of one agent take turns driving it;
    # a follower takes over at most this long (plus a renewal period) after the leader
    # dies. Renewed every third of it. Unused on SQLite (one host).
    lease_seconds: float = Field(default=15.0, ge=1.0, le=600.0, allow_inf_nan=False)


class HostConfig(BaseSettings):
    """The whole host configuration; `load_host_config` builds it from a file and the env."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        case_sensitive=False,
    )
    host: HostSection = HostSection()
    enclave: EnclaveSection = EnclaveSection()
    market: MarketSection = MarketSection()
    storage: StorageSection = StorageSection()
    chain: ChainSection = ChainSection()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment overrides them.
        return (env_settings, init_settings)

    @property
    def sim_path(self) -> Path:
        """The simulated platform's directory: enclave.sim_dir, or data_dir/sim."""
        return self.enclave.sim_dir or self.host.data_dir / "sim"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None when storage.url names PostgreSQL."""
        return None if self.storage.url else self.host.data_dir / "agent.db"

    def write_token(self) -> str | None:
        """The bearer token write RPCs require (None: write RPCs are refused)."""
        token = self.host.auth_token
        return None if token is None else token.get_secret_value()


def _check_token(token: str) -> None:
    if not token or any(c.isspace() for c in token):
        raise ValueError("the auth token must be non-empty and contain no whitespace")


def load_host_config(path: Path | None) -> HostConfig:
    """Read `path` (TOML; None: defaults only), apply `TEE_AGENT_*` overrides, validate.

    Relative paths are resolved against the file's directory (the working directory when
    `path` is None), and `auth_token_file` is read into `host.auth_token`.

    Raises:
        HostConfigError: unreadable file, malformed TOML, an unknown key, a value that does
            not fit, or an auth token file that is unreadable, empty or readable by others;
            the message names the file and the key path.
    """
    source = str(path) if path is not None else "host config (no file)"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise HostConfigError(f"cannot read host config {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise HostConfigError(f"{path}: not valid TOML: {exc}") from None
    # Keyword arguments starting with "_" configure pydantic-settings itself (_env_file,
    # _secrets_dir, ...): a file must not reach them.
    private = sorted(key for key in raw if key.startswith("_"))
    if private:
        raise HostConfigError(f"{source}: {', '.join(private)}: unknown key")
    try:
        config = HostConfig(**raw)
    except ValidationError as exc:
        raise HostConfigError(f"{source}: {_describe(exc)}") from None
    except SettingsError as exc:
        raise HostConfigError(f"{source}: environment override: {exc}") from None
    base = path.resolve().parent if path is not None else Path.cwd()
    return _resolve_paths(config, base, source)


def _describe(exc: ValidationError) -> str:
    environ = {name.upper() for name in os.environ}
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(loc) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        env_name = ENV_PREFIX + ENV_NESTED_DELIMITER.join(loc).upper()
        origin = f" (from environment variable {env_name})" if env_name in environ else ""
        problems.append(f"{key}{origin}: {message}")
    return "; ".join(problems)


def _resolve_paths(config: HostConfig, base: Path, source: str) -> HostConfig:
    def absolute(value: Path) -> Path:
        value = value.expanduser()
        return value if value.is_absolute() else base / value

    def optional(value: Path | None) -> Path | None:
        return None if value is None else absolute(value)

    host, enclave, market = config.host, config.enclave, config.market
    data_dir = absolute(host.data_dir)
    token = host.auth_token
    token_file = optional(host.auth_token_file)
    if token_file is not None:
        token = SecretStr(_read_token_file(token_file, source))
    return config.model_copy(
        update={
            "host": host.model_copy(
                update={
                    "data_dir": data_dir,
                    "auth_token": token,
                    "auth_token_file": token_file,
                    "tls_cert": optional(host.tls_cert),
                    "tls_key": optional(host.tls_key),
                }
            ),
            "enclave": enclave.model_copy(
                update={
                    "config": absolute(enclave.config),
                    "sim_dir": optional(enclave.sim_dir),
                    "model": optional(enclave.model),
                    "sealing_key_file": optional(enclave.sealing_key_file),
                }
            ),
            "market": market.model_copy(update={"file": absolute(market.file)}),
        }
    )


def _read_token_file(path: Path, source: str) -> str:
    key = f"{source}: host.auth_token_file ({path})"
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HostConfigError(f"{key}: cannot read: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HostConfigError(
            f"{key}: mode {stat.S_IMODE(mode):04o} lets other users read or change it; "
            "expected owner-only access (chmod 600)"
        )
    token = text.strip()
    try:
        _check_token(token)
    except ValueError as exc:
        raise HostConfigError(f"{key}: {exc}") from None
    return token
