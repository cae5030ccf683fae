"""The argparse parser class every `tee-agent` command's parser is, and its misuse exit.

argparse ends a command line it cannot use with its usage and message on stderr and exit
code 2; `CommandParser` does the same, but its exit carries the message, so that
`host.cli.entry` can also print it as `{"error": ...}` when `--json` was asked for.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn, TypeAlias

from host.cli.outcome import EXIT_USAGE


class CommandLineMisuse(SystemExit):
    """argparse's exit (code 2) for a command line it cannot use, with its message, which
    names the command (`tee-agent vault pause: the following arguments are required: ...`)."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_USAGE)
        self.message = message


class CommandParser(argparse.ArgumentParser):
    """argparse's parser, whose exit for misuse is `CommandLineMisuse`; the subparsers it
    makes are of this class too (argparse's default)."""

    def error(self, message: str) -> NoReturn:
        """Print the usage and `PROG: error: MESSAGE` on stderr, as argparse does; exit 2."""
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise CommandLineMisuse(f"{self.prog}: {message}")


# A string: argparse's action class is generic to type checkers only.
Subparsers: TypeAlias = "argparse._SubParsersAction[CommandParser]"
