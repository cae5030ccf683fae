"""`tee-agent`: the command line. This module builds the parser and dispatches.

Each command group lives in its own module (`host.cli_verify` for `verify ...`) and adds
its parsers with a `register(subparsers)` function that sets `handler` on them. Later
groups (`run`, `status`, `receipts`, `attest`, `sim`, `init`, `replay-decision`) slot in
the same way.

Exit codes: 0 success, 1 the input is well-formed but fails a check, 2 the input cannot be
parsed or the command was misused. No traceback reaches the user unless `--verbose`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full `tee-agent` parser, every command group registered."""
    parser = argparse.ArgumentParser(
        prog="tee-agent",
        description="Autonomous DeFi agent whose keys live in a TEE: run it, verify it.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log details, and the traceback of an internal error, to stderr",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    # Imported here: command modules import the exit codes above from this module.
    from host import cli_client, cli_enclave, cli_run, cli_verify, init_command

    cli_verify.register(commands)
    cli_enclave.register(commands)
    cli_run.register(commands)
    init_command.register(commands)
    cli_client.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `tee-agent` with `argv` (default: sys.argv[1:]); return the exit code.

    Never raises: argparse misuse returns 2 (its usage message is on stderr), `--help`
    returns 0, and an unexpected exception becomes a one-line `internal error: ...` on
    stderr with exit code 2.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits for --help (0) and misuse (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    verbose = bool(getattr(args, "verbose", False))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Handler = args.handler
    try:
        with warnings.catch_warnings():
            # Library warnings (e.g. a deprecation notice about a vendor certificate) are
            # not the user's to act on: shown with --verbose only.
            if not verbose:
                warnings.simplefilter("ignore")
            return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep the interpreter's
        # final flush from failing again on the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_CHECK_FAILED
    except Exception as exc:
        if verbose:  # written directly: logging may be configured by an embedding program
            traceback.print_exc(file=sys.stderr)
        message = f"internal error: {type(exc).__name__}: {exc}"
        print(message, file=sys.stderr)
        if getattr(args, "json", False):
            from host.cli_verify import failure_object

            print(json.dumps(failure_object(message), indent=2))
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
