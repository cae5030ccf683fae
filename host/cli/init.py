"""`tee-agent init [--dir D] [--force] [--json]`: write a ready-to-run agent directory.

What it writes is `host.agent_directory`'s; this module reports it: the files written and
what to do next, or with --json `{"directory", "files", "owner_public_key"}` (no secret:
the key and the token stay in their files). Exit codes: 0 written, 1 refused (files exist
without --force) or not writable; an error is one line on stderr, and with --json
`{"error": ...}` on stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from host.agent_directory import HOST_CONFIG, OWNER_KEY, InitRefused, init_directory
from host.cli.outcome import EXIT_CHECK_FAILED, EXIT_OK, print_json


def run(args: argparse.Namespace) -> int:
    """Write the directory; print what was written and what to do next; return the exit code."""
    directory: Path = args.dir
    try:
        result = init_directory(directory, force=args.force)
    except InitRefused as exc:
        return _fail(args, str(exc))
    except OSError as exc:
        return _fail(args, f"cannot write to {directory}: {exc}")
    if args.json:
        print_json({"directory": str(directory), "files": [str(path) for path in result.files],
                    "owner_public_key": result.owner_public_key})  # fmt: skip
        return EXIT_OK
    for path in result.files:
        print(f"wrote {path}")
    print(f"owner public key: {result.owner_public_key}")
    print(f"keep {directory / OWNER_KEY} secret: it pauses and resumes the agent.")
    print(f"start the agent with `tee-agent run` on {directory / HOST_CONFIG}.")
    return EXIT_OK


def _fail(args: argparse.Namespace, message: str) -> int:
    print(f"tee-agent init: {message}", file=sys.stderr)
    if args.json:
        print_json({"error": message})
    return EXIT_CHECK_FAILED
