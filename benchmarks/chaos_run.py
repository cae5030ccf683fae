"""`./benchmarks/chaos --minutes N --seed S [--json]`: a chaos run and its audit.

Prints each kill as it happens (stderr), then a summary: kills by kind, invariants checked,
and every violation with its details. With --json the last line of stdout is one object,
`{"kills": {"enclave": n, "host": n, "anvil": n}, "invariants_checked": n,
"violations": n}`. Exit status: 0 no violation, 1 violations, 2 bad arguments or a run
that could not be carried out (a process would not start or come back).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from devnet.anvil import AnvilError
from devnet.chaos import KINDS, ChaosResult, run_chaos
from devnet.chaos_procs import ChaosError
from host.chain.transact import ChainError

EXIT_OK, EXIT_VIOLATIONS, EXIT_USAGE = 0, 1, 2
MAX_MINUTES = 24 * 60


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, found {text!r}") from None
    if not 0 < value <= MAX_MINUTES:
        raise argparse.ArgumentTypeError(
            f"minutes must be above 0 and at most {MAX_MINUTES}, found {text}"
        )
    return value


def _seed(text: str) -> int:
    if not text.isdecimal():
        raise argparse.ArgumentTypeError(f"the seed is a whole number >= 0, found {text!r}")
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options; argparse exits 2 with a message on a bad one."""
    parser = argparse.ArgumentParser(
        prog="./benchmarks/chaos", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--minutes",
        type=_minutes,
        required=True,
        help="minutes of trading under kills (the run goes on until each kind was killed once)",
    )
    parser.add_argument("--seed", type=_seed, required=True, help="seed of the kill schedule")
    parser.add_argument(
        "--json", action="store_true", help="end stdout with the one-line JSON summary"
    )
    parser.add_argument("--keep", type=Path, help="keep the run's files in this directory")
    parser.add_argument("--dump-wait", action="store_true",
                        help="kill anvil only once its state dump holds the head block, so "
                        "that it loses no block (by default it is killed at the moment drawn "
                        "and forgets the blocks since its last dump)")  # fmt: skip
    return parser.parse_args(argv)  # fmt: skip


def summary_lines(result: ChaosResult) -> list[str]:
    """The human summary of a run."""
    kills = ", ".join(f"{kind} {result.kills[kind]}" for kind in KINDS)
    lines = [
        f"chaos run (seed {result.seed}, {result.wall_seconds} s, files in {result.workdir})",
        f"  kills survived      {sum(result.kills.values())} ({kills})",
        f"  ticks sent          {result.ticks_sent} ({result.resends} sent again after a kill)",
        f"  receipts            {result.receipts}",
        f"  transactions        {dict(result.transactions) or 'none'}",
        f"  invariants checked  {result.audit.invariants_checked} "
        f"({', '.join(f'{name} {n}' for name, n in result.audit.checked.items())})",
        f"  violations          {len(result.violations)}",
    ]
    lines += [f"    {violation}" for violation in result.violations]
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="tee-agent-chaos-"))

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        result = run_chaos(args.minutes, args.seed, workdir, say=say, wait_for_dump=args.dump_wait)
    except (ChaosError, AnvilError, ChainError) as exc:
        print(f"error: the chaos run could not go on: {exc} (files in {workdir})", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    for line in summary_lines(result):
        print(line)
    if args.json:
        print(json.dumps(result.as_line()))
    return EXIT_VIOLATIONS if result.violations else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
