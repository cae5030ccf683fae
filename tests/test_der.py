"""The minimal DER reader: TLVs, SEQUENCE elements, INTEGER and OBJECT IDENTIFIER."""

from __future__ import annotations

import contextlib

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from attestation.formats.der import (
    TAG_INTEGER,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    DerError,
    decode_integer,
    decode_oid,
    decode_single,
    encode_oid,
    iter_elements,
    read_tlv,
    sequence_elements,
)
from attestation.trust import quiet_serial_number_warning
from tests.manifest import vector_bytes


def test_read_tlv_short_and_long_forms() -> None:
    assert read_tlv(b"\x02\x01\x05") == (TAG_INTEGER, b"\x05", 3)
    long_value = b"\xaa" * 200
    assert read_tlv(b"\x04\x81\xc8" + long_value) == (TAG_OCTET_STRING, long_value, 203)
    assert read_tlv(b"\x00\x00\x04\x82\x01\x00" + b"\x01" * 256, 2)[2] == 262
    assert read_tlv(b"\x05\x00") == (0x05, b"", 2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "found the end of the data"),
        (b"\x02", "expected a length"),
        (b"\x02\x02\x01", "needs 2 bytes, only 1 remain"),
        (b"\x04\x80\x00\x00", "indefinite length"),
        (b"\x04\x81\x05" + b"\x00" * 5, "not in its shortest form"),
        (b"\x04\x82\x00\x80" + b"\x00" * 128, "not in its shortest form"),
        (b"\x04\x85\x00\x00\x00\x00\x01\x00", "at most 4"),
        (b"\x04\x82\x01", "truncated"),
        (b"\x1f\x81\x00\x00", "multi-byte tag"),
    ],
)
def test_read_tlv_refuses_malformed(data: bytes, message: str) -> None:
    with pytest.raises(DerError, match=message):
        read_tlv(data)


def test_decode_single_and_sequences() -> None:
    sequence = b"\x30\x06\x02\x01\x01\x04\x01\xff"
    assert decode_single(sequence, TAG_SEQUENCE) == b"\x02\x01\x01\x04\x01\xff"
    assert sequence_elements(sequence) == [(TAG_INTEGER, b"\x01"), (TAG_OCTET_STRING, b"\xff")]
    assert list(iter_elements(b"")) == []
    with pytest.raises(DerError, match="expected tag 0x02, found 0x30"):
        decode_single(sequence, TAG_INTEGER)
    with pytest.raises(DerError, match="trailing"):
        decode_single(sequence + b"\x00", TAG_SEQUENCE)
    with pytest.raises(DerError):
        sequence_elements(b"\x30\x03\x02\x05\x01")


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (b"\x00", 0),
        (b"\x7f", 127),
        (b"\x00\x80", 128),
        (b"\x44", 68),
        (b"\xff", -1),
        (b"\x80", -128),
        (b"\xff\x7f", -129),
        (b"\x01\x00\x00\x00\x00\x00\x00\x00\x00", 1 << 64),
    ],
)
def test_decode_integer(value: bytes, number: int) -> None:
    assert decode_integer(value) == number


@pytest.mark.parametrize("value", [b"", b"\x00\x01", b"\xff\x80"])
def test_decode_integer_refuses_non_minimal(value: bytes) -> None:
    with pytest.raises(DerError):
        decode_integer(value)


@pytest.mark.parametrize(
    ("encoded", "dotted"),
    [
        ("2b060104019c78010301", "1.3.6.1.4.1.3704.1.3.1"),
        ("2a864886f84d010d0104", "1.2.840.113741.1.13.1.4"),
        ("551d13", "2.5.29.19"),
        ("8837", "2.999"),
        ("00", "0.0"),
    ],
)
def test_oid_round_trip(encoded: str, dotted: str) -> None:
    assert decode_oid(bytes.fromhex(encoded)) == dotted
    assert encode_oid(dotted) == bytes.fromhex(encoded)


@pytest.mark.parametrize("value", [b"", b"\x80\x01", b"\x2b\x86"])
def test_decode_oid_refuses_malformed(value: bytes) -> None:
    with pytest.raises(DerError):
        decode_oid(value)


@pytest.mark.parametrize("dotted", ["1", "3.1", "1.40", "a.b", "1.2.-3"])
def test_encode_oid_refuses_invalid(dotted: str) -> None:
    with pytest.raises(DerError):
        encode_oid(dotted)


def test_reads_the_vcek_extensions() -> None:
    with quiet_serial_number_warning():
        vcek = x509.load_der_x509_certificate(vector_bytes("amd-vcek-go-sev-guest-1.der"))
    values = {
        ext.oid.dotted_string: ext.value.value
        for ext in vcek.extensions
        if isinstance(ext.value, x509.UnrecognizedExtension)
    }
    spl = {
        oid[-1]: decode_integer(decode_single(values[f"1.3.6.1.4.1.3704.1.3.{oid[-1]}"], 0x02))
        for oid in ("1", "2", "3", "8")
    }
    assert spl == {"1": 2, "2": 0, "3": 5, "8": 68}
    # The same extensions found in the certificate with this reader alone.
    tbs = sequence_elements(vcek.tbs_certificate_bytes)
    (explicit,) = [value for tag, value in tbs if tag == 0xA3]  # [3] EXPLICIT Extensions
    ((tag, extension_list),) = list(iter_elements(explicit))
    assert tag == TAG_SEQUENCE
    found = {}
    for ext_tag, extension in iter_elements(extension_list):
        assert ext_tag == TAG_SEQUENCE
        (oid_tag, oid), *_, (value_tag, value) = list(iter_elements(extension))
        assert (oid_tag, value_tag) == (TAG_OID, TAG_OCTET_STRING)
        found[decode_oid(oid)] = value
    assert found["1.3.6.1.4.1.3704.1.4"] == values["1.3.6.1.4.1.3704.1.4"]
    assert len(found["1.3.6.1.4.1.3704.1.4"]) == 64


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=70))
def test_random_input_raises_only_der_error(data: bytes, offset: int) -> None:
    try:
        tag, value, end = read_tlv(data, offset)
    except DerError:
        return
    assert offset < end <= len(data)
    assert data[offset] == tag
    assert data[end - len(value) : end] == value
    for decoder in (decode_integer, decode_oid):
        with contextlib.suppress(DerError):
            decoder(value)


@given(st.lists(st.integers(min_value=0, max_value=1 << 70), min_size=1, max_size=8))
def test_oid_round_trip_property(arcs: list[int]) -> None:
    dotted = ".".join(str(arc) for arc in [1, 3, *arcs])
    assert decode_oid(encode_oid(dotted)) == dotted
