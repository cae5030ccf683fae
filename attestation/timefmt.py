"""RFC 3339 times in and out; every time in this package is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


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
