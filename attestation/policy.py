"""Validation: the caller's policy on the fields of evidence that has been verified.

Verification (`attestation.verifier`) says whether evidence is genuine. Validation says
whether its fields are acceptable to this caller: which measurements may run, which TCB
statuses are good enough, whether debug TEEs are allowed, what report_data must hold and how
old the evidence may be. The policy is read from TOML by `load_policy` (schema in
`attestation.policy_schema`) and applied by `validate`, which appends one `policy_*` check
per rule to a copy of the report and sets its `policy_ok`.

Simulated quotes (tee "sim") have the TDX layout, so they are matched against the `[[tdx]]`
sets; they verify at all only when the caller trusts the simulated root by name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

# The nonce after a report_data prefix is the one the identity binding appends.
from attestation.binding import NONCE_SIZE
from attestation.checks import CheckName
from attestation.policy_event_log import event_log_policy_checks
from attestation.policy_schema import (
    NitroMeasurementSet,
    ReportDataRule,
    SgxMeasurementSet,
    SnpMeasurementSet,
    TdxMeasurementSet,
    ValidationPolicy,
    load_policy,
    policy_from_mapping,
)
from attestation.report import Check, VerificationReport

# Kinds of evidence for which the vendor publishes no TCB status: the verified chain is all
# the platform evidence there is, so the status rule does not apply to them.
_NO_TCB_STATUS = {
    "nitro": "not applicable: AWS publishes no TCB status for Nitro; the chain to the "
    "pinned AWS root is the platform evidence",
    "sev-snp": "not applicable: AMD publishes no TCB status; the VCEK binds the report's "
    "reported_tcb (check vcek_tcb)",
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

__all__ = [
    "NONCE_SIZE",
    "ValidationPolicy",
    "load_policy",
    "policy_checks",
    "policy_from_mapping",
    "validate",
]


def validate(
    report: VerificationReport,
    policy: ValidationPolicy,
    *,
    at: datetime,
    nonce: bytes | None = None,
) -> VerificationReport:
    """Judge a verified report's fields by `policy`; return a copy with the verdict.

    The copy carries the report's checks followed by one `policy_*` check per rule
    (policy_verified, policy_measurement, policy_tcb_status, policy_debug, and
    policy_report_data / policy_evidence_age / policy_event_log, policy_compose_hash,
    policy_agent_events when the policy sets them), and `policy_ok`
    true only when every one of them passed. Evidence that did not verify never passes a
    policy. `nonce` is the 32 bytes the caller expects after a report_data `prefix`.

    Raises:
        ValueError: `at` has no time zone, or `nonce` is not 32 bytes.
    """
    if at.tzinfo is None:
        raise ValueError("validate: `at` must be timezone-aware")
    if nonce is not None and len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce: expected {NONCE_SIZE} bytes, found {len(nonce)}")
    checks = policy_checks(report, policy, at=at, nonce=nonce)
    return report.model_copy(
        update={
            "checks": [*report.checks, *checks],
            "policy_ok": all(check.passed for check in checks),
        }
    )


def policy_checks(
    report: VerificationReport,
    policy: ValidationPolicy,
    *,
    at: datetime,
    nonce: bytes | None = None,
) -> list[Check]:
    """The `policy_*` checks `validate` appends, in order, without touching the report."""
    checks = [
        Check(
            name=CheckName.POLICY_VERIFIED,
            passed=report.valid,
            detail="the evidence verified"
            if report.valid
            else "the evidence did not verify, so no policy accepts its fields",
        ),
        _measurement_check(report, policy),
        _tcb_status_check(report, policy),
        _debug_check(report, policy),
    ]
    if policy.report_data is not None:
        checks.append(_report_data_check(report, policy.report_data, nonce))
    if policy.max_age_seconds is not None:
        checks.append(_evidence_age_check(report, policy.max_age_seconds, at))
    if policy.event_log is not None:
        checks.extend(event_log_policy_checks(report, policy.event_log))
    return checks


def _measurement_check(report: VerificationReport, policy: ValidationPolicy) -> Check:
    table = "tdx" if report.tee == "sim" else report.tee.replace("-", "_")
    sets: tuple[BaseModel, ...] = getattr(policy, table)
    if not sets:
        hint = " (simulated quotes are matched against [[tdx]] sets)" if report.tee == "sim" else ""
        return Check(
            name=CheckName.POLICY_MEASUREMENT,
            passed=False,
            detail=f"policy allows no {report.tee} measurements: add a [[{table}]] set{hint}",
        )
    mismatches = []
    for index, allowed in enumerate(sets):
        mismatch = _mismatch(report, allowed)
        if mismatch is None:
            return Check(
                name=CheckName.POLICY_MEASUREMENT,
                passed=True,
                detail=f"matches allowed set {table}[{index}]",
            )
        mismatches.append(f"{table}[{index}]: {mismatch}")
    return Check(
        name=CheckName.POLICY_MEASUREMENT,
        passed=False,
        detail="no allowed set matches; " + "; ".join(mismatches),
    )


def _mismatch(report: VerificationReport, allowed: BaseModel) -> str | None:
    """Why `report` does not match one allowed set, or None when it does."""
    if isinstance(allowed, TdxMeasurementSet):
        return _first_difference(report, allowed.pinned())
    if isinstance(allowed, SnpMeasurementSet):
        return _first_difference(report, {"measurement": allowed.measurement})
    if isinstance(allowed, NitroMeasurementSet):
        return _first_difference(
            report, {f"pcr{index}": value for index, value in sorted(allowed.pcrs.items())}
        )
    if not isinstance(allowed, SgxMeasurementSet):
        raise TypeError(f"not a measurement set: {type(allowed).__name__}")
    pinned = {"mr_enclave": allowed.mr_enclave, "mr_signer": allowed.mr_signer}
    difference = _first_difference(report, {k: v for k, v in pinned.items() if v is not None})
    if difference is not None:
        return difference
    prod_id, svn = report.fields.get("isv_prod_id"), report.fields.get("isv_svn")
    if allowed.isv_prod_id is not None and prod_id != allowed.isv_prod_id:
        return f"isv_prod_id expected {allowed.isv_prod_id}, found {prod_id}"
    if not isinstance(svn, int) or svn < allowed.min_isv_svn:
        return f"isv_svn expected >= {allowed.min_isv_svn}, found {svn}"
    return None


def _first_difference(report: VerificationReport, pinned: dict[str, str]) -> str | None:
    for name, expected in pinned.items():
        # Nitro PCRs are named "pcr0".."pcr15" in the report's measurements.
        found = report.measurements.get(name)
        if found is None:
            return f"{name} expected {expected}, found none in the evidence"
        if found.lower() != expected:
            return f"{name} expected {expected}, found {found.lower()}"
    return None


def _tcb_status_check(report: VerificationReport, policy: ValidationPolicy) -> Check:
    accepted = policy.accepted_tcb_statuses
    status = report.tcb_status
    if status is None and report.tee in _NO_TCB_STATUS:
        return Check(
            name=CheckName.POLICY_TCB_STATUS, passed=True, detail=_NO_TCB_STATUS[report.tee]
        )
    if status is None:
        return Check(
            name=CheckName.POLICY_TCB_STATUS,
            passed=False,
            detail=f"TCB status unknown: pass collateral (accepted: {', '.join(accepted)})",
        )
    passed = status in accepted
    verdict = "accepted" if passed else "not accepted"
    return Check(
        name=CheckName.POLICY_TCB_STATUS,
        passed=passed,
        detail=f"TCB status {status} {verdict} (accepted: {', '.join(accepted)})",
    )


def _debug_check(report: VerificationReport, policy: ValidationPolicy) -> Check:
    if not report.debug:
        return Check(name=CheckName.POLICY_DEBUG, passed=True, detail="not a debug TEE")
    if policy.allow_debug:
        return Check(name=CheckName.POLICY_DEBUG, passed=True, detail="debug TEE allowed by policy")
    return Check(
        name=CheckName.POLICY_DEBUG,
        passed=False,
        detail="debug is on, so the TEE does not keep its secrets from the host; "
        "the policy forbids debug (allow_debug = false)",
    )


def _report_data_check(
    report: VerificationReport, rule: ReportDataRule, nonce: bytes | None
) -> Check:
    found = report.report_data.lower()
    if rule.exact is not None:
        passed = found == rule.exact
        detail = (
            "report_data equals the expected value"
            if passed
            else f"report_data expected {rule.exact}, found {found or 'none'}"
        )
        return Check(name=CheckName.POLICY_REPORT_DATA, passed=passed, detail=detail)
    prefix = rule.prefix or ""
    if nonce is None:
        return Check(
            name=CheckName.POLICY_REPORT_DATA,
            passed=False,
            detail="the policy expects report_data = prefix || nonce, but no nonce was given",
        )
    expected = prefix + nonce.hex()
    passed = found == expected
    detail = (
        "report_data equals the policy prefix followed by the nonce"
        if passed
        else f"report_data expected {expected} (prefix || nonce), found {found or 'none'}"
    )
    return Check(name=CheckName.POLICY_REPORT_DATA, passed=passed, detail=detail)


def _evidence_age_check(report: VerificationReport, max_age: int, at: datetime) -> Check:
    if report.evidence_time is None:
        return Check(
            name=CheckName.POLICY_EVIDENCE_AGE,
            passed=False,
            detail=f"{report.tee} evidence carries no time, so its age (max {max_age} s) cannot "
            "be checked: freshness must come from a nonce in report_data "
            "([report_data] prefix); drop max_age_seconds for this kind of evidence",
        )
    # Integer arithmetic, not datetime.fromtimestamp: the time comes from the evidence, and
    # this rule runs even when the evidence did not verify, so an unsigned document may
    # carry any uint64 timestamp, which datetime cannot represent. Microseconds, truncated
    # toward zero, so a fraction of a second either way still counts as age 0.
    delta_us = (at - _EPOCH) // timedelta(microseconds=1) - report.evidence_time * 1_000_000
    age = delta_us // 1_000_000 if delta_us >= 0 else -(-delta_us // 1_000_000)
    if age < 0:
        return Check(
            name=CheckName.POLICY_EVIDENCE_AGE,
            passed=False,
            detail=f"evidence claims to be made {-age} s after the verification time",
        )
    passed = age <= max_age
    return Check(
        name=CheckName.POLICY_EVIDENCE_AGE,
        passed=passed,
        detail=f"evidence is {age} s old (max {max_age} s)",
    )
