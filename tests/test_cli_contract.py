"""The CLI's contract, on the installed console script in subprocesses: `--help` on every
command, `--version`, `-v` before or after the command, usage errors exit 2, and the shell
completion script completes in a real bash."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from host.cli.completion import command_words
from host.cli.parser import FORWARDED_COMMANDS, build_parser

TEE_AGENT = Path(sys.executable).parent / "tee-agent"
COMMANDS = sorted(path for path in command_words(build_parser()) if path)


def tee_agent(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TEE_AGENT), *arguments], capture_output=True, text=True, timeout=120, check=False
    )


def test_every_command_path_is_listed() -> None:
    assert {"verify quote", "verify agent", "vault register", "owner", "run", "status"} <= set(
        COMMANDS
    )
    assert set(COMMANDS) >= FORWARDED_COMMANDS


@pytest.mark.parametrize("path", COMMANDS)
def test_help_on_every_command_exits_0_and_names_the_command(path: str) -> None:
    done = tee_agent(*path.split(), "--help")
    assert done.returncode == 0, done.stderr
    usage = done.stdout.splitlines()[0]
    assert usage.startswith(f"usage: tee-agent {path}"), usage
    assert done.stderr == ""


def test_version() -> None:
    done = tee_agent("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("tee-agent ") and done.stdout.split()[1][0].isdigit()


@pytest.mark.parametrize(
    "arguments", [["replay-decision"], ["sim"], ["enclave"], ["vault"], ["verify"], []]
)
def test_a_command_missing_its_arguments_exits_2_with_its_usage(arguments: list[str]) -> None:
    done = tee_agent(*arguments)
    assert done.returncode == 2
    assert "usage: tee-agent" in done.stderr and "required" in done.stderr


def test_verbose_is_taken_after_the_command_too(tmp_path: Path) -> None:
    # `verify quote` of a file that is not evidence: exit 2 either way; -v is accepted in
    # both places (argparse would exit 2 with "unrecognized arguments" otherwise).
    evidence = tmp_path / "junk"
    evidence.write_bytes(b"\x00" * 10)
    for arguments in (["-v", "verify", "quote", str(evidence)],
                      ["verify", "quote", str(evidence), "-v"]):  # fmt: skip
        done = tee_agent(*arguments)
        assert done.returncode == 2 and "unrecognized arguments" not in done.stderr
        assert "unrecognized evidence" in done.stderr, done.stderr
    for command in (["run", "-v", "--help"], ["init", "-v", "--help"], ["owner", "-v", "--help"]):
        assert tee_agent(*command).returncode == 0


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("tee-agent ver", ["verify"]),
        ("tee-agent vault re", ["register", "revoke"]),
        ("tee-agent -v own", ["owner"]),
        ("tee-agent owner pause --tok", ["--token-file"]),
        ("tee-agent verify agent --re", ["--receipts"]),
    ],
)
def test_the_completion_script_completes_in_bash(line: str, expected: list[str]) -> None:
    script = tee_agent("completion", "bash")
    assert script.returncode == 0
    words = line.split()
    probe = (
        f"{script.stdout}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
        '_tee_agent_complete; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == expected
