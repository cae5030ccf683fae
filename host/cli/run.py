"""`tee-agent run`: start the host and its enclave, serve, replay market data, keep running."""

from __future__ import annotations

import argparse
import sys

from host.cli.outcome import EXIT_USAGE
from host.config import HostConfigError, load_host_config
from host.logs import configure_logging
from host.run import run_forever
from host.storage.base import StorageError
from host.supervisor import EnclaveUnavailable


def run(args: argparse.Namespace) -> int:
    """Run the agent until stopped; return its exit code (2 for a config it cannot use)."""
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
    except (HostConfigError, StorageError, EnclaveUnavailable, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
