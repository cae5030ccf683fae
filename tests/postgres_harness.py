"""A real PostgreSQL server for tests: started once per session (initdb + pg_ctl, as an
unprivileged user when run as root), each test taking a fresh schema of its own. Tests
that need it are skipped, with the reason shown, when psycopg or the server binaries are
missing."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    import psycopg
except ImportError:  # the `postgres` extra is not installed: PostgreSQL tests skip
    psycopg = None  # type: ignore[assignment]

PG_BIN_DIRS = [Path("/usr/local/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"))]
PG_PROGRAMS = ("initdb", "pg_ctl", "postgres")
_schemas = itertools.count(1)


@dataclass
class PostgresServer:
    socket_dir: str
    port: int

    def dsn(self, schema: str) -> str:
        """A URL for the server's `postgres` database, with `schema` first on the path."""
        return (
            f"postgresql://postgres@/postgres?host={self.socket_dir}&port={self.port}"
            f"&options=-csearch_path%3D{schema}"
        )

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.socket_dir}&port={self.port}"

    def new_schema(self) -> str:
        """A URL whose tables go in a new, empty schema (one per test)."""
        schema = f"test_{os.getpid()}_{next(_schemas)}"
        assert psycopg is not None
        with psycopg.connect(self.admin_dsn, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
        return self.dsn(schema)


def _pg_bin_dir() -> Path | None:
    for directory in PG_BIN_DIRS:
        if all((directory / program).exists() for program in PG_PROGRAMS):
            return directory
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if psycopg is None:
        pytest.skip("psycopg is not installed: pip install 'tee-agent[postgres]'")
    bin_dir = _pg_bin_dir()
    if bin_dir is None:
        looked = ", ".join(str(d) for d in PG_BIN_DIRS)
        pytest.skip(f"PostgreSQL server binaries not found: {'/'.join(PG_PROGRAMS)} in {looked}")
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:  # initdb refuses root: run the server as an unprivileged user
        owner = next((pwd.getpwnam(n) for n in ("postgres", "nobody") if _user_exists(n)), None)
        # runuser lives in an sbin directory, which a minimal PATH may leave out.
        runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
        if owner is None or runuser is None:
            pytest.skip("running as root with no postgres/nobody user or no runuser")
        as_user = [runuser, "-u", owner.pw_name, "--"]
    # A short path: a unix socket path must fit in 107 bytes.
    base = tempfile.mkdtemp(prefix="tee-pg-", dir="/tmp")
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data, port = f"{base}/data", 5432  # the socket is in our own directory: no clash

    def run(*command: str) -> None:
        done = subprocess.run(
            [*as_user, *command], cwd=base, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            log = Path(base, "log").read_text() if Path(base, "log").exists() else ""
            pytest.fail(f"{command[0]} failed: {done.stdout}{done.stderr}{log}")

    # Unix socket only, in our own directory; fsync off because no test crashes the server.
    options = f"-k {base} -p {port} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
    started = False
    try:
        run(str(bin_dir / "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-sync", "--no-instructions")  # fmt: skip
        run(str(bin_dir / "pg_ctl"), "-D", data, "-l", f"{base}/log", "-w", "-t", "30",
            "-o", options, "start")  # fmt: skip
        started = True
        yield PostgresServer(socket_dir=base, port=port)
    finally:
        if started:
            run(str(bin_dir / "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


__all__ = ["PostgresServer", "postgres_server", "psycopg"]
