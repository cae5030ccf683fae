"""A real enclave process on a real unix socket, and the configs tests run it with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from nacl.signing import SigningKey
from tee_agent_rpc import enclave_pb2_grpc as pb_grpc
from tee_agent_rpc import messages_pb2 as messages

from enclave.platform.sim_pki import create_sim_pki
from host.enclave_client import answers

CHAIN_ID = 31337
# The enclave is ready when its socket answers (after the config, the sealed-state platform
# and any model are loaded). This is only a guard against a hang: a loaded 2-core machine
# takes about 30 s to load SmolLM2, and no test may depend on the machine being idle.
READY_TIMEOUT_SECONDS = 300
ROUTER = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"
VAULT = "0xA1A1a1a1A1A1A1A1A1a1a1a1a1a1A1A1a1A1a1a1"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"


LLM_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "enclave-llm.toml"


def llm_section(**settings: Any) -> str:
    """The [policy.llm] tables of the example LLM config, with `settings` added."""
    text = LLM_CONFIG.read_text()
    section = text[text.index("[policy.llm]") : text.index("[owner]")]
    extra = "".join(f"{key} = {_toml(value)}\n" for key, value in settings.items())
    lines = [line for line in section.splitlines() if line.split("=")[0].strip() not in settings]
    head, rest = lines[0], "\n".join(lines[1:])
    return f"{head}\n{extra}{rest}\n"


def config_toml(
    owner_public_hex: str, *, llm: dict[str, Any] | None = None, **overrides: Any
) -> str:
    """A complete enclave config; `overrides` replace guardrail, market, vault or rule values,
    and `llm` (settings for [policy.llm]) switches to the LLM policy."""
    # The TWAP bound is wider than the config's default (300 bps), so that one reported
    # TWAP (`twaps()`: 100) covers every price the tests' batches decide at (88 to 112);
    # tests of the bound set their own.
    vault = {"address": VAULT, "max_twap_deviation_bps": 1500}
    rails = {
        "allowed_chain_ids": [CHAIN_ID],
        "allowed_tokens": ["WETH", "USDT"],
        "max_notional_per_trade_usd": 1000,
        "max_notional_per_day_usd": 5000,
        "max_slippage_bps": 100,
        "max_fee_per_gas_gwei": 100,
        "min_seconds_between_trades": 0,
    }
    market = {
        "clock": "replay",
        "max_price_move_percent": 20,
        "price_move_window_seconds": 3600,
        "decision_interval_seconds": 0,
    }
    rule = {"short_window": 2, "long_window": 4, "trade_fraction": "0.5", "slippage_bps": 50}
    chain_extra = ""
    for key, value in overrides.items():
        if key == "replace_after_blocks":  # else the default
            chain_extra = f"replace_after_blocks = {value}\n"
            continue
        if key in ("twap_window_seconds", "twap_max_age_seconds"):
            vault[key] = value
            continue
        if key in ("max_seq_gap", "max_timestamp_gap_seconds"):  # else the defaults
            market[key] = value
            continue
        for table in (vault, rails, market, rule):
            if key in table:
                table[key] = value
                break
        else:
            raise KeyError(key)

    def render(table: dict[str, Any]) -> str:
        return "\n".join(f"{k} = {_toml(v)}" for k, v in table.items())

    return f"""
[chain]
chain_id = {CHAIN_ID}
router = "{ROUTER}"
{chain_extra}
[vault]
{render(vault)}

[tokens.WETH]
address = "{WETH}"
decimals = 18

[tokens.USDT]
address = "{USDT}"
decimals = 6

[[pairs]]
symbol = "ETH/USDT"
base = "WETH"
quote = "USDT"

[market]
{render(market)}

[guardrails]
{render(rails)}

[policy]
kind = "{"llm" if llm is not None else "rule"}"

[policy.rule]
{render(rule)}

{llm_section(**llm) if llm is not None else ""}

[owner]
public_key = "{owner_public_hex}"
"""


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return str(value)


@dataclass
class EnclaveWorld:
    """A simulated platform, an owner key and a config, in one temporary directory."""

    root: Path
    owner: SigningKey = field(default_factory=SigningKey.generate)

    def __post_init__(self) -> None:
        self.sim_dir = self.root / "sim"
        if not self.sim_dir.exists():
            create_sim_pki(self.sim_dir)
        self.socket_dir = self.root / "sock"
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.write_config()

    def write_config(self, **overrides: Any) -> Path:
        self.config_path = self.root / "enclave.toml"
        self.config_path.write_text(config_toml(self.owner.verify_key.encode().hex(), **overrides))
        return self.config_path

    @contextmanager
    def enclave(self, model: Path | None = None) -> Iterator[EnclaveProcess]:
        process = EnclaveProcess.start(self, model)
        try:
            yield process
        finally:
            process.stop()


@dataclass
class EnclaveProcess:
    process: subprocess.Popen[bytes]
    socket: Path
    channel: grpc.Channel
    stub: Any
    log: Path

    @classmethod
    def start(cls, world: EnclaveWorld, model: Path | None = None) -> EnclaveProcess:
        socket = world.socket_dir / "enclave.sock"
        log = world.root / "enclave.log"
        with log.open("ab") as log_file:
            process = subprocess.Popen(
            [
                sys.executable, "-m", "enclave", "serve",
                "--socket", str(socket),
                "--config", str(world.config_path),
                "--platform", "sim",
                "--sim-dir", str(world.sim_dir),
                *(["--model", str(model)] if model else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )  # fmt: skip
        channel = grpc.insecure_channel(f"unix:{socket}")
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"enclave exited with {process.returncode}: {log.read_text()}")
            if answers(channel, 0.2):
                break
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"enclave did not become ready in {READY_TIMEOUT_SECONDS} s")
        return cls(process, socket, channel, pb_grpc.EnclaveStub(channel), log)

    def kill_hard(self) -> None:
        """kill -9: no chance to clean up, as in a crash."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.channel.close()

    def stop(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


HOUR_MS = 3_600_000
START_MS = 1_640_995_200_000  # 2022-01-01T00:00:00Z


def ticks(prices: list[float], first_seq: int = 1, pair: str = "ETH/USDT") -> messages.TickBatch:
    """A batch of ticks an hour apart."""
    seqs = [first_seq + index for index in range(len(prices))]
    return messages.TickBatch(
        pair=pair,
        seq=seqs,
        timestamp_ms=[START_MS + seq * HOUR_MS for seq in seqs],
        price=prices,
        volume=[1.0] * len(prices),
    )


def serialized(*batches: messages.TickBatch) -> list[bytes]:
    """Batches as an IngestRequest's tick_batches carry them."""
    return [batch.SerializeToString() for batch in batches]


def balances(weth: float = 0, usdt: float = 10_000) -> dict[str, str]:
    return {"WETH": str(int(weth * 10**18)), "USDT": str(int(usdt * 10**6))}


def twaps(price: float = 100.0) -> dict[str, float]:
    """The vault's TWAP of ETH/USDT, as an IngestRequest's twap_prices carries it."""
    return {"ETH/USDT": price}
