"""`./fuzz/run --minutes N [--target NAME] [--jobs J]`: fuzz every target (or one) with
atheris for a bounded time, and report executions, coverage and findings per target.

`--minutes` is the wall-clock budget of the whole run. The targets run `--jobs` at a time,
each for its share: N x min(J, targets) / targets minutes. Each runs in its own process
(`fuzz.worker`) on a working corpus (fuzz/corpus-run/<target>/, git-ignored) that starts from the
committed seeds (fuzz/corpus/<target>/); a crashing, hanging or memory-hungry input is
written to fuzz/findings/<target>/ (git-ignored) and the target goes on for the rest of its
share. Exit status: 0 no finding, 1 a finding (each listed), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fuzz import TARGETS
from fuzz.harness import CORPUS

FUZZ_DIR = Path(__file__).resolve().parent
WORK = FUZZ_DIR / "corpus-run"
FINDINGS = FUZZ_DIR / "findings"
RSS_LIMIT_MB = 3072
# Per input: far above any target's slowest legitimate input on a loaded machine.
INPUT_TIMEOUT_SECONDS = 30
# After a finding the target starts again for what is left of its share, this many times.
MAX_RESTARTS = 8
ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")

_COVERAGE = re.compile(r"cov: (\d+) ft: (\d+) corp: (\d+)")
_EXECUTED = re.compile(r"stat::number_of_executed_units: (\d+)")


@dataclass
class TargetResult:
    target: str
    seconds: float
    executions: int = 0
    edges: int = 0
    features: int = 0
    corpus: int = 0
    findings: list[str] = field(default_factory=list)

    def line(self) -> str:
        found = f"{len(self.findings)} findings" if self.findings else "no findings"
        return (f"{self.target:<17} {self.executions:>10,} executions in {self.seconds / 60:5.1f} "
                f"min, coverage {self.edges:,} edges / {self.features:,} features, corpus "
                f"{self.corpus:,}, {found}")  # fmt: skip


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fuzz/run",
        description="Coverage-guided fuzzing of every parser an attacker can reach.",
    )
    parser.add_argument("--minutes", type=float, required=True,
                        help="wall-clock budget of the whole run, shared among the targets")  # fmt: skip
    parser.add_argument("--target", choices=TARGETS, help="fuzz only this target")
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once (default 1)")
    args = parser.parse_args(argv)
    if not args.minutes > 0:
        parser.error(f"--minutes must be above 0, got {args.minutes}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    return args


def fuzz_target(target: str, seconds: float) -> TargetResult:
    """Fuzz `target` for `seconds`, restarting it after each finding."""
    work, findings = WORK / target, FINDINGS / target
    work.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    result = TargetResult(target, seconds)
    deadline = time.monotonic() + seconds
    for attempt in range(MAX_RESTARTS + 1):
        left = int(deadline - time.monotonic())
        if left < 5 or (attempt and len(result.findings) >= MAX_RESTARTS):
            break
        before = set(findings.iterdir())
        log_path = WORK / f"{target}.{attempt}.log"
        with log_path.open("w") as log:
            process = subprocess.run(
                [sys.executable, "-m", "fuzz.worker", target, str(work), str(CORPUS / target),
                 f"-max_total_time={left}", f"-rss_limit_mb={RSS_LIMIT_MB}",
                 f"-timeout={INPUT_TIMEOUT_SECONDS}", f"-artifact_prefix={findings}/",
                 "-print_final_stats=1"],
                stdout=log, stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
        text = log_path.read_text(errors="replace")
        _add_stats(result, text)
        new = sorted(set(findings.iterdir()) - before)
        artifacts = [p for p in new if p.name.startswith(ARTIFACT_PREFIXES)]
        if process.returncode == 0 and not artifacts:
            break
        what = _what_failed(text) or f"the worker exited with status {process.returncode}"
        where = ", ".join(str(p) for p in artifacts) or f"no input saved; see {log_path}"
        result.findings.append(f"{what} ({where})")
    return result


def _add_stats(result: TargetResult, text: str) -> None:
    executed = _EXECUTED.findall(text)
    if executed:
        result.executions += int(executed[-1])
    else:  # stopped by a finding: the last status line counts the inputs run
        counts = re.findall(r"^#(\d+)\s", text, re.MULTILINE)
        result.executions += int(counts[-1]) if counts else 0
    coverage = _COVERAGE.findall(text)
    if coverage:
        edges, features, corpus = (int(value) for value in coverage[-1])
        result.edges = max(result.edges, edges)
        result.features = max(result.features, features)
        result.corpus = max(result.corpus, corpus)


def _what_failed(text: str) -> str:
    """The exception (or libFuzzer's reason) that ended a worker, in one line."""
    if "=== Uncaught Python exception: ===" in text:
        trace = text.split("=== Uncaught Python exception: ===", 1)[1]
        lines = [line for line in trace.split("==", 1)[0].splitlines() if line.strip()]
        if lines:
            return lines[-1].strip()[:300]
    match = re.search(r"ERROR: libFuzzer: (.*)", text)
    return match.group(1).strip() if match else ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    targets = [args.target] if args.target else list(TARGETS)
    share = args.minutes * 60 * min(args.jobs, len(targets)) / len(targets)
    print(f"fuzzing {len(targets)} targets, {args.jobs} at a time, {share / 60:.1f} min each",
          flush=True)  # fmt: skip
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda target: fuzz_target(target, share), targets))
    for result in results:
        print(result.line())
        for finding in result.findings:
            print(f"  finding: {finding}")
    total = sum(len(result.findings) for result in results)
    executions = sum(result.executions for result in results)
    print(f"total: {executions:,} executions, {total} findings")
    return 1 if total else 0
