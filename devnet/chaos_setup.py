"""The chaos run's world and its records: the chain, the vault and the host subprocess up to
the first candle (`set_up`), and, at the end, everything the audit judges
(`collect_records`)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from eth_utils import to_checksum_address
from nacl.signing import SigningKey
from tee_agent_rpc import agent_pb2 as pb
from web3 import Web3

from devnet.accounts import DEPLOYER
from devnet.anvil import free_port
from devnet.chaos_audit import ChainTransaction, ChaosRecords, VerifyOutcome
from devnet.chaos_procs import REPO, ChaosError, ChaosProcesses, child_env
from devnet.demo_run import BTC_CANDLES, CANDLES
from devnet.dex import Dex
from devnet.enclave_config import enclave_config_toml
from devnet.market import deploy_market, fund
from devnet.market_mover import MarketMover
from devnet.vault import DEMO_TWAP, deploy_guarded_vault
from host.chain.vault_owner import VaultOwner
from host.cli.entry import main as cli_main
from host.market.replay import read_candles
from host.storage.open import open_storage
from wire.identity import identity_from_message

# The first candle fed: row 3060 of the bundled ETH/USDT file, as the demo's.
FIRST_ROW = 3060


@dataclass
class ChaosChain:
    """The chain side of the run, and what the feeder needs to drive the market."""

    w3: Web3
    dex: Dex
    vault: VaultOwner
    mover: MarketMover
    # Held by the feeder while it moves the market, and by the killer while it kills anvil.
    lock: threading.Lock
    token: str
    first_row: int
    address: str
    sim_root: Path


@contextmanager
def set_up(
    workdir: Path, say: Callable[[str], None]
) -> Iterator[tuple[ChaosProcesses, ChaosChain]]:
    """anvil at the first candle's time, Uniswap V2 and the vault, the host subprocess with
    its enclave, the agent registered on the vault and the vault funded; everything stops
    when the block ends.

    Raises:
        ChaosError, devnet.anvil.AnvilError, host.chain.transact.ChainError: a part failed.
    """
    first = list(read_candles(CANDLES, "ETH/USD"))[FIRST_ROW]
    btc = list(read_candles(BTC_CANDLES, "BTC/USD"))[FIRST_ROW]
    anvil = ChaosProcesses.start_anvil(workdir, first.timestamp_ms // 1000 - 3600)
    port = free_port()
    procs = ChaosProcesses(workdir, anvil, workdir / "tee-agent.toml", port)
    try:
        w3 = anvil.web3(timeout=60)
        dex = deploy_market(w3, Decimal(repr(first.price)), Decimal(repr(btc.price)))
        vault = deploy_guarded_vault(w3, dex)
        owner = SigningKey.generate()
        # Short moving averages (4 and 12 hours) so that the rule policy trades early.
        enclave_config_toml(
            dex, owner.verify_key.encode().hex(), policy="rule",
            path=workdir / "enclave.toml", vault=vault.vault.address,
            twap_window_seconds=DEMO_TWAP.window_seconds,
            twap_max_age_seconds=DEMO_TWAP.max_age_seconds,
            max_twap_deviation_bps=DEMO_TWAP.max_deviation_bps, short_window=4, long_window=12,
        )  # fmt: skip
        token = f"chaos-{os.urandom(8).hex()}"
        procs.host_config.write_text(_host_toml(workdir, port, token, anvil.url))
        say(f"anvil on {anvil.url}; starting the host (tee-agent run) on 127.0.0.1:{port}")
        status = procs.start_host()
        sim_root = procs.data_dir / "sim" / "root.pem"
        _register(workdir, port, anvil.url, vault.vault.address, sim_root)
        fund(w3, dex, DEPLOYER, status.address, eth=10)
        fund(w3, dex, DEPLOYER, DEPLOYER.address, weth=2)
        vault.deposit(dex.weth, 2 * 10**18)
        vault.deposit(dex.usd, 10_000 * 10**18)
        say(f"agent {status.address} registered on vault {vault.vault.address}, funded")
        chain = ChaosChain(
            w3, dex, vault, MarketMover(w3, dex), threading.Lock(), token, FIRST_ROW,
            status.address, sim_root,
        )  # fmt: skip
        yield procs, chain
    finally:
        procs.stop()


def _host_toml(workdir: Path, port: int, token: str, rpc_url: str) -> str:
    return f"""
[host]
listen = "127.0.0.1:{port}"
data_dir = "{workdir / "agent"}"
auth_token = "{token}"
metrics_listen = ""

[enclave]
config = "{workdir / "enclave.toml"}"
ready_timeout_seconds = 120

[market]
source = "none"

[chain]
rpc_url = "{rpc_url}"
poll_seconds = 0.2
"""


def _register(workdir: Path, port: int, rpc_url: str, vault: str, sim_root: Path) -> None:
    """`tee-agent vault register`, as the owner runs it (it verifies the agent's quote).

    Raises:
        ChaosError: it refused or failed (its output in the message).
    """
    key = workdir / "vault-owner.key"
    key.write_text(DEPLOYER.key.hex() + "\n")
    key.chmod(0o600)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli_main(
            ["vault", "register", "--rpc", rpc_url, "--key", str(key), "--vault", vault,
             "--config", str(workdir / "enclave.toml"), "--host", f"127.0.0.1:{port}",
             "--trust-root", str(sim_root)]
        )  # fmt: skip
    if code != 0:
        raise ChaosError(f"tee-agent vault register exited {code}: {out.getvalue()[-600:]}")


def waiting_transactions(db: Path) -> int:
    """How many of the agent's transactions are still "signed" or "pending" (read-only from
    the host's SQLite store); -1 when it cannot be read now."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            row = c.execute(
                "SELECT count(*) FROM transactions WHERE status IN ('signed', 'pending')"
            ).fetchone()
    except sqlite3.Error:
        return -1
    return int(row[0])


def verify_agent(procs: ChaosProcesses, chain: ChaosChain, rpc_url: str) -> VerifyOutcome:
    """Run `tee-agent verify agent --host … --vault … --json` against the running agent."""
    done = subprocess.run(
        [sys.executable, "-m", "host.cli", "verify", "agent", "--host",
         f"127.0.0.1:{procs.port}", "--rpc", rpc_url, "--vault", chain.vault.vault.address,
         "--trust-root", str(chain.sim_root), "--json"],
        capture_output=True, text=True, env=child_env(), cwd=REPO, timeout=600,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, ValueError):
        return VerifyOutcome(False, (f"exit {done.returncode}: {done.stderr.strip()[-400:]}",))
    failed = tuple(
        f"{check['name']}: {check['detail']}"
        for check in report.get("checks", [])
        if not check.get("passed")
    ) or ((f"{report.get('error')}",) if not report.get("valid") else ())
    return VerifyOutcome(bool(report.get("valid")) and done.returncode == 0, failed)


def chain_transactions(w3: Web3, address: str) -> list[ChainTransaction]:
    """Every transaction `address` sent, block 0 to the head, with its nonce."""
    wanted = address.lower()
    found = []
    for number in range(0, w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if not isinstance(tx, bytes) and str(tx["from"]).lower() == wanted:
                found.append(ChainTransaction(int(tx["nonce"]), bytes(tx["hash"]), number))
    return found


def collect_records(
    procs: ChaosProcesses,
    chain: ChaosChain,
    ledger: Mapping[int, Sequence[str]],
    orphans: Sequence[str],
    say: Callable[[str], None],
) -> ChaosRecords:
    """Everything the audit judges, the host stopped on the way (verify agent runs before,
    the store is read after); anvil is still running."""
    stub = procs.stub
    attestation = stub.GetAttestation(pb.GetAttestationRequest(nonce=os.urandom(32)), timeout=60)
    identity = identity_from_message(attestation.identity)
    status = procs.serving()
    if status is None:
        raise ChaosError("the host does not serve at the end of the run")
    rpc_url = procs.anvil.url
    say("running tee-agent verify agent")
    verify = verify_agent(procs, chain, rpc_url)
    left = procs.stop_host()
    storage = open_storage(str(procs.data_dir / "agent.db"))
    try:
        receipts = storage.receipts(1, 10_000_000)
        head = storage.head()
        transactions = storage.transactions()
    finally:
        storage.close()
    on_chain = chain_transactions(chain.w3, to_checksum_address(identity.address))
    return ChaosRecords(
        address=identity.address,
        chain_id=identity.chain_id,
        config_hash=identity.config_hash,
        receipts=receipts,
        head=head,
        transactions=transactions,
        on_chain=on_chain,
        ticks=ledger,
        ticks_accepted=status.ticks_accepted,
        verify=verify,
        orphans=[*orphans, *left],
    )
