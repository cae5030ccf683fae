"""`./scripts/quickstart [DIR]`: the agent of a `tee-agent init` directory trading on a local
chain, so that `init`, this, `tee-agent status` and `tee-agent verify agent` work in DIR.

It starts anvil on 127.0.0.1:8545 (its state kept in DIR/var/chain), deploys Uniswap V2 and
the guarded vault there, writes the deployment's addresses into DIR/enclave.toml (the
owner's key stays the one `init` made) and the chain into DIR/tee-agent.toml, starts
`tee-agent run` on DIR's configs, registers the attested agent on the vault with
`tee-agent vault register`, funds the vault, and replays real hourly candles through the
pool while the agent trades. Then it keeps everything running until Ctrl-C, and prints the
commands to look at the agent. Run again on the same DIR, it resumes: anvil from its state,
the agent from its sealed state, the candles after the last one fed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import grpc
import tomlkit
from tee_agent_rpc import agent_pb2 as pb
from tee_agent_rpc import agent_pb2_grpc as pb_grpc
from web3 import Web3

from devnet.accounts import DEPLOYER
from devnet.anvil import Anvil
from devnet.chaos_procs import REPO, child_env, wait_until
from devnet.chaos_setup import waiting_transactions
from devnet.demo_run import BTC_CANDLES, CANDLES
from devnet.dex import Dex, set_next_block_time
from devnet.enclave_config import enclave_config_toml
from devnet.market import deploy_market, fund
from devnet.market_mover import MarketMover
from devnet.vault import DEMO_TWAP, deploy_guarded_vault, observe_all
from host.agent_directory import init_directory
from host.chain.vault import Vault
from host.chain.vault_owner import VaultOwner
from host.cli.entry import main as cli_main
from host.market.replay import Candle, read_candles
from wire.ticks import Tick, tick_batch_messages

RPC_PORT = 8545
FIRST_ROW = 3060  # the demo's: 2022-05-08, a week of falls and rebounds
DEPLOYMENT = "deployment.json"


@dataclass
class Deployment:
    """What the quickstart deployed, kept in DIR/var/chain/deployment.json for a resume."""

    dex: dict[str, object]
    vault: str
    next_row: int

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=1) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./scripts/quickstart",
        description="Run the agent of a `tee-agent init` directory on a local chain with "
        "Uniswap V2 and the guarded vault, replaying real hourly ETH/USDT candles; then keep it "
        "running for `tee-agent status` and `tee-agent verify agent` until Ctrl-C.",
    )
    parser.add_argument("dir", nargs="?", type=Path, default=Path("my-agent"),
                        help="the agent's directory; `tee-agent init` runs first when it has "
                        "no tee-agent.toml (default: ./my-agent)")  # fmt: skip
    parser.add_argument("--hours", type=int, default=72, help="candles to replay (default 72)")
    parser.add_argument("--seconds-per-candle", type=float, default=0.0,
                        help="wall-clock pause between candles (default 0: as fast as it trades)")  # fmt: skip
    parser.add_argument("--exit-when-done", action="store_true",
                        help="stop after the candles instead of waiting for Ctrl-C")  # fmt: skip
    args = parser.parse_args(argv)
    if args.hours < 1:
        parser.error("--hours must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # ./scripts/quickstart runs from the checkout; DIR is relative to where it was started.
    directory = (Path(os.environ.get("QUICKSTART_CWD", ".")) / args.dir).resolve()
    try:
        return _quickstart(args, directory)
    except QuickstartError as exc:
        print(f"quickstart: error: {exc}", file=sys.stderr)
        return 2


class QuickstartError(Exception):
    """Something the quickstart needs is missing or taken; the message says what to do."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _quickstart(args: argparse.Namespace, directory: Path) -> int:
    if not (directory / "tee-agent.toml").exists():
        init_directory(directory)
        say(f"tee-agent init: wrote {directory}")
    host_config = tomllib.loads((directory / "tee-agent.toml").read_text())
    listen = str(host_config["host"]["listen"])
    chain_dir = directory / "var" / "chain"
    chain_dir.mkdir(parents=True, exist_ok=True)
    record = chain_dir / DEPLOYMENT
    resuming = record.exists()
    if not resuming and (directory / "var" / "agent" / "agent.db").exists():
        raise QuickstartError(
            f"{directory} already ran an agent without this local chain (its nonces and "
            "receipts belong to another chain): use a new directory"
        )
    for port, what in ((RPC_PORT, "anvil"), (_port(listen), "the agent's API")):
        if _busy(port):
            raise QuickstartError(f"127.0.0.1:{port} is in use; {what} needs it (stop it first)")
    candles = list(read_candles(CANDLES, "ETH/USD"))
    first = candles[FIRST_ROW]
    anvil = Anvil.start(
        port=RPC_PORT, state_file=chain_dir / "anvil-state.json", state_interval=1,
        genesis_timestamp=first.timestamp_ms // 1000 - 3600,
    )  # fmt: skip
    host: subprocess.Popen[bytes] | None = None
    try:
        w3 = anvil.web3(timeout=60)
        if resuming:
            deployment = Deployment(**json.loads(record.read_text()))
            dex = _dex(deployment.dex)
            vault = VaultOwner(Vault(w3, deployment.vault), DEPLOYER)
            say(f"resuming on anvil {anvil.url} (vault {deployment.vault})")
        else:
            btc = list(read_candles(BTC_CANDLES, "BTC/USD"))[FIRST_ROW]
            dex = deploy_market(w3, Decimal(repr(first.price)), Decimal(repr(btc.price)))
            vault = deploy_guarded_vault(w3, dex)
            deployment = Deployment(_dex_dict(dex), vault.vault.address, FIRST_ROW)
            _write_configs(directory, dex, vault.vault.address, anvil.url)
            say(f"deployed Uniswap V2 and the guarded vault {vault.vault.address} on {anvil.url}")
        host = _start_host(directory, listen)
        stub = pb_grpc.AgentStub(grpc.insecure_channel(listen))
        status = wait_until("the agent serving", lambda: _serving(stub), 300)
        if not resuming:
            _register(directory, listen, anvil.url, vault.vault.address)
            fund(w3, dex, DEPLOYER, status.address, eth=10)
            fund(w3, dex, DEPLOYER, DEPLOYER.address, weth=2)
            vault.deposit(dex.weth, 2 * 10**18)
            vault.deposit(dex.usd, 10_000 * 10**18)
            deployment.save(record)
            say(f"agent {status.address} registered on the vault, which holds 2 WETH, 10,000 USD")
        token = (directory / "auth-token").read_text().strip()
        feeder = _Feeder(w3, dex, vault, stub, token, directory / "var" / "agent" / "agent.db")
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        last = deployment.next_row + args.hours
        for row in range(deployment.next_row, min(last, len(candles))):
            if stop.is_set():
                break
            feeder.feed(row + 1, candles[row])
            deployment.next_row = row + 1
            deployment.save(record)
            if stop.wait(args.seconds_per_candle):
                break
        now = stub.GetStatus(pb.GetStatusRequest(), timeout=30)
        say(f"replayed to candle {deployment.next_row}: {now.receipts} receipts, "
            f"{now.transactions} transactions")  # fmt: skip
        say(_next_steps(directory, listen))
        if not args.exit_when_done:
            say("the agent keeps running; Ctrl-C stops it (run this again to resume)")
            stop.wait()
        return 0
    finally:
        if host is not None and host.poll() is None:
            host.send_signal(signal.SIGTERM)
            try:
                host.wait(timeout=60)
            except subprocess.TimeoutExpired:
                host.kill()
                host.wait()
        anvil.stop()


def _next_steps(directory: Path, listen: str) -> str:
    return (
        f"\nthe agent serves on {listen}; in {directory}:\n"
        "  tee-agent status\n"
        "  tee-agent verify agent --trust-root var/agent/sim/root.pem\n"
        "  tee-agent owner pause --trust-root var/agent/sim/root.pem\n"
        "(--trust-root names the simulated platform's root: it is never trusted otherwise)"
    )


def _write_configs(directory: Path, dex: Dex, vault: str, rpc_url: str) -> None:
    """The deployment's enclave.toml (same owner key), and the chain in tee-agent.toml."""
    enclave_path = directory / "enclave.toml"
    owner = tomllib.loads(enclave_path.read_text())["owner"]["public_key"]
    # Short moving averages (4 and 12 hours) so that the rule policy trades within a day.
    enclave_config_toml(
        dex, owner, vault=vault, path=enclave_path, policy="rule",
        twap_window_seconds=DEMO_TWAP.window_seconds,
        twap_max_age_seconds=DEMO_TWAP.max_age_seconds,
        max_twap_deviation_bps=DEMO_TWAP.max_deviation_bps, short_window=4, long_window=12,
    )  # fmt: skip
    host_path = directory / "tee-agent.toml"
    document = tomlkit.parse(host_path.read_text())
    market, chain = document["market"], document["chain"]
    assert isinstance(market, tomlkit.items.Table) and isinstance(chain, tomlkit.items.Table)
    market["source"] = "none"  # the quickstart streams the pool's price, candle by candle
    market["pair"] = "ETH/USD"
    chain["rpc_url"] = rpc_url
    chain["poll_seconds"] = 0.2
    host_path.write_text(tomlkit.dumps(document))


def _start_host(directory: Path, listen: str) -> subprocess.Popen[bytes]:
    log = (directory / "var" / "host.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "host.cli", "run", "--config", str(directory / "tee-agent.toml")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
        env=child_env(), cwd=REPO,
    )  # fmt: skip


def _serving(stub: pb_grpc.AgentStub) -> pb.Status | None:
    try:
        status: pb.Status = stub.GetStatus(pb.GetStatusRequest(), timeout=5)
    except grpc.RpcError:
        return None
    return status if status.enclave_state == "running" and status.address else None


def _register(directory: Path, listen: str, rpc_url: str, vault: str) -> None:
    key = directory / "var" / "chain" / "vault-owner.key"
    key.write_text(DEPLOYER.key.hex() + "\n")
    key.chmod(0o600)
    code = cli_main(
        ["vault", "register", "--rpc", rpc_url, "--key", str(key), "--vault", vault,
         "--config", str(directory / "enclave.toml"), "--host", listen,
         "--trust-root", str(directory / "var" / "agent" / "sim" / "root.pem")]
    )  # fmt: skip
    if code != 0:
        raise QuickstartError(f"tee-agent vault register exited {code}")


class _Feeder:
    """Moves the pool to each candle's close and streams that price to the agent."""

    def __init__(
        self, w3: Web3, dex: Dex, vault: VaultOwner, stub: pb_grpc.AgentStub, token: str,
        db: Path,
    ) -> None:  # fmt: skip
        self.w3, self.dex, self.vault, self.stub, self.db = w3, dex, vault, stub, db
        self.mover = MarketMover(w3, dex)
        self.metadata = (("authorization", f"Bearer {token}"),)

    def feed(self, seq: int, candle: Candle) -> None:
        set_next_block_time(self.w3, candle.timestamp_ms // 1000)
        price = self.mover.move_to(Decimal(repr(candle.price)), "ETH/USD")
        observe_all(self.vault, self.dex)
        tick = Tick(seq, candle.timestamp_ms, "ETH/USD", float(price), candle.volume)
        self.stub.StreamMarketData(
            iter(tick_batch_messages([tick])), metadata=self.metadata, timeout=300
        )
        # What it signed is mined before the chain's clock moves to the next candle.
        wait_until("the agent's transactions final", lambda: waiting_transactions(self.db) == 0,
                   120)  # fmt: skip


def _dex_dict(dex: Dex) -> dict[str, object]:
    fields = dataclasses.asdict(dex)
    return {**fields, "init_code_hash": dex.init_code_hash.hex()}


def _dex(fields: dict[str, object]) -> Dex:
    return Dex(**{**fields, "init_code_hash": bytes.fromhex(str(fields["init_code_hash"]))})  # type: ignore[arg-type]


def _port(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def _busy(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    sys.exit(main())
