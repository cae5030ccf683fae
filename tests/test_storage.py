"""Host storage on SQLite and on a real PostgreSQL server: chains, sealed states, crashes, races.

Every test that takes `backend` runs on both. PostgreSQL tests start a real server (initdb
+ pg_ctl, as an unprivileged user when run as root) once per session, and give each test
a fresh schema; they are skipped, with the reason shown, when the binaries are missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from attestation.receipt import ZERO_HASH, receipt_hash
from attestation.receipt_chain import verify_receipts
from enclave.receipts import make_receipt
from enclave.signer import AccountSigner, Eip1559Transaction
from host.storage.base import (
    ChainViolation,
    ReceiptRecord,
    Storage,
    StorageError,
    TransactionRecord,
)
from host.storage.migrations import LATEST_VERSION, MIGRATIONS
from host.storage.open import open_storage
from host.storage.sql_store import KEEP_SEALED_STATES, SqlStorage
from host.storage.sqlite import SqliteStorage
from tests.postgres_harness import PostgresServer, psycopg

REPO = Path(__file__).resolve().parent.parent
CHAIN_ID = 31337
AGENT = AccountSigner.from_bytes(hashlib.sha256(b"tee-agent storage test key").digest())
MODEL_HASH = hashlib.sha256(b"SmolLM2-135M-Instruct.gguf").digest()
CONFIG_HASH = hashlib.sha256(b"guardrails.toml").digest()


def make_record(seq: int, prev_hash: bytes, verdict: str = "signed") -> ReceiptRecord:
    """A receipt really signed by the agent key, with the decision and inputs it commits to."""
    decision_json = json.dumps({"action": "swap" if verdict == "signed" else "hold", "seq": seq})
    input_json = json.dumps({"tick": seq, "price": 3000 + seq})
    receipt = make_receipt(
        AGENT,
        chain_id=CHAIN_ID,
        seq=seq,
        prev_hash=prev_hash,
        input_digest=hashlib.sha256(input_json.encode()).digest(),
        model_hash=MODEL_HASH,
        config_hash=CONFIG_HASH,
        decision_hash=hashlib.sha256(decision_json.encode()).digest(),
        verdict=verdict,
        tx_hash=hashlib.sha256(f"tx {seq}".encode()).digest() if verdict == "signed" else ZERO_HASH,
        timestamp=1_700_000_000 + seq,
    )
    return ReceiptRecord(
        receipt=receipt,
        receipt_hash=receipt_hash(receipt, CHAIN_ID),
        decision_json=decision_json,
        input_json=input_json,
    )


def make_chain(count: int) -> list[ReceiptRecord]:
    records: list[ReceiptRecord] = []
    for seq in range(1, count + 1):
        records.append(make_record(seq, records[-1].receipt_hash if records else ZERO_HASH))
    return records


CHAIN = make_chain(40)
# Seq 3 signed again with another verdict: a fork of the chain after seq 2.
FORK_3 = make_record(3, CHAIN[1].receipt_hash, verdict="hold")
NOT_A_HASH = hashlib.sha256(b"not the hash of any receipt").digest()


# --- PostgreSQL server (session) and backends -------------------------------------------


@dataclass
class Backend:
    """One place to keep a store: what `open_storage` takes, and raw SQL on it for checks."""

    name: str
    target: str

    def open(self) -> Storage:
        return open_storage(self.target)

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement outside the store (written with `?` placeholders)."""
        if self.name == "sqlite":
            with sqlite3.connect(self.target) as connection:
                rows = connection.execute(statement, params).fetchall()
            connection.close()
            return rows
        assert psycopg is not None
        with psycopg.connect(self.target, autocommit=True) as pg_connection:
            cursor = pg_connection.execute(statement.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / "agent.db"))
    return postgres_backend(request.getfixturevalue("postgres_server"))


def postgres_backend(server: PostgresServer) -> Backend:
    return Backend("postgres", server.new_schema())


@pytest.fixture
def store(backend: Backend) -> Iterator[Storage]:
    opened = backend.open()
    yield opened
    opened.close()


# --- receipts ----------------------------------------------------------------------------


def test_a_fresh_store_is_empty_and_at_the_latest_schema(store: Storage, backend: Backend) -> None:
    assert store.head() == (0, ZERO_HASH)
    assert store.latest_sealed_state() is None
    assert store.receipts(1, 10) == []
    assert store.receipt(1) is None
    assert store.transactions() == []
    assert store.get_meta("address") is None
    assert isinstance(store, SqlStorage) and store.schema_version() == LATEST_VERSION
    applied = backend.sql("SELECT version FROM schema_version ORDER BY version")
    assert [row[0] for row in applied] == [m.version for m in MIGRATIONS]


def test_receipts_round_trip_and_still_verify(store: Storage) -> None:
    store.append_receipts(CHAIN[:3])
    store.append_receipts(CHAIN[3:8])
    stored = store.receipts(1, 100)
    assert stored == CHAIN[:8]
    assert store.receipts(3, 2) == CHAIN[2:4]
    assert store.receipts(8, 5) == [CHAIN[7]]
    assert store.receipts(1, 0) == [] and store.receipts(9, 10) == []
    assert store.receipt(5) == CHAIN[4] and store.receipt(9) is None and store.receipt(0) is None
    assert store.head() == (8, CHAIN[7].receipt_hash)
    report = verify_receipts(
        [record.receipt for record in stored],
        address=AGENT.address,
        chain_id=CHAIN_ID,
        expected_head_hash=store.head()[1],
    )
    assert report.valid and report.verified == 8, report.error


def test_a_replay_of_stored_receipts_is_a_no_op(store: Storage, backend: Backend) -> None:
    store.append_receipts(CHAIN[:4])
    store.append_receipts(CHAIN[:4])
    store.append_receipts(CHAIN[1:2])
    assert store.head() == (4, CHAIN[3].receipt_hash)
    store.append_receipts(CHAIN[2:6])  # two stored, two new
    assert store.receipts(1, 100) == CHAIN[:6]
    assert backend.sql("SELECT count(*) FROM receipts") == [(6,)]
    store.append_receipts([])
    assert store.head() == (6, CHAIN[5].receipt_hash)


def _hex(digest: bytes) -> str:
    return "0x" + digest.hex()


VIOLATIONS = {
    "gap after the head": (
        2, [CHAIN[3]], ["gap", "seq 4", _hex(CHAIN[3].receipt_hash), _hex(CHAIN[1].receipt_hash)],
    ),
    "first receipt is not seq 1": (
        0, [CHAIN[1]], ["gap", "seq 2", _hex(CHAIN[1].receipt_hash), _hex(ZERO_HASH)],
    ),
    "reordered within the batch": (
        2, [CHAIN[2], CHAIN[4], CHAIN[3]],
        ["seq 5", "follows seq 3", _hex(CHAIN[3].receipt_hash), _hex(CHAIN[2].receipt_hash)],
    ),
    "different receipt at a stored seq": (
        3, [FORK_3], ["seq 3", _hex(CHAIN[2].receipt_hash), _hex(FORK_3.receipt_hash)],
    ),
    "different receipt in a replayed prefix": (
        4, [CHAIN[1], FORK_3, CHAIN[3]],
        ["seq 3", _hex(CHAIN[2].receipt_hash), _hex(FORK_3.receipt_hash)],
    ),
    "prevHash is not the head's hash": (
        2, [make_record(3, NOT_A_HASH)],
        ["seq 3", "prevHash " + _hex(NOT_A_HASH), _hex(CHAIN[1].receipt_hash)],
    ),
    "a bad receipt at the end of a good batch": (
        2, [CHAIN[2], CHAIN[3], make_record(5, NOT_A_HASH)],
        ["seq 5", _hex(NOT_A_HASH), _hex(CHAIN[3].receipt_hash)],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", VIOLATIONS)
def test_a_chain_violation_is_refused_and_stores_nothing(store: Storage, case: str) -> None:
    stored, batch, expected_in_message = VIOLATIONS[case]
    store.append_receipts(CHAIN[:stored])
    with pytest.raises(ChainViolation) as refused:
        store.append_receipts(batch)
    for fragment in expected_in_message:
        assert fragment in str(refused.value)
    assert store.head() == (stored, CHAIN[stored - 1].receipt_hash if stored else ZERO_HASH)
    assert store.receipts(1, 100) == CHAIN[:stored]
    store.append_receipts(CHAIN[stored : stored + 2])  # the chain still extends normally
    assert store.head() == (stored + 2, CHAIN[stored + 1].receipt_hash)


def test_threads_appending_batches_never_leave_a_gap(backend: Backend) -> None:
    stores = [backend.open(), backend.open()]  # two connections, as two processes/hosts
    batches = [CHAIN[i : i + 4] for i in range(0, len(CHAIN), 4)]
    errors: list[BaseException] = []

    def append_all(store: Storage) -> None:
        try:
            for batch in batches:  # each batch follows one this thread saw stored
                store.append_receipts(batch)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=append_all, args=(stores[i % 2],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    try:
        assert errors == []
        assert stores[0].receipts(1, 100) == CHAIN
        assert stores[1].head() == (40, CHAIN[-1].receipt_hash)
        assert backend.sql("SELECT count(*), min(seq), max(seq) FROM receipts") == [(40, 1, 40)]
    finally:
        for store in stores:
            store.close()


def test_two_postgres_hosts_racing_for_the_same_seq_one_wins(
    postgres_server: PostgresServer,
) -> None:
    backend = postgres_backend(postgres_server)
    host_a, host_b = backend.open(), backend.open()
    host_a.append_receipts(CHAIN[:2])
    results: dict[str, BaseException | None] = {}

    def append(name: str, store: Storage, record: ReceiptRecord) -> None:
        try:
            store.append_receipts([record])
            results[name] = None
        except BaseException as error:  # reported below
            results[name] = error

    assert psycopg is not None
    # Hold the receipts lock until both hosts are waiting for it, so they truly race.
    with psycopg.connect(backend.target) as blocker:
        blocker.execute("LOCK TABLE receipts IN SHARE ROW EXCLUSIVE MODE")
        threads = [
            threading.Thread(target=append, args=("a", host_a, CHAIN[2])),
            threading.Thread(target=append, args=("b", host_b, FORK_3)),
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        waiting = 0
        while waiting < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
            row = blocker.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'receipts'::regclass"
            ).fetchone()
            waiting = row[0] if row else 0
        assert waiting == 2
        blocker.rollback()
    for thread in threads:
        thread.join(timeout=10)
    try:
        assert sorted(results) == ["a", "b"]
        winners = [name for name, error in results.items() if error is None]
        assert len(winners) == 1
        loser_error = results["b" if winners == ["a"] else "a"]
        assert isinstance(loser_error, ChainViolation)
        assert "seq 3" in str(loser_error)
        winner_record = CHAIN[2] if winners == ["a"] else FORK_3
        assert host_a.receipt(3) == winner_record and host_b.receipt(3) == winner_record
        assert host_b.head() == (3, winner_record.receipt_hash)
        assert backend.sql("SELECT count(*) FROM receipts") == [(3,)]
    finally:
        host_a.close()
        host_b.close()


# --- sealed states -----------------------------------------------------------------------


def test_sealed_states_only_advance_and_the_newest_16_are_kept(
    store: Storage, backend: Backend
) -> None:
    store.save_sealed_state(1, b"sealed 1")
    assert store.latest_sealed_state() == (1, b"sealed 1")
    for stale in (1, 0):
        with pytest.raises(StorageError, match=f"version {stale} does not advance past .* 1"):
            store.save_sealed_state(stale, b"older")
    for version in range(2, 21):
        store.save_sealed_state(version, f"sealed {version}".encode())
    assert store.latest_sealed_state() == (20, b"sealed 20")
    kept = backend.sql("SELECT version, blob FROM sealed_states ORDER BY version")
    assert [row[0] for row in kept] == list(range(21 - KEEP_SEALED_STATES, 21))
    assert bytes(kept[0][1]) == b"sealed 5"
    with pytest.raises(StorageError, match="does not advance"):
        store.save_sealed_state(3, b"a pruned version")
    store.save_sealed_state(25, b"")  # versions may jump; an empty blob is a blob
    assert store.latest_sealed_state() == (25, b"")


def test_sealed_state_version_advances_across_hosts(backend: Backend) -> None:
    host_a, host_b = backend.open(), backend.open()
    try:
        host_a.save_sealed_state(5, b"from a")
        assert host_b.latest_sealed_state() == (5, b"from a")
        for stale in (5, 4):
            with pytest.raises(StorageError, match="does not advance past the stored version 5"):
                host_b.save_sealed_state(stale, b"from b")
        host_b.save_sealed_state(6, b"from b")
        assert host_a.latest_sealed_state() == (6, b"from b")
    finally:
        host_a.close()
        host_b.close()


# --- transactions and meta ---------------------------------------------------------------


def signed_transaction(nonce: int, receipt_seq: int) -> TransactionRecord:
    tx = Eip1559Transaction(
        chain_id=CHAIN_ID, nonce=nonce, max_priority_fee_per_gas=10**9, max_fee_per_gas=3 * 10**9,
        gas=200_000, to=bytes.fromhex("11" * 20), value=10**15,
    )  # fmt: skip
    signed = AGENT.sign_transaction(tx)
    return TransactionRecord(
        tx_hash=signed.hash,
        nonce=nonce,
        raw_transaction=signed.raw_transaction,
        receipt_seq=receipt_seq,
    )


def test_transactions_are_added_once_updated_and_filtered(store: Storage) -> None:
    store.append_receipts(CHAIN[:3])
    txs = [signed_transaction(2, 3), signed_transaction(0, 1), signed_transaction(1, 2)]
    store.add_transactions(txs)
    store.add_transactions([txs[0].model_copy(update={"status": "mined"})])  # a replay
    by_nonce = sorted(txs, key=lambda tx: tx.nonce)
    assert store.transactions() == by_nonce
    store.set_transaction_status(by_nonce[0].tx_hash, "pending")
    store.set_transaction_status(by_nonce[1].tx_hash, "mined", "block 12")
    store.set_transaction_status(by_nonce[2].tx_hash, "reverted", "execution reverted: K")
    assert store.transactions("pending") == [by_nonce[0].model_copy(update={"status": "pending"})]
    mined = store.transactions("mined")
    assert [(tx.nonce, tx.detail) for tx in mined] == [(1, "block 12")]
    assert mined[0].raw_transaction == by_nonce[1].raw_transaction
    assert store.transactions("dropped") == []
    assert [tx.status for tx in store.transactions()] == ["pending", "mined", "reverted"]


def test_a_database_of_schema_1_migrates_to_the_replaced_status_keeping_its_rows(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as older:  # the tee-agent before migration 2
        older.setattr("host.storage.migrations.LATEST_VERSION", 1)
        old = backend.open()
        old.append_receipts(CHAIN[:3])
        old.add_transactions([signed_transaction(0, 1), signed_transaction(1, 2)])
        old.set_transaction_status(signed_transaction(0, 1).tx_hash, "mined", "block 7")
        with pytest.raises(StorageError):  # schema 1's CHECK knows no "replaced"
            old.set_transaction_status(signed_transaction(1, 2).tx_hash, "replaced")
        old.close()
    assert backend.sql("SELECT max(version) FROM schema_version") == [(1,)]
    store = backend.open()
    try:
        assert isinstance(store, SqlStorage) and store.schema_version() == LATEST_VERSION >= 2
        kept = store.transactions()
        assert [(tx.nonce, tx.status, tx.detail) for tx in kept] == [
            (0, "mined", "block 7"),
            (1, "signed", ""),
        ]
        assert kept[1].raw_transaction == signed_transaction(1, 2).raw_transaction
        # A replacement: another row with the same nonce; the replaced one says so.
        replacement = signed_transaction(1, 3).model_copy(
            update={"tx_hash": bytes(31) + b"\x01", "receipt_seq": 3}
        )
        store.add_transactions([replacement])
        store.set_transaction_status(kept[1].tx_hash, "replaced", "nonce 1 went to 0x..01")
        assert [tx.status for tx in store.transactions_from_nonce(1)] == ["signed", "replaced"]
        assert [tx.nonce for tx in store.transactions_from_nonce(0)] == [0, 1, 1]
        assert store.transactions("replaced")[0].detail == "nonce 1 went to 0x..01"
        with pytest.raises(StorageError):  # the CHECK still holds for anything else
            store.set_transaction_status(kept[0].tx_hash, "lost")  # type: ignore[arg-type]
        with pytest.raises(StorageError, match="names receipt seq 9"):  # and the reference
            store.add_transactions([signed_transaction(5, 9)])
    finally:
        store.close()


def test_transaction_errors_are_clear(store: Storage) -> None:
    store.append_receipts(CHAIN[:1])
    with pytest.raises(StorageError, match="no transaction 0x" + "ab" * 32):
        store.set_transaction_status(bytes.fromhex("ab" * 32), "mined")
    with pytest.raises(StorageError, match="status must be one of"):
        store.set_transaction_status(bytes(32), "lost")  # type: ignore[arg-type]
    orphan = signed_transaction(7, 9)
    with pytest.raises(StorageError, match="names receipt seq 9, which is not stored"):
        store.add_transactions([signed_transaction(6, 1), orphan])
    assert store.transactions() == []  # nothing of the refused batch


def test_meta_values_are_stored_and_replaced(store: Storage) -> None:
    assert store.get_meta("address") is None
    store.put_meta("address", AGENT.address)
    store.put_meta("note", "ünïcødé ✓")
    assert store.get_meta("address") == AGENT.address
    store.put_meta("address", "0x" + "00" * 20)
    assert store.get_meta("address") == "0x" + "00" * 20
    assert store.get_meta("note") == "ünïcødé ✓"


# --- lifetime: reopening, schema versions, crashes ---------------------------------------


def test_reopening_keeps_everything(backend: Backend) -> None:
    first = backend.open()
    first.append_receipts(CHAIN[:5])
    first.save_sealed_state(3, b"sealed 3")
    first.add_transactions([signed_transaction(0, 5)])
    first.put_meta("address", AGENT.address)
    first.close()
    again = backend.open()
    try:
        assert again.receipts(1, 10) == CHAIN[:5]
        assert again.latest_sealed_state() == (3, b"sealed 3")
        assert again.transactions() == [signed_transaction(0, 5)]
        assert again.get_meta("address") == AGENT.address
        assert backend.sql("SELECT count(*) FROM schema_version") == [(LATEST_VERSION,)]
    finally:
        again.close()


def test_a_database_from_a_newer_tee_agent_is_refused(backend: Backend) -> None:
    backend.open().close()
    newer = LATEST_VERSION + 1
    backend.sql(
        "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
        (newer, "from the future", 0.0),
    )
    with pytest.raises(StorageError) as refused:
        backend.open()
    assert f"schema version {newer}" in str(refused.value)
    assert f"version {LATEST_VERSION} that this tee-agent knows" in str(refused.value)


def test_a_closed_store_refuses_calls(store: Storage) -> None:
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.head()
    store.close()


CRASHING_WRITER = """
import os, signal, sys
from host.storage.open import open_storage
store = open_storage(sys.argv[1])
for version in range(1, 6):
    store.save_sealed_state(version, b"sealed %d" % version)
os.kill(os.getpid(), signal.SIGKILL)  # right after save returned: no close, no checkpoint
"""


def test_a_sealed_state_survives_sigkill_right_after_save(backend: Backend) -> None:
    backend.open().close()  # migrate first, so the child does only the writes
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, backend.target],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr
    reopened = backend.open()
    try:
        assert reopened.latest_sealed_state() == (5, b"sealed 5")
    finally:
        reopened.close()


# --- open_storage ------------------------------------------------------------------------


def test_open_storage_picks_the_backend(backend: Backend) -> None:
    targets = [backend.target]
    if backend.name == "postgres":
        targets.append(backend.target.replace("postgresql://", "postgres://", 1))
    for target in targets:
        opened = open_storage(target)
        try:
            expected = {"sqlite": "SqliteStorage", "postgres": "PostgresStorage"}[backend.name]
            assert type(opened).__name__ == expected
        finally:
            opened.close()


def test_open_storage_reads_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for url, created in [
        ("sqlite:///relative.db", tmp_path / "relative.db"),
        (f"sqlite:///{tmp_path / 'absolute.db'}", tmp_path / "absolute.db"),  # four slashes
        ("plain.db", tmp_path / "plain.db"),
    ]:
        opened = open_storage(url)
        opened.close()
        assert isinstance(opened, SqliteStorage) and created.exists(), url


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("mysql://agent:hunter2@db/agent", "unsupported storage scheme 'mysql'"),
        ("sqlite://host/agent.db", "sqlite:///relative/path"),
        ("sqlite:///", "no in-memory database"),
        ("", "no storage given"),
    ],
)
def test_open_storage_refuses_what_it_cannot_open(target: str, message: str) -> None:
    with pytest.raises(StorageError, match=message) as refused:
        open_storage(target)
    assert "hunter2" not in str(refused.value)


def test_an_unreachable_postgres_is_a_clear_error() -> None:
    if psycopg is None:
        pytest.skip("psycopg is not installed")
    with pytest.raises(
        StorageError, match=r"cannot connect to postgresql host=127\.0\.0\.1"
    ) as error:
        open_storage("postgresql://agent:hunter2@127.0.0.1:1/agent?connect_timeout=3")
    assert "hunter2" not in str(error.value)


def test_a_malformed_postgres_dsn_is_refused_without_its_password() -> None:
    if psycopg is None:
        pytest.skip("psycopg is not installed")
    # "%zz" is no percent escape: libpq's own message about it quotes the password.
    with pytest.raises(StorageError, match="not a PostgreSQL connection string") as refused:
        open_storage("postgresql://u:s3cret%zzpw@h/db")
    assert "s3cret" not in str(refused.value)


# --- SQLite files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"this is a JSON file, not a database\n" * 200, b"SQLite format 3\x00" + b"\xff" * 8176],
    ids=["text", "sqlite-header-then-garbage"],
)
def test_sqlite_refuses_a_corrupt_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "agent.db"
    path.write_bytes(content)
    with pytest.raises(StorageError, match="^" + re.escape(f"not a tee-agent database: {path}: ")):
        SqliteStorage(path)
    assert path.read_bytes() == content  # refused before writing anything


def test_sqlite_refuses_another_programs_database(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE users (name TEXT)")
    connection.close()
    with pytest.raises(StorageError, match=r"not a tee-agent database: .* tables users but no"):
        SqliteStorage(other)
    tagged = tmp_path / "tagged.db"
    with sqlite3.connect(tagged) as connection:
        connection.execute("PRAGMA application_id = 1234")
    connection.close()
    with pytest.raises(StorageError, match=r"belongs to another program .*0x000004d2"):
        SqliteStorage(tagged)


def test_sqlite_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    previous = os.umask(0)
    try:
        store = SqliteStorage(path)
    finally:
        os.umask(previous)
    try:
        store.append_receipts(CHAIN[:2])
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(file.exists() for file in files)
        assert {file.name: file.stat().st_mode & 0o777 for file in files} == {
            file.name: 0o600 for file in files
        }
    finally:
        store.close()


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    store = SqliteStorage(tmp_path / "agent.db")
    try:
        connection = store._connection  # the pragmas are per connection: look at the store's
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert connection.execute("PRAGMA foreign_keys").fetchone() == (1,)
    finally:
        store.close()


def test_sqlite_in_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        SqliteStorage(tmp_path / "missing" / "agent.db")
