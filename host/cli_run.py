"""`tee-agent run`: start the host and its enclave, serve, replay market data, keep running."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from host.cli import EXIT_USAGE


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="run the agent: host, enclave, public API, metrics and market replay",
        description=(
            "Run the agent until stopped. A second start on the same data directory resumes "
            "from the stored sealed state and receipts."
        ),
    )
    parser.add_argument("--config", type=Path, help="host config (TOML); see `tee-agent init`")
    parser.add_argument("--listen", help="public API address HOST:PORT (overrides the config)")
    parser.add_argument("--data-dir", type=Path, help="where state lives (overrides the config)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from host.config import HostConfigError, load_host_config
    from host.logs import configure_logging
    from host.run import run_forever
    from host.storage.base import StorageError
    from host.supervisor import EnclaveUnavailable

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
