"""The caches that keep a warm DCAP verification lean serve only the exact inputs they saw.

The collateral checks are made once per (collateral, window outcomes, second of time) and
the TCB match once per quote field it reads: a verification on a warm cache must give the
report a cold one gives, for any time and for a quote differing in any field the match reads.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attestation import collateral, collateral_checks, timefmt, verify_dcap, x509chain
from attestation.collateral import load_intel_collateral
from attestation.collateral_checks import CollateralOutcome, evaluate_collateral
from attestation.formats import dcap
from attestation.report import VerificationReport
from attestation.timefmt import format_second, format_time, whole_second
from attestation.trust import default_trust_anchors
from attestation.verifier import verify_evidence
from tests.dcap_collateral import collateral_bytes_for
from tests.manifest import at, vector_bytes, vector_ids, vectors

WITH_TCB = [v for v in vectors() if v["type"].startswith("intel-") and "tcb" in v["expected"]]
PHALA_TDX = next(v for v in WITH_TCB if v["file"] == "tdx-v4-phala-1.bin")
DCAP_MODULES = (dcap, verify_dcap, x509chain, collateral, collateral_checks, timefmt)


def _lru_caches() -> list[Any]:
    return [
        value
        for module in DCAP_MODULES
        for value in vars(module).values()
        if callable(value) and hasattr(value, "cache_info")
    ]


def _clear_caches() -> None:
    for cache in _lru_caches():
        cache.cache_clear()


def test_every_lru_cache_in_the_dcap_modules_is_bounded() -> None:
    caches = _lru_caches()
    assert collateral_checks._checks_at in caches
    for cache in caches:
        assert isinstance(cache.cache_info().maxsize, int), cache.__wrapped__.__qualname__


_ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]


@given(
    st.datetimes(
        min_value=datetime(2, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.sampled_from(_ZONES),
    )
)
def test_the_whole_second_fixes_the_formatted_time(moment: datetime) -> None:
    assert format_second(whole_second(moment)) == format_time(moment)


@pytest.mark.parametrize(
    ("text", "second"),
    [
        ("1970-01-01T00:00:00.999999+00:00", 0),
        ("1970-01-01T00:00:00+00:00", 0),
        ("1969-12-31T23:59:59.500000+00:00", -1),
        ("1970-01-01T05:30:01.250000+05:30", 1),
    ],
)
def test_the_whole_second_rounds_down(text: str, second: int) -> None:
    assert whole_second(datetime.fromisoformat(text)) == second


def _verify(when: datetime) -> VerificationReport:
    data = vector_bytes(PHALA_TDX["file"])
    return verify_evidence(data, at=when, collateral=collateral_bytes_for(PHALA_TDX))


def _window_edges() -> list[datetime]:
    """Times on and around the ends of the collateral's and the PCK chain's windows."""
    first, last = (at(t) for t in PHALA_TDX["expected"]["collateral"]["collateral_validity_window"])
    inside = at(PHALA_TDX["expected"]["verify_at"])
    half = timedelta(milliseconds=500)
    return [inside, inside + half, first - half, first, last, last + half, last + timedelta(days=1)]


def test_a_warm_verification_reports_what_a_cold_one_does_at_every_time() -> None:
    times = _window_edges()
    warm = []
    for when in times:  # each verification on the caches the earlier ones filled
        warm.append(_verify(when))
    for when, report in zip(times, warm, strict=True):
        _clear_caches()
        assert _verify(when) == report, when
    # Not vacuous: the times straddle a window end within one second.
    assert len({report.valid for report in warm}) == 2


def _changed(quote: dcap.DcapQuote, part: str, field: str) -> dcap.DcapQuote:
    """`quote` with one field that TCB matching reads changed (in the body or QE report)."""
    target = quote.body if part == "body" else quote.qe_report
    value = getattr(target, field)
    new = value + 1 if isinstance(value, int) else bytes([value[0] ^ 0x01]) + value[1:]
    if field == "tee_tcb_svn":  # the TDX module's SVN: below every level it lists
        new = bytes(1) + value[1:]
    changed = target.model_copy(update={field: new})
    if part == "body":
        return dataclasses.replace(quote, body=changed)
    key_certification = quote.key_certification.model_copy(update={"qe_report": changed})
    return dataclasses.replace(quote, key_certification=key_certification)


def _evaluate(quote: dcap.DcapQuote) -> CollateralOutcome:
    roots = default_trust_anchors().dcap_roots
    certified = verify_dcap._certified_key(quote.key_certification.raw, 4, None, roots)
    assert certified.chain is not None
    bundle = load_intel_collateral(collateral_bytes_for(PHALA_TDX))
    when = at(PHALA_TDX["expected"]["verify_at"])
    return evaluate_collateral(quote, certified.chain, bundle, roots=roots, at=when)


MATCHED_FIELDS = [
    ("body", "tee_tcb_svn"),
    ("body", "mr_signer_seam"),
    ("body", "seam_attributes"),
    ("qe_report", "mr_signer"),
    ("qe_report", "isv_prod_id"),
    ("qe_report", "misc_select"),
    ("qe_report", "attributes"),
    ("qe_report", "isv_svn"),
]


@pytest.mark.parametrize(("part", "field"), MATCHED_FIELDS, ids=[f for _, f in MATCHED_FIELDS])
def test_the_tcb_match_is_not_served_for_a_quote_with_another_matched_field(
    part: str, field: str
) -> None:
    quote = dcap.parse_dcap_quote(vector_bytes(PHALA_TDX["file"]))
    changed = _changed(quote, part, field)
    original = _evaluate(quote)  # warms the match cache with the original fields
    warm = _evaluate(changed)
    _clear_caches()
    assert warm == _evaluate(changed)
    assert _evaluate(quote) == original


def test_changed_matched_fields_do_change_the_tcb_outcome() -> None:
    # Keeps the test above from passing vacuously: these changes reach the TCB verdict.
    quote = dcap.parse_dcap_quote(vector_bytes(PHALA_TDX["file"]))
    original = _evaluate(quote)
    assert original.tcb_status is not None
    for part, field in (("body", "tee_tcb_svn"), ("qe_report", "mr_signer")):
        assert _evaluate(_changed(quote, part, field)).tcb_status != original.tcb_status, field


@pytest.mark.parametrize("vector", WITH_TCB, ids=vector_ids(WITH_TCB))
def test_a_warm_report_is_the_cold_report(vector: dict[str, Any]) -> None:
    data, files = vector_bytes(vector["file"]), collateral_bytes_for(vector)
    when = at(vector["expected"]["verify_at"])
    _clear_caches()
    cold = verify_evidence(data, at=when, collateral=files)
    for _ in range(2):
        assert verify_evidence(data, at=when, collateral=files) == cold
