"""The SGX (Gramine) backend against a fake /dev/attestation directory holding real SGX quotes.

A plain file cannot compute a quote, so the fake's `quote` file holds a real vector's quote
up front; the tests check what the backend wrote to `user_report_data` and what it read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from attestation.formats.dcap import parse_dcap_quote
from enclave.platform.base import REPORT_DATA_SIZE, Platform, PlatformError
from enclave.platform.sgx import SgxPlatform
from tests.manifest import vector_bytes, vector_ids, vectors

SGX = vectors("intel-sgx-quote")
QUOTE = vector_bytes("sgx-v3-phala-1.bin")
REPORT_DATA = bytes(range(0x10, 0x50))
KEY = bytes(range(0xE0, 0xF0))


def fake_attestation_dir(
    base: Path,
    quote: bytes = QUOTE,
    attestation_type: bytes | None = b"dcap",
    key: bytes | None = KEY,
) -> Path:
    """A stand-in for Gramine's /dev/attestation; None leaves a file out."""
    (base / "keys").mkdir(parents=True)
    (base / "user_report_data").write_bytes(b"")
    (base / "quote").write_bytes(quote)
    if attestation_type is not None:
        (base / "attestation_type").write_bytes(attestation_type)
    if key is not None:
        (base / "keys" / "_sgx_mrenclave").write_bytes(key)
    return base


@pytest.fixture
def device(tmp_path: Path) -> Path:
    return fake_attestation_dir(tmp_path / "dev" / "attestation")


def test_satisfies_the_platform_protocol(device: Path) -> None:
    platform: Platform = SgxPlatform(device)
    assert (platform.name, platform.simulated) == ("sgx", False)


def test_quote_writes_exactly_the_report_data_and_returns_the_quote(device: Path) -> None:
    quote = SgxPlatform(device).quote(REPORT_DATA)
    assert (device / "user_report_data").read_bytes() == REPORT_DATA
    assert quote == QUOTE
    assert parse_dcap_quote(quote).header.version == 3


def test_a_second_quote_overwrites_the_report_data(device: Path) -> None:
    platform = SgxPlatform(device)
    platform.quote(REPORT_DATA)
    platform.quote(bytes(REPORT_DATA_SIZE))
    assert (device / "user_report_data").read_bytes() == bytes(REPORT_DATA_SIZE)


@pytest.mark.parametrize("size", [0, 32, 63, 65, 128])
def test_wrong_size_is_refused_before_touching_the_device(device: Path, size: int) -> None:
    with pytest.raises(PlatformError, match=f"exactly 64 bytes; got {size}"):
        SgxPlatform(device).quote(bytes(size))
    assert (device / "user_report_data").read_bytes() == b""


@pytest.mark.parametrize("vector", SGX, ids=vector_ids(SGX))
def test_measurement_equals_the_vector(tmp_path: Path, vector: dict[str, Any]) -> None:
    device = fake_attestation_dir(tmp_path / "attestation", vector_bytes(vector["file"]))
    platform = SgxPlatform(device)
    fields = vector["expected_fields"]
    expected = {"mr_enclave": fields["mr_enclave"], "mr_signer": fields["mr_signer"]}

    assert platform.measurement().values == expected
    assert (device / "user_report_data").read_bytes() == bytes(REPORT_DATA_SIZE)
    (device / "quote").write_bytes(b"")  # a second device read would now fail
    assert platform.measurement().values == expected, "cached"


def test_measurement_refuses_a_tdx_quote(tmp_path: Path) -> None:
    device = fake_attestation_dir(tmp_path / "a", vector_bytes("tdx-v4-phala-1.bin"))
    with pytest.raises(PlatformError, match=r"TEE type 0x81; expected an SGX quote"):
        SgxPlatform(device).measurement()


def test_measurement_refuses_garbage(tmp_path: Path) -> None:
    device = fake_attestation_dir(tmp_path / "a", b"\x03\x00garbage")
    with pytest.raises(PlatformError, match="cannot be parsed"):
        SgxPlatform(device).measurement()


@pytest.mark.parametrize("kind", [b"epid", b"none", b"epid\n"])
def test_other_attestation_types_are_refused(tmp_path: Path, kind: bytes) -> None:
    device = fake_attestation_dir(tmp_path / "a", attestation_type=kind)
    with pytest.raises(PlatformError, match=r"'(epid|none)'; expected 'dcap'.*manifest"):
        SgxPlatform(device).quote(REPORT_DATA)
    assert (device / "user_report_data").read_bytes() == b"", "nothing written"


def test_dcap_with_a_trailing_newline_is_accepted(tmp_path: Path) -> None:
    device = fake_attestation_dir(tmp_path / "a", attestation_type=b"dcap\n")
    assert SgxPlatform(device).quote(REPORT_DATA) == QUOTE


def test_a_missing_attestation_type_is_tolerated(tmp_path: Path) -> None:
    device = fake_attestation_dir(tmp_path / "a", attestation_type=None)
    assert SgxPlatform(device).quote(REPORT_DATA) == QUOTE


def test_missing_device_is_explained(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match=r"/dev/attestation is not available at .*gramine-sgx"):
        SgxPlatform(tmp_path / "absent").quote(REPORT_DATA)


@pytest.mark.parametrize("name", ["user_report_data", "quote"])
def test_missing_files_are_named(device: Path, name: str) -> None:
    (device / name).unlink()
    with pytest.raises(PlatformError, match="does not exist: Gramine exposes it only") as caught:
        SgxPlatform(device).quote(REPORT_DATA)
    assert str(device / name) in str(caught.value)
    if name == "user_report_data":
        assert not (device / name).exists(), "the backend never creates a pseudo-file"


def test_empty_quote_is_refused(tmp_path: Path) -> None:
    device = fake_attestation_dir(tmp_path / "a", quote=b"")
    with pytest.raises(PlatformError, match="empty quote"):
        SgxPlatform(device).quote(REPORT_DATA)


def test_sealing_key_is_gramines_mrenclave_key(device: Path) -> None:
    assert SgxPlatform(device).sealing_key() == KEY


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "MRENCLAVE sealing key is not available at .*_sgx_mrenclave"),
        (KEY + KEY, "is 32 bytes; Gramine's _sgx_mrenclave key is 16"),
        (KEY[:15], "is 15 bytes"),
        (b"", "is 0 bytes"),
    ],
    ids=["missing", "long", "short", "empty"],
)
def test_sealing_key_is_refused_when_unusable(
    tmp_path: Path, key: bytes | None, message: str
) -> None:
    device = fake_attestation_dir(tmp_path / "a", key=key)
    with pytest.raises(PlatformError, match=message) as caught:
        SgxPlatform(device).sealing_key()
    text = str(caught.value)
    assert str(device / "keys" / "_sgx_mrenclave") in text
    assert KEY.hex() not in text and KEY[:15].hex() not in text and repr(KEY[:15]) not in text


def test_repr_shows_only_the_path(device: Path) -> None:
    platform = SgxPlatform(device)
    assert platform.sealing_key() == KEY
    assert repr(platform) == f"SgxPlatform(base={str(device)!r})"
