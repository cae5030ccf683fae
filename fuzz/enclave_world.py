"""A real enclave core in this process (sim platform, rule policy) for the targets that
need one, and the real outputs it makes: signed receipts, sealed states, owner commands."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from enclave.config import EnclaveConfig, load_config
from enclave.core import EnclaveCore
from enclave.platform.base import Platform
from enclave.policy import Policy
from enclave.server import PlatformChoice, make_platform, make_policy
from tests.enclave_harness import EnclaveWorld, balances, serialized, ticks, twaps
from wire.records import ReceiptRecord
from wire.ticks import columns_from_message, decode_tick_batch

# Prices that make the rule policy buy, then sell: signed receipts and holds.
RISE_AND_FALL = [100.0, 100.0, 100.0, 100.0, 104.0, 108.0, 112.0, 108.0, 100.0, 92.0, 88.0]


@dataclass(frozen=True)
class CoreMaker:
    """Builds fresh cores on one world: its config, policy and platform, made once."""

    world: EnclaveWorld
    config: EnclaveConfig
    policy: Policy
    platform: Platform

    def core(self) -> EnclaveCore:
        return EnclaveCore(self.platform, self.config, self.policy)


@cache
def maker() -> CoreMaker:
    """The world (in a temporary directory removed at exit) and what makes cores on it."""
    root = Path(tempfile.mkdtemp(prefix="tee-agent-fuzz-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    world = EnclaveWorld(root)
    config = load_config(world.config_path)
    policy = make_policy(config)
    platform = make_platform(PlatformChoice("sim", world.sim_dir), config, policy)
    return CoreMaker(world, config, policy, platform)


@dataclass(frozen=True)
class TradedState:
    """A state after a run of ticks that traded: its sealed blob and version (with outputs
    still pending) and the receipts it released when asked."""

    sealed_state: bytes
    state_version: int
    receipts: tuple[ReceiptRecord, ...]
    address: str
    box_public_key: bytes


@cache
def traded_state() -> TradedState:
    core = maker().core()
    core.open(b"")
    batch = ticks(RISE_AND_FALL)
    columns = columns_from_message(decode_tick_batch(serialized(batch)[0], 1), 1)
    assert columns is not None
    ingested, _ = core.ingest([columns], None, _smallest_units(), 0, twaps())
    identity = core.identity()
    # Released from a second core on the same state, so the blob keeps its pending outputs.
    reader = maker().core()
    reader.open(ingested.sealed_state)
    released = reader.release(ingested.state_version)
    return TradedState(
        ingested.sealed_state,
        ingested.state_version,
        tuple(released.receipts),
        identity.address,
        identity.x25519_public_key,
    )


def _smallest_units() -> dict[str, int]:
    return {symbol: int(text) for symbol, text in balances(weth=5, usdt=10_000).items()}
