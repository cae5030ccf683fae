"""host.market.replay on the real bundled files, on broken files, and its pacing."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from host.market import Candle, MarketDataError, ReplaySource, read_candles, read_reserves

MARKET = Path(__file__).resolve().parent.parent / "data" / "market"
ETH_1H = MARKET / "eth-usdt-binance-1h-2022-2023.csv"
BTC_1H = MARKET / "btc-usdt-binance-1h-2022-2023.csv"
RESERVES = MARKET / "uniswap-v2-usdc-weth-reserves-2024-01.csv"
HOUR_MS = 3600 * 1000
HEADER = "timestamp,open,high,low,close,volume\n"


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


def csv_file(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "candles.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def hourly(rows: int, start: str = "2022-01-01T00:00:00") -> str:
    first = ms(start)
    lines = []
    for i in range(rows):
        stamp = datetime.fromtimestamp((first + i * HOUR_MS) / 1000, tz=UTC)
        lines.append(f"{stamp:%Y-%m-%dT%H:%M:%SZ},1,2,0.5,{100 + i},{i}.5\n")
    return "".join(lines)


# -- the real files (numbers from data/market/README.md and ../shared/market-data) -------


def test_eth_hourly_candles() -> None:
    candles = list(read_candles(ETH_1H, "ETH/USDT"))
    assert len(candles) == 10_235
    first, last = candles[0], candles[-1]
    assert first == Candle(1, ms("2022-01-01T00:00:00"), "ETH/USDT", 3723.04, 9023.374)
    assert last.seq == 10_235
    assert last.timestamp_ms == ms("2023-03-03T10:00:00")
    assert (last.price, last.volume) == (1565.4, 12521.8611)
    assert [c.seq for c in candles] == list(range(1, 10_236))
    # No gaps: every candle one hour after the one before.
    assert all(b.timestamp_ms - a.timestamp_ms == HOUR_MS for a, b in itertools.pairwise(candles))
    # The ETH low of the period: 881.56 is a low, so the close is above it.
    low = min(candles, key=lambda c: c.price)
    assert low.price > 881.56 and low.timestamp_ms // 1000 // 86400 == ms("2022-06-18") // 86400_000


def test_btc_hourly_candles_share_the_timestamps() -> None:
    eth = [c.timestamp_ms for c in read_candles(ETH_1H, "ETH/USDT")]
    btc = list(read_candles(BTC_1H, "BTC/USDT"))
    assert [c.timestamp_ms for c in btc] == eth
    assert btc[0].pair == "BTC/USDT" and btc[0].price == 46656.13


def test_uniswap_reserves_prices() -> None:
    rows = list(read_reserves(RESERVES))
    assert len(rows) == 38_164
    assert rows[0][0] == 18_908_895 and rows[-1][0] == 18_947_060
    # (reserve0 / 1e6) / (reserve1 / 1e18), from the file's first row.
    expected = (Decimal(52034452364125) / Decimal(10**6)) / (
        Decimal(22864731471058335602880) / Decimal(10**18)
    )
    assert rows[0][1] == expected
    prices = [price for _, price in rows]
    assert round(min(prices), 2) == Decimal("2172.89")
    assert round(max(prices), 2) == Decimal("2428.51")
    blocks = [block for block, _ in rows]
    missing = set(range(blocks[0], blocks[-1] + 1)) - set(blocks)
    assert missing == {18_916_329, 18_919_840}


# -- any CSV of that shape -----------------------------------------------------------------


def test_a_small_file_of_the_same_shape(tmp_path: Path) -> None:
    path = csv_file(tmp_path, hourly(3) + "\n")  # a trailing blank line is fine
    candles = list(read_candles(path, "BTC/USDT"))
    assert [(c.seq, c.price, c.volume) for c in candles] == [
        (1, 100, 0.5),
        (2, 101, 1.5),
        (3, 102, 2.5),
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        candles[0].price = 1  # type: ignore[misc]


def test_utc_offset_form_is_accepted(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "2022-01-01T00:00:00+00:00,1,1,1,1,1\n")
    assert next(read_candles(path, "ETH/USDT")).timestamp_ms == ms("2022-01-01T00:00:00")


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("2022-01-01T00:00:00Z,1,1,1,abc,1\n", 2, "close 'abc' is not a number"),
        ("2022-01-01T00:00:00Z,1,1,1,1,1\n2022-01-01T01:00:00Z,1,1,1,nan,1\n", 3, "close 'nan'"),
        ("2022-01-01T00:00:00Z,1,1,1,inf,1\n", 2, "finite"),
        ("2022-01-01T00:00:00Z,1,1,1,0,1\n", 2, "above 0"),
        ("2022-01-01T00:00:00Z,1,1,1,1,-2\n", 2, "volume '-2'"),
        ("2022-01-01T00:00:00Z,,1,1,1,1\n", 2, "open '' is not a number"),
        ("2022-13-01T00:00:00Z,1,1,1,1,1\n", 2, "not ISO 8601 UTC"),
        ("2022-01-01T00:00:00,1,1,1,1,1\n", 2, "not ISO 8601 UTC"),  # no zone
        ("2022-01-01T00:00:00+01:00,1,1,1,1,1\n", 2, "not ISO 8601 UTC"),
        ("1640995200000,1,1,1,1,1\n", 2, "not ISO 8601 UTC"),
        ("2022-01-01T00:00:00Z,1,1,1,1\n", 2, "expected 6 columns, found 5"),
        (hourly(3) + "2022-01-01T02:00:00Z,1,1,1,1,1\n", 5, "does not come after"),
        (hourly(3) + "2021-12-31T00:00:00Z,1,1,1,1,1\n", 5, "does not come after"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, body: str, line: int, words: str) -> None:
    path = csv_file(tmp_path, body)
    with pytest.raises(MarketDataError) as caught:
        list(read_candles(path, "ETH/USDT"))
    assert caught.value.path == path and caught.value.line == line
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert words in str(caught.value)


def test_bad_header_empty_missing_and_binary_files(tmp_path: Path) -> None:
    path = csv_file(tmp_path, hourly(1), header="time,open,high,low,close,volume\n")
    with pytest.raises(MarketDataError, match=r"candles.csv:1: header is 'time,open"):
        list(read_candles(path, "ETH/USDT"))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(MarketDataError, match="empty file"):
        list(read_candles(empty, "ETH/USDT"))
    with pytest.raises(MarketDataError, match=r"missing\.csv: cannot read"):
        list(read_candles(tmp_path / "missing.csv", "ETH/USDT"))
    binary = tmp_path / "binary.csv"
    binary.write_bytes(HEADER.encode() + b"\xff\xfe\x00\n")
    with pytest.raises(MarketDataError, match=r"binary\.csv"):
        list(read_candles(binary, "ETH/USDT"))
    # The reserves reader refuses a candle file, and the other way round.
    with pytest.raises(MarketDataError, match="header"):
        list(read_reserves(ETH_1H))
    with pytest.raises(MarketDataError, match="header"):
        list(read_candles(RESERVES, "ETH/USDT"))


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("1,10,x\n", 2, "reserve1_weth 'x' is not a non-negative integer"),
        ("1,-10,10\n", 2, "reserve0_usdc '-10'"),
        ("1,10,0\n", 2, "reserve1_weth is 0"),
        ("5,10,10\n5,10,10\n", 3, "block_number 5 does not come after 5"),
        ("1,1e6,10\n", 2, "reserve0_usdc '1e6'"),
    ],
)
def test_bad_reserve_rows(tmp_path: Path, body: str, line: int, words: str) -> None:
    path = csv_file(tmp_path, body, header="block_number,reserve0_usdc,reserve1_weth\n")
    with pytest.raises(MarketDataError) as caught:
        list(read_reserves(path))
    assert caught.value.line == line and words in str(caught.value)


# -- ReplaySource: rows, batches, pacing -------------------------------------------------


class FakeTime:
    """A clock that only moves when slept on (or advanced by the test)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rows_and_batches_keep_file_sequence_numbers() -> None:
    source = ReplaySource(ETH_1H, "ETH/USDT", start_row=100, max_rows=25, progress=False)
    batches = list(source.batches(10))
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [c.seq for b in batches for c in b] == list(range(101, 126))
    everything = ReplaySource(ETH_1H, "ETH/USDT", start_row=10_000, progress=False)
    assert sum(len(b) for b in everything.batches(10_000)) == 235
    past_the_end = ReplaySource(ETH_1H, "ETH/USDT", start_row=20_000, progress=False)
    assert list(past_the_end.batches(5)) == []


def test_speed_zero_never_sleeps() -> None:
    fake = FakeTime()
    source = ReplaySource(
        ETH_1H, "ETH/USDT", max_rows=1200, progress=False, clock=fake.clock, sleep=fake.sleep
    )
    assert [len(b) for b in source.batches(500)] == [500, 500, 200]
    assert fake.sleeps == []


def test_pacing_sleeps_until_each_candle_is_due() -> None:
    fake = FakeTime()
    # 3600 market seconds per wall second: one hourly candle a second.
    source = ReplaySource(
        ETH_1H,
        "ETH/USDT",
        speed=3600,
        max_rows=5,
        progress=False,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    seen = [(fake.now, [c.seq for c in batch]) for batch in source.batches(500)]
    # Each candle is handed over on its own as soon as it is due; nothing waits for a
    # batch to fill.
    assert seen == [(1000.0, [1]), (1001.0, [2]), (1002.0, [3]), (1003.0, [4]), (1004.0, [5])]
    assert fake.sleeps == [1.0, 1.0, 1.0, 1.0]


def test_pacing_does_not_sleep_when_behind() -> None:
    fake = FakeTime()
    source = ReplaySource(
        ETH_1H,
        "ETH/USDT",
        speed=7200,  # two candles a second
        max_rows=30,
        progress=False,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    sizes = []
    for batch in source.batches(8):
        sizes.append(len(batch))
        if len(sizes) == 1:
            fake.now += 5.0  # a slow consumer: 10 candles fall due meanwhile
    # First candle alone; then the 10 that fell due, in batches of at most 8; then paced.
    assert sizes[:3] == [1, 8, 2]
    assert sum(sizes) == 30
    assert all(seconds == pytest.approx(0.5) for seconds in fake.sleeps)
    assert len(fake.sleeps) == 30 - 11
    assert fake.now == pytest.approx(1000.0 + 29 * 0.5)


def test_pacing_at_a_high_speed_sleeps_fractions_of_a_second() -> None:
    # 20 hourly candles a second: 4 candles take 3 x 0.05 s.
    fake = FakeTime()
    source = ReplaySource(
        ETH_1H,
        "ETH/USDT",
        speed=3600 * 20,
        max_rows=4,
        progress=False,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert sum(len(b) for b in source.batches(100)) == 4
    assert fake.sleeps == pytest.approx([0.05, 0.05, 0.05])
    assert sum(fake.sleeps) == pytest.approx(0.15)
    # Without a clock and a sleep given, the replay is paced by the real ones.
    defaults = inspect.signature(ReplaySource).parameters
    assert defaults["clock"].default is time.monotonic
    assert defaults["sleep"].default is time.sleep


def test_no_progress_bar_unless_stderr_is_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    for progress in (True, False):
        source = ReplaySource(ETH_1H, "ETH/USDT", max_rows=50, progress=progress)
        assert sum(len(b) for b in source.batches(20)) == 50
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_progress_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    source = ReplaySource(ETH_1H, "ETH/USDT", start_row=10_200, progress=True)
    assert sum(len(b) for b in source.batches(10)) == 35
    assert "replay ETH/USDT" in terminal.getvalue() and "35/35" in terminal.getvalue()


def test_errors_surface_while_replaying(tmp_path: Path) -> None:
    path = csv_file(tmp_path, hourly(5) + "2022-01-01T01:00:00Z,1,1,1,1,1\n")
    source = ReplaySource(path, "ETH/USDT", progress=False)
    batches = source.batches(2)
    assert len(next(batches)) == 2
    with pytest.raises(MarketDataError, match=r"candles.csv:7: "):
        list(batches)


@pytest.mark.parametrize(
    "kwargs", [{"speed": -1.0}, {"speed": float("nan")}, {"start_row": -1}, {"max_rows": -5}]
)
def test_bad_replay_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the message names the argument)
        ReplaySource(ETH_1H, "ETH/USDT", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 10_001])
def test_bad_batch_size(size: int) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        ReplaySource(ETH_1H, "ETH/USDT", progress=False).batches(size)
