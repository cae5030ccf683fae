"""Every distribution the code imports is declared in pyproject.toml: a wheel installed on a
clean machine must not work only because another package happened to bring it along."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = {"attestation", "enclave", "host", "wire", "devnet", "benchmarks", "tee_agent_rpc",
        "tests", "fuzz", "backtest"}  # fmt: skip
# Where each package's imports must be declared: the wheel's packages in the dependencies
# (or an extra they document), the dev kit and benchmarks may use the dev extra too.
RUNTIME = ("attestation", "backtest", "enclave", "host", "wire")
DEV_ONLY = ("devnet", "benchmarks", "fuzz")


def declared() -> dict[str, set[str]]:
    """Normalised distribution names by where pyproject.toml declares them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = {"dependencies": {_name(r) for r in project["dependencies"]}}
    for extra, requirements in project["optional-dependencies"].items():
        found[extra] = {_name(r) for r in requirements}
    return found


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def imported(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Top-level third-party modules imported by `packages` -> the files importing them."""
    found: dict[str, set[str]] = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OURS | {"__future__"}:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def distributions(module: str) -> set[str]:
    names = metadata.packages_distributions().get(module, [])
    assert names, f"{module} is imported but no installed distribution provides it"
    return {name.lower().replace("_", "-") for name in names}


def test_the_wheel_s_packages_declare_what_they_import() -> None:
    allowed = declared()
    runtime = allowed["dependencies"] | allowed["llm"] | allowed["postgres"]
    missing = {
        module: sorted(files)[:3]
        for module, files in imported(RUNTIME).items()
        if not distributions(module) & runtime
    }
    assert not missing, f"imported but not declared in [project] dependencies: {missing}"


def test_the_dev_kit_and_benchmarks_declare_what_they_import() -> None:
    allowed = set().union(*declared().values())
    missing = {
        module: sorted(files)[:3]
        for module, files in imported(DEV_ONLY).items()
        if not distributions(module) & allowed
    }
    assert not missing, f"imported but declared nowhere in pyproject.toml: {missing}"
