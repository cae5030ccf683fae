"""The chaos run: a real trading run through the guarded vault, with kill -9 at random moments.

`run_chaos` starts anvil (state dumped every second), Uniswap V2 and the guarded vault, and
the host as a real `tee-agent run` subprocess with its enclave and the chain configured
(`devnet.chaos_setup`). Then, for `minutes`, the feeder replays hourly ETH/USDT candles:
it moves the pool to each candle's close, records the vault's price observation, and
streams the tick to the host over its public API (`StreamMarketData`; the host adds the
chain's fees, the vault's balances and TWAPs, and broadcasts what the enclave signs). A
tick whose stream broke off gets no answer and is sent again once the host serves again
(the enclave refuses a tick it already took as `duplicate_seq`).

Meanwhile a killer thread, from `random.Random(seed)`, waits a random time and SIGKILLs the
enclave, the host or anvil (the first three kills are one of each, in a random order), and
waits for the agent to be back: the host restarts its enclave; the killer restarts the host
on the same data directory, and anvil from its state file. At the end the agent settles
(every signed transaction final), `tee-agent verify agent` runs against it, everything
stops, and `devnet.chaos_audit` checks the invariants over what was stored, what the chain
holds, the feeder's ledger of ticks and the processes left.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import grpc
from tee_agent_rpc import agent_pb2 as pb

from devnet.chaos_audit import (
    ACCEPTED,
    NO_ANSWER,
    AuditResult,
    ChaosRecords,
    Violation,
    audit_chaos,
)
from devnet.chaos_procs import ChaosError, ChaosProcesses, wait_until
from devnet.chaos_setup import ChaosChain, collect_records, set_up, waiting_transactions
from devnet.demo_run import CANDLES
from devnet.dex import set_next_block_time
from devnet.vault import observe_all
from host.chain.transact import ChainError
from host.market.replay import Candle, read_candles
from wire.ticks import Tick, tick_batch_messages

log = logging.getLogger("tee_agent.chaos")
KINDS = ("enclave", "host", "anvil")
# Seconds between kills, on average (each gap is 0.5 to 1.5 times this), counted from the
# moment the agent is back from the last one.
MEAN_GAP_SECONDS = 10.0
# A transaction's wait for the chain after its tick, before the feeder goes on (a stuck one
# is left to the audit).
SETTLE_SECONDS = 30.0
# Tries of the market mover's part of a candle.
MARKET_ATTEMPTS = 3


@dataclass
class ChaosResult:
    """What a chaos run did and what its audit found."""

    seed: int
    kills: Counter[str]
    audit: AuditResult
    ticks_sent: int
    resends: int
    receipts: int
    transactions: Counter[str]
    wall_seconds: float
    workdir: Path
    kill_log: list[str] = field(default_factory=list)

    @property
    def violations(self) -> list[Violation]:
        return self.audit.violations

    def as_line(self) -> dict[str, object]:
        """The benchmark's last line: kills by kind, invariants checked, violations."""
        return {
            "kills": {kind: self.kills[kind] for kind in KINDS},
            "invariants_checked": self.audit.invariants_checked,
            "violations": len(self.audit.violations),
        }


class Killer:
    """Kills one process at a time at random moments, until stopped; each kill waits for
    the agent to be back before the next gap starts."""

    def __init__(
        self,
        procs: ChaosProcesses,
        chain: ChaosChain,
        rng: random.Random,
        say: Callable[[str], None],
        mean_gap: float,
        wait_for_dump: bool = False,
    ) -> None:
        self.procs, self.chain, self.rng, self.say = procs, chain, rng, say
        self.mean_gap = mean_gap
        self.wait_for_dump = wait_for_dump
        self.kills: Counter[str] = Counter()
        self.log: list[str] = []
        self.orphans: list[str] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        first = list(KINDS)
        rng.shuffle(first)
        self._plan = first
        self._thread = threading.Thread(target=self._run, name="chaos-killer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def running(self) -> bool:
        """Whether the killer is still at work (waiting, or killing and waiting for the
        agent to be back)."""
        return self._thread.is_alive()

    def every_kind_killed(self) -> bool:
        return all(self.kills[kind] for kind in KINDS)

    def stop(self) -> None:
        """Stop after the kill in progress (and its recovery), if any.

        Raises:
            ChaosError: a process did not come back from a kill.
        """
        self.stopping.set()
        self._thread.join()
        if self.error is not None:
            raise ChaosError(f"the killer failed: {self.error}") from self.error

    def _run(self) -> None:
        try:
            while not self.stopping.wait(self.rng.uniform(0.5, 1.5) * self.mean_gap):
                kind = self._plan.pop(0) if self._plan else self.rng.choice(KINDS)
                self._kill(kind)
        except BaseException as exc:  # reported by stop(); the feeder notices the host
            self.error = exc
            self.stopping.set()

    def _kill(self, kind: str) -> None:
        started = time.monotonic()
        number = sum(self.kills.values()) + 1
        if kind == "enclave":
            pid = self.procs.kill_enclave()
            if pid is None:
                return  # between enclaves: the host is restarting it anyway
            what = f"enclave pid {pid}"
            self.procs.wait_enclave_back(pid)
        elif kind == "host":
            pid = self.procs.host.pid if self.procs.host is not None else None
            what = f"host pid {pid}"
            self.orphans += self.procs.kill_host()
            self.procs.start_host()
        else:
            with self.chain.lock:  # not in the middle of the feeder's own market moves
                pid = self.procs.anvil.pid
                what = f"anvil pid {pid} (block {self.chain.w3.eth.block_number})"
                self.procs.kill_anvil(self.wait_for_dump)
        self.kills[kind] += 1
        line = f"kill {number}: {kind} ({what}), back in {time.monotonic() - started:.1f} s"
        self.log.append(line)
        self.say(line)


class Feeder:
    """Streams one tick per candle to the host, again until it gets an answer."""

    def __init__(self, procs: ChaosProcesses, chain: ChaosChain, token: str) -> None:
        self.procs, self.chain = procs, chain
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.ledger: dict[int, list[str]] = {}

    def feed(self, seq: int, candle: Candle) -> None:
        """Move the pool to the candle's close, observe, send the tick until answered, and
        wait (bounded) for what it signed to be final."""
        price = self._move_market(candle)
        tick = Tick(seq, candle.timestamp_ms, "ETH/USD", float(price), candle.volume)
        answers = self.ledger.setdefault(seq, [])
        deadline = time.monotonic() + 300
        while True:
            answer = self._send(tick)
            answers.append(answer)
            if answer != NO_ANSWER:
                break
            if time.monotonic() > deadline:
                raise ChaosError(f"tick {seq} got no answer in 300 s")
            wait_until("the host serving again", self.procs.serving)
        db = self.procs.data_dir / "agent.db"
        try:
            wait_until("the agent's transactions final", lambda: waiting_transactions(db) == 0,
                       SETTLE_SECONDS)  # fmt: skip
        except ChaosError:
            log.warning("transactions still waiting after tick %d; going on", seq)

    def _move_market(self, candle: Candle) -> Decimal:
        """The market mover's part (not under test): tried again when a move reverts, as
        after anvil lost the blocks the move was computed on."""
        for attempt in range(MARKET_ATTEMPTS):
            try:
                with self.chain.lock:
                    set_next_block_time(self.chain.w3, candle.timestamp_ms // 1000)
                    price = self.chain.mover.move_to(Decimal(repr(candle.price)), "ETH/USD")
                    observe_all(self.chain.vault, self.chain.dex)
                return price
            except ChainError as exc:
                if attempt + 1 == MARKET_ATTEMPTS:
                    raise
                log.warning("moving the market failed (%s); trying again", exc)
        raise AssertionError("unreachable")

    def _send(self, tick: Tick) -> str:
        batches = tick_batch_messages([tick])
        try:
            summary: pb.StreamSummary = self.procs.stub.StreamMarketData(
                iter(batches), metadata=self.metadata, timeout=120
            )
        except grpc.RpcError:
            return NO_ANSWER
        if summary.accepted == 1:
            return ACCEPTED
        refused = [r.reason for r in summary.refused_ticks if r.seq == tick.seq]
        return refused[0] if refused else NO_ANSWER


def run_chaos(
    minutes: float,
    seed: int,
    workdir: Path,
    *,
    say: Callable[[str], None] = lambda line: None,
    mean_gap: float = MEAN_GAP_SECONDS,
    wait_for_dump: bool = False,
) -> ChaosResult:
    """Run the chaos run for `minutes` of feeding (longer if a kind of kill has not happened
    yet), then audit it. Everything it started is stopped on return. anvil is killed at
    the moment drawn, losing the blocks mined since its last dump (up to a second of them);
    with `wait_for_dump`, only once its dump holds the head block.

    Raises:
        ChaosError: a process would not start or come back.
        devnet.anvil.AnvilError, host.chain.transact.ChainError: the local chain failed.
    """
    started = time.monotonic()
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule of kills, no secret
    workdir.mkdir(parents=True, exist_ok=True)
    with set_up(workdir, say) as (procs, chain):
        feeder = Feeder(procs, chain, chain.token)
        killer = Killer(procs, chain, rng, say, mean_gap, wait_for_dump)
        say(f"feeding candles for {minutes:g} min; kills from seed {seed}")
        killer.start()
        end = time.monotonic() + minutes * 60
        try:
            for seq, candle in enumerate(_candles(chain.first_row), start=1):
                if time.monotonic() > end and killer.every_kind_killed():
                    killer.stopping.set()
                # Trading goes on until a kill in progress has recovered: a killed enclave
                # comes back at the host's next call.
                if killer.stopping.is_set() and not killer.running():
                    break
                feeder.feed(seq, candle)
        finally:
            killer.stop()
        say(f"stopped killing after {sum(killer.kills.values())} kills; settling")
        db = procs.data_dir / "agent.db"
        try:
            wait_until("the agent's transactions final", lambda: waiting_transactions(db) == 0,
                       SETTLE_SECONDS * 4)  # fmt: skip
        except ChaosError as exc:
            say(f"{exc}; auditing as it is")  # transaction_settled reports what waits
        records = collect_records(procs, chain, feeder.ledger, killer.orphans, say)
    records = _with_orphans(records, procs.orphans())
    audit = audit_chaos(records)
    return ChaosResult(
        seed=seed,
        kills=killer.kills,
        audit=audit,
        ticks_sent=len(feeder.ledger),
        resends=sum(len(a) - 1 for a in feeder.ledger.values()),
        receipts=len(records.receipts),
        transactions=Counter(tx.status for tx in records.transactions),
        wall_seconds=round(time.monotonic() - started, 1),
        workdir=workdir,
        kill_log=killer.log,
    )


def _with_orphans(records: ChaosRecords, found: list[str]) -> ChaosRecords:
    return ChaosRecords(**{**records.__dict__, "orphans": [*records.orphans, *found]})


def _candles(first_row: int) -> Iterator[Candle]:
    """Hourly candles from `first_row` of the bundled file, as many as asked for."""
    rows = list(read_candles(CANDLES, "ETH/USD"))
    yield from rows[first_row:]
