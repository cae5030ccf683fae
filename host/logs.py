"""Structured logging for the long-running host: one JSON object per line on stderr.

Each line holds `ts` (RFC 3339, UTC, milliseconds), `level`, `logger`, `msg`, and every
field passed with `extra=` (`log.info("batch stored", extra={"version": 7})`). An exception
attached to a record is logged as its type and message only; the traceback is added with
`verbose`, so operators' logs never fill with stack dumps they cannot act on.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
# Libraries whose INFO lines are noise for an operator; shown with --verbose.
_QUIET_LIBRARIES = ("grpc", "urllib3", "web3", "asyncio")


def _timestamp(created: float) -> str:
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
    }


class JsonLinesFormatter(logging.Formatter):
    """Formats a record as one JSON object (no newline inside it)."""

    def __init__(self, *, tracebacks: bool) -> None:
        super().__init__()
        self._tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extra_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["error"] = f"{type(error).__name__}: {error}"
            if self._tracebacks:
                entry["traceback"] = self.formatException(record.exc_info)
        if self._tracebacks and record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`ts level logger: msg key=value ...`, for people watching a terminal."""

    def __init__(self, *, tracebacks: bool) -> None:
        super().__init__()
        self._tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _timestamp(record.created),
            record.levelname.lower(),
            f"{record.name}: {record.getMessage()}",
        ]
        parts += [f"{key}={value}" for key, value in _extra_fields(record).items()]
        line = " ".join(parts)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line += f" error={type(error).__name__}: {error}"
            if self._tracebacks:
                line += "\n" + self.formatException(record.exc_info)
        return line


class _StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is at the time (so redirections and tests see it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def configure_logging(verbose: bool, json_lines: bool = True) -> None:
    """Send the root logger's records to stderr, as JSON lines (or text), INFO or DEBUG.

    Idempotent: a second call replaces the handler of the first, and the plain stderr
    handler `logging.basicConfig` installs is replaced too; other handlers (a test's
    capture, an embedding program's) are left alone. Never raises.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler) or type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    handler = _StderrHandler()
    formatter_class = JsonLinesFormatter if json_lines else TextFormatter
    handler.setFormatter(formatter_class(tracebacks=verbose))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    # logging's own "--- Logging error ---" report prints a traceback; keep it for -v.
    logging.raiseExceptions = verbose
