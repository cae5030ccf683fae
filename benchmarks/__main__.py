"""Run every benchmark: `python -m benchmarks` (or `./benchmarks/run`)."""

from __future__ import annotations

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
    attestation_throughput.main()
    signing.main()
    decision_parts.main()
    llm_policy.main()
    host_throughput.main()
    load.main()
    backtest.main()
    vault_gas.main()


if __name__ == "__main__":
    main()
