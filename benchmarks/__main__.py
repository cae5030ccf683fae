"""Run every benchmark: `python -m benchmarks` (or `./benchmarks/run`).

`--llm-year` adds the LLM policy's backtest over a whole year of hourly candles (about 25
minutes on 2 cores); without it that figure is computed from a shorter run's rate.
"""

from __future__ import annotations

import argparse

from benchmarks import (
    attestation_throughput,
    backtest,
    decision_parts,
    host_throughput,
    llm_policy,
    load,
    signing,
    vault_gas,
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="benchmarks/run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--llm-year",
        action="store_true",
        help="also run the LLM policy's backtest over a year of hourly candles (~25 min)",
    )
    args = parser.parse_args()
    attestation_throughput.main()
    signing.main()
    decision_parts.main()
    llm_policy.main()
    host_throughput.main()
    load.main()
    backtest.main(llm_year_run=args.llm_year)
    vault_gas.main()


if __name__ == "__main__":
    main()
