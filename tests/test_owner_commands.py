"""Owner commands: sealed to the enclave, signed by the owner, bound to one enclave and a
counter; unit tests of make/open, then pause and resume on a real enclave process."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import grpc
import pytest
import rlp  # type: ignore[import-untyped]
from eth_account import Account
from eth_utils import to_checksum_address
from nacl.public import PrivateKey, SealedBox
from nacl.signing import SigningKey
from tee_agent_rpc import enclave_pb2 as pb

from attestation.receipt_chain import verify_receipts
from enclave.owner import (
    DOMAIN,
    MAX_CIPHERTEXT,
    OwnerCommand,
    OwnerCommandError,
    make_owner_command,
    open_owner_command,
)
from enclave.transactions import decode_call
from tests.enclave_harness import (
    CHAIN_ID,
    ROUTER,
    USDT,
    VAULT,
    WETH,
    EnclaveWorld,
    balances,
    serialized,
    ticks,
    twaps,
)
from tests.test_enclave_process import RISE_AND_FALL, receipt_of
from wire.records import receipt_record

OWNER = SigningKey(bytes(range(32)))
BOX = PrivateKey(bytes(range(32, 64)))
ENCLAVE = to_checksum_address("0x" + "c0ffee" * 6 + "c0ff")
OTHER_ENCLAVE = to_checksum_address("0x" + "be" * 20)


def seal(message: bytes) -> bytes:
    return SealedBox(BOX.public_key).encrypt(message)


def open_(ciphertext: bytes, last_counter: int = 0, address: str = ENCLAVE) -> OwnerCommand:
    return open_owner_command(
        ciphertext,
        box_key=BOX,
        owner_public_key=bytes(OWNER.verify_key),
        enclave_address=address,
        last_counter=last_counter,
    )


def refusal(ciphertext: bytes, last_counter: int = 0, address: str = ENCLAVE) -> str:
    with pytest.raises(OwnerCommandError) as refused:
        open_(ciphertext, last_counter, address)
    assert str(refused.value).startswith(refused.value.reason + ": ")
    return refused.value.reason


def command(
    action: str = "pause",
    counter: int = 1,
    enclave: str = ENCLAVE,
    owner: SigningKey = OWNER,
    box_public: bytes | None = None,
) -> bytes:
    return make_owner_command(
        owner,
        bytes(BOX.public_key) if box_public is None else box_public,
        enclave,
        action,  # type: ignore[arg-type]
        counter,
    )


# -- unit ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "counter"), [("pause", 1), ("resume", 2), ("pause", 2**63 - 1)])
def test_a_command_round_trips(action: str, counter: int) -> None:
    opened = open_(command(action, counter), last_counter=counter - 1)
    assert opened == OwnerCommand(domain=DOMAIN, action=action, counter=counter, enclave=ENCLAVE)
    assert opened.domain == "tee-agent/owner-command/v1"


def test_the_ciphertext_hides_the_command_and_is_fresh_every_time() -> None:
    first, second = command(), command()
    assert first != second  # an ephemeral key per SealedBox
    assert b"pause" not in first and ENCLAVE.encode() not in first
    assert open_(first) == open_(second)


def test_the_plaintext_is_the_owner_signed_canonical_json() -> None:
    signed = SealedBox(BOX).decrypt(command("resume", 7))
    message = OWNER.verify_key.verify(signed)
    assert json.loads(message) == {
        "action": "resume",
        "counter": 7,
        "domain": DOMAIN,
        "enclave": ENCLAVE,
    }


def test_the_enclave_address_matches_in_any_case() -> None:
    assert open_(command(enclave=ENCLAVE.lower())).enclave == ENCLAVE.lower()
    assert open_(command(), address=ENCLAVE.lower()).counter == 1


def test_a_command_signed_by_another_key_is_refused() -> None:
    assert refusal(command(owner=SigningKey.generate())) == "owner_signature_invalid"


def test_a_command_encrypted_to_another_enclave_key_is_refused() -> None:
    other = bytes(PrivateKey.generate().public_key)
    assert refusal(command(box_public=other)) == "owner_command_undecryptable"


def test_a_command_addressed_to_another_enclave_is_refused() -> None:
    with pytest.raises(OwnerCommandError) as refused:
        open_(command(enclave=OTHER_ENCLAVE))
    assert refused.value.reason == "owner_command_wrong_enclave"
    assert str(refused.value) == (
        f"owner_command_wrong_enclave: addressed to {OTHER_ENCLAVE}, not {ENCLAVE}"
    )


def test_a_counter_not_above_the_last_is_a_replay() -> None:
    assert open_(command(counter=6), last_counter=5).counter == 6
    for counter in (5, 4, 1):
        assert refusal(command(counter=counter), last_counter=5) == "owner_command_replayed"
    with pytest.raises(OwnerCommandError) as refused:
        open_(command(counter=5), last_counter=5)
    assert "counter 5 is not above the last accepted 5" in str(refused.value)


@pytest.mark.parametrize("position", [0, 31, 32, 47, 48, -1])
def test_a_tampered_ciphertext_is_refused(position: int) -> None:
    ciphertext = bytearray(command())
    ciphertext[position] ^= 0x01
    assert refusal(bytes(ciphertext)) == "owner_command_undecryptable"


def test_a_truncated_or_extended_ciphertext_is_refused() -> None:
    ciphertext = command()
    assert refusal(ciphertext[:-1]) == "owner_command_undecryptable"
    assert refusal(ciphertext + b"\x00") == "owner_command_undecryptable"


def test_an_oversized_ciphertext_is_refused_before_decryption() -> None:
    with pytest.raises(OwnerCommandError) as refused:
        open_(os.urandom(MAX_CIPHERTEXT + 1))
    assert refused.value.reason == "owner_command_malformed"
    assert "4097 bytes; the limit is 4096" in str(refused.value)
    # A signed command padded past the limit is refused too, even though it would decrypt.
    padded = seal(OWNER.sign(b" " * MAX_CIPHERTEXT))
    assert refusal(padded) == "owner_command_malformed"
    # At the limit the size is fine and decryption decides.
    assert refusal(os.urandom(MAX_CIPHERTEXT)) == "owner_command_undecryptable"


@pytest.mark.parametrize("garbage", [b"", b"\x00", os.urandom(47), os.urandom(48), os.urandom(300)])
def test_garbage_is_refused(garbage: bytes) -> None:
    assert refusal(garbage) == "owner_command_undecryptable"


def test_sealed_but_unsigned_messages_are_refused() -> None:
    assert refusal(seal(b"")) == "owner_signature_invalid"
    assert refusal(seal(b"pause")) == "owner_signature_invalid"
    assert refusal(seal(os.urandom(200))) == "owner_signature_invalid"
    body = json.dumps(
        {"action": "pause", "counter": 1, "domain": DOMAIN, "enclave": ENCLAVE}
    ).encode()
    assert refusal(seal(body)) == "owner_signature_invalid"
    # A signed command with one byte changed no longer verifies.
    forged = bytearray(OWNER.sign(body))
    forged[-3] ^= 1
    assert refusal(seal(bytes(forged))) == "owner_signature_invalid"


@pytest.mark.parametrize(
    "message",
    [
        b"not json",
        b"{}",
        json.dumps({"action": "selfdestruct", "counter": 1, "domain": DOMAIN, "enclave": ENCLAVE}),
        json.dumps({"action": "pause", "counter": 0, "domain": DOMAIN, "enclave": ENCLAVE}),
        json.dumps({"action": "pause", "counter": 2**63, "domain": DOMAIN, "enclave": ENCLAVE}),
        json.dumps({"action": "pause", "counter": 1, "domain": "other/v1", "enclave": ENCLAVE}),
        json.dumps({"action": "pause", "counter": 1, "domain": DOMAIN, "enclave": "me"}),
        json.dumps(
            {"action": "pause", "counter": 1, "domain": DOMAIN, "enclave": ENCLAVE, "extra": 1}
        ),
    ],
)
def test_an_owner_signed_but_malformed_command_is_refused(message: str | bytes) -> None:
    raw = message.encode() if isinstance(message, str) else message
    assert refusal(seal(OWNER.sign(raw))) == "owner_command_malformed"


# -- the enclave process ---------------------------------------------------------------------


def _release_after(stub: Any, response: Any) -> Any:
    return stub.Release(pb.ReleaseRequest(state_version=response.state_version))


def test_pause_refuses_every_trade_until_resume_on_a_real_enclave(tmp_path: Path) -> None:
    world = EnclaveWorld(tmp_path)
    with world.enclave() as enclave:
        stub = enclave.stub
        opened = stub.Open(pb.OpenRequest())
        identity = stub.GetIdentity(pb.GetIdentityRequest())
        assert identity.address == opened.identity.address
        assert len(identity.x25519_public_key) == 32
        all_receipts = list(_release_after(stub, opened).receipts)
        assert not stub.GetStatus(pb.GetStatusRequest()).paused

        def owner_says(action: Literal["pause", "resume"], counter: int) -> bytes:
            return make_owner_command(
                world.owner, identity.x25519_public_key, identity.address, action, counter
            )

        pause = owner_says("pause", 1)
        paused = stub.SubmitOwnerCommand(pb.OwnerCommandRequest(ciphertext=pause))
        assert (paused.pending_receipts, paused.pending_transactions) == (1, 0)
        released = _release_after(stub, paused)
        assert [r.verdict for r in released.receipts] == ["owner:pause"]
        assert json.loads(released.receipts[0].input_json)["counter"] == 1
        assert not released.transactions
        all_receipts += released.receipts
        status = stub.GetStatus(pb.GetStatusRequest())
        assert status.paused and status.state_version == paused.state_version

        # A market that trades when not paused (see test_enclave_process): buys, then sells.
        response = stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(ticks(RISE_AND_FALL)),
                twap_prices=twaps(),
                balances=balances(weth=5),
            )
        )
        assert response.accepted == len(RISE_AND_FALL) and not response.refused
        assert response.pending_transactions == 0
        released = _release_after(stub, response)
        assert not released.transactions
        all_receipts += released.receipts
        actions = [json.loads(r.decision_json)["action"] for r in released.receipts]
        assert "buy" in actions and "sell" in actions
        for receipt, action in zip(released.receipts, actions, strict=True):
            expected = "hold" if action == "hold" else "refused:paused"
            assert receipt.verdict == expected, (action, receipt.verdict)
            if action != "hold":
                assert receipt.tx_hash == bytes(32)
        status = stub.GetStatus(pb.GetStatusRequest())
        assert status.paused and status.next_nonce == 0 and status.notional_24h_usd == 0

        # The host replays the pause, or forges a resume: both denied, nothing changes.
        version = status.state_version
        denials = [
            (pause, "owner_command_replayed"),
            (owner_says("pause", 1), "owner_command_replayed"),
            (
                make_owner_command(
                    SigningKey.generate(),
                    identity.x25519_public_key,
                    identity.address,
                    "resume",
                    99,
                ),
                "owner_signature_invalid",
            ),
            (pause[:-1] + bytes([pause[-1] ^ 1]), "owner_command_undecryptable"),
        ]
        for ciphertext, reason in denials:
            with pytest.raises(grpc.RpcError) as denied:
                stub.SubmitOwnerCommand(pb.OwnerCommandRequest(ciphertext=ciphertext))
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert reason in denied.value.details()
        with pytest.raises(grpc.RpcError) as replayed:
            stub.SubmitOwnerCommand(pb.OwnerCommandRequest(ciphertext=pause))
        assert "replayed" in replayed.value.details()
        status = stub.GetStatus(pb.GetStatusRequest())
        assert status.paused and status.state_version == version

        # The owner resumes (counter 2): the next sell is signed.
        resumed = stub.SubmitOwnerCommand(
            pb.OwnerCommandRequest(ciphertext=owner_says("resume", 2))
        )
        released = _release_after(stub, resumed)
        assert [r.verdict for r in released.receipts] == ["owner:resume"]
        all_receipts += released.receipts
        assert not stub.GetStatus(pb.GetStatusRequest()).paused

        falling = ticks([86.0], first_seq=len(RISE_AND_FALL) + 1)
        response = stub.Ingest(
            pb.IngestRequest(
                tick_batches=serialized(falling), twap_prices=twaps(), balances=balances(weth=5)
            )
        )
        released = _release_after(stub, response)
        all_receipts += released.receipts
        assert [r.verdict for r in released.receipts] == ["signed"]  # no approval: the vault
        [signed] = released.receipts
        assert json.loads(signed.decision_json)["action"] == "sell"
        [tx] = released.transactions
        assert (tx.nonce, tx.receipt_seq) == (0, signed.seq)
        assert Account.recover_transaction(tx.raw_transaction) == identity.address
        # EIP-1559 fields: chain_id, nonce, priority fee, max fee, gas, to, value, data, ...
        swap_tx = rlp.decode(tx.raw_transaction[1:])
        assert to_checksum_address(swap_tx[5]) == VAULT
        assert int.from_bytes(swap_tx[0], "big") == CHAIN_ID
        call = decode_call(swap_tx[7])
        assert call is not None and (call.router, call.token_in, call.token_out) == (
            ROUTER,
            WETH,
            USDT,
        )
        assert call.receipt_seq == signed.seq
        assert call.receipt_digest == receipt_record(signed).receipt_hash
        assert stub.GetStatus(pb.GetStatusRequest()).next_nonce == 1

        # The old pause cannot come back after the resume either.
        with pytest.raises(grpc.RpcError) as late:
            stub.SubmitOwnerCommand(pb.OwnerCommandRequest(ciphertext=pause))
        assert late.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "replayed" in late.value.details()

    chain = verify_receipts(
        [receipt_of(r) for r in all_receipts],
        address=identity.address,
        chain_id=CHAIN_ID,
        config_hash=identity.config_hash,
    )
    assert chain.valid, chain.checks
    assert [r.seq for r in all_receipts] == list(range(1, len(all_receipts) + 1))
