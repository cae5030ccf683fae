"""Which collateral files of the vector set go with which DCAP quote."""

from __future__ import annotations

from typing import Any

from tests.manifest import manifest, vector_bytes

# PCS response bodies carry no issuer chain (Intel sends it in an HTTP header), so the
# Intel SGX TCB Signing certificate of the vector set goes with them.
TCB_SIGNING_CERT = "intel-sgx-tcb-signing.der"


def collateral_files_for(vector: dict[str, Any]) -> list[str]:
    """The collateral file names that apply to `vector` (empty when none does)."""
    expected = vector["expected"].get("collateral")
    if not expected or expected["id"] not in manifest()["collateral"]:
        return []
    collateral_set = manifest()["collateral"][expected["id"]]
    if "file_used" in expected:
        return [expected["file_used"], TCB_SIGNING_CERT]
    names = [
        entry["file"]
        for entry in collateral_set["files"]
        # The fmspc 90c06f000000 TCB Info of the go-tdx-guest set belongs to the v5 quote.
        if "tcbinfo-90c06f" not in entry["file"]
    ]
    if len(names) > 1:
        names.append(TCB_SIGNING_CERT)
    return names


def collateral_bytes_for(vector: dict[str, Any]) -> list[bytes]:
    return [vector_bytes(name) for name in collateral_files_for(vector)]
