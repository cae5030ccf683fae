"""The chaos run, short: a real trading run through the vault (anvil, Uniswap V2, the host as
a `tee-agent run` subprocess, its enclave) while the enclave, the host and anvil are each
SIGKILLed at least once at seeded random moments (anvil forgetting the blocks since its last
state dump); then every invariant of the audit holds
(`devnet.chaos_audit`; its checks are tested on doctored records in test_chaos_audit.py)."""

from __future__ import annotations

from pathlib import Path

from tests.needs_anvil import skip_without_anvil

skip_without_anvil()

from devnet.chaos import KINDS, run_chaos  # noqa: E402
from devnet.chaos_audit import Invariant  # noqa: E402


def test_a_short_chaos_run_survives_every_kind_of_kill_with_no_violation(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    result = run_chaos(1.0, seed=12, workdir=tmp_path / "chaos", say=lines.append)

    assert all(result.kills[kind] >= 1 for kind in KINDS), result.kill_log
    assert [line for line in lines if line.startswith("kill ")] == result.kill_log
    assert result.violations == [], "\n".join(map(str, result.violations))
    # Every invariant was checked, over every tick, receipt and transaction of the run.
    assert set(result.audit.checked) == set(Invariant)
    assert result.audit.checked[Invariant.TICK_COUNTED_ONCE] == result.ticks_sent > 20
    assert result.audit.checked[Invariant.RECEIPT_CHAIN_LINKED] == result.receipts
    assert result.audit.invariants_checked > result.receipts
    # It traded: transactions were signed, broadcast and mined through the kills.
    assert result.transactions["mined"] >= 1, result.transactions
    assert result.as_line() == {
        "kills": {kind: result.kills[kind] for kind in KINDS},
        "invariants_checked": result.audit.invariants_checked,
        "violations": 0,
    }
