"""RFC 3339 times in and out; every time in this package is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 / ISO 8601 time; a time without a zone is refused.

    Raises:
        ValueError: the text is not a time with a zone.
    """
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone; write it as e.g. 2025-07-01T00:00:00Z")
    return moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """Format a time as RFC 3339 in UTC with a Z suffix, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_second(moment: datetime) -> int:
    """The second since the epoch that the aware time `moment` lies in (rounded down, exact).

    It fixes what `format_time` writes: `format_second(whole_second(t)) == format_time(t)`.
    Cheaper than formatting, so it keys what is made once per second of verification time.
    """
    return (moment - _EPOCH) // _ONE_SECOND


def format_second(second: int) -> str:
    """`format_time` of the second `second` since the epoch (see `whole_second`)."""
    return format_time(_EPOCH + timedelta(seconds=second))
