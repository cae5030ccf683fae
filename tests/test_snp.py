"""AMD SEV-SNP attestation reports: parsing, verification, mutations and hostile input."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from attestation.errors import SnpFormatError
from attestation.formats.snp import REPORT_SIZE, SIGNED_SIZE, parse_snp_report
from attestation.report import VerificationReport
from attestation.trust import TrustAnchors, default_trust_anchors, quiet_serial_number_warning
from attestation.verify_snp import NO_VCEK_DETAIL, verify_snp_report
from tests.manifest import at, vector_bytes, vector_ids, vectors

SNP = vectors("amd-sev-snp-attestation-report")
ANCHORS = default_trust_anchors()
CHECKS = [
    "report_signature",
    "vcek_chain_signatures",
    "vcek_chain_root_pinned",
    "vcek_chain_validity",
    "vcek_chip_id",
    "vcek_tcb",
]
# Manifest values that disagree with the ABI specification, with the bytes they were read from
# instead. The SNP ABI spec (Table 22) puts LAUNCH_TCB at 1F0h..1F7h; the manifest's value is
# the (reserved in version 2) bytes 1F8h..1FFh. A value is skipped only while it still equals
# those other bytes, so a corrected manifest is checked strictly again.
MANIFEST_ERRATA = {"launch_tcb_hex": (0x1F8, 0x200)}
# Stands for "the VCEK named by the vector's collateral" in _verify.
_VECTOR_VCEK = b"(the vector's VCEK)"


def _vcek(vector: dict[str, Any]) -> bytes:
    return vector_bytes(vector["collateral"]["vcek"])


def _verify(
    data: bytes,
    vector: dict[str, Any],
    *,
    when: str | None = None,
    anchors: TrustAnchors = ANCHORS,
    vcek: bytes | None = _VECTOR_VCEK,
) -> VerificationReport:
    return verify_snp_report(
        data,
        at=at(when or vector["expected"]["verify_at"]),
        anchors=anchors,
        vcek_der=_vcek(vector) if vcek is _VECTOR_VCEK else vcek,
    )


def _failed(report: VerificationReport) -> set[str]:
    return {check.name for check in report.failed_checks()}


def _passed(report: VerificationReport, name: str) -> bool:
    check = report.check(name)
    assert check is not None, f"check {name} did not run"
    return check.passed


def _flip(data: bytes, position: int) -> bytes:
    mutated = bytearray(data)
    mutated[position] ^= 0x01
    return bytes(mutated)


def _self_signed_root(name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * 30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA384())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


# --- The real vector ----------------------------------------------------------------------


def test_there_is_an_snp_vector() -> None:
    assert len(SNP) == 1


@pytest.mark.parametrize("vector", SNP, ids=vector_ids(SNP))
def test_fields_equal_manifest(vector: dict[str, Any]) -> None:
    data = vector_bytes(vector["file"])
    report = _verify(data, vector)
    for name, expected in vector["expected_fields"].items():
        if name in MANIFEST_ERRATA:
            start, end = MANIFEST_ERRATA[name]
            if expected == data[start:end].hex():
                continue
        assert report.fields[name] == expected, name


@pytest.mark.parametrize("vector", SNP, ids=vector_ids(SNP))
def test_launch_tcb_is_read_at_the_spec_offset(vector: dict[str, Any]) -> None:
    data = vector_bytes(vector["file"])
    report = _verify(data, vector)
    assert report.fields["launch_tcb_hex"] == data[0x1F0:0x1F8].hex() == "0200000000000544"
    assert parse_snp_report(data).launch_tcb == data[0x1F0:0x1F8]


@pytest.mark.parametrize("vector", SNP, ids=vector_ids(SNP))
def test_verdict_and_named_checks(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    report = _verify(vector_bytes(vector["file"]), vector)
    assert [check.name for check in report.checks] == CHECKS
    assert _passed(report, "report_signature") is expected["report_signature_valid_with_vcek"]
    chain_ok = all(_passed(report, name) for name in CHECKS[1:3])
    assert chain_ok is expected["vcek_ask_ark_chain_valid"]
    assert _passed(report, "vcek_chain_validity") is expected["chain_valid_at_verify_at"]
    assert _passed(report, "vcek_chip_id") is expected["vcek_chip_id_matches_report"]
    assert _passed(report, "vcek_tcb")
    assert report.valid
    assert report.error is None


@pytest.mark.parametrize(
    ("vector", "when", "valid"),
    [(v, when, valid) for v in SNP for when, valid in v["expected"]["chain_valid_at"].items()],
    ids=[f"{v['file']}@{when}" for v in SNP for when in v["expected"]["chain_valid_at"]],
)
def test_chain_validity_at_each_time(vector: dict[str, Any], when: str, valid: bool) -> None:
    report = _verify(vector_bytes(vector["file"]), vector, when=when)
    assert _passed(report, "vcek_chain_validity") is valid
    assert report.valid is valid


@pytest.mark.parametrize("vector", SNP, ids=vector_ids(SNP))
def test_report_summary(vector: dict[str, Any]) -> None:
    fields = vector["expected_fields"]
    report = _verify(vector_bytes(vector["file"]), vector)
    assert (report.tee, report.version) == ("sev-snp", fields["version"])
    assert report.report_data == fields["report_data"]
    assert report.measurements == {"measurement": fields["measurement"]}
    # POLICY 0xb0000: bits 16 (SMT), 17 (reserved, 1) and 19 (DEBUG) are set.
    assert report.debug is True
    assert (report.tcb_status, report.advisory_ids, report.policy_ok) == (None, [], None)
    assert report.evidence_time is None
    assert set(vector["expected_fields"]) <= set(report.fields)


@pytest.mark.parametrize("vector", SNP, ids=vector_ids(SNP))
def test_parsed_model(vector: dict[str, Any]) -> None:
    data = vector_bytes(vector["file"])
    report = parse_snp_report(data)
    assert report.signed_bytes == data[:SIGNED_SIZE]
    assert report.signature_r == data[0x2A0:0x2E8]
    assert report.signature_s == data[0x2E8:0x330]
    assert (report.current_major, report.current_minor, report.current_build) == (1, 49, 3)
    assert (report.committed_major, report.committed_minor, report.committed_build) == (1, 49, 3)
    assert (report.author_key_en, report.mask_chip_key, report.signing_key) == (False, False, 0)
    assert (report.cpuid_fam_id, report.launch_mit_vector) == (None, None)  # version 2


def test_without_vcek_only_the_signature_check_runs_and_fails() -> None:
    vector = SNP[0]
    report = _verify(vector_bytes(vector["file"]), vector, vcek=None)
    assert [(c.name, c.passed, c.detail) for c in report.checks] == [
        ("report_signature", False, NO_VCEK_DETAIL)
    ]
    assert not report.valid
    assert report.error == f"report_signature: {NO_VCEK_DETAIL}"


def test_vcek_as_pem_verifies_like_der() -> None:
    vector = SNP[0]
    with quiet_serial_number_warning():
        pem = x509.load_der_x509_certificate(_vcek(vector)).public_bytes(serialization.Encoding.PEM)
    data = vector_bytes(vector["file"])
    assert _verify(data, vector, vcek=pem) == _verify(data, vector)


def test_unreadable_vcek_fails_without_raising() -> None:
    vector = SNP[0]
    report = _verify(vector_bytes(vector["file"]), vector, vcek=b"not a certificate")
    assert _failed(report) == {"report_signature"}
    assert "cannot be read" in report.checks[0].detail


def test_trailing_bytes_are_ignored() -> None:
    vector = SNP[0]
    data = vector_bytes(vector["file"])
    assert _verify(data + b"\x00" * 100, vector) == _verify(data, vector)


# --- Mutations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "position", [0x04, 0x10, 0x50, 0x90, 0xC0, 0x140, 0x1E8, 0x29F], ids=lambda p: hex(p)
)
def test_flipped_signed_byte_fails_report_signature(position: int) -> None:
    vector = SNP[0]
    report = _verify(_flip(vector_bytes(vector["file"]), position), vector)
    assert _failed(report) == {"report_signature"}


def test_flipped_chip_id_fails_signature_and_chip_id() -> None:
    vector = SNP[0]
    report = _verify(_flip(vector_bytes(vector["file"]), 0x1A0 + 5), vector)
    assert _failed(report) == {"report_signature", "vcek_chip_id"}


def test_flipped_reported_tcb_fails_signature_and_tcb() -> None:
    vector = SNP[0]
    report = _verify(_flip(vector_bytes(vector["file"]), 0x180 + 7), vector)  # ucodeSPL
    assert _failed(report) == {"report_signature", "vcek_tcb"}
    check = report.check("vcek_tcb")
    assert check is not None
    assert "ucodeSPL is 68 in the VCEK but 69" in check.detail


@pytest.mark.parametrize("position", [0x2A0, 0x2A0 + 47, 0x2E8, 0x2E8 + 20], ids=hex)
def test_flipped_signature_byte_fails_report_signature(position: int) -> None:
    vector = SNP[0]
    report = _verify(_flip(vector_bytes(vector["file"]), position), vector)
    assert _failed(report) == {"report_signature"}


def test_other_signature_algo_fails_report_signature() -> None:
    vector = SNP[0]
    mutated = bytearray(vector_bytes(vector["file"]))
    mutated[0x34] = 2
    report = _verify(bytes(mutated), vector)
    assert _failed(report) == {"report_signature"}
    assert "signature_algo is 2" in report.checks[0].detail


def test_wrong_ark_fails_root_pinning() -> None:
    vector = SNP[0]
    fake_ark = _self_signed_root("ARK-Milan")
    anchors = TrustAnchors(
        intel_roots=ANCHORS.intel_roots,
        nitro_roots=ANCHORS.nitro_roots,
        amd_arks=frozenset([fake_ark]),
        amd_asks=ANCHORS.amd_asks,
    )
    report = _verify(vector_bytes(vector["file"]), vector, anchors=anchors)
    assert not _passed(report, "vcek_chain_root_pinned")
    # No trusted root issued the ASK, so the chain ends at the ASK, which is not self-signed.
    assert not _passed(report, "vcek_chain_signatures")
    assert _passed(report, "report_signature")
    assert not report.valid


def test_wrong_ask_fails_chain_signatures() -> None:
    vector = SNP[0]
    anchors = TrustAnchors(
        intel_roots=ANCHORS.intel_roots,
        nitro_roots=ANCHORS.nitro_roots,
        amd_arks=ANCHORS.amd_arks,
        amd_asks=(_self_signed_root("SEV-Milan"),),
    )
    report = _verify(vector_bytes(vector["file"]), vector, anchors=anchors)
    assert not _passed(report, "vcek_chain_signatures")
    assert not _passed(report, "vcek_chain_root_pinned")


def test_ask_is_picked_among_several() -> None:
    vector = SNP[0]
    anchors = TrustAnchors(
        intel_roots=ANCHORS.intel_roots,
        nitro_roots=ANCHORS.nitro_roots,
        amd_arks=frozenset([*ANCHORS.amd_arks, _self_signed_root("ARK-Other")]),
        amd_asks=(_self_signed_root("SEV-Other"), *ANCHORS.amd_asks),
    )
    assert _verify(vector_bytes(vector["file"]), vector, anchors=anchors).valid


def test_vcek_of_another_report_fails_signature() -> None:
    vector = SNP[0]
    fake_vcek = _self_signed_root("SEV-VCEK")
    report = _verify(vector_bytes(vector["file"]), vector, vcek=fake_vcek)
    assert {"report_signature", "vcek_chain_signatures", "vcek_chip_id", "vcek_tcb"} <= _failed(
        report
    )


# --- Versions, truncation and random input ------------------------------------------------


def test_version_below_two_is_a_format_error() -> None:
    mutated = bytearray(vector_bytes(SNP[0]["file"]))
    mutated[0:4] = (1).to_bytes(4, "little")
    with pytest.raises(SnpFormatError, match="'version' must be 2 or later, found 1"):
        parse_snp_report(bytes(mutated))


def test_version_three_and_five_fields() -> None:
    mutated = bytearray(vector_bytes(SNP[0]["file"]))
    mutated[0:4] = (3).to_bytes(4, "little")
    mutated[0x188:0x18B] = bytes([0x19, 0x01, 0x01])
    mutated[0x1F8:0x200] = (0x5).to_bytes(8, "little")
    v3 = parse_snp_report(bytes(mutated))
    assert (v3.cpuid_fam_id, v3.cpuid_mod_id, v3.cpuid_step) == (0x19, 0x01, 0x01)
    assert v3.launch_mit_vector is None
    mutated[0:4] = (5).to_bytes(4, "little")
    v5 = parse_snp_report(bytes(mutated))
    assert (v5.launch_mit_vector, v5.current_mit_vector) == (5, 0)


def test_every_truncation_raises_format_error() -> None:
    data = vector_bytes(SNP[0]["file"])
    assert len(data) == REPORT_SIZE
    for length in range(len(data)):
        with pytest.raises(SnpFormatError, match="truncated"):
            parse_snp_report(data[:length])


def test_non_bytes_input_is_a_format_error() -> None:
    with pytest.raises(SnpFormatError, match="expected bytes"):
        parse_snp_report(1184)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=1400))
def test_random_bytes_raise_only_format_error(data: bytes) -> None:
    vector = SNP[0]
    try:
        report = _verify(data, vector)
    except SnpFormatError:
        return
    assert not _passed(report, "report_signature")
    assert not report.valid
