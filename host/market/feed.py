"""The host's own market feeds: what `tee-agent run` relays into the enclave besides what
clients stream in. `replay_market` replays a candle file (resuming after the last tick the
enclave accepted); `follow_pool` sends the price of a Uniswap V2 pool on the chain the
agent trades on, a tick for every reserve change."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from enclave.config import EnclaveConfig
from host.agent import Agent
from host.chain.link import ChainLink
from host.chain.node_errors import redact_error
from host.config import MarketSection
from host.enclave_client import IngestInput
from host.market.onchain import PoolTicks
from host.market.replay import ReplaySource
from host.outcomes import AgentError
from wire.ticks import TickLike, tick_batch_messages

log = logging.getLogger("tee_agent.host")


def ticks_input(ticks: Sequence[TickLike]) -> IngestInput:
    """Ticks (candles from a file or a pool) as one Ingest: a TickBatch per run of a pair."""
    batches = tuple(batch.SerializeToString() for batch in tick_batch_messages(ticks))
    return IngestInput(tick_batches=batches, ticks=len(ticks))


def replay_market(
    agent: Agent, market: MarketSection, chain: ChainLink | None, stop: threading.Event
) -> None:
    """Feed the configured market file into the enclave, resuming after the last accepted
    tick, until the file ends or `stop` is set."""
    last = agent.enclave_status().last_tick_seq
    if chain is None:
        log.warning(
            "replaying %s without a chain ([chain] rpc_url is empty): the agent holds no "
            "balances, so every decision is a hold and nothing trades. To watch it trade on a "
            "local chain with Uniswap V2 and the guarded vault, run ./scripts/demo from a "
            "checkout",
            market.file,
        )
    source = ReplaySource(
        market.file,
        market.pair,
        speed=market.speed,
        start_row=max(market.start_row, last),
        max_rows=market.max_rows,
    )
    for batch in source.batches(market.batch_size):
        if stop.is_set():
            return
        work = ticks_input(batch)
        if chain is not None:
            work = chain.enrich(work)
        try:
            agent.ingest(work)
        except AgentError as exc:
            log.error("market replay stopped: %s", exc)
            return
    log.info("market replay finished", extra={"last_seq": agent.enclave_status().last_tick_seq})


def follow_pool(
    agent: Agent,
    market: MarketSection,
    chain: ChainLink | None,
    enclave: EnclaveConfig,
    stop: threading.Event,
) -> None:
    """Feed the pool's own price into the enclave: a tick for every reserve change, until
    `stop` is set."""
    pair = enclave.pair(market.pair)
    if chain is None or not market.pool or pair is None:
        log.error(
            "market source 'pool' needs [chain] rpc_url, [market] pool, and a [market] pair "
            "that the enclave config lists"
        )
        return
    base, quote = enclave.tokens[pair.base], enclave.tokens[pair.quote]
    ticks = PoolTicks.for_base_token(
        chain.w3, market.pool, base.address, base.decimals, quote.decimals, market.pair
    )
    next_block: int = chain.w3.eth.block_number
    while not stop.wait(chain.poll_seconds):
        try:
            found, next_block = ticks.poll(next_block)
        except Exception as exc:
            log.warning("reading the pool failed: %s", redact_error(exc, chain.rpc_url))
            continue
        if not found:
            continue
        # Only the newest reserves are the market now: a decision on a price the pool has
        # already left would meet another pool on chain (and revert on its minimum out).
        try:
            agent.ingest(chain.enrich(ticks_input([found[-1]])))
        except AgentError as exc:
            log.error("pool ticks refused: %s", exc)
