"""`tee-agent run`: start the host and its enclave, serve, replay market data, keep running."""

from __future__ import annotations

import argparse
import sys

from enclave.exclusive_lock import LockBusy
from host.cli.outcome import EXIT_USAGE
from host.config import HostConfigError, load_host_config
from host.logs import configure_logging
from host.metrics import MetricsError
from host.run import run_forever
from host.storage.base import StorageError
from host.supervisor import EnclaveUnavailable


def run(args: argparse.Namespace) -> int:
    """Run the agent until stopped; return its exit code.

    2: a config it cannot use, or what it needs is taken: the data directory is locked by
    another host (or its enclave by another enclave), or the listen or metrics address is
    in use.
    """
    configure_logging(verbose=args.verbose)
    try:
        config = load_host_config(args.config)
        if args.data_dir is not None:
            config = config.model_copy(
                update={
                    "host": config.host.model_copy(update={"data_dir": args.data_dir.resolve()})
                }
            )
        return run_forever(config, args.listen)
    except LockBusy as exc:
        print(f"error: another agent runs on this data directory: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (
        HostConfigError, StorageError, EnclaveUnavailable, MetricsError, ValueError, OSError
    ) as exc:  # fmt: skip
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
