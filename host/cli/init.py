"""`tee-agent init [--dir D] [--force]`: write a ready-to-run agent directory.

What it writes is `host.agent_directory`'s; this module reports it. Exit codes: 0 written,
1 refused (files exist without --force) or not writable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from host.agent_directory import HOST_CONFIG, OWNER_KEY, InitRefused, init_directory
from host.cli.outcome import EXIT_CHECK_FAILED, EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Write the directory; print what was written and what to do next; return the exit code."""
    directory: Path = args.dir
    try:
        result = init_directory(directory, force=args.force)
    except InitRefused as exc:
        print(f"tee-agent init: {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    except OSError as exc:
        print(f"tee-agent init: cannot write to {directory}: {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    for path in result.files:
        print(f"wrote {path}")
    print(f"owner public key: {result.owner_public_key}")
    print(f"keep {directory / OWNER_KEY} secret: it pauses and resumes the agent.")
    print(f"start the agent with `tee-agent run` on {directory / HOST_CONFIG}.")
    return EXIT_OK
