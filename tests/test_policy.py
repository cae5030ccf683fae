"""Validation policy: the TOML schema, its error messages, each rule on real and fake reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attestation.checks import CheckName
from attestation.errors import PolicyFormatError
from attestation.policy import ValidationPolicy, load_policy, policy_from_mapping, validate
from attestation.report import Check, VerificationReport
from attestation.timefmt import format_time
from attestation.verifier import verify_evidence
from tests.manifest import VECTORS_DIR, at, vector_bytes, vectors

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_POLICY = REPO / "examples" / "policy-tdx.toml"
NOW = datetime(2025, 7, 1, tzinfo=UTC)

MR_TD = "ab" * 48
OTHER = "cd" * 48


def fake_report(**changes: Any) -> VerificationReport:
    """A verified TDX report with chosen fields, for rules that need no real evidence."""
    base: dict[str, Any] = {
        "valid": True,
        "tee": "tdx",
        "version": 4,
        "report_data": "11" * 32 + "22" * 32,
        "measurements": {"mr_td": MR_TD, **{f"rtmr{i}": f"{i:02x}" * 48 for i in range(4)}},
        "debug": False,
        "fields": {},
        "tcb_status": "UpToDate",
        "advisory_ids": [],
        "policy_ok": None,
        "checks": [Check(name=CheckName.QUOTE_SIGNATURE, passed=True, detail="ok")],
        "error": None,
    }
    base.update(changes)
    return VerificationReport(**base)


def policy(**document: Any) -> ValidationPolicy:
    return policy_from_mapping(document, source="test.toml")


def check_of(report: VerificationReport, name: str) -> Check:
    check = report.check(name)
    assert check is not None, f"{name} did not run: {[c.name for c in report.checks]}"
    return check


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


# --- loading -------------------------------------------------------------------------


def test_empty_file_gives_the_strict_defaults(tmp_path: Path) -> None:
    loaded = load_policy(write(tmp_path, ""))
    assert loaded.accepted_tcb_statuses == ("UpToDate",)
    assert loaded.allow_debug is False
    assert loaded.max_age_seconds is None
    assert loaded.report_data is None
    assert (loaded.tdx, loaded.sgx, loaded.nitro, loaded.sev_snp) == ((), (), (), ())


def test_example_policy_loads_and_is_frozen() -> None:
    loaded = load_policy(EXAMPLE_POLICY)
    assert (
        loaded.tdx[0].mr_td == vectors_by_file()["tdx-v4-phala-1.bin"]["expected_fields"]["mr_td"]
    )
    with pytest.raises(ValueError, match="frozen"):
        loaded.allow_debug = True


def test_hex_is_normalized_to_lowercase_and_0x_is_accepted(tmp_path: Path) -> None:
    loaded = load_policy(write(tmp_path, f'[[tdx]]\nmr_td = "0x{MR_TD.upper()}"\n'))
    assert loaded.tdx[0].mr_td == MR_TD


def test_every_table_kind_loads(tmp_path: Path) -> None:
    text = f"""
accepted_tcb_statuses = ["UpToDate", "SWHardeningNeeded"]
allow_debug = true
max_age_seconds = 300
[report_data]
prefix = "{"00" * 32}"
[[tdx]]
mr_td = "{MR_TD}"
rtmr3 = "{OTHER}"
[[sgx]]
mr_enclave = "{"aa" * 32}"
[[sgx]]
mr_signer = "{"bb" * 32}"
isv_prod_id = 7
min_isv_svn = 2
[[nitro]]
pcrs = {{ 0 = "{MR_TD}", 8 = "{OTHER}" }}
[[sev_snp]]
measurement = "{MR_TD}"
"""
    loaded = load_policy(write(tmp_path, text))
    assert loaded.nitro[0].pcrs == {0: MR_TD, 8: OTHER}
    assert loaded.sgx[1].isv_prod_id == 7
    assert loaded.max_age_seconds == 300


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f'[[tdx]]\nmr_tdd = "{MR_TD}"\n', "tdx[0].mr_tdd: unknown key; allowed here: mr_td"),
        ("alow_debug = true\n", "alow_debug: unknown key; allowed here: accepted_tcb_statuses"),
        ('[[tdx]]\nmr_td = "abcd"\n', "tdx[0].mr_td: expected 48 bytes (96 hex digits), found 2"),
        ('[[tdx]]\nmr_td = "xyz"\n', "tdx[0].mr_td: expected hex digits, found 'xyz'"),
        ("[[tdx]]\nrtmr0 = 1\n", "tdx[0].mr_td: required key is missing"),
        ('allow_debug = "no"\n', "allow_debug: Input should be a valid boolean; found str 'no'"),
        ("max_age_seconds = 0\n", "max_age_seconds: Input should be greater than 0"),
        ('accepted_tcb_statuses = ["UpToDat"]\n', "unknown TCB status UpToDat; known:"),
        ("accepted_tcb_statuses = []\n", "expected at least one TCB status"),
        ('[[sgx]]\nmr_signer = "' + "bb" * 32 + '"\n', "only mr_signer also needs isv_prod_id"),
        ("[[sgx]]\nisv_prod_id = 1\n", "needs mr_enclave, mr_signer or both"),
        ('[[nitro]]\npcrs = { x = "00" }\n', "PCR index must be a whole number from 0 to 31"),
        ('[[nitro]]\npcrs = { 3 = "00" }\n', "nitro[0].pcrs.3: expected 48 bytes"),
        ("[report_data]\n", "[report_data] needs exactly one of exact or prefix"),
        ('[report_data]\nprefix = "00"\n', "report_data.prefix: expected 32 bytes"),
        ('[tdx]\nmr_td = "00"\n', "tdx: expected a list"),
    ],
)
def test_schema_errors_name_the_key_and_the_problem(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyFormatError) as raised:
        load_policy(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: invalid policy")
    assert expected in message


def test_all_problems_are_listed_one_per_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'allow_debug = 1\nfoo = 2\n[[tdx]]\nmr_td = "00"\n')
    with pytest.raises(PolicyFormatError, match=r"\(3 problems\)") as raised:
        load_policy(path)
    assert len(str(raised.value).splitlines()) == 4


def test_malformed_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[[tdx]\nmr_td = \n")
    with pytest.raises(PolicyFormatError, match=r"not valid TOML: .*line 1"):
        load_policy(path)


def test_unreadable_and_binary_files_are_policy_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyFormatError, match="cannot read policy"):
        load_policy(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyFormatError, match="not UTF-8"):
        load_policy(binary)


# --- the rules on fake reports ---------------------------------------------------------


def test_validate_returns_a_copy_with_policy_checks_appended() -> None:
    report = fake_report()
    judged = validate(report, policy(tdx=[{"mr_td": MR_TD}]), at=NOW)
    assert report.policy_ok is None
    assert judged.policy_ok is True
    assert judged.checks[0] == report.checks[0]
    names = [check.name for check in judged.checks[1:]]
    assert names == ["policy_verified", "policy_measurement", "policy_tcb_status", "policy_debug"]


def test_measurements_compare_case_insensitively_and_all_pinned_rtmrs_count() -> None:
    upper = fake_report(measurements={**fake_report().measurements, "mr_td": MR_TD.upper()})
    assert validate(upper, policy(tdx=[{"mr_td": MR_TD}]), at=NOW).policy_ok
    wrong_rtmr = policy(tdx=[{"mr_td": MR_TD, "rtmr2": OTHER}])
    judged = validate(fake_report(), wrong_rtmr, at=NOW)
    assert judged.policy_ok is False
    detail = check_of(judged, "policy_measurement").detail
    assert f"tdx[0]: rtmr2 expected {OTHER}, found {'02' * 48}" in detail


def test_any_one_allowed_set_may_match() -> None:
    sets = [{"mr_td": OTHER}, {"mr_td": MR_TD, "rtmr0": "00" * 48}]
    judged = validate(fake_report(), policy(tdx=sets), at=NOW)
    assert check_of(judged, "policy_measurement").detail == "matches allowed set tdx[1]"


@pytest.mark.parametrize("tee", ["tdx", "sgx", "nitro", "sev-snp", "sim"])
def test_a_kind_without_allowed_sets_fails_closed(tee: str) -> None:
    judged = validate(fake_report(tee=tee), policy(), at=NOW)
    assert judged.policy_ok is False
    detail = check_of(judged, "policy_measurement").detail
    assert detail.startswith(f"policy allows no {tee} measurements")


def test_simulated_quotes_are_matched_against_the_tdx_sets() -> None:
    sim = fake_report(tee="sim")
    assert validate(sim, policy(tdx=[{"mr_td": MR_TD}]), at=NOW).policy_ok is True
    judged = validate(sim, policy(sgx=[{"mr_enclave": "00" * 32}]), at=NOW)
    assert "[[tdx]]" in check_of(judged, "policy_measurement").detail


def sgx_report(prod_id: int = 7, svn: int = 3) -> VerificationReport:
    return fake_report(
        tee="sgx",
        version=3,
        measurements={"mr_enclave": "aa" * 32, "mr_signer": "bb" * 32},
        fields={"isv_prod_id": prod_id, "isv_svn": svn},
    )


@pytest.mark.parametrize(
    ("allowed", "ok", "why"),
    [
        ({"mr_enclave": "aa" * 32}, True, "matches"),
        ({"mr_signer": "bb" * 32, "isv_prod_id": 7, "min_isv_svn": 3}, True, "matches"),
        ({"mr_signer": "bb" * 32, "isv_prod_id": 8}, False, "isv_prod_id expected 8, found 7"),
        ({"mr_enclave": "aa" * 32, "min_isv_svn": 4}, False, "isv_svn expected >= 4, found 3"),
        ({"mr_enclave": "aa" * 32, "mr_signer": "cc" * 32}, False, "mr_signer expected cccc"),
    ],
)
def test_sgx_sets(allowed: dict[str, Any], ok: bool, why: str) -> None:
    judged = validate(sgx_report(), policy(sgx=[allowed]), at=NOW)
    assert judged.policy_ok is ok
    assert why in check_of(judged, "policy_measurement").detail


def test_tcb_status_rules() -> None:
    tdx = policy(tdx=[{"mr_td": MR_TD}])
    unknown = validate(fake_report(tcb_status=None), tdx, at=NOW)
    assert check_of(unknown, "policy_tcb_status").detail.startswith(
        "TCB status unknown: pass collateral"
    )
    outdated = validate(fake_report(tcb_status="OutOfDate"), tdx, at=NOW)
    assert outdated.policy_ok is False
    assert "OutOfDate not accepted (accepted: UpToDate)" in outdated.checks[-2].detail
    lenient = policy(tdx=[{"mr_td": MR_TD}], accepted_tcb_statuses=["UpToDate", "OutOfDate"])
    assert validate(fake_report(tcb_status="OutOfDate"), lenient, at=NOW).policy_ok is True


@pytest.mark.parametrize("tee", ["nitro", "sev-snp"])
def test_tcb_status_does_not_apply_where_the_vendor_publishes_none(tee: str) -> None:
    judged = validate(fake_report(tee=tee, tcb_status=None), policy(), at=NOW)
    check = check_of(judged, "policy_tcb_status")
    assert check.passed
    assert check.detail.startswith("not applicable")


def test_debug_is_forbidden_unless_allowed() -> None:
    debug = fake_report(debug=True)
    judged = validate(debug, policy(tdx=[{"mr_td": MR_TD}]), at=NOW)
    assert judged.policy_ok is False
    assert "allow_debug = false" in check_of(judged, "policy_debug").detail
    allowed = policy(tdx=[{"mr_td": MR_TD}], allow_debug=True)
    assert validate(debug, allowed, at=NOW).policy_ok is True


def test_report_data_exact_and_prefix_with_nonce() -> None:
    report = fake_report()
    base: dict[str, Any] = {"tdx": [{"mr_td": MR_TD}]}
    exact = policy(**base, report_data={"exact": report.report_data.upper()})
    assert validate(report, exact, at=NOW).policy_ok is True
    wrong = policy(**base, report_data={"exact": "11" * 64})
    assert (
        "report_data expected 1111"
        in check_of(validate(report, wrong, at=NOW), "policy_report_data").detail
    )

    prefix = policy(**base, report_data={"prefix": "11" * 32})
    assert validate(report, prefix, at=NOW, nonce=b"\x22" * 32).policy_ok is True
    assert validate(report, prefix, at=NOW, nonce=b"\x33" * 32).policy_ok is False
    missing = validate(report, prefix, at=NOW)
    assert "no nonce was given" in check_of(missing, "policy_report_data").detail


def test_evidence_age() -> None:
    made = int(NOW.timestamp())
    nitro = fake_report(
        tee="nitro",
        version=None,
        measurements={"pcr0": MR_TD},
        tcb_status=None,
        evidence_time=made,
    )
    allowed = {"nitro": [{"pcrs": {"0": MR_TD}}]}
    fresh = policy(**allowed, max_age_seconds=60)
    assert validate(nitro, fresh, at=NOW + timedelta(seconds=60)).policy_ok is True
    stale = validate(nitro, fresh, at=NOW + timedelta(seconds=61))
    assert check_of(stale, "policy_evidence_age").detail == "evidence is 61 s old (max 60 s)"
    future = validate(nitro, fresh, at=NOW - timedelta(seconds=5))
    assert "5 s after the verification time" in check_of(future, "policy_evidence_age").detail

    untimed = validate(fake_report(), policy(tdx=[{"mr_td": MR_TD}], max_age_seconds=60), at=NOW)
    detail = check_of(untimed, "policy_evidence_age").detail
    assert untimed.policy_ok is False
    assert "freshness must come from a nonce in report_data" in detail


@pytest.mark.parametrize("timestamp_ms", [2**64 - 1, 2**63])
def test_evidence_age_fails_without_crashing_for_a_time_datetime_cannot_hold(
    timestamp_ms: int,
) -> None:
    # An unsigned Nitro document may carry any uint64 millisecond timestamp, and the age
    # rule runs even on evidence that did not verify.
    forged = fake_report(
        valid=False,
        tee="nitro",
        version=None,
        measurements={"pcr0": MR_TD},
        tcb_status=None,
        evidence_time=timestamp_ms // 1000,
    )
    judged = validate(forged, policy(nitro=[{"pcrs": {"0": MR_TD}}], max_age_seconds=60), at=NOW)
    age = check_of(judged, "policy_evidence_age")
    assert judged.policy_ok is False
    assert not age.passed
    expected_ahead = timestamp_ms // 1000 - int(NOW.timestamp())
    assert age.detail == (
        f"evidence claims to be made {expected_ahead} s after the verification time"
    )


def test_evidence_age_truncates_a_fraction_of_a_second_toward_zero() -> None:
    made = int(NOW.timestamp())
    nitro = fake_report(
        tee="nitro",
        version=None,
        measurements={"pcr0": MR_TD},
        tcb_status=None,
        evidence_time=made,
    )
    fresh = policy(nitro=[{"pcrs": {"0": MR_TD}}], max_age_seconds=60)
    early = validate(nitro, fresh, at=NOW - timedelta(milliseconds=500))
    assert check_of(early, "policy_evidence_age").detail == "evidence is 0 s old (max 60 s)"
    late = validate(nitro, fresh, at=NOW + timedelta(seconds=60, milliseconds=999))
    assert check_of(late, "policy_evidence_age").detail == "evidence is 60 s old (max 60 s)"


def test_evidence_that_did_not_verify_never_passes() -> None:
    judged = validate(fake_report(valid=False), policy(tdx=[{"mr_td": MR_TD}]), at=NOW)
    assert judged.policy_ok is False
    assert not check_of(judged, "policy_verified").passed


def test_validate_refuses_a_naive_time_and_a_short_nonce() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validate(fake_report(), policy(), at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="nonce: expected 32 bytes, found 3"):
        validate(fake_report(), policy(), at=NOW, nonce=b"abc")


@given(mr_td=st.binary(min_size=48, max_size=48), other=st.binary(min_size=48, max_size=48))
def test_a_pinned_mr_td_matches_exactly_itself(mr_td: bytes, other: bytes) -> None:
    allowed = policy(tdx=[{"mr_td": mr_td.hex().upper()}])
    report = fake_report(measurements={"mr_td": other.hex()})
    assert validate(report, allowed, at=NOW).policy_ok is (mr_td == other)


# --- the rules on real evidence --------------------------------------------------------


def vectors_by_file() -> dict[str, dict[str, Any]]:
    return {entry["file"]: entry for entry in vectors()}


def verified(name: str, *collateral: str, when: str | None = None) -> VerificationReport:
    entry = vectors_by_file()[name]
    return verify_evidence(
        vector_bytes(name),
        at=at(when or entry["expected"]["verify_at"]),
        collateral=[(VECTORS_DIR / file).read_bytes() for file in collateral],
    )


def test_example_policy_accepts_the_bundled_tdx_quote_with_its_collateral() -> None:
    report = verified("tdx-v4-phala-1.bin", "collateral-phala-tdx-b0c06f000000.json")
    judged = validate(report, load_policy(EXAMPLE_POLICY), at=at("2025-07-01T00:00:00Z"))
    assert judged.valid
    assert judged.policy_ok is True, judged.failed_checks()


def test_real_sgx_quote_with_hardening_needed_is_refused_by_default() -> None:
    entry = vectors_by_file()["sgx-v3-phala-1.bin"]
    fields = entry["expected_fields"]
    report = verified("sgx-v3-phala-1.bin", "collateral-phala-sgx-00a067110000.json")
    allowed = {
        "sgx": [
            {
                "mr_enclave": fields["mr_enclave"],
                "mr_signer": fields["mr_signer"],
                "isv_prod_id": fields["isv_prod_id"],
                "min_isv_svn": fields["isv_svn"],
            }
        ]
    }
    when = at(entry["expected"]["verify_at"])
    strict = validate(report, policy(**allowed), at=when)
    assert strict.policy_ok is False
    assert [check.name for check in strict.failed_checks()] == ["policy_tcb_status"]
    statuses = ["UpToDate", "ConfigurationAndSWHardeningNeeded"]
    lenient = policy(**allowed, accepted_tcb_statuses=statuses)
    assert validate(report, lenient, at=when).policy_ok is True


def test_real_nitro_documents_debug_and_age() -> None:
    entry = vectors_by_file()["nitro-evervault-2.cbor"]  # a debug-mode enclave
    report = verified("nitro-evervault-2.cbor")
    assert report.valid
    assert report.debug
    assert report.evidence_time is not None
    expected_pcrs = entry["expected_fields"]["pcrs"]
    pcrs = {"0": expected_pcrs["0"], "4": expected_pcrs["4"]}
    when = at(entry["expected"]["verify_at"])
    forbidden = validate(report, policy(nitro=[{"pcrs": pcrs}]), at=when)
    assert [check.name for check in forbidden.failed_checks()] == ["policy_debug"]
    allowed = policy(nitro=[{"pcrs": pcrs}], allow_debug=True, max_age_seconds=60)
    assert validate(report, allowed, at=when).policy_ok is True
    later = when + timedelta(minutes=5)
    aged = validate(verified("nitro-evervault-2.cbor", when=format_time(later)), allowed, at=later)
    assert aged.valid
    assert [check.name for check in aged.failed_checks()] == ["policy_evidence_age"]


def test_real_snp_report_measurement() -> None:
    entry = vectors_by_file()["sev-snp-go-sev-guest-1.bin"]
    report = verified("sev-snp-go-sev-guest-1.bin", entry["collateral"]["vcek"])
    allowed = policy(
        sev_snp=[{"measurement": entry["expected_fields"]["measurement"]}], allow_debug=True
    )
    judged = validate(report, allowed, at=at(entry["expected"]["verify_at"]))
    assert judged.policy_ok is True, judged.failed_checks()
