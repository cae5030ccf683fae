"""One world for driving every `tee-agent` command as a subprocess: anvil with Uniswap V2 and
a GuardedVault, a real host with its simulated enclave (whose config names that vault), the
key and token files the commands read, a relay that corrupts the receipts it passes on, one
that tampers with the event log served with the attestation, and an LLM receipt to replay.

The vault is owned by DEPLOYER, priced in the devnet's USD, with Router02 and the ETH/USD
market allowed, 2,500 USD deposited and `REGISTERED` (not the host's agent) registered with
caps of 1,000 and 5,000 USD; the host's agent is not registered.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import enclave_pb2 as enclave_pb
from web3 import Web3

from devnet.accounts import DEPLOYER, DEV_ACCOUNTS, DEV_PRIVATE_KEYS
from devnet.anvil import Anvil
from devnet.dex import Dex
from devnet.enclave_config import enclave_config_toml
from devnet.market import deploy_market, fund
from enclave.policy import Decision
from host.chain.vault_owner import TwapSettings, VaultOwner, deploy_vault
from tests.agent_relay import cut_signatures, flip_first_event, relay
from tests.enclave_harness import EnclaveWorld, balances, serialized, ticks
from tests.host_harness import AUTH, TOKEN, HostUnderTest, running_host
from tests.test_enclave_process import receipt_of

TEE_AGENT = Path(sys.executable).parent / "tee-agent"
UNITS = 10**18  # every devnet token has 18 decimals
REGISTERED = DEV_ACCOUNTS[4]  # an agent registered on the vault (not the host's)
STRANGER = DEV_ACCOUNTS[3]
OTHER = DEV_ACCOUNTS[5]
DOWN = "127.0.0.1:1"  # nothing listens here: an agent or node that cannot be reached
TICKS = 30  # hourly ETH/USD ticks streamed to the host, one decision each


def tee_agent(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script, in `cwd`, without the caller's TEE_AGENT_* settings."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TEE_AGENT_")}
    return subprocess.run(
        [str(TEE_AGENT), *argv], capture_output=True, text=True, timeout=300, check=False,
        cwd=cwd, env=environment,
    )  # fmt: skip


def secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


@dataclass
class World:
    """Everything the commands are pointed at; `cwd` is an empty directory to run them in
    (so that no tee-agent.toml there gives `verify agent` its defaults)."""

    anvil: Anvil
    w3: Web3
    dex: Dex
    owner: VaultOwner
    enclave: EnclaveWorld
    host: HostUnderTest
    relay: str  # HOST:PORT of the relay that corrupts receipts
    tampered: str  # HOST:PORT of the relay that flips an event of the served event log
    cwd: Path
    owner_key: Path  # DEPLOYER's secp256k1 key: the vault's owner
    stranger_key: Path
    loose_key: Path  # the owner's key in a file others may read
    owner_seed: Path  # the agent owner's Ed25519 seed
    token_file: Path

    @property
    def rpc(self) -> str:
        return self.anvil.url

    @property
    def vault(self) -> str:
        return self.owner.vault.address

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.host.running.port}"

    @property
    def root(self) -> str:
        """The simulated platform's root, which verifiers trust only when it is named."""
        return str(self.enclave.sim_dir / "root.pem")

    @property
    def config(self) -> str:
        return str(self.enclave.config_path)

    def status(self) -> pb.Status:
        return self.host.stub.GetStatus(pb.GetStatusRequest())  # type: ignore[no-any-return]


@contextmanager
def cli_world(root: Path) -> Iterator[World]:
    """The chain, the vault, the host with its enclave and its ticks, the relay, the files."""
    with Anvil.start() as anvil:
        w3 = anvil.web3()
        dex = deploy_market(w3, 2000, 60000)
        fund(w3, dex, DEPLOYER, DEPLOYER.address, weth=10)
        vault, _ = deploy_vault(w3, DEPLOYER, dex.usd, TwapSettings(1800, 7200, 300))
        owner = VaultOwner(vault, DEPLOYER)
        owner.set_router(dex.router)
        owner.set_market(dex.weth, dex.pairs["ETH/USD"])
        owner.register(REGISTERED.address, 1000 * UNITS, 5000 * UNITS,
                       b"\x01" * 32, b"\x02" * 32, b"\x03" * 32)  # fmt: skip
        owner.deposit(dex.usd, 2500 * UNITS)
        (root / "agent").mkdir()
        enclave = EnclaveWorld(root / "agent")
        owner_public = enclave.owner.verify_key.encode().hex()
        enclave_config_toml(dex, owner_public, vault=vault.address, path=enclave.config_path)
        files = root / "files"
        files.mkdir()
        (root / "cwd").mkdir()
        with (
            running_host(enclave) as host,
            relay(host.stub, receipts=cut_signatures) as corrupting,
            relay(host.stub, attestation=flip_first_event) as tampering,
        ):
            prices = [2000.0 + 5 * (index % 7) for index in range(TICKS)]
            host.stub.StreamMarketData(iter([ticks(prices, pair="ETH/USD")]), metadata=AUTH)
            _wait_for_ticks(host, TICKS)
            yield World(
                anvil=anvil, w3=w3, dex=dex, owner=owner, enclave=enclave, host=host,
                relay=corrupting, tampered=tampering, cwd=root / "cwd",
                owner_key=secret(files / "owner.key", DEV_PRIVATE_KEYS[0]),
                stranger_key=secret(files / "stranger.key", DEV_PRIVATE_KEYS[3]),
                loose_key=secret(files / "loose.key", DEV_PRIVATE_KEYS[0], mode=0o644),
                owner_seed=secret(files / "owner.seed", enclave.owner.encode().hex()),
                token_file=secret(files / "auth-token", TOKEN),
            )  # fmt: skip


def _wait_for_ticks(host: HostUnderTest, count: int) -> None:
    """Until the enclave has taken `count` ticks (the deadline only guards against a hang)."""
    deadline = time.monotonic() + 300
    while host.stub.GetStatus(pb.GetStatusRequest()).ticks_accepted < count:
        assert time.monotonic() < deadline, f"the enclave did not take {count} ticks"
        time.sleep(0.05)


@dataclass(frozen=True)
class ReplayFiles:
    """An LLM decision's receipt file (its fields and texts), the config and model it names,
    and the same receipt claiming another decision (its decision hash made to match)."""

    receipt: Path
    forged: Path
    config: Path
    model: Path
    decision_json: str


def replay_files(root: Path, model: Path) -> ReplayFiles:
    """A real LLM enclave (the tiny model) decides on one tick; its receipt is saved."""
    world = EnclaveWorld(root)
    # One llama.cpp thread: several wait on each other, which busy cores make slow.
    llm = {"context_size": 8192, "max_tokens": 256, "threads": 1}
    world.write_config(llm=llm, decision_interval_seconds=0)
    with world.enclave(model=model) as enclave:
        stub = enclave.stub
        stub.Open(enclave_pb.OpenRequest())
        batch = serialized(ticks([1000.0]))
        response = stub.Ingest(enclave_pb.IngestRequest(tick_batches=batch, balances=balances()))
        released = stub.Release(enclave_pb.ReleaseRequest(state_version=response.state_version))
    [last] = released.receipts
    recorded = {**receipt_of(last).to_json_dict(), "decision_json": last.decision_json,
                "input_json": last.input_json}  # fmt: skip
    receipt = root / "receipt.json"
    receipt.write_text(json.dumps(recorded))
    decision = Decision.model_validate_json(last.decision_json)
    claimed = decision.model_copy(update={"rationale": "a decision the model never made"})
    text = claimed.canonical_json()
    decision_hash = "0x" + hashlib.sha256(text.encode()).hexdigest()
    forged = root / "forged.json"
    forged.write_text(
        json.dumps({**recorded, "decision_json": text, "decision_hash": decision_hash})
    )
    return ReplayFiles(receipt, forged, world.config_path, model, last.decision_json)


@dataclass(frozen=True)
class Given:
    """What a command line and its checks may use: the world, a directory of the case's own,
    the agent's status once the command ran, and (for `replay-decision`) the replay files."""

    world: World
    tmp: Path
    status: pb.Status | None = None
    replay: ReplayFiles | None = None

    @property
    def files(self) -> ReplayFiles:
        assert self.replay is not None, "a replay-decision case needs the replay files"
        return self.replay

    @property
    def now(self) -> pb.Status:
        assert self.status is not None
        return self.status

    def values(self) -> dict[str, str | tuple[str, ...]]:
        """What a command-line template's `{name}` stands for: a word, or several (`{owner}`:
        the vault owner's --rpc, --vault and --key; `{agent}`: the agent owner's --host,
        --key and --token-file)."""
        w, dex = self.world, self.world.dex
        values: dict[str, str | tuple[str, ...]] = {
            "target": w.target, "relay": w.relay, "tampered": w.tampered, "down": DOWN, "down_rpc": f"http://{DOWN}",
            "root": w.root, "rpc": w.rpc, "vault": w.vault, "config": w.config,
            "tmp": str(self.tmp), "agent_root": str(w.enclave.root),
            "owner_key": str(w.owner_key), "stranger_key": str(w.stranger_key),
            "loose_key": str(w.loose_key), "usd": dex.usd, "weth": dex.weth,
            "router": dex.router, "eth_pair": dex.pairs["ETH/USD"],
            "btc_pair": dex.pairs["BTC/USD"], "registered": REGISTERED.address,
            "stranger": STRANGER.address, "other": OTHER.address, "deployer": DEPLOYER.address,
            "owner": ("--rpc", w.rpc, "--vault", w.vault, "--key", str(w.owner_key)),
            "agent": ("--host", w.target, "--key", str(w.owner_seed),
                      "--token-file", str(w.token_file)),
        }  # fmt: skip
        if self.replay is not None:
            values.update(receipt=str(self.replay.receipt), forged=str(self.replay.forged),
                          llm_config=str(self.replay.config), model=str(self.replay.model))  # fmt: skip
        return values


def expand(template: str, values: dict[str, str | tuple[str, ...]]) -> list[str]:
    """A command line from its template: words split at spaces, each `{name}` in a word
    replaced by its value, a word that is only a several-word `{name}` by those words."""
    argv: list[str] = []
    for word in template.split():
        value = values.get(word[1:-1]) if word.startswith("{") and word.endswith("}") else None
        if isinstance(value, tuple):
            argv.extend(value)
        else:
            argv.append(word.format_map({k: v for k, v in values.items() if isinstance(v, str)}))
    return argv
