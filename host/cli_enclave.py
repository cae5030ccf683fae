"""`tee-agent enclave ...` and `tee-agent sim ...`: run in the enclave's own process.

The host never imports enclave internals (DESIGN: the trust boundary is the process), so
these commands hand their arguments to `python -m enclave` in a child process and return
its exit code.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from host.cli import Handler


def register(commands: Any) -> None:
    for name, summary in (
        ("enclave", "run the enclave process: `tee-agent enclave serve --help`"),
        ("sim", "the simulated TEE platform: `tee-agent sim init`, `tee-agent sim quote`"),
        ("replay-decision", "recompute a receipt's LLM decision: RECEIPT --config F --model M"),
    ):
        parser = commands.add_parser(name, help=summary, add_help=False)
        parser.add_argument("arguments", nargs=argparse.REMAINDER)
        parser.set_defaults(handler=_forward(name))


def _forward(name: str) -> Handler:
    def run(args: argparse.Namespace) -> int:
        arguments = list(args.arguments)
        if name == "enclave":
            command = [*arguments] if arguments else ["--help"]
        else:
            command = [name, *arguments] if arguments else [name, "--help"]
        if args.verbose:
            command = ["--verbose", *command]
        return subprocess.call([sys.executable, "-m", "enclave", *command])

    return run
