"""Target `collateral`: one collateral file, checked with a real quote it may belong to.

The file may be any form `attestation.collateral` reads (QuoteCollateralV3 JSON, a PCS TCB
Info or QE Identity body, a PCK or root CA CRL, certificates in DER or PEM); it comes from
a collateral service or a file the verifier is handed, so its author may be hostile. The
first byte picks one of the real quotes its checks run against (the TCB Info JSON, QE
Identity JSON, CRLs and issuer chains are all read and evaluated). Documented outcomes: a
report, or an `AttestationError` (CollateralFormatError above all).
"""

from __future__ import annotations

import contextlib

from attestation.errors import AttestationError
from attestation.verifier import verify_evidence
from fuzz.harness import VECTORS, VERIFY_AT, choose, with_choice

# Quotes with matching collateral among the vectors (same FMSPC).
QUOTES = (
    "tdx-v4-phala-1.bin",
    "tdx-v5-phala-1.bin",
    "sgx-v3-phala-1.bin",
    "tdx-v4-go-tdx-guest-1.bin",
)
_QUOTE_BYTES = [(VECTORS / name).read_bytes() for name in QUOTES]
SEED_FILES = (
    "collateral-phala-tdx-b0c06f000000.json",
    "collateral-phala-tdx-90c06f000000.json",
    "collateral-phala-sgx-00a067110000.json",
    "collateral-go-tdx-guest-tcbinfo-50806f000000.json",
    "collateral-go-tdx-guest-qeidentity-td-qe.json",
    "collateral-go-tdx-guest-pck-platform-crl.der",
    "collateral-go-tdx-guest-root-ca-crl.der",
    "intel-sgx-tcb-signing.der",
    "intel-sample-pck-sign-chain.pem",
)


def TestOneInput(data: bytes) -> None:
    index, collateral = choose(data, len(_QUOTE_BYTES))
    with contextlib.suppress(AttestationError):
        verify_evidence(_QUOTE_BYTES[index], at=VERIFY_AT, collateral=[collateral])


def seeds() -> list[bytes]:
    found = []
    for name in SEED_FILES:
        data = (VECTORS / name).read_bytes()
        quote = (
            3 if "go-tdx-guest" in name else 1 if "90c06f" in name else 2 if "sgx-0" in name else 0
        )
        found.append(with_choice(quote, data))
    return found
