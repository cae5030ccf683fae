"""A short, bounded fuzz pass in the suite: each target's TestOneInput over its committed
seed corpus and a few hundred seeded mutations of it, without atheris' instrumentation.
An input that makes a target raise (an exception outside the parser's documented errors,
or a status outside the documented set) fails here as it would be a finding of ./fuzz/run.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fuzz import TARGETS, runner
from fuzz.harness import CORPUS
from fuzz.mutate import inputs

# Mutated inputs per target (beyond its seeds): the slow targets (a real host or enclave
# core per input) get fewer; about 12,000 in all, a few seconds.
MUTATIONS = {
    "quotes": 3000,
    "event_logs": 3000,
    "collateral": 1500,
    "receipts_file": 3000,
    "owner_commands": 2000,
    "agent_rpcs": 500,
    "enclave_requests": 2000,
}
SEED = 20261205


def _corpus(target: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((CORPUS / target).iterdir())]


def test_every_target_has_a_committed_seed_corpus_and_a_mutation_budget() -> None:
    assert set(MUTATIONS) == set(TARGETS)
    for target in TARGETS:
        assert _corpus(target), f"fuzz/corpus/{target}/ is empty: run python -m fuzz.seed"


@pytest.mark.parametrize("target", TARGETS)
def test_target_takes_its_seeds_and_their_mutations(target: str) -> None:
    module = importlib.import_module(f"fuzz.{target}")
    prepare: Callable[[], object] | None = getattr(module, "prepare", None)
    if prepare is not None:
        prepare()
    run: Callable[[bytes], None] = module.TestOneInput
    started = time.perf_counter()
    count = 0
    for data in inputs(_corpus(target), MUTATIONS[target], SEED):
        try:
            run(data)
        except Exception as exc:
            pytest.fail(f"{target} input {data[:64].hex()}... ({len(data)} bytes): {exc!r}")
        count += 1
    print(f"{target}: {count} inputs in {time.perf_counter() - started:.1f} s")


def test_fuzz_run_refuses_bad_arguments_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--minutes", "0"],
        ["--minutes", "1", "--target", "nope"],
        ["--minutes", "1", "--jobs", "0"],
        ["--jobs", "2"],
    ):
        with pytest.raises(SystemExit) as exited:
            runner.main(argv)
        assert exited.value.code == 2
        assert "error:" in capsys.readouterr().err


def test_fuzz_run_fuzzes_a_target_with_atheris_and_reports_its_figures(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        runner, "WORK", tmp_path / "corpus-run"
    )  # not the checkout's fuzz/corpus-run
    monkeypatch.setattr(runner, "FINDINGS", tmp_path / "findings")
    code = runner.main(["--minutes", "0.12", "--target", "owner_commands"])
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(line for line in out.splitlines() if line.startswith("owner_commands"))
    executions = int(line.split()[1].replace(",", ""))
    assert executions > 1000 and "no findings" in line, line
    assert "coverage" in line and "total:" in out
