"""Private keys never cross the enclave boundary: not in a reply, an error, a log or a repr."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
from tee_agent_rpc import enclave_pb2 as pb
from tee_agent_rpc import messages_pb2 as messages

from enclave.measurement import expected_sim_measurement
from enclave.platform.sim_pki import load_sim_pki
from enclave.sealing import Sealer
from enclave.signer import AccountSigner
from enclave.state import EnclaveState
from tests.enclave_harness import EnclaveWorld, balances, serialized, ticks, twaps
from tests.test_enclave_process import RISE_AND_FALL


def _forms(secret: bytes) -> list[bytes]:
    return [secret, secret.hex().encode(), secret.hex().upper().encode()]


def test_no_reply_error_or_log_line_carries_a_key(tmp_path: Path) -> None:
    world = EnclaveWorld(tmp_path)
    seen: list[bytes] = []
    with world.enclave() as enclave:
        stub = enclave.stub
        opened = stub.Open(pb.OpenRequest())
        seen.append(opened.SerializeToString())
        seen.append(stub.Attest(pb.AttestRequest(nonce=os.urandom(32))).SerializeToString())
        ingested = stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(ticks(RISE_AND_FALL)),
                twap_prices=twaps(),
                balances=balances(weth=5),
            )
        )
        seen.append(ingested.SerializeToString())
        released = stub.Release(pb.ReleaseRequest(state_version=ingested.state_version))
        assert released.transactions, "the run must sign something for this test to mean much"
        seen.append(released.SerializeToString())
        seen.append(stub.GetStatus(pb.GetStatusRequest()).SerializeToString())
        seen.append(stub.GetIdentity(pb.GetIdentityRequest()).SerializeToString())
        for bad in (
            pb.IngestRequest(balances={"WETH": "x"}),
            pb.IngestRequest(
                tick_batches=serialized(
                    messages.TickBatch(
                        pair="ETH/USDT", seq=[0], timestamp_ms=[0], price=[1], volume=[0]
                    )
                )
            ),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Ingest(bad)
            seen.append(refused.value.details().encode())
        with pytest.raises(grpc.RpcError) as again:
            stub.Open(pb.OpenRequest(sealed_state=opened.sealed_state))
        seen.append(again.value.details().encode())
        with pytest.raises(grpc.RpcError) as forged:
            stub.SubmitOwnerCommand(pb.OwnerCommandRequest(ciphertext=os.urandom(120)))
        seen.append(forged.value.details().encode())
    seen.append(enclave.log.read_bytes())

    # The test holds the simulated platform's sealing secret, so it can look inside.
    pki = load_sim_pki(world.sim_dir)
    measurement = expected_sim_measurement(opened.identity.config_hash, None)
    state = EnclaveState.from_bytes(
        Sealer(
            pki.sealing_secret,
            measurement,
            config_hash=opened.identity.config_hash,
            model_hash=opened.identity.model_hash,
        ).unseal(ingested.sealed_state)
    )
    assert AccountSigner.from_bytes(state.account_secret).address == opened.identity.address
    # Named, so a failure says which secret leaked where without printing it (pytest shows
    # both operands of a failed `in`).
    secrets = [("account secret", form) for form in _forms(state.account_secret)]
    secrets += [("box secret", form) for form in _forms(state.box_secret)]
    for number, blob in enumerate(seen):
        for name, secret in secrets:
            leaked = secret in blob
            assert not leaked, f"the {name} appears in reply or log #{number}"
    texts = {
        "repr(state)": repr(state),
        "str(state)": str(state),
        "repr(signer)": repr(AccountSigner.from_bytes(state.account_secret)),
    }
    for where, text in texts.items():
        for name, secret in secrets:
            leaked = secret.decode("latin-1") in text
            assert not leaked, f"the {name} appears in {where}"
