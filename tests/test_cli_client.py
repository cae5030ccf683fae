"""`tee-agent status`, `receipts` and `attest` against a real host with its real enclave.

One host serves the whole module (starting one costs an enclave process). Most commands run
in-process through `host.cli.main`; the --follow test runs the installed console script as
a real subprocess and ends it with Ctrl-C (SIGINT), the way a user does.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tee_agent_rpc import agent_pb2 as pb

from attestation.receipt import Receipt
from attestation.receipt_chain import verify_receipts
from enclave.replay import load_recorded_decision
from host.cli import main
from host.config import load_host_config
from host.run import start_host
from tests.enclave_harness import CHAIN_ID, EnclaveWorld
from tests.host_harness import AUTH, HostUnderTest, host_toml, running_host, tick_batches

TICKS = 3000
TEE_AGENT = Path(sys.executable).parent / "tee-agent"
RECEIPT_KEYS = set(Receipt.model_fields)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> EnclaveWorld:
    world = EnclaveWorld(tmp_path_factory.mktemp("client"))
    world.write_config(decision_interval_seconds=3600)
    return world


@pytest.fixture(scope="module")
def host(world: EnclaveWorld) -> Iterator[HostUnderTest]:
    with running_host(world) as host:
        host.stub.StreamMarketData(tick_batches(TICKS), metadata=AUTH)
        yield host


@pytest.fixture
def address(host: HostUnderTest) -> str:
    return f"127.0.0.1:{host.running.port}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `tee-agent argv...` in-process; return exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def chain_of(items: list[dict[str, Any]]) -> list[Receipt]:
    return [
        Receipt.from_json_dict({k: v for k, v in i.items() if k in RECEIPT_KEYS}) for i in items
    ]


def test_status_prints_a_summary_and_json(
    capsys: pytest.CaptureFixture[str], host: HostUnderTest, address: str
) -> None:
    status = host.stub.GetStatus(pb.GetStatusRequest())
    code, out, err = run(capsys, "status", "--host", address)
    assert code == 0, err
    assert f"agent {status.address} at {address}" in out
    assert "enclave: running (0 restarts)" in out
    assert f"ticks: {status.ticks_accepted:,} accepted, 0 refused" in out
    assert f"receipts: {status.receipts:,} (head 0x{status.head_hash.hex()})" in out
    assert "paused: no" in out

    code, out, err = run(capsys, "status", "--host", address, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert list(data) == [field.name for field in pb.Status.DESCRIPTOR.fields]
    assert data["address"] == status.address and data["enclave_state"] == "running"
    assert data["ticks_accepted"] == status.ticks_accepted >= TICKS
    assert data["last_tick_seq"] == status.last_tick_seq
    assert (
        data["receipts"] == status.receipts and data["head_hash"] == "0x" + status.head_hash.hex()
    )
    assert data["paused"] is False and data["notional_24h_left_usd"] == 5000.0


def test_the_host_comes_from_tee_agent_host_when_not_given(
    capsys: pytest.CaptureFixture[str], address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEE_AGENT_HOST", address)
    code, out, err = run(capsys, "status", "--json")
    assert code == 0, err
    assert json.loads(out)["enclave_state"] == "running"


def test_receipts_json_is_one_object_and_forms_the_attested_chain(
    capsys: pytest.CaptureFixture[str], host: HostUnderTest, address: str
) -> None:
    status = host.stub.GetStatus(pb.GetStatusRequest())
    code, out, err = run(capsys, "receipts", "--host", address, "--json")
    assert code == 0, err
    [line] = out.splitlines()  # one JSON object on one line
    lines = json.loads(line)["receipts"]
    assert len(lines) == status.receipts > 10
    assert [line["seq"] for line in lines] == list(range(1, status.receipts + 1))
    assert set(lines[0]) == RECEIPT_KEYS | {
        "decision_json",
        "input_json",
        "receipt_hash",
        "transaction",
    }
    assert lines[-1]["receipt_hash"] == "0x" + status.head_hash.hex()
    report = verify_receipts(chain_of(lines), address=status.address, chain_id=CHAIN_ID,
                             expected_head_hash=status.head_hash)  # fmt: skip
    assert report.valid, report.error

    code, out, err = run(capsys, "receipts", "--host", address, "--from", "3", "--limit", "5")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert [int(row[0]) for row in rows] == [3, 4, 5, 6, 7]
    assert all(row[1] == "hold" and row[2].endswith("Z") and row[3] == "-" for row in rows)


def test_receipts_out_writes_a_file_verify_and_replay_read(
    capsys: pytest.CaptureFixture[str], host: HostUnderTest, address: str, tmp_path: Path
) -> None:
    status = host.stub.GetStatus(pb.GetStatusRequest())
    out_file = tmp_path / "receipts.json"
    code, _, err = run(capsys, "receipts", "--host", address, "--out", str(out_file))
    assert code == 0, err
    assert f"wrote {status.receipts} receipts to {out_file}" in err
    items = json.loads(out_file.read_text())
    assert len(items) == status.receipts
    assert all(set(item) == RECEIPT_KEYS | {"decision_json", "input_json"} for item in items)
    for item in items:
        assert (
            "0x" + hashlib.sha256(item["input_json"].encode()).hexdigest() == item["input_digest"]
        )
    report = verify_receipts(chain_of(items), address=status.address, chain_id=CHAIN_ID,
                             expected_head_hash=status.head_hash)  # fmt: skip
    assert report.valid, report.error

    one = tmp_path / "receipt-7.json"
    code, _, err = run(capsys, "receipts", "--host", address, "--seq", "7", "--out", str(one))
    assert code == 0, err
    recorded = load_recorded_decision(one)  # what `tee-agent replay-decision` reads
    assert recorded.receipt == chain_of(items)[6]
    assert recorded.decision_json == items[6]["decision_json"]


def test_receipts_misuse_and_missing_receipts_exit_2(
    capsys: pytest.CaptureFixture[str], address: str, tmp_path: Path
) -> None:
    for argv in (
        ["--seq", "1", "--follow"],
        ["--follow", "--out", str(tmp_path / "x.json")],
        ["--limit", "0"],
        ["--from", "0"],
        ["--seq", "999999"],
    ):
        code, _, err = run(capsys, "receipts", "--host", address, *argv)
        assert code == 2 and err.startswith("error: "), (argv, err)
    assert "NOT_FOUND: no receipt with seq 999999" in err


def test_receipts_follow_streams_until_ctrl_c(host: HostUnderTest, address: str) -> None:
    stored = host.stub.GetStatus(pb.GetStatusRequest()).receipts
    argv = [str(TEE_AGENT), "receipts", "--host", address, "--follow", "--from", str(stored - 1)]
    lines: list[str] = []

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 300  # a guard against a hang, not an expected time
        while len(lines) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
        reader.start()
        try:
            wait_for(2)
            # More ticks after the stored ones: their receipts arrive live.
            more = tick_batches(600, first_seq=host.agent.enclave_status().last_tick_seq + 1)
            host.stub.StreamMarketData(more, metadata=AUTH)
            live = host.stub.GetStatus(pb.GetStatusRequest()).receipts
            wait_for(live - stored + 2)
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=30)
            reader.join(timeout=10)
        stderr = process.stderr.read()
    assert code == 0 and stderr == "", stderr
    assert live > stored
    assert [int(line.split()[0]) for line in lines] == list(range(stored - 1, live + 1))


def test_attest_verifies_the_quote_and_its_binding(
    capsys: pytest.CaptureFixture[str], world: EnclaveWorld, host: HostUnderTest, address: str
) -> None:
    root = str(world.sim_dir / "root.pem")
    status = host.stub.GetStatus(pb.GetStatusRequest())
    code, out, err = run(capsys, "attest", "--host", address, "--trust-root", root)
    assert code == 0, err + out
    assert out.startswith("VALID (sim, quote v4)\nwarning: simulated TEE evidence")
    assert "binding: OK: report_data binds address" in out
    assert f"agent {status.address} (chain {CHAIN_ID}, platform sim, policy rule)" in out

    nonce = os.urandom(32).hex()
    code, out, err = run(
        capsys, "attest", "--host", address, "--trust-root", root, "--nonce", nonce, "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["valid"] is True and data["accepted"] is True and data["binding"]["passed"]
    assert data["report_data"].endswith(nonce) and data["nonce"] == nonce
    assert data["identity"]["address"] == status.address and data["identity"]["simulated"]

    # Without the simulated root the quote does not verify: a failed check, exit 1.
    code, out, err = run(capsys, "attest", "--host", address)
    assert code == 1
    assert out.startswith("INVALID (sim, quote v4)") and "pck_chain_root_pinned" in out


def test_attest_applies_a_policy(
    capsys: pytest.CaptureFixture[str], world: EnclaveWorld, address: str, tmp_path: Path
) -> None:
    root = str(world.sim_dir / "root.pem")
    code, out, _ = run(capsys, "attest", "--host", address, "--trust-root", root, "--json")
    measurements = json.loads(out)["measurements"]
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[[tdx]]\nmr_td = "{measurements["mr_td"]}"\n')
    code, out, _ = run(
        capsys, "attest", "--host", address, "--trust-root", root, "--policy", str(policy), "--json"
    )
    checks = {check["name"]: check["passed"] for check in json.loads(out)["checks"]}
    assert checks["policy_measurement"] is True
    # A simulated quote carries no TCB status, which no policy accepts: exit 1.
    assert checks["policy_tcb_status"] is False and code == 1

    policy.write_text(f'[[tdx]]\nmr_td = "{"00" * 48}"\n')
    code, out, _ = run(
        capsys, "attest", "--host", address, "--trust-root", root, "--policy", str(policy)
    )
    assert code == 1 and "policy: REJECTED" in out
    policy.write_text("allow_debug = 'no'\n")
    code, _, err = run(capsys, "attest", "--host", address, "--policy", str(policy))
    assert code == 2 and "allow_debug" in err


def test_attest_bad_input_and_unreachable_agent_exit_2(
    capsys: pytest.CaptureFixture[str], address: str
) -> None:
    code, out, err = run(capsys, "attest", "--host", address, "--nonce", "abcd", "--json")
    assert code == 2 and "--nonce: expected 32 bytes" in err
    assert json.loads(out)["accepted"] is False
    code, _, err = run(capsys, "attest", "--host", address, "--nonce", "zz")
    assert code == 2 and "--nonce: expected hex digits" in err
    code, _, err = run(capsys, "attest", "--host", address, "--at", "yesterday")
    assert code == 2 and "--at" in err
    for command in ("attest", "status", "receipts"):
        code, _, err = run(capsys, command, "--host", "127.0.0.1:1")
        assert code == 2 and err.startswith("error: cannot reach the agent at 127.0.0.1:1: "), err
    code, _, err = run(capsys, "status", "--host", address, "--tls-ca", "/nonexistent.pem")
    assert code == 2 and "--tls-ca" in err


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tee-agent test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = directory / "tls.pem", directory / "tls.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_file, key_file


def test_status_over_tls_with_tls_ca(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    world = EnclaveWorld(tmp_path)
    cert, key = self_signed(tmp_path)
    config_file = tmp_path / "tls.toml"
    config_file.write_text(host_toml(world, tmp_path / "data").replace(
        "[host]\n", f'[host]\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
    ))  # fmt: skip
    running = start_host(load_host_config(config_file), listen="127.0.0.1:0")
    try:
        address = f"127.0.0.1:{running.port}"
        code, out, err = run(capsys, "status", "--host", address, "--tls-ca", str(cert), "--json")
        assert code == 0, err
        assert json.loads(out)["enclave_state"] == "running"
        # Plaintext to a TLS port fails; so does TLS that does not trust the certificate.
        code, _, err = run(capsys, "status", "--host", address)
        assert code == 2 and "cannot reach the agent" in err
        (tmp_path / "other").mkdir()
        other, _ = self_signed(tmp_path / "other")
        code, _, err = run(capsys, "status", "--host", address, "--tls-ca", str(other))
        assert code == 2 and "cannot reach the agent" in err
    finally:
        running.stop()


def test_the_console_script_runs_attest(world: EnclaveWorld, address: str) -> None:
    root = str(world.sim_dir / "root.pem")
    done = subprocess.run([str(TEE_AGENT), "attest", "--host", address, "--trust-root", root],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "binding: OK" in done.stdout
    done = subprocess.run([str(TEE_AGENT), "attest", "--host", "127.0.0.1:1"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "cannot reach the agent" in done.stderr
    assert "Traceback" not in done.stderr
