"""The layout rules of the code, checked on its own imports (read with `ast`, nothing run).

DESIGN.md's layout table says which package may import which: attestation/ stands alone,
wire/ converts messages for everyone, enclave/ never reaches into the host, the production
host/ imports nothing of the dev kit (devnet/) and of the enclave only its measured config,
and only host/enclave_client.py talks the enclave's protocol. Beyond that: no module
imports itself back through others, and no module grows past 400 lines.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("attestation", "enclave", "host", "wire", "devnet", "backtest", "benchmarks", "fuzz")
MAX_LINES = 400
# What may import what among the packages (everything else is stdlib or third party).
ALLOWED = {
    "attestation": set(),
    "wire": {"attestation", "tee_agent_rpc"},
    "enclave": {"attestation", "wire", "tee_agent_rpc"},
    "host": {"attestation", "wire", "tee_agent_rpc", "enclave"},
    # The dev kit; its demo draws the backtest's chart of its run.
    "devnet": {"attestation", "wire", "tee_agent_rpc", "enclave", "host", "backtest"},
    # The backtest drives the enclave's decision path in-process, behind a host command.
    "backtest": {"attestation", "wire", "tee_agent_rpc", "enclave", "host"},
}
# The measured config's schema and its writer: a contract between the operator's tools and
# the enclave, like the .proto files. No other enclave module may reach the host.
# ... and the one exclusive-lock format both processes take and name their holder by.
HOST_MAY_IMPORT = {"enclave.config", "enclave.config_toml", "enclave.exclusive_lock"}
# psycopg is an optional extra: the PostgreSQL backend is imported only when a URL names it.
IMPORTS_INSIDE_FUNCTIONS = {
    "host/storage/open.py": {"host.storage.postgres", "host.storage.postgres_lease"}
}


def modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


@cache
def imports(path: Path) -> list[tuple[str, list[str], bool]]:
    """(module, names taken from it, inside a function) for each import statement of `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inner: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inner.update(id(child) for child in ast.walk(node) if child is not node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], id(node) in inner) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [alias.name for alias in node.names]
            found.append((node.module, names, id(node) in inner))
    return found


def project_imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `name` imports (a `from package import module` counts too)."""
    found = set()
    for module, names, _ in imports(path):
        found |= {m for m in [module, *(f"{module}.{n}" for n in names)] if m in known}
    return found - {name}


def test_no_import_circle() -> None:
    known = modules()
    graph = {name: project_imports(name, path, known) for name, path in known.items()}
    # Packages' __init__ files only hand names on: an edge into a package is not a cycle.
    state: dict[str, str] = {}
    circles: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                circles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_packages_import_only_what_the_layout_allows() -> None:
    wrong = []
    for name, path in modules().items():
        package = name.split(".")[0]
        for module, _, _ in imports(path) if package in ALLOWED else []:
            top = module.split(".")[0]
            if top == package or top not in {*PACKAGES, "tee_agent_rpc"}:
                continue
            if top not in ALLOWED[package]:
                wrong.append(f"{name} imports {module}")
            elif (package, top) == ("host", "enclave") and module not in HOST_MAY_IMPORT:
                wrong.append(f"{name} imports {module}: an enclave internal")
    assert not wrong, "\n".join(wrong)


def test_only_the_enclave_client_speaks_the_enclave_protocol() -> None:
    speakers = sorted(
        name
        for name, path in modules().items()
        if name.startswith("host.")
        and any(
            module.startswith("tee_agent_rpc.enclave_pb2")
            or (module == "tee_agent_rpc" and any(n.startswith("enclave_pb2") for n in names))
            for module, names, _ in imports(path)
        )
    )
    assert speakers == ["host.enclave_client"]


def test_imports_are_at_module_top() -> None:
    inside = []
    for name, path in modules().items():
        relative = str(path.relative_to(ROOT))
        allowed = IMPORTS_INSIDE_FUNCTIONS.get(relative, set())
        if name.startswith(("host", "wire", "devnet", "backtest", "attestation")):
            inside += [
                f"{relative}: {module}"
                for module, _, in_function in imports(path)
                if in_function and module not in allowed
            ]
    assert not inside, "\n".join(inside)


@pytest.mark.parametrize("package", [*PACKAGES, "scripts"])
def test_no_module_is_over_400_lines(package: str) -> None:
    long = [
        f"{path.relative_to(ROOT)}: {count} lines"
        for path in sorted((ROOT / package).rglob("*.py"))
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert not long, "\n".join(long)
