"""How a `tee-agent` command ends: its exit code, and what a failed verification prints.

Exit codes: 0 success, 1 the input is well-formed but fails a check, 2 the input cannot be
parsed or the command was misused. With `--json`, every command prints one JSON object on
one line on stdout, a failure included: one with an `error` string when it could not finish.
"""

from __future__ import annotations

import json

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


def print_json(value: object) -> None:
    """Print `value` as the one line of JSON every `--json` output is (bytes are 0x-hex
    strings already: see `host.cli.connection.message_dict`)."""
    print(json.dumps(value, separators=(", ", ": ")), flush=True)


class UsageError(Exception):
    """The command line names input that cannot be used (bad time, unreadable file, ...)."""


def failure_object(message: str) -> dict[str, object]:
    """The JSON printed when no report could be made: the report's keys, valid=false."""
    return {
        "valid": False,
        "tee": None,
        "version": None,
        "report_data": None,
        "measurements": {},
        "debug": None,
        "fields": {},
        "tcb_status": None,
        "advisory_ids": [],
        "policy_ok": None,
        "checks": [],
        "error": message,
        "evidence_time": None,
        "event_log": None,
    }
