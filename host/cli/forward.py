"""`tee-agent enclave ...`, `sim ...` and `replay-decision ...`: run in the enclave's process.

The host never imports enclave internals (DESIGN: the trust boundary is the process), so
these commands hand their arguments to `python -m enclave` in a child process and return
its exit code.
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def run(args: argparse.Namespace) -> int:
    """Run `python -m enclave` with the command's arguments (its --help when none are given)."""
    name: str = args.command
    arguments = list(args.arguments)
    if name == "enclave":
        command = [*arguments] if arguments else ["--help"]
    else:
        command = [name, *arguments] if arguments else [name, "--help"]
    if args.verbose:
        command = ["--verbose", *command]
    return subprocess.call([sys.executable, "-m", "enclave", *command])
