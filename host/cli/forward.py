"""`tee-agent enclave ...`, `sim ...` and `replay-decision ...`: run in the enclave's process.

The host never imports enclave internals (DESIGN: the trust boundary is the process), so
these commands hand their arguments to `python -m enclave` in a child process and return
its exit code.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

# What the enclave's parser calls itself in its usage lines (enclave/__main__.py reads it).
PROG_VARIABLE = "TEE_AGENT_PROG"


def run(args: argparse.Namespace) -> int:
    """Run `python -m enclave` with the command's arguments, its usage naming `tee-agent`;
    without arguments the enclave's parser says what is missing (exit 2)."""
    name: str = args.command
    arguments = list(args.arguments)
    command = arguments if name == "enclave" else [name, *arguments]
    if args.verbose:
        command = ["--verbose", *command]
    prog = "tee-agent enclave" if name == "enclave" else "tee-agent"
    environment = {**os.environ, PROG_VARIABLE: prog}
    return subprocess.call([sys.executable, "-m", "enclave", *command], env=environment)
