"""What fuzzing found (./fuzz/run, docs/fuzzing.md), each as its smallest input, with the
typed error the parser now gives. Each test fails on the code before its fix."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest

from attestation.collateral import load_intel_collateral
from attestation.errors import CollateralFormatError, QuoteFormatError
from attestation.verifier import verify_evidence
from attestation.x509chain import load_certificate
from host.cli import main
from host.cli.evidence_files import EvidenceFileError, read_attestation_file, read_receipts_file
from tests.enclave_harness import EnclaveWorld
from tests.manifest import vector_bytes

AT = datetime(2025, 6, 1, tzinfo=UTC)
# DER of a name attribute: OID 2.5.4.3 (commonName), then its value's tag.
COMMON_NAME_UTF8 = bytes.fromhex("0603550403") + b"\x0c"


def _common_name_as_bit_string(der: bytes) -> bytes:
    """`der` with its first commonName value re-tagged BIT STRING (0 unused bits), the
    same length: cryptography refuses a BIT STRING under any OID but
    x500UniqueIdentifier with a TypeError, not a ValueError."""
    at = der.index(COMMON_NAME_UTF8) + len(COMMON_NAME_UTF8) - 1
    return der[:at] + b"\x03" + der[at + 1 : at + 2] + b"\x00" + der[at + 3 :]


# -- certificates and CRLs with a BIT STRING name attribute (quotes, collateral) -----------


def test_a_certificate_with_a_bit_string_name_attribute_is_a_malformed_certificate() -> None:
    der = _common_name_as_bit_string(vector_bytes("intel-sgx-root-ca.der"))
    with pytest.raises(ValueError, match="malformed certificate"):
        load_certificate(der)


def test_a_crl_with_a_bit_string_issuer_attribute_is_a_collateral_format_error() -> None:
    crl = _common_name_as_bit_string(vector_bytes("collateral-go-tdx-guest-root-ca-crl.der"))
    with pytest.raises(CollateralFormatError, match="is not Intel collateral"):
        load_intel_collateral([crl])


def test_a_quote_whose_pck_chain_has_a_bit_string_name_attribute_is_a_quote_format_error() -> None:
    quote = vector_bytes("tdx-v4-phala-1.bin")
    begin, end = b"-----BEGIN CERTIFICATE-----\n", b"\n-----END CERTIFICATE-----"
    start = quote.index(begin) + len(begin)
    stop = quote.index(end, start)
    der = base64.b64decode(quote[start:stop])
    text = base64.b64encode(_common_name_as_bit_string(der))
    broken = b"\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    assert len(broken) == stop - start  # the same length: every offset of the quote holds
    with pytest.raises(QuoteFormatError, match="PCK certificate chain cannot be read"):
        verify_evidence(quote[:start] + broken + quote[stop:], at=AT)


# -- receipts files (verify agent --receipts) ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[{"seq": 1}]', "item 0: a receipt needs exactly the fields"),
        ("[1]", "item 0 is of type int, expected an object"),
        ('{"decision_json": 5}', "item 0: a receipt needs exactly the fields"),
        ("[[]", "not JSON"),
    ],
)
def test_a_receipts_file_that_is_not_receipts_is_an_evidence_file_error(
    text: str, problem: str
) -> None:
    with pytest.raises(EvidenceFileError, match=problem):
        read_receipts_file(text)


def test_an_attestation_file_that_is_not_one_is_an_evidence_file_error() -> None:
    with pytest.raises(EvidenceFileError, match="attestation file cannot be used"):
        read_attestation_file('{"quote": "00", "nonce": 1}')


def test_verify_agent_refuses_a_receipt_file_item_that_is_not_a_receipt_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receipts, attestation = tmp_path / "receipts.json", tmp_path / "attestation.json"
    receipts.write_text(json.dumps([{"seq": 1}]))
    attestation.write_text("{}")
    code = main(["verify", "agent", "--rpc", "http://127.0.0.1:9", "--receipts",
                 str(receipts), "--attestation", str(attestation)])  # fmt: skip
    error = capsys.readouterr().err
    assert code == 2, error
    assert "cannot read the receipts or attestation file" in error
    assert "internal error" not in error


# -- the enclave's request bytes ----------------------------------------------------------


def test_the_enclave_answers_request_bytes_that_do_not_decode_with_invalid_argument(
    tmp_path: Path,
) -> None:
    """gRPC's generated registration answered INTERNAL ("Exception deserializing request!")."""
    world = EnclaveWorld(tmp_path)
    with world.enclave() as enclave:
        for method in ("Ingest", "Open", "SubmitOwnerCommand", "Release"):
            call = enclave.channel.unary_unary(f"/tee_agent.enclave.v1.Enclave/{method}")
            with pytest.raises(grpc.RpcError) as caught:
                call(b"\xff\xff\xff", timeout=60)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
            assert "is not a valid" in (caught.value.details() or "")
        stream = enclave.channel.stream_stream("/tee_agent.enclave.v1.Enclave/IngestStream")
        with pytest.raises(grpc.RpcError) as caught:
            list(stream(iter([b"\x0a\x02\x08"]), timeout=60))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
