"""Replay of real historical market data: candle CSV files and Uniswap V2 reserve snapshots.

Candle files have the shape of `data/market/*-1h-*.csv` (see data/market/README.md): the
header `timestamp,open,high,low,close,volume`, one row per candle, the timestamp the candle's
open time in ISO 8601 UTC, strictly increasing. Each candle becomes one tick: its close
price and its volume at its open time, with the row number as the tick's sequence number
(so a replay restarted at `start_row` continues the same sequence).
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from itertools import islice
from pathlib import Path
from typing import NoReturn

from tqdm import tqdm

CANDLE_HEADER = ("timestamp", "open", "high", "low", "close", "volume")
RESERVES_HEADER = ("block_number", "reserve0_usdc", "reserve1_weth")
# Uniswap V2 orders a pair's tokens by address: token0 is USDC (6 decimals), token1 WETH (18).
_USDC_UNIT = Decimal(10) ** 6
_WETH_UNIT = Decimal(10) ** 18
_DECIMAL = Context(prec=28)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class MarketDataError(Exception):
    """A market data file cannot be read or a row does not fit; says which file and line."""

    def __init__(self, message: str, *, path: Path | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = "" if path is None else str(path) if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True, slots=True)
class Candle:
    """One candle as a tick: sequence (1-based data row), open time, pair, close, volume."""

    seq: int
    timestamp_ms: int
    pair: str
    price: float
    volume: float


def _rows(path: Path, header: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) for each non-blank data row after checking the header."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.reader(stream)
            first = next(reader, None)
            if first is None:
                raise MarketDataError("empty file: no header", path=path, line=1)
            if tuple(field.strip() for field in first) != header:
                raise MarketDataError(
                    f"header is {','.join(first)!r}, expected {','.join(header)!r}",
                    path=path,
                    line=1,
                )
            for row in reader:
                if not row or all(not field.strip() for field in row):
                    continue
                if len(row) != len(header):
                    raise MarketDataError(
                        f"expected {len(header)} columns, found {len(row)}",
                        path=path,
                        line=reader.line_num,
                    )
                yield reader.line_num, row
    except csv.Error as exc:
        raise MarketDataError(f"malformed CSV: {exc}", path=path) from None
    except UnicodeDecodeError as exc:
        raise MarketDataError(f"not UTF-8 text: {exc.reason}", path=path) from None
    except OSError as exc:
        raise MarketDataError(f"cannot read: {exc.strerror or exc}", path=path) from None


def _number(text: str, column: str, *, path: Path, line: int, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise MarketDataError(f"{column} {text!r} is not a number", path=path, line=line) from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "above 0" if positive else "0 or more"
        raise MarketDataError(
            f"{column} {text!r} must be a finite number {bound}", path=path, line=line
        )
    return value


def _timestamp_ms(text: str, *, path: Path, line: int) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() != timedelta(0):
        raise MarketDataError(
            f"timestamp {text!r} is not ISO 8601 UTC (expected e.g. 2022-01-01T00:00:00Z)",
            path=path,
            line=line,
        )
    return (moment - _EPOCH) // _MILLISECOND


def read_candles(path: Path, pair: str) -> Iterator[Candle]:
    """Yield the candles of a CSV file as ticks for `pair`, in file order.

    Lazy: errors surface while iterating.

    Raises:
        MarketDataError: unreadable file, wrong header or column count, a price that is not
            a finite positive number, a volume below 0, a timestamp that is not ISO 8601
            UTC, or timestamps that do not strictly increase; names the file and the line.
    """
    previous: int | None = None
    for seq, (line, row) in enumerate(_rows(path, CANDLE_HEADER), start=1):
        timestamp_ms = _timestamp_ms(row[0].strip(), path=path, line=line)
        if previous is not None and timestamp_ms <= previous:
            raise MarketDataError(
                f"timestamp {row[0]!r} does not come after the previous row's", path=path, line=line
            )
        previous = timestamp_ms
        prices = [
            _number(row[i].strip(), CANDLE_HEADER[i], path=path, line=line, positive=True)
            for i in range(1, 5)
        ]
        volume = _number(row[5].strip(), "volume", path=path, line=line, positive=False)
        yield Candle(seq=seq, timestamp_ms=timestamp_ms, pair=pair, price=prices[3], volume=volume)


def read_reserves(path: Path) -> Iterator[tuple[int, Decimal]]:
    """Yield (block number, USDC per ETH) from a Uniswap V2 USDC/WETH reserves CSV.

    The price is (reserve0 / 1e6) / (reserve1 / 1e18), computed exactly in Decimal from
    the raw integer reserves (header `block_number,reserve0_usdc,reserve1_weth`).

    Raises:
        MarketDataError: unreadable file, wrong header, a value that is not a non-negative
            integer, a zero WETH reserve, or block numbers that do not strictly increase.
    """
    previous: int | None = None
    for line, row in _rows(path, RESERVES_HEADER):
        values = [field.strip() for field in row]
        for column, text in zip(RESERVES_HEADER, values, strict=True):
            if not text.isascii() or not text.isdigit():
                raise MarketDataError(
                    f"{column} {text!r} is not a non-negative integer", path=path, line=line
                )
        block, reserve0, reserve1 = (int(text) for text in values)
        if previous is not None and block <= previous:
            raise MarketDataError(
                f"block_number {block} does not come after {previous}", path=path, line=line
            )
        if reserve1 == 0:
            raise MarketDataError("reserve1_weth is 0: no price", path=path, line=line)
        previous = block
        usdc = _DECIMAL.divide(Decimal(reserve0), _USDC_UNIT)
        weth = _DECIMAL.divide(Decimal(reserve1), _WETH_UNIT)
        yield block, _DECIMAL.divide(usdc, weth)


def _count_rows(path: Path) -> int | None:
    """Data rows in a file (newlines less the header), for the progress bar's total."""
    try:
        with path.open("rb") as stream:
            newlines = 0
            last = b"\n"
            while chunk := stream.read(1 << 20):
                newlines += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:
        return None
    lines = newlines + (last != b"\n")
    return max(lines - 1, 0)


class ReplaySource:
    """Replays a candle file as batches of ticks, paced against the wall clock.

    `speed` is seconds of market time per wall-clock second (3600 replays hourly candles at
    one a second); 0 replays as fast as the consumer takes them. `start_row` data rows are
    skipped (sequence numbers stay those of the file) and at most `max_rows` are replayed
    (0: all). The clock and the sleep are parameters so tests need not wait.
    """

    def __init__(
        self,
        path: Path,
        pair: str,
        *,
        speed: float = 0.0,
        start_row: int = 0,
        max_rows: int = 0,
        progress: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Raises ValueError for a negative or non-finite speed or a negative row count."""
        if not math.isfinite(speed) or speed < 0:
            raise ValueError(f"speed must be a finite number >= 0, found {speed}")
        if start_row < 0 or max_rows < 0:
            raise ValueError(f"start_row and max_rows must be >= 0 ({start_row}, {max_rows})")
        self.path = path
        self.pair = pair
        self.speed = speed
        self.start_row = start_row
        self.max_rows = max_rows
        self.progress = progress
        self._clock = clock
        self._sleep = sleep

    def candles(self) -> Iterator[Candle]:
        """The candles to replay, unpaced. Raises MarketDataError as `read_candles` does."""
        stop = self.start_row + self.max_rows if self.max_rows else None
        return islice(read_candles(self.path, self.pair), self.start_row, stop)

    def batches(self, batch_size: int) -> Iterator[list[Candle]]:
        """Yield lists of at most `batch_size` candles, each as soon as it is due.

        With a speed, a candle is due `(its time - first candle's time) / speed` wall
        seconds after the first was read; the source sleeps only when it is ahead, and
        hands over what it has before sleeping. A progress bar goes to stderr when
        `progress` is set and stderr is a terminal.

        Raises:
            ValueError: `batch_size` outside 1..10000.
            MarketDataError: as `read_candles`, while iterating.
        """
        if not 1 <= batch_size <= 10_000:
            raise ValueError(f"batch_size must be in 1..10000, found {batch_size}")
        return self._batches(batch_size)

    def _batches(self, batch_size: int) -> Iterator[list[Candle]]:
        show = self.progress and sys.stderr.isatty()
        total = None
        if show and (rows := _count_rows(self.path)) is not None:
            available = max(rows - self.start_row, 0)
            total = min(available, self.max_rows) if self.max_rows else available
        bar = tqdm(
            total=total, desc=f"replay {self.pair}", unit="tick", file=sys.stderr, disable=not show
        )
        try:
            yield from self._paced(batch_size, bar)
        finally:
            bar.close()

    def _paced(self, batch_size: int, bar: tqdm[NoReturn]) -> Iterator[list[Candle]]:
        batch: list[Candle] = []
        wall_start = 0.0
        market_start: int | None = None
        for candle in self.candles():
            if self.speed > 0:
                if market_start is None:
                    wall_start, market_start = self._clock(), candle.timestamp_ms
                due = wall_start + (candle.timestamp_ms - market_start) / 1000 / self.speed
                if due > self._clock():
                    if batch:
                        bar.update(len(batch))
                        yield batch
                        batch = []
                    # The consumer may have taken its time: sleep only for what is left.
                    ahead = due - self._clock()
                    if ahead > 0:
                        self._sleep(ahead)
            batch.append(candle)
            if len(batch) >= batch_size:
                bar.update(len(batch))
                yield batch
                batch = []
        if batch:
            bar.update(len(batch))
            yield batch
