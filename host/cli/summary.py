"""The human summary of a verification report, as `verify quote` and `attest` print it."""

from __future__ import annotations

from datetime import UTC, datetime

from attestation.formats.ccel import TCG_EVENT_TYPE_NAMES
from attestation.policy_event_log import compose_hashes
from attestation.report import EventLogSection, VerificationReport
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
    if report.event_log is not None:
        lines.extend(_event_log_lines(report.event_log))
    failed = report.failed_checks()
    if failed:
        lines.append("failed checks:")
        lines.extend(f"  {check.name}: {check.detail}" for check in failed)
    return "\n".join(lines)


# Hex shown per payload in the summary; --json carries it whole.
_PAYLOAD_SHOWN = 64


def _event_log_lines(section: EventLogSection) -> list[str]:
    """The event log's verdict, then one line per event: register, name (or type), payload."""
    verdict = "replays to the quote's RTMRs" if section.verified else "DOES NOT VERIFY"
    lines = [f"event log ({section.form}, {len(section.events)} events): {verdict}"]
    lines.extend(f"dstack compose hash: {value}" for value in compose_hashes(section.events))
    for event in section.events:
        name = event.event or TCG_EVENT_TYPE_NAMES.get(event.event_type, f"{event.event_type:#x}")
        payload = event.payload[:_PAYLOAD_SHOWN] + (
            "..." if len(event.payload) > _PAYLOAD_SHOWN else ""
        )
        lines.append(f"  rtmr{event.imr} {name}" + (f" {payload}" if payload else ""))
    return lines
