"""Quotes verified per second on one core: ours beside Phala's dcap-qvl, same quotes, same run.

Round-robin over every DCAP vector that has complete collateral, each verified at its
manifest time with that collateral. What repeats on every quote of one platform (the QE
report and its signature, the PCK chain, the collateral) is verified once and then cached
by its exact bytes, as a long-running verifier would; the first round is a warm-up. Each
quote still costs its own ECDSA verification (the attestation key over header and body):
that verification alone, with the same library, is printed as the floor. The verifiers
and the floor run in alternating rounds of about the same length in this one process,
pinned to one core; each figure is the median over the rounds, and each ratio the median
of the ratios within a round, so load from elsewhere on the machine hits both sides alike.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from attestation.ecdsa import verify_raw_signature
from attestation.formats.dcap import parse_dcap_quote
from attestation.verifier import verify_evidence
from benchmarks.one_core import one_core
from tests.dcap_collateral import collateral_bytes_for
from tests.manifest import at, vector_bytes, vectors

ROUNDS = 15
# Quotes per round for each side, so that each side's round takes about as long.
OURS_PER_ROUND = 1000
REFERENCE_PER_ROUND = 200
FLOOR_PER_ROUND = 1500


def _cases() -> list[dict[str, Any]]:
    return [v for v in vectors() if v["type"].startswith("intel-") and "tcb" in v["expected"]]


def _ours(cases: list[tuple[bytes, list[bytes], datetime]]) -> Callable[[int], None]:
    def run(count: int) -> None:
        for index in range(count):
            quote, collateral, when = cases[index % len(cases)]
            verify_evidence(quote, at=when, collateral=collateral)

    return run


def _reference(cases: list[tuple[bytes, Any, int]]) -> Callable[[int], None]:
    import dcap_qvl

    def run(count: int) -> None:
        for index in range(count):
            quote, collateral, now = cases[index % len(cases)]
            # A quote it rejects (no TCB level) still costs a full verification.
            with contextlib.suppress(ValueError):
                dcap_qvl.verify(quote, collateral, now)

    return run


def _one_ecdsa(quotes: list[bytes]) -> Callable[[int], None]:
    signed = []
    for data in quotes:
        quote = parse_dcap_quote(data)
        key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), b"\x04" + quote.attestation_key
        )
        signed.append((key, quote.quote_signature, quote.signed_region))

    def run(count: int) -> None:
        for index in range(count):
            key, signature, message = signed[index % len(signed)]
            if not verify_raw_signature(key, signature, message):
                raise AssertionError("a vector's quote signature does not verify")

    return run


def _rate(run: Callable[[int], None], count: int) -> float:
    start = time.perf_counter()
    run(count)
    return count / (time.perf_counter() - start)


def main() -> dict[str, float]:
    """Measure on one core and print; returns the figures."""
    with one_core():
        return _measure()


def _measure() -> dict[str, float]:
    from tests.test_dcap_differential import reference_collateral

    entries = _cases()
    ours_cases = [
        (vector_bytes(v["file"]), collateral_bytes_for(v), at(v["expected"]["verify_at"]))
        for v in entries
    ]
    reference_cases = [
        (quote, reference_collateral(v), int(when.timestamp()))
        for (quote, _, when), v in zip(ours_cases, entries, strict=True)
    ]
    ours, reference = _ours(ours_cases), _reference(reference_cases)
    floor = _one_ecdsa([quote for quote, _, _ in ours_cases])
    ours(len(ours_cases))  # warm-up: fills the chain and collateral caches
    reference(len(reference_cases))
    rounds = [
        (
            _rate(ours, OURS_PER_ROUND),
            _rate(reference, REFERENCE_PER_ROUND),
            _rate(floor, FLOOR_PER_ROUND),
        )
        for _ in range(ROUNDS)
    ]
    ours_rate = statistics.median(o for o, _, _ in rounds)
    reference_rate = statistics.median(r for _, r, _ in rounds)
    floor_rate = statistics.median(f for _, _, f in rounds)
    ratio = statistics.median(o / r for o, r, _ in rounds)
    floor_ratio = statistics.median(f / r for _, r, f in rounds)
    print(
        f"attestation: DCAP quote verification, one core, {len(entries)} quotes with "
        f"collateral, median of {ROUNDS} alternating rounds"
    )
    print(f"  tee-agent verify_evidence   {ours_rate:10.0f} quotes/s")
    print(f"  dcap-qvl verify (baseline)  {reference_rate:10.0f} quotes/s")
    print(f"  ratio                       {ratio:10.2f}x  (target >= 8x)")
    print(
        f"  floor: one ECDSA per quote  {floor_rate:10.0f} quotes/s  "
        f"({floor_ratio:.2f}x dcap-qvl; the quote signature alone)"
    )
    return {
        "ours": ours_rate,
        "dcap_qvl": reference_rate,
        "ratio": ratio,
        "one_ecdsa": floor_rate,
        "one_ecdsa_ratio": floor_ratio,
    }


if __name__ == "__main__":
    main()
