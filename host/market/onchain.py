"""On-chain market data: a Uniswap V2 pair's reserves as ticks.

Every reserve change of a Uniswap V2 pair emits `Sync(uint112 reserve0, uint112 reserve1)`
with the reserves after the change. `PoolTicks` reads those events over a block range
(`eth_getLogs`) and turns each into a tick of the same shape the replay adapter yields
(`host.market.replay.Candle`): the price is quote per base from the reserves, the
timestamp is the block's, the volume is 0 (a reserve snapshot has none), and the sequence
number is `block number * 1_000_000 + log index`, strictly increasing along the chain and
shared across pairs, since the log index counts every log of the block. `latest()` reads
`getReserves()` at the head block instead, with the sequence number of the block's end.

Only `getReserves`, `token0` and `Sync` are used, so this works against any Uniswap V2
style pair on any chain, not only the local deployment.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Context, Decimal
from typing import Any

from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.types import BlockData, FilterParams, LogReceipt

from host.market.replay import Candle

# Sequence numbers: a block's logs take `block * SEQ_PER_BLOCK + log index`; a block holds
# far fewer logs than this (a 36M gas block fits under 100,000 of the cheapest kind).
SEQ_PER_BLOCK = 1_000_000
SYNC_TOPIC = "0x" + keccak(text="Sync(uint112,uint112)").hex()
# The part of the pair ABI read here.
PAIR_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "getReserves",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [
            {"name": "reserve0", "type": "uint112"},
            {"name": "reserve1", "type": "uint112"},
            {"name": "blockTimestampLast", "type": "uint32"},
        ],
    },
    *(
        {
            "type": "function",
            "name": name,
            "stateMutability": "view",
            "inputs": [],
            "outputs": [{"name": "", "type": "address"}],
        }
        for name in ("token0", "token1")
    ),
]
_DECIMAL = Context(prec=40)


class PoolDataError(Exception):
    """The pair cannot be read or says something that is not a price (empty reserves)."""


class PoolTicks:
    """Ticks from one Uniswap V2 pair: `poll` for the reserve changes in a block range,
    `latest` for the reserves at the head.

    `base_is_token0` says which side of the pair is the base asset (the one priced);
    Uniswap orders a pair's tokens by address, so it depends on the deployment
    (`for_base_token` works it out). `max_block_range` bounds each `eth_getLogs` request,
    as public nodes limit them.
    """

    def __init__(
        self,
        w3: Web3,
        pair_address: str,
        base_is_token0: bool,
        base_decimals: int,
        quote_decimals: int,
        pair_symbol: str,
        *,
        max_block_range: int = 2000,
    ) -> None:
        if not 0 <= base_decimals <= 36 or not 0 <= quote_decimals <= 36:
            raise ValueError(f"decimals must be in 0..36 ({base_decimals}, {quote_decimals})")
        if max_block_range < 1:
            raise ValueError(f"max_block_range must be at least 1, found {max_block_range}")
        self.w3 = w3
        self.pair_address = to_checksum_address(pair_address)
        self.base_is_token0 = base_is_token0
        self.base_decimals = base_decimals
        self.quote_decimals = quote_decimals
        self.pair_symbol = pair_symbol
        self.max_block_range = max_block_range
        self._pair = w3.eth.contract(address=self.pair_address, abi=PAIR_ABI)
        # quote units per base unit -> quote per base: times 10**(base - quote decimals).
        self._scale = Decimal(10) ** (base_decimals - quote_decimals)

    @classmethod
    def for_base_token(
        cls,
        w3: Web3,
        pair_address: str,
        base_token: str,
        base_decimals: int,
        quote_decimals: int,
        pair_symbol: str,
        *,
        max_block_range: int = 2000,
    ) -> PoolTicks:
        """A reader for `pair_address` pricing `base_token`, asking the pair which of its
        tokens is token0.

        Raises PoolDataError when `base_token` is neither of the pair's tokens.
        """
        pair = w3.eth.contract(address=to_checksum_address(pair_address), abi=PAIR_ABI)
        token0 = to_checksum_address(pair.functions.token0().call())
        token1 = to_checksum_address(pair.functions.token1().call())
        base = to_checksum_address(base_token)
        if base not in (token0, token1):
            raise PoolDataError(
                f"{base} is not a token of pair {pair_address} ({token0}, {token1})"
            )
        return cls(
            w3,
            pair_address,
            base == token0,
            base_decimals,
            quote_decimals,
            pair_symbol,
            max_block_range=max_block_range,
        )

    def price(self, reserve0: int, reserve1: int) -> Decimal:
        """Quote per base from raw reserves, exact to 40 digits.

        Raises PoolDataError when a reserve is 0 (no liquidity: no price).
        """
        base, quote = (reserve0, reserve1) if self.base_is_token0 else (reserve1, reserve0)
        if base <= 0 or quote <= 0:
            raise PoolDataError(
                f"{self.pair_symbol} pair {self.pair_address} has an empty reserve "
                f"({reserve0}, {reserve1}): no price"
            )
        return _DECIMAL.multiply(_DECIMAL.divide(Decimal(quote), Decimal(base)), self._scale)

    def poll(self, from_block: int) -> tuple[list[Candle], int]:
        """Ticks for every `Sync` of the pair from `from_block` to the head, in chain order,
        and the block to poll from next (the head + 1).

        A `Sync` that leaves a reserve empty has no price and gives no tick. Raises
        ValueError for a negative block number; web3's errors pass through.
        """
        if from_block < 0:
            raise ValueError(f"from_block must be >= 0, found {from_block}")
        head = self.w3.eth.block_number
        if from_block > head:
            return [], from_block
        logs: list[LogReceipt] = []
        start = from_block
        while start <= head:
            end = min(start + self.max_block_range - 1, head)
            query: FilterParams = {
                "address": self.pair_address,
                "topics": [SYNC_TOPIC],
                "fromBlock": start,
                "toBlock": end,
            }
            logs.extend(self.w3.eth.get_logs(query))
            start = end + 1
        live = sorted(
            (log for log in logs if not log.get("removed", False)),
            key=lambda log: (log["blockNumber"], log["logIndex"]),
        )
        timestamps: dict[int, int] = {}
        ticks: list[Candle] = []
        for log in live:
            reserve0, reserve1 = _sync_reserves(log["data"])
            if reserve0 == 0 or reserve1 == 0:
                continue
            block = log["blockNumber"]
            if block not in timestamps:
                timestamps[block] = _timestamp_ms(self.w3.eth.get_block(block))
            ticks.append(
                Candle(
                    seq=block * SEQ_PER_BLOCK + log["logIndex"],
                    timestamp_ms=timestamps[block],
                    pair=self.pair_symbol,
                    price=float(self.price(reserve0, reserve1)),
                    volume=0.0,
                )
            )
        return ticks, head + 1

    def latest(self) -> Candle:
        """A tick for the reserves at the head block, with the sequence number of the
        block's end (after any `Sync` tick `poll` gives for that block).

        Raises PoolDataError when the pair has no liquidity.
        """
        block = self.w3.eth.get_block("latest")
        number = block["number"]
        reserve0, reserve1, _ = self._pair.functions.getReserves().call(block_identifier=number)
        return Candle(
            seq=number * SEQ_PER_BLOCK + SEQ_PER_BLOCK - 1,
            timestamp_ms=_timestamp_ms(block),
            pair=self.pair_symbol,
            price=float(self.price(int(reserve0), int(reserve1))),
            volume=0.0,
        )


def _sync_reserves(data: bytes | Sequence[int]) -> tuple[int, int]:
    raw = bytes(data)
    if len(raw) != 64:
        raise PoolDataError(f"a Sync event carries 64 bytes of data, found {len(raw)}")
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


def _timestamp_ms(block: BlockData) -> int:
    return int(block["timestamp"]) * 1000
