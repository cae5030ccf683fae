"""host.config: defaults, the TOML file, environment overrides, path resolution, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from host.config import HostConfig, HostConfigError, load_host_config, split_host_port

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TEE_AGENT_* variable of the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("TEE_AGENT_"):
            monkeypatch.delenv(name)


def write(directory: Path, text: str, name: str = "tee-agent.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path | None) -> str:
    with pytest.raises(HostConfigError) as caught:
        load_host_config(path)
    message = str(caught.value)
    # No pydantic internals reach the user.
    assert "errors.pydantic.dev" not in message
    assert "validation error" not in message.lower()
    assert "Traceback" not in message
    return message


def test_defaults_without_a_file_resolve_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_host_config(None)
    assert config.host.listen == "127.0.0.1:50051"
    assert config.host.data_dir == tmp_path / "var" / "agent"
    assert config.host.auth_token is None and config.write_token() is None
    assert config.host.metrics_listen == "127.0.0.1:9464"
    assert config.host.max_message_bytes == 4 * MIB
    assert config.host.rpc_deadline_seconds == 30
    assert config.enclave.config == tmp_path / "enclave.toml"
    assert config.enclave.platform == "sim"
    assert config.sim_path == tmp_path / "var" / "agent" / "sim"
    assert config.enclave.model is None
    assert config.enclave.restart_backoff_initial_seconds == 0.2
    assert config.enclave.restart_backoff_max_seconds == 10
    assert config.enclave.ready_timeout_seconds == 60
    assert config.market.source == "replay"
    assert config.market.file == tmp_path / "data/market/eth-usdt-binance-1h-2022-2023.csv"
    assert config.market.pair == "ETH/USDT"
    assert (config.market.speed, config.market.start_row, config.market.max_rows) == (0, 0, 0)
    assert config.market.batch_size == 500
    assert config.storage.url == ""
    assert config.storage.lease_seconds == 15.0
    assert config.sqlite_path == tmp_path / "var" / "agent" / "agent.db"


def test_file_values_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    path = write(
        conf,
        """
[host]
listen = "[::1]:6000"
data_dir = "state"
tls_cert = "tls/cert.pem"
tls_key = "/etc/tls/key.pem"
metrics_listen = ""
max_message_bytes = 1048576
rpc_deadline_seconds = 2.5

[enclave]
config = "../enclave.toml"
platform = "tdx"
model = "models/m.gguf"
sim_dir = "sim"

[market]
source = "none"
file = "candles.csv"
pair = "BTC/USDT"
speed = 3600
start_row = 10
max_rows = 100
batch_size = 10000

[storage]
url = "postgresql://agent@db/agent"
""",
    )
    config = load_host_config(path)
    assert config.host.listen == "[::1]:6000"
    assert config.host.data_dir == conf / "state"
    assert config.host.tls_cert == conf / "tls" / "cert.pem"
    assert config.host.tls_key == Path("/etc/tls/key.pem")
    assert config.host.metrics_listen == ""
    assert config.host.rpc_deadline_seconds == 2.5
    assert config.enclave.config == conf / ".." / "enclave.toml"
    assert config.enclave.model == conf / "models" / "m.gguf"
    assert config.sim_path == conf / "sim"
    assert config.market.file == conf / "candles.csv"
    assert (config.market.source, config.market.pair, config.market.speed) == (
        "none",
        "BTC/USDT",
        3600,
    )
    assert config.sqlite_path is None


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path, '[host]\nlisten = "127.0.0.1:1000"\ndata_dir = "d"\n[market]\nspeed = 5\n'
    )
    monkeypatch.setenv("TEE_AGENT_HOST__LISTEN", "0.0.0.0:50051")
    monkeypatch.setenv("TEE_AGENT_MARKET__BATCH_SIZE", "42")
    monkeypatch.setenv("TEE_AGENT_ENCLAVE__MODEL", "m.gguf")
    config = load_host_config(path)
    assert config.host.listen == "0.0.0.0:50051"
    assert config.host.data_dir == tmp_path / "d"  # the file's value where no override
    assert config.market.speed == 5
    assert config.market.batch_size == 42
    assert config.enclave.model == tmp_path / "m.gguf"  # env paths resolve the same way


def test_a_bad_environment_value_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEE_AGENT_MARKET__SPEED", "fast")
    message = load_error(write(tmp_path, ""))
    assert "market.speed" in message and "TEE_AGENT_MARKET__SPEED" in message


def test_unknown_keys_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = load_error(write(tmp_path, '[host]\nlisten_on = "x"\n[extra]\na = 1\n'))
    assert "host.listen_on: unknown key" in message
    assert "extra: unknown key" in message
    assert str(tmp_path / "tee-agent.toml") in message
    assert "_env_file: unknown key" in load_error(write(tmp_path, '_env_file = "x.env"\n'))
    monkeypatch.setenv("TEE_AGENT_HOST__LISTN", "127.0.0.1:1")
    assert "host.listn" in load_error(None)


@pytest.mark.parametrize(
    "address",
    ["localhost", "127.0.0.1:0", ":80", "host:65536", "host:http", "::1:80", "[]:80", "a b:80"],
)
def test_listen_addresses_are_checked(tmp_path: Path, address: str) -> None:
    for key in ("listen", "metrics_listen"):
        message = load_error(write(tmp_path, f'[host]\n{key} = "{address}"\n'))
        assert f"host.{key}:" in message


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:1", ("127.0.0.1", 1)), ("[::]:65535", ("::", 65535)), ("h:80", ("h", 80))],
)
def test_split_host_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address) == expected


@pytest.mark.parametrize(
    ("section", "line", "key"),
    [
        ("market", "speed = -1", "market.speed"),
        ("market", "speed = inf", "market.speed"),
        ("market", "batch_size = 0", "market.batch_size"),
        ("market", "batch_size = 10001", "market.batch_size"),
        ("market", "start_row = -1", "market.start_row"),
        ("market", 'source = "kafka"', "market.source"),
        ("market", 'pair = "eth/usdt"', "market.pair"),
        ("enclave", 'platform = "nitro"', "enclave.platform"),
        ("enclave", "restart_backoff_max_seconds = 0.1", "enclave"),
        ("host", "max_message_bytes = 0", "host.max_message_bytes"),
        ("host", "rpc_deadline_seconds = 0", "host.rpc_deadline_seconds"),
        ("storage", 'url = "mysql://x"', "storage.url"),
        ("storage", "lease_seconds = 0.5", "storage.lease_seconds"),
        ("storage", "lease_seconds = 601", "storage.lease_seconds"),
        ("storage", "lease_seconds = nan", "storage.lease_seconds"),
    ],
)
def test_values_out_of_range_are_refused(tmp_path: Path, section: str, line: str, key: str) -> None:
    message = load_error(write(tmp_path, f"[{section}]\n{line}\n"))
    assert message.startswith(f"{tmp_path / 'tee-agent.toml'}: {key}")


def test_tls_needs_both_files(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, '[host]\ntls_cert = "c.pem"\n'))
    assert "tls_cert and tls_key go together" in message


def test_malformed_and_unreadable_files(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "[host\nlisten = 1"))
    assert "not valid TOML" in message and "tee-agent.toml" in message
    assert "cannot read host config" in load_error(tmp_path / "missing.toml")
    message = load_error(write(tmp_path, "host = 5\n"))
    assert message.startswith(f"{tmp_path / 'tee-agent.toml'}: host:")


def test_auth_token_inline_is_secret(tmp_path: Path) -> None:
    config = load_host_config(write(tmp_path, '[host]\nauth_token = "s3cret-token"\n'))
    assert config.write_token() == "s3cret-token"
    assert "s3cret-token" not in repr(config)
    assert "auth token" in load_error(write(tmp_path, '[host]\nauth_token = ""\n'))


def test_auth_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-the-file\n")
    token.chmod(0o600)
    config = load_host_config(write(tmp_path, '[host]\nauth_token_file = "token"\n'))
    assert config.write_token() == "from-the-file"
    assert config.host.auth_token_file == token


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_auth_token_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    token = tmp_path / "token"
    token.write_text("abc\n")
    token.chmod(mode)
    message = load_error(write(tmp_path, '[host]\nauth_token_file = "token"\n'))
    assert "host.auth_token_file" in message and f"{mode:04o}" in message
    assert "chmod 600" in message
    assert "abc" not in message


def test_auth_token_file_missing_empty_or_doubled(tmp_path: Path) -> None:
    assert "cannot read" in load_error(write(tmp_path, '[host]\nauth_token_file = "nope"\n'))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    assert "non-empty" in load_error(write(tmp_path, '[host]\nauth_token_file = "empty"\n'))
    both = '[host]\nauth_token = "a"\nauth_token_file = "empty"\n'
    assert "not both" in load_error(write(tmp_path, both))


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_host_config(write(tmp_path, ""))
    assert isinstance(config, HostConfig)
    with pytest.raises(ValueError, match="frozen"):
        config.market.speed = 3


def test_the_lease_ttl_is_read_from_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[storage]\nurl = "postgresql://h/db"\nlease_seconds = 6\n')
    assert load_host_config(path).storage.lease_seconds == 6.0
    monkeypatch.setenv("TEE_AGENT_STORAGE__LEASE_SECONDS", "30")
    assert load_host_config(path).storage.lease_seconds == 30.0
