"""The event log an `Attestation` carries: the platform's own, bounded, empty for none.

Every backend describes its registers with `Platform.event_log()` (dstack's JSON form,
b"[]" when it keeps no log). The enclave serves it with each quote so that a verifier can
replay it to the quote's RTMR0-3 (`tee-agent verify agent`); the log is public data. Here
it is made fit for a reply: read once, refused over `MAX_SERVED_EVENT_LOG_SIZE` (a broken
or hostile platform log must not swell the reply the host relays), and empty when it
records no event (SGX), as the `Attestation` message documents.
"""

from __future__ import annotations

from attestation.binding import MAX_SERVED_EVENT_LOG_SIZE
from attestation.jsontext import loads_bounded
from enclave.platform.base import Platform, PlatformError


class EventLogUnservable(Exception):
    """The platform's event log cannot go in an attestation; the message says why."""


class EventLogTooLarge(EventLogUnservable):
    """The platform's event log is over `MAX_SERVED_EVENT_LOG_SIZE` (1 MiB)."""


def served_event_log(platform: Platform) -> bytes:
    """The platform's event log as an `Attestation` carries it: its bytes unchanged, or
    b"" when it records no event.

    Raises:
        EventLogTooLarge: the log is over `MAX_SERVED_EVENT_LOG_SIZE`.
        EventLogUnservable: the platform cannot read its log, or it is not JSON.
    """
    try:
        log = platform.event_log()
    except PlatformError as exc:
        raise EventLogUnservable(f"the platform's event log cannot be read: {exc}") from None
    if len(log) > MAX_SERVED_EVENT_LOG_SIZE:
        raise EventLogTooLarge(
            f"the platform's event log is {len(log)} bytes, over the "
            f"{MAX_SERVED_EVENT_LOG_SIZE} bytes (1 MiB, MAX_SERVED_EVENT_LOG_SIZE) an "
            "attestation carries: no quote is served with it. The firmware or dstack log is "
            "far larger than any real TD's: check what writes it"
        )
    try:
        events = loads_bounded(log)
    except ValueError as exc:
        raise EventLogUnservable(
            f"the platform's event log is not dstack's JSON form: {exc}"
        ) from None
    return b"" if events == [] else log
