"""The one conversion of each shared message (`wire`): values survive the round trip, and a
message that cannot make a value (from a lying host, say) is refused with the field named."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from tee_agent_rpc import messages_pb2 as messages

from attestation.binding import (
    MAX_SERVED_EVENT_LOG_SIZE,
    AgentAttestation,
    AgentIdentity,
    identity_report_data,
)
from attestation.ethereum import recover_signer
from attestation.receipt import ZERO_HASH, receipt_hash
from enclave.receipts import make_receipt
from enclave.signer import AccountSigner
from wire.errors import MalformedMessage
from wire.identity import (
    attestation_from_message,
    attestation_message,
    identity_from_message,
    identity_message,
)
from wire.numbers import UINT256_MAX, MalformedNumber, parse_uint256_text
from wire.records import (
    ReceiptRecord,
    TransactionRecord,
    receipt_message,
    receipt_record,
    transaction_message,
    transaction_record,
)
from wire.ticks import Tick, TickColumns, columns_from_message, tick_batch_messages

CHAIN_ID = 31337
SIGNER = AccountSigner.from_bytes(bytes(range(1, 33)))


def record() -> ReceiptRecord:
    decision, inputs = '{"action":"hold"}', '{"tick":7}'
    receipt = make_receipt(
        SIGNER, chain_id=CHAIN_ID, seq=1, prev_hash=ZERO_HASH,
        input_digest=hashlib.sha256(inputs.encode()).digest(), model_hash=bytes(32),
        config_hash=b"\x11" * 32, decision_hash=hashlib.sha256(decision.encode()).digest(),
        verdict="hold", tx_hash=ZERO_HASH, timestamp=1_700_000_000,
    )  # fmt: skip
    return ReceiptRecord(
        receipt=receipt,
        receipt_hash=receipt_hash(receipt, CHAIN_ID),
        decision_json=decision,
        input_json=inputs,
    )


def identity() -> AgentIdentity:
    return AgentIdentity(
        address=SIGNER.address, x25519_public_key=b"\x22" * 32, config_hash=b"\x11" * 32,
        model_hash=bytes(32), measurement={"mr_td": "ab" * 48, "rtmr0": "cd" * 48},
        platform="sim", simulated=True, chain_id=CHAIN_ID, policy="rule",
    )  # fmt: skip


def test_a_receipt_comes_back_whole_and_still_recovers_to_its_signer() -> None:
    sent = record()
    message = messages.Receipt.FromString(receipt_message(sent).SerializeToString())
    back = receipt_record(message)
    assert back == sent
    digest = receipt_hash(back.receipt, CHAIN_ID)
    assert recover_signer(digest, back.receipt.signature) == SIGNER.address


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("prev_hash", b"\x01" * 31, "prev_hash"),
        ("verdict", "", "verdict"),
        ("seq", 0, "seq"),
        ("signature", b"\x01" * 64 + b"\x00", "signature"),
        ("receipt_hash", b"\x01" * 33, "receipt_hash"),
    ],
)
def test_a_malformed_receipt_is_refused_naming_the_field(
    field: str, value: object, named: str
) -> None:
    message = receipt_message(record())
    setattr(message, field, value)
    with pytest.raises(MalformedMessage, match=rf"receipt seq \d+: {named}: "):
        receipt_record(message)


def test_a_transaction_comes_back_whole_and_a_made_up_status_is_refused() -> None:
    sent = TransactionRecord(
        tx_hash=b"\x33" * 32, nonce=4, raw_transaction=b"\x02\xf8", receipt_seq=9,
        status="mined", detail="block 12",
    )  # fmt: skip
    assert transaction_record(transaction_message(sent)) == sent
    message = transaction_message(sent)
    message.status = "confirmed"
    with pytest.raises(MalformedMessage, match="transaction 0x3333"):
        transaction_record(message)


def test_an_identity_and_an_attestation_come_back_whole() -> None:
    sent = AgentAttestation(quote=b"quote bytes", nonce=b"\x44" * 32, identity=identity())
    message = attestation_message(sent)
    assert message.report_data == identity_report_data(sent.identity.binding(), sent.nonce)
    assert attestation_from_message(message) == sent
    assert identity_from_message(identity_message(sent.identity)) == sent.identity
    assert AgentAttestation.from_file_dict(sent.to_file_dict()) == sent


def test_an_attestation_carries_its_event_log_and_the_file_holds_it_as_json() -> None:
    log = b'[{"imr":0,"event_type":134217730,"digest":"' + b"ab" * 48 + b'","event":"e",' \
        b'"event_payload":"ab"}]'  # fmt: skip
    sent = AgentAttestation(quote=b"q", nonce=b"\x44" * 32, identity=identity(), event_log=log)
    message = attestation_message(sent)
    assert message.event_log == log and attestation_from_message(message) == sent
    # The client's own nonce, not the one the host echoes.
    message.nonce = b"\x55" * 32
    assert attestation_from_message(message, b"\x44" * 32) == sent
    saved = sent.to_file_dict()
    assert saved["event_log"] == json.loads(log)  # an array: `verify quote --event-log` reads it
    assert AgentAttestation.from_file_dict(saved) == sent
    # A file from before attestations carried a log has none.
    old = {k: v for k, v in saved.items() if k != "event_log"}
    assert AgentAttestation.from_file_dict(old).event_log == b""
    assert AgentAttestation.from_file_dict({**saved, "event_log": []}).event_log == b""


@pytest.mark.parametrize(
    ("event_log", "error"),
    [
        (b" " * (MAX_SERVED_EVENT_LOG_SIZE + 1), "is 1048577 bytes, over the 1048576 (1 MiB)"),
        (b"[{", "the event log is not JSON"),
        (b"[" * 200 + b"]" * 200, "nested too deeply"),
    ],
)
def test_an_event_log_over_the_cap_or_not_json_is_refused(event_log: bytes, error: str) -> None:
    message = attestation_message(
        AgentAttestation(quote=b"q", nonce=b"\x44" * 32, identity=identity())
    )
    message.event_log = event_log
    with pytest.raises(MalformedMessage, match=r"^attestation event_log: .*" + re.escape(error)):
        attestation_from_message(message)


def test_an_identity_with_a_short_key_is_refused_naming_it() -> None:
    message = identity_message(identity())
    message.config_hash = b"\x11" * 31
    with pytest.raises(MalformedMessage, match=r"identity config_hash: .*32 bytes, found 31"):
        identity_from_message(message)


def test_ticks_go_out_as_one_batch_per_run_of_a_pair_and_come_back_as_columns() -> None:
    ticks = [
        Tick(1, 1_000, "ETH/USDT", 2000.5, 1.0),
        Tick(2, 2_000, "ETH/USDT", 2001.25, 0.5),
        Tick(3, 3_000, "BTC/USDT", 30000.0, 0.1),
        Tick(4, 4_000, "ETH/USDT", 1999.75, 2.0),
    ]
    batches = tick_batch_messages(ticks)
    assert [(b.pair, list(b.seq)) for b in batches] == [
        ("ETH/USDT", [1, 2]), ("BTC/USDT", [3]), ("ETH/USDT", [4])
    ]  # fmt: skip
    columns = [columns_from_message(batch, n) for n, batch in enumerate(batches, start=1)]
    assert all(c is not None for c in columns)
    back = [tick for c in columns if c is not None for tick in c.ticks(0, len(c))]
    assert back == ticks
    assert [c.pair for c in TickColumns.runs(ticks)] == [b.pair for b in batches]
    assert columns_from_message(messages.TickBatch(pair="ETH/USDT"), 1) is None


@pytest.mark.parametrize(
    "text", ["²", "١٢", "", " 1", "1 ", "1\n", "+1", "-1", "1e3", "1.0", "1_000", "0x10", "1" * 100]
)
def test_a_number_that_is_not_ascii_digits_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(MalformedNumber, match=r"^balances\['WETH'\] must be"):
        parse_uint256_text(text, "balances['WETH']")


def test_ascii_digits_up_to_uint256_are_numbers() -> None:
    assert parse_uint256_text("0", "x") == 0
    assert parse_uint256_text("007", "x") == 7
    assert parse_uint256_text(str(UINT256_MAX), "x") == UINT256_MAX
    with pytest.raises(MalformedNumber, match="at most 2\\^256 - 1"):
        parse_uint256_text(str(UINT256_MAX + 1), "x")
