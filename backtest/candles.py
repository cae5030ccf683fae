"""Candles for a backtest: the bundled CSV shape or freqtrade's JSON, a time range, and gaps.

Two file shapes are read:
- CSV as in `data/market/*-1h-*.csv` (`timestamp,open,high,low,close,volume`, ISO 8601 UTC
  open times), read by `host.market.replay.read_candles`;
- freqtrade's JSON candle files: `[[open_time_ms, open, high, low, close, volume], ...]`.

Timestamps must strictly increase. The candle interval is the file's most common spacing;
a candle more than one interval after the previous one follows a gap (an exchange outage),
which is reported, never filled: no bar is invented.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from host.market.replay import MarketDataError, read_candles


class CandleFileError(Exception):
    """The candles cannot be used: unreadable, malformed, or nothing in the range asked."""


@dataclass(frozen=True)
class Gap:
    """Missing candles: `missing` intervals without a candle after the one at `after_ms`."""

    after_ms: int
    missing: int

    def as_dict(self) -> dict[str, object]:
        return {"after": iso_time(self.after_ms), "missing": self.missing}


@dataclass(frozen=True)
class Candles:
    """Candles as aligned columns (entry i of each is candle i), oldest first."""

    seq: npt.NDArray[np.uint64]
    timestamp_ms: npt.NDArray[np.int64]
    close: npt.NDArray[np.float64]
    volume: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.seq)

    def between(self, start_ms: int | None, end_ms: int | None) -> Candles:
        """The candles opening at or after `start_ms` and before `end_ms` (None: no bound)."""
        low = 0 if start_ms is None else int(np.searchsorted(self.timestamp_ms, start_ms, "left"))
        high = (
            len(self) if end_ms is None else int(np.searchsorted(self.timestamp_ms, end_ms, "left"))
        )
        return Candles(
            self.seq[low:high],
            self.timestamp_ms[low:high],
            self.close[low:high],
            self.volume[low:high],
        )

    def interval_ms(self) -> int:
        """The most common spacing of the candles (0 for fewer than two)."""
        if len(self) < 2:
            return 0
        spacings, counts = np.unique(np.diff(self.timestamp_ms), return_counts=True)
        return int(spacings[int(np.argmax(counts))])

    def gaps(self) -> list[Gap]:
        """Where candles are missing: each spacing over one interval, with how many intervals
        fit in it besides the candle that ends it."""
        interval = self.interval_ms()
        if interval == 0:
            return []
        spacing = np.diff(self.timestamp_ms)
        where = np.flatnonzero(spacing > interval)
        return [
            Gap(int(self.timestamp_ms[i]), max(1, int(spacing[i]) // interval - 1)) for i in where
        ]


def iso_time(timestamp_ms: int) -> str:
    """`timestamp_ms` (epoch milliseconds) as ISO 8601 UTC, e.g. 2022-01-01T00:00:00Z."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def read_candle_file(path: Path) -> Candles:
    """The candles of a CSV file (the bundled shape) or a freqtrade JSON file (by its `.json`
    name, or a first character `[`).

    Raises:
        CandleFileError: the file cannot be read, does not have either shape, has a price
            that is not a finite positive number, or timestamps that do not strictly
            increase; or holds no candle. The message names the file (and line or entry).
    """
    try:
        with path.open("rb") as stream:
            head = stream.read(64).lstrip()
    except OSError as exc:
        raise CandleFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json" or head.startswith(b"["):
        rows = _freqtrade_rows(path)
    else:
        try:
            rows = [(c.timestamp_ms, c.price, c.volume) for c in read_candles(path, "")]
        except MarketDataError as exc:
            raise CandleFileError(str(exc)) from None
    if not rows:
        raise CandleFileError(f"{path}: no candles")
    stamps, close, volume = zip(*rows, strict=True)
    return Candles(
        seq=np.arange(1, len(rows) + 1, dtype=np.uint64),
        timestamp_ms=np.array(stamps, dtype=np.int64),
        close=np.array(close, dtype=np.float64),
        volume=np.array(volume, dtype=np.float64),
    )


def _freqtrade_rows(path: Path) -> list[tuple[int, float, float]]:
    """(open time ms, close, volume) of each entry of a freqtrade JSON candle file."""
    try:
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise CandleFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CandleFileError(f"{path}: not JSON: {exc}") from None
    if not isinstance(document, list):
        raise CandleFileError(
            f"{path}: expected a JSON array of [open_time_ms, open, high, low, close, volume]"
        )
    rows: list[tuple[int, float, float]] = []
    for index, entry in enumerate(document):
        where = f"{path}: entry {index}"
        if not isinstance(entry, list) or len(entry) != 6:
            raise CandleFileError(
                f"{where}: expected [open_time_ms, open, high, low, close, volume], found "
                f"{json.dumps(entry)[:80]}"
            )
        if not all(_is_number(value) for value in entry):
            raise CandleFileError(f"{where}: every field must be a number")
        stamp = int(entry[0])
        if stamp != entry[0] or stamp < 0:
            raise CandleFileError(f"{where}: open time {entry[0]!r} is not epoch milliseconds")
        if rows and stamp <= rows[-1][0]:
            raise CandleFileError(f"{where}: open time {stamp} does not come after the previous")
        if not all(math.isfinite(p) and p > 0 for p in entry[1:5]):
            raise CandleFileError(f"{where}: prices must be finite numbers above 0")
        if not (math.isfinite(entry[5]) and entry[5] >= 0):
            raise CandleFileError(f"{where}: volume must be a finite number, 0 or more")
        rows.append((stamp, float(entry[4]), float(entry[5])))
    return rows


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
