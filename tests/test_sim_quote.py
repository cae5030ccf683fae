"""Simulated quotes: same layout and same verifier as real TDX quotes, only the root differs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from attestation.formats.dcap import SgxReportBody, TdReport10, parse_dcap_quote
from attestation.formats.dcap_encode import (
    build_tdx_v4_quote,
    encode_sgx_report_body,
    encode_td_report10,
)
from attestation.trust import certificates_from_bytes, default_trust_anchors
from attestation.verifier import verify_evidence
from enclave.platform.sim_pki import SimPki, create_sim_pki
from tests.manifest import vector_bytes, vectors

NOW = datetime(2026, 11, 25, tzinfo=UTC)
_KEYS = (ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1()))

_TD_SIZES = {
    "tee_tcb_svn": 16, "mr_seam": 48, "mr_signer_seam": 48, "seam_attributes": 8,
    "td_attributes": 8, "xfam": 8, "mr_td": 48, "mr_config_id": 48, "mr_owner": 48,
    "mr_owner_config": 48, "rtmr0": 48, "rtmr1": 48, "rtmr2": 48, "rtmr3": 48, "report_data": 64,
}  # fmt: skip


def td_report(**overrides: bytes) -> TdReport10:
    values = {name: bytes(size) for name, size in _TD_SIZES.items()}
    values.update(overrides)
    return TdReport10(**values)


def qe_report() -> SgxReportBody:
    return SgxReportBody(
        cpu_svn=bytes(16), misc_select=bytes(4), isv_ext_prod_id=bytes(16),
        attributes=bytes(16), mr_enclave=bytes(32), mr_signer=bytes(32), config_id=bytes(64),
        isv_prod_id=2, isv_svn=1, config_svn=0, isv_family_id=bytes(16), report_data=bytes(64),
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SimPki:
    return create_sim_pki(tmp_path_factory.mktemp("sim") / "platform", now=NOW)


def sim_quote(pki: SimPki, body: TdReport10) -> bytes:
    return build_tdx_v4_quote(
        body=body,
        attestation_key=pki.attestation_key,
        qe_report=qe_report(),
        pck_key=pki.pck_key,
        pck_chain_pem=pki.pck_chain_pem,
    )


def test_sim_quote_is_labelled_sim_and_refused_without_its_root(pki: SimPki) -> None:
    mr_td = bytes(range(48))
    report = verify_evidence(sim_quote(pki, td_report(mr_td=mr_td)), at=NOW)
    assert report.tee == "sim"
    assert report.valid is False
    assert report.measurements["mr_td"] == mr_td.hex()
    failed = {check.name: check.detail for check in report.failed_checks()}
    assert set(failed) == {"pck_chain_root_pinned"}
    assert "--trust-root" in failed["pck_chain_root_pinned"]


def test_sim_quote_verifies_when_its_root_is_named(pki: SimPki) -> None:
    anchors = default_trust_anchors().with_extra_roots(
        certificates_from_bytes(pki.root_pem, source="sim root")
    )
    report_data = bytes(range(64))
    quote = sim_quote(pki, td_report(report_data=report_data, rtmr1=b"\x11" * 48))
    report = verify_evidence(quote, at=NOW, anchors=anchors)
    assert report.valid is True, report.error
    assert report.tee == "sim"
    assert report.report_data == report_data.hex()
    assert report.measurements["rtmr1"] == "11" * 48
    assert [check.name for check in report.checks] == [
        "quote_signature",
        "qe_report_data_binds_attestation_key",
        "qe_report_signature",
        "pck_chain_signatures",
        "pck_chain_root_pinned",
        "pck_chain_validity",
    ]


def test_sim_quote_body_change_fails_the_quote_signature(pki: SimPki) -> None:
    anchors = default_trust_anchors().with_extra_roots(
        certificates_from_bytes(pki.root_pem, source="sim root")
    )
    quote = bytearray(sim_quote(pki, td_report()))
    quote[48 + 136] ^= 0xFF  # first byte of mr_td
    report = verify_evidence(bytes(quote), at=NOW, anchors=anchors)
    assert {check.name for check in report.failed_checks()} == {"quote_signature"}


def test_sim_platform_files_are_private(pki: SimPki) -> None:
    directory = Path(pki.directory)
    assert directory.stat().st_mode & 0o777 == 0o700
    for name in ("pck-key.pem", "attestation-key.pem", "sealing-secret"):
        assert (directory / name).stat().st_mode & 0o777 == 0o600, name
    assert "PRIVATE" not in repr(pki) and str(directory) in repr(pki)


@pytest.mark.parametrize(
    "vector", [v for v in vectors("intel-tdx-quote") if v["version"] == 4], ids=lambda v: v["file"]
)
def test_encoding_a_parsed_td_report_gives_back_its_bytes(vector: dict[str, object]) -> None:
    data = vector_bytes(str(vector["file"]))
    quote = parse_dcap_quote(data)
    assert isinstance(quote.body, TdReport10)
    assert encode_td_report10(quote.body) == data[48:632]
    assert encode_sgx_report_body(quote.qe_report) == quote.qe_report_raw


@settings(max_examples=50, deadline=None)
@given(
    st.fixed_dictionaries(
        {name: st.binary(min_size=n, max_size=n) for name, n in _TD_SIZES.items()}
    )
)
def test_td_report_round_trips(fields: dict[str, bytes]) -> None:
    body = TdReport10(**fields)
    parsed = parse_dcap_quote(
        build_tdx_v4_quote(
            body=body,
            attestation_key=_KEYS[0],
            qe_report=qe_report(),
            pck_key=_KEYS[1],
            pck_chain_pem=b"",
        )
    )
    assert parsed.body == body


def test_cli_refuses_a_sim_quote_unless_its_root_is_passed(
    pki: SimPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from host.cli import main

    quote_file = tmp_path / "quote.bin"
    quote_file.write_bytes(sim_quote(pki, td_report(mr_td=b"\x42" * 48)))
    at = "2026-11-25T00:00:00Z"
    assert main(["verify", "quote", str(quote_file), "--at", at, "--json"]) == 1
    refused = json.loads(capsys.readouterr().out)
    assert refused["tee"] == "sim"
    assert refused["valid"] is False
    assert refused["measurements"]["mr_td"] == "42" * 48
    root = str(pki.directory / "root.pem")
    assert (
        main(["verify", "quote", str(quote_file), "--at", at, "--trust-root", root, "--json"]) == 0
    )
    accepted = json.loads(capsys.readouterr().out)
    assert accepted["tee"] == "sim"
    assert accepted["valid"] is True
    assert main(["verify", "quote", str(quote_file), "--at", at, "--trust-root", root]) == 0
    assert "sim" in capsys.readouterr().out.lower()
