"""How `tee-agent run` gives TDX its sealing key: the host config names the source
(dstack-kms by default, or a provisioned file), the supervisor passes it to `enclave serve`,
and the enclave refuses clearly when there is none."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from enclave.__main__ import main as enclave_main
from enclave.config import load_config
from enclave.platform.base import PlatformError
from enclave.platform.dstack_agent import DEFAULT_SOCKETS, ENDPOINT_ENV
from enclave.platform.runtime_events import CONFIG_EVENT
from enclave.platform.tdx import TdxPlatform
from enclave.server import PlatformChoice, make_platform, make_policy
from host.config import HostConfigError, load_host_config
from host.supervisor import EnclaveLaunch
from tests.enclave_harness import EnclaveWorld
from tests.fake_dstack import FakeDstackAgent

NO_REAL_DSTACK = pytest.mark.skipif(
    any(path.exists() for path in DEFAULT_SOCKETS), reason="a real dstack socket is here"
)


@pytest.fixture(autouse=True)
def no_endpoint_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENDPOINT_ENV, raising=False)
    for name in list(os.environ):
        if name.startswith("TEE_AGENT_"):
            monkeypatch.delenv(name)


def tdx(world: EnclaveWorld, **choice: object) -> TdxPlatform:
    config = load_config(world.config_path)
    platform = make_platform(PlatformChoice("tdx", **choice), config, make_policy(config))  # type: ignore[arg-type]
    assert isinstance(platform, TdxPlatform)
    return platform


@NO_REAL_DSTACK
def test_tdx_without_any_key_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="needs dstack's guest agent") as refused:
        tdx(EnclaveWorld(tmp_path))
    assert "sealing key source file" in str(refused.value)


@NO_REAL_DSTACK
def test_enclave_serve_on_tdx_without_a_key_source_exits_2_saying_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = EnclaveWorld(tmp_path)
    code = enclave_main(
        [
            "serve",
            "--socket",
            str(world.socket_dir / "enclave.sock"),
            "--config",
            str(world.config_path),
            "--platform",
            "tdx",
        ]
    )
    assert code == 2
    assert "sealing key source dstack-kms needs dstack's guest agent" in capsys.readouterr().err


def test_dstack_kms_is_the_default_and_uses_the_sdk_endpoint_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = EnclaveWorld(tmp_path)
    with FakeDstackAgent() as agent:
        monkeypatch.setenv(ENDPOINT_ENV, agent.socket)
        platform = tdx(world)
    assert platform.kms is not None and platform.kms.endpoint == agent.socket
    assert platform.sealing_key_file is None
    assert platform.rtmr3 is not None and platform.rtmr3.dstack is platform.kms
    config = load_config(world.config_path)
    assert [(e.name, e.payload) for e in platform.rtmr3.events] == [
        (CONFIG_EVENT, config.config_hash())
    ]


def test_a_key_file_alone_means_the_file_source(tmp_path: Path) -> None:
    platform = tdx(EnclaveWorld(tmp_path), sealing_key_file=tmp_path / "key")
    assert platform.kms is None and platform.sealing_key_file == tmp_path / "key"


@pytest.mark.parametrize(
    ("choice", "words"),
    [
        ({"sealing_key_source": "file"}, "needs --sealing-key-file"),
        (
            {"sealing_key_source": "dstack-kms", "sealing_key_file": Path("k")},
            "pick one",
        ),
        ({"sealing_key_source": "vault"}, "unknown sealing key source"),
    ],
)
def test_inconsistent_key_sources_are_refused(
    tmp_path: Path, choice: dict[str, object], words: str
) -> None:
    with pytest.raises(PlatformError, match=words):
        tdx(EnclaveWorld(tmp_path), **choice)


def test_other_platforms_refuse_a_key_source(tmp_path: Path) -> None:
    world = EnclaveWorld(tmp_path)
    config = load_config(world.config_path)
    with pytest.raises(PlatformError, match="tdx only"):
        make_platform(
            PlatformChoice("sim", world.sim_dir, sealing_key_source="dstack-kms"),
            config,
            make_policy(config),
        )


# -- the host config and the supervisor's command line -----------------------------------


def host_config(tmp_path: Path, enclave: str) -> Path:
    path = tmp_path / "tee-agent.toml"
    path.write_text(f"[enclave]\n{enclave}\n")
    return path


def test_tdx_defaults_to_dstack_kms(tmp_path: Path) -> None:
    config = load_host_config(host_config(tmp_path, 'platform = "tdx"'))
    assert config.enclave.key_source == "dstack-kms"
    assert load_host_config(host_config(tmp_path, "")).enclave.key_source is None


def test_a_file_source_resolves_its_path(tmp_path: Path) -> None:
    config = load_host_config(
        host_config(
            tmp_path,
            'platform = "tdx"\nsealing_key_source = "file"\nsealing_key_file = "keys/seal"',
        )
    )
    assert config.enclave.key_source == "file"
    assert config.enclave.sealing_key_file == tmp_path / "keys" / "seal"


@pytest.mark.parametrize(
    ("enclave", "words"),
    [
        ('platform = "tdx"\nsealing_key_source = "file"', "needs sealing_key_file"),
        ('platform = "tdx"\nsealing_key_file = "k"', 'set sealing_key_source = "file"'),
        ('platform = "sim"\nsealing_key_source = "dstack-kms"', "only the tdx platform"),
        ('platform = "sgx"\ndstack_endpoint = "/x.sock"', "only the tdx platform"),
        ('platform = "tdx"\nsealing_key_source = "disk"', "sealing_key_source"),
    ],
)
def test_bad_key_sources_are_refused_naming_the_key(
    tmp_path: Path, enclave: str, words: str
) -> None:
    with pytest.raises(HostConfigError, match=words):
        load_host_config(host_config(tmp_path, enclave))


def test_the_supervisor_passes_the_key_source_to_enclave_serve(tmp_path: Path) -> None:
    launch = EnclaveLaunch(
        config=tmp_path / "enclave.toml",
        run_dir=tmp_path / "run",
        platform="tdx",
        sealing_key_source="dstack-kms",
        dstack_endpoint="/run/dstack.sock",
    )
    command = launch.command(tmp_path / "enclave.sock")
    assert command[:3] == [sys.executable, "-m", "enclave"]
    tail = command[command.index("--sealing-key-source") :]
    assert tail == ["--sealing-key-source", "dstack-kms", "--dstack-endpoint", "/run/dstack.sock"]
    # ... and `enclave serve` accepts exactly those arguments.
    from enclave.__main__ import build_parser

    args = build_parser().parse_args(command[3:])
    assert (args.sealing_key_source, args.dstack_endpoint) == ("dstack-kms", "/run/dstack.sock")
