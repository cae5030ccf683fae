"""requirements.lock, what ./scripts/bootstrap installs: every file hash-pinned, and in step
with pyproject.toml (each declared requirement pinned at a version its range admits), so a
changed dependency without a new lock (./scripts/lock) fails here rather than on a machine
that then installs something else."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = (ROOT / "requirements.lock").read_text()


def pins() -> dict[str, list[str]]:
    """Distribution -> the versions pinned (one per environment marker)."""
    found: dict[str, list[str]] = {}
    for match in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", LOCK, re.MULTILINE):
        found.setdefault(canonicalize_name(match[1]), []).append(match[2])
    return found


def test_every_pin_carries_hashes() -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", LOCK)
    pinned = [entry for entry in entries if re.match(r"[A-Za-z0-9_.\-]+==", entry)]
    assert len(pinned) > 50
    for entry in pinned:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry.splitlines()[0]


def test_the_lock_pins_what_pyproject_declares_within_its_ranges() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"]]
    for extra in ("dev", "llm", "model"):
        declared += project["optional-dependencies"][extra]
    locked = pins()
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is declared but not in requirements.lock: ./scripts/lock"
        versions = locked[name]
        assert any(requirement.specifier.contains(v, prereleases=True) for v in versions), (
            f"requirements.lock pins {name} {versions}, outside {requirement.specifier}: "
            "./scripts/lock"
        )
