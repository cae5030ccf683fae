"""The human summary of a verification report, as `verify quote` and `attest` print it."""

from __future__ import annotations

from datetime import UTC, datetime

from attestation.report import VerificationReport
from attestation.timefmt import format_time

# What each kind of evidence is called in the summary line.
_EVIDENCE_NOUN = {"tdx": "quote", "sgx": "quote", "sim": "quote", "nitro": "document"}


def report_summary(report: VerificationReport) -> str:
    """A short human summary: the verdict first, then policy, TCB status, failed checks."""
    noun = _EVIDENCE_NOUN.get(report.tee, "report")
    kind = f"{report.tee}, {noun}" + ("" if report.version is None else f" v{report.version}")
    lines = [f"{'VALID' if report.valid else 'INVALID'} ({kind})"]
    if report.tee == "sim":
        lines.append("warning: simulated TEE evidence, not from real hardware")
    if report.policy_ok is not None:
        lines.append(f"policy: {'OK' if report.policy_ok else 'REJECTED'}")
    if report.tcb_status is not None:
        advisories = f" (advisories: {', '.join(report.advisory_ids)})"
        lines.append(f"tcb status: {report.tcb_status}{advisories if report.advisory_ids else ''}")
    elif report.tee not in ("nitro", "sev-snp"):  # their vendors publish no TCB status
        lines.append("tcb status: unknown (no collateral given)")
    if report.debug:
        lines.append("debug: ON (the host can read the TEE's memory)")
    if report.evidence_time is not None:
        made = datetime.fromtimestamp(report.evidence_time, tz=UTC)
        lines.append(f"evidence time: {format_time(made)}")
    failed = report.failed_checks()
    if failed:
        lines.append("failed checks:")
        lines.extend(f"  {check.name}: {check.detail}" for check in failed)
    return "\n".join(lines)
