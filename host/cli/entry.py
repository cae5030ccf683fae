"""`tee-agent`'s entry point: parse the command line, set up logging, run the command.

No traceback reaches the user unless `--verbose`; exit codes are in `host.cli.outcome`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable

from host.cli.command_parser import CommandLineMisuse
from host.cli.outcome import EXIT_CHECK_FAILED, EXIT_USAGE, failure_object, print_json
from host.cli.parser import FORWARDED_COMMANDS, build_parser


def main(argv: list[str] | None = None) -> int:
    """Run `tee-agent` with `argv` (default: sys.argv[1:]); return the exit code.

    Never raises: argparse misuse returns 2 (its usage message is on stderr, and with
    `--json` on the command line `{"error": ...}` on stdout), `--help` returns 0, and an
    unexpected exception becomes a one-line `internal error: ...` on stderr with exit code 2.
    """
    argv = sys.argv[1:] if argv is None else argv
    args = _forwarded(argv)
    if args is None:
        try:
            args = build_parser().parse_args(argv)
        except CommandLineMisuse as exc:
            if "--json" in argv:
                print_json({"error": exc.message})
            return EXIT_USAGE
        except SystemExit as exc:  # argparse exits for --help and --version (0)
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    verbose = bool(getattr(args, "verbose", False))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        with warnings.catch_warnings():
            # Library warnings (e.g. a deprecation notice about a vendor certificate) are
            # not the user's to act on: shown with --verbose only.
            if not verbose:
                warnings.simplefilter("ignore")
            return _command(args)(args)
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
            print_json(failure_object(message))
        return EXIT_USAGE


def _forwarded(argv: list[str]) -> argparse.Namespace | None:
    """`enclave`, `sim` and `replay-decision` (after any `-v`): their arguments, `--help`
    included, go to the enclave's own parser untouched (`host.cli.forward`), which argparse
    here could not do (it takes a leading `--help` for its own)."""
    verbose, rest = False, list(argv)
    while rest and rest[0] in ("-v", "--verbose"):
        verbose, rest = True, rest[1:]
    if not rest or rest[0] not in FORWARDED_COMMANDS:
        return None
    return argparse.Namespace(
        command=rest[0], arguments=rest[1:], verbose=verbose, command_module="host.cli.forward"
    )


def _command(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    """The `run` function of the module the parser recorded for the chosen command.

    Imported here, and only this one: the parser names command modules instead of importing
    them, because some (`verify agent`, `run`) import web3, over a second of startup that
    `status`, `verify quote` or `--help` must not pay.
    """
    module = importlib.import_module(args.command_module)
    run: Callable[[argparse.Namespace], int] = module.run
    return run
