"""Fixtures shared by several test modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# A real PostgreSQL server (session), for the storage, lease and failover tests.
from tests.postgres_harness import postgres_server  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random llama GGUF written by the project's own tool (scripts/make_tiny_gguf.py)."""
    path = tmp_path_factory.mktemp("models") / "tiny.gguf"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_tiny_gguf.py"), str(path)],
        check=True,
        capture_output=True,
    )
    return path
