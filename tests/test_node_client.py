"""A Node.js client (@grpc/grpc-js + @grpc/proto-loader, from agent.proto alone) talks to the
host: the status it reads and the quote it fetches agree with what Python sees and verifies.

Skipped, with the reason, when `node` is not on PATH or tests/node/node_modules is missing
(`./scripts/bootstrap` installs it with `npm ci` when npm is there).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tee_agent_rpc import agent_pb2 as pb

from attestation.trust import certificates_from_bytes, default_trust_anchors
from attestation.verifier import verify_evidence
from tests.enclave_harness import EnclaveWorld
from tests.host_harness import AUTH, running_host, tick_batches

NODE_DIR = Path(__file__).resolve().parent / "node"
CLIENT = NODE_DIR / "client.mjs"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not on PATH"),
    pytest.mark.skipif(
        not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir(),
        reason="tests/node/node_modules is missing: run ./scripts/bootstrap (needs npm)",
    ),
]


def test_a_node_grpc_client_reads_status_and_a_verifiable_quote(tmp_path: Path) -> None:
    world = EnclaveWorld(tmp_path)
    world.write_config(decision_interval_seconds=3600)
    nonce = os.urandom(32)
    with running_host(world) as host:
        host.stub.StreamMarketData(tick_batches(2000), metadata=AUTH)
        status = host.stub.GetStatus(pb.GetStatusRequest())
        done = subprocess.run(
            [str(NODE), str(CLIENT), f"127.0.0.1:{host.running.port}", nonce.hex()],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    seen, attestation = answer["status"], answer["attestation"]
    assert seen["address"] == status.address == attestation["address"]
    assert seen["enclave_state"] == "running"
    assert seen["ticks_accepted"] == status.ticks_accepted == 2000
    assert seen["receipts"] == status.receipts and seen["head_hash"] == status.head_hash.hex()
    report_data = bytes.fromhex(attestation["report_data"])
    assert report_data[32:] == nonce and attestation["nonce"] == nonce.hex()
    quote = bytes.fromhex(attestation["quote"])
    assert attestation["quote_length"] == len(quote)
    anchors = default_trust_anchors().with_extra_roots(
        certificates_from_bytes((world.sim_dir / "root.pem").read_bytes(), source="sim root")
    )
    report = verify_evidence(quote, at=datetime.now(UTC), anchors=anchors)
    assert report.valid, report.error
    assert report.report_data == attestation["report_data"]


def test_the_node_client_reports_an_unreachable_agent() -> None:
    done = subprocess.run(
        [str(NODE), str(CLIENT), "127.0.0.1:1", "00" * 32],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: 127.0.0.1:1: UNAVAILABLE")
