"""The one result every verifier returns: a verdict, each check by name, and the fields."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

TeeKind = Literal["tdx", "sgx", "nitro", "sev-snp", "sim"]


class Check(BaseModel):
    """One named verification or validation step and its outcome."""

    model_config = ConfigDict(frozen=True)

    # Named by an `attestation.checks.CheckName` member (a caller's own checks by its own
    # StrEnum); stored as the plain string, so reports and JSON carry the name itself.
    name: str
    passed: bool
    detail: str


class LoggedEventView(BaseModel):
    """One event of a verified event log, as a report shows it (digest and payload hex)."""

    model_config = ConfigDict(frozen=True)

    imr: int
    event_type: int
    event: str
    digest: str
    payload: str


class EventLogSection(BaseModel):
    """What an event log given with the evidence says, and whether it holds.

    `verified`: every event's digest follows from its content where the content fixes it,
    and the replay (`rtmrs`, lowercase hex) equals the quote's RTMR0-3. `form` is
    "dstack-json" or "ccel"; `mrtd_events` counts CCEL events for MRTD, which no replay
    covers.
    """

    model_config = ConfigDict(frozen=True)

    form: str
    verified: bool
    rtmrs: dict[str, str]
    events: list[LoggedEventView]
    mrtd_events: int = 0


class VerificationReport(BaseModel):
    """What a piece of evidence proves, check by check.

    `valid` says the evidence is genuine (signatures, chains, validity at the given time,
    and the collateral when given). `policy_ok` is the caller's judgement of its fields,
    or None when no policy was applied.
    """

    model_config = ConfigDict(frozen=True)

    valid: bool
    tee: TeeKind
    version: int | None
    report_data: str
    measurements: dict[str, str]
    debug: bool
    fields: dict[str, Any]
    tcb_status: str | None
    advisory_ids: list[str]
    policy_ok: bool | None
    checks: list[Check]
    error: str | None
    # Seconds since the epoch at which the evidence says it was made, when it says so
    # (Nitro documents carry a timestamp; DCAP quotes and SNP reports do not).
    evidence_time: int | None = None
    # The event log given with the evidence, checked against its RTMRs; None without one.
    event_log: EventLogSection | None = None

    def failed_checks(self) -> list[Check]:
        """The checks that did not pass, in the order they ran."""
        return [check for check in self.checks if not check.passed]

    def check(self, name: str) -> Check | None:
        """The check called `name`, or None when it did not run."""
        return next((check for check in self.checks if check.name == name), None)


class CheckList:
    """Collects checks while a verifier runs; the verdict is that all of them passed."""

    def __init__(self) -> None:
        self.items: list[Check] = []

    def add(self, name: str, passed: bool, detail: str) -> bool:
        self.items.append(Check(name=name, passed=passed, detail=detail))
        return passed

    def append(self, check: Check) -> bool:
        """Record a check made earlier (checks are immutable, so they may be shared)."""
        self.items.append(check)
        return check.passed

    def extend(self, checks: Iterable[Check]) -> None:
        """Record checks made earlier, in order (checks are immutable, so they may be shared)."""
        self.items.extend(checks)

    @property
    def all_passed(self) -> bool:
        return bool(self.items) and self._first_failed() is None

    def first_failure(self) -> str | None:
        failed = self._first_failed()
        return None if failed is None else f"{failed.name}: {failed.detail}"

    def _first_failed(self) -> Check | None:
        for check in self.items:
            if not check.passed:
                return check
        return None
