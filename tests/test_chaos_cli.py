"""`./benchmarks/chaos`'s arguments, summary and exit status (the run itself replaced by a
recorded result; tests/test_chaos.py runs the real one)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import chaos_run
from devnet.chaos import ChaosResult
from devnet.chaos_audit import AuditResult, Invariant, Violation


def result(violations: list[Violation]) -> ChaosResult:
    audit = AuditResult(
        checked={Invariant.RECEIPT_LOST: 40, Invariant.NONCE_SIGNED_ONCE: 7},
        violations=violations,
    )
    return ChaosResult(
        seed=5, kills=Counter(enclave=2, host=1, anvil=3), audit=audit, ticks_sent=40,
        resends=2, receipts=40, transactions=Counter(mined=7), wall_seconds=61.5,
        workdir=Path("/tmp/chaos"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--minutes", "0", "--seed", "1"], "minutes must be above 0"),
        (["--minutes", "nan", "--seed", "1"], "minutes must be above 0"),
        (["--minutes", "two", "--seed", "1"], "expected a number of minutes"),
        (["--minutes", "2", "--seed", "-1"], "the seed is a whole number"),
        (["--minutes", "2"], "--seed"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        chaos_run.main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("violations", "code"),
    [([], 0), ([Violation(Invariant.RECEIPT_LOST, "receipt seq 5 missing of 1..40")], 1)],
)
def test_json_ends_stdout_with_the_one_line_summary_and_violations_exit_1(
    violations: list[Violation],
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(chaos_run, "run_chaos", lambda *_args, **_kw: result(violations))
    assert (
        chaos_run.main(["--minutes", "1", "--seed", "5", "--json", "--keep", str(tmp_path)]) == code
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1]) == {
        "kills": {"enclave": 2, "host": 1, "anvil": 3},
        "invariants_checked": 47,
        "violations": len(violations),
    }
    assert any("kills survived      6 (enclave 2, host 1, anvil 3)" in line for line in out)
    if violations:
        assert "    receipt_lost: receipt seq 5 missing of 1..40" in out
