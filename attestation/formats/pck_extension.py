"""The Intel SGX extension of a PCK certificate: FMSPC, PCE-ID and the platform's TCB.

OIDs and structure from "Intel SGX PCK Certificate and Certificate Revocation List Profile
Specification", section 1.3.5 (SGX Extensions): a SEQUENCE of (OID, value) pairs under
1.2.840.113741.1.13.1, the TCB being itself a SEQUENCE of (OID, INTEGER) pairs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cryptography import x509

from attestation.errors import CertificateChainError
from attestation.formats.der import (
    TAG_ENUMERATED,
    TAG_INTEGER,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    DerError,
    decode_integer,
    decode_oid,
    iter_elements,
    sequence_elements,
)

SGX_EXTENSIONS_OID = "1.2.840.113741.1.13.1"
_TCB = SGX_EXTENSIONS_OID + ".2"
_PCE_ID = SGX_EXTENSIONS_OID + ".3"
_FMSPC = SGX_EXTENSIONS_OID + ".4"
_SGX_TYPE = SGX_EXTENSIONS_OID + ".5"
# Within the TCB: .1 to .16 are the SGX TCB components, .17 the PCESVN, .18 the CPUSVN.
_PCESVN_ARC = 17
_CPUSVN_ARC = 18


@dataclass(frozen=True)
class PckTcb:
    """What TCB matching needs from a PCK certificate."""

    fmspc: bytes
    pce_id: bytes
    sgx_tcb_components: tuple[int, ...]
    pce_svn: int
    cpu_svn: bytes
    sgx_type: int


@functools.lru_cache(maxsize=256)
def parse_pck_extension(certificate_der: bytes) -> PckTcb:
    """Read the SGX extension of a PCK leaf certificate given as DER.

    Raises:
        CertificateChainError: the certificate has no SGX extension, or it is malformed.
    """
    certificate = x509.load_der_x509_certificate(certificate_der)
    try:
        extension = certificate.extensions.get_extension_for_oid(
            x509.ObjectIdentifier(SGX_EXTENSIONS_OID)
        )
    except x509.ExtensionNotFound:
        raise CertificateChainError(
            f"the PCK certificate has no Intel SGX extension ({SGX_EXTENSIONS_OID}); "
            "it is not a PCK certificate"
        ) from None
    raw = extension.value
    assert isinstance(raw, x509.UnrecognizedExtension)
    try:
        return _parse_sgx_extensions(raw.value)
    except (DerError, KeyError, ValueError) as exc:
        raise CertificateChainError(
            f"the PCK certificate's SGX extension is malformed: {exc}"
        ) from None


def _parse_sgx_extensions(value: bytes) -> PckTcb:
    entries = _oid_value_pairs(value)
    tcb_tag, tcb_value = entries[_TCB]
    if tcb_tag != TAG_SEQUENCE:
        raise ValueError("the TCB entry is not a SEQUENCE")
    components: dict[int, int] = {}
    cpu_svn = b""
    for oid, (tag, item) in _oid_value_pairs_of(tcb_value).items():
        arc = int(oid.rsplit(".", 1)[1])
        if arc == _CPUSVN_ARC and tag == TAG_OCTET_STRING:
            cpu_svn = item
        elif tag == TAG_INTEGER:
            components[arc] = decode_integer(item)
    missing = [arc for arc in range(1, _PCESVN_ARC + 1) if arc not in components]
    if missing:
        raise ValueError(f"the TCB lacks component(s) {missing}")
    sgx_type_tag, sgx_type = entries.get(_SGX_TYPE, (TAG_ENUMERATED, b"\x00"))
    return PckTcb(
        fmspc=_octets(entries, _FMSPC, 6),
        pce_id=_octets(entries, _PCE_ID, 2),
        sgx_tcb_components=tuple(components[arc] for arc in range(1, 17)),
        pce_svn=components[_PCESVN_ARC],
        cpu_svn=cpu_svn,
        sgx_type=decode_integer(sgx_type) if sgx_type_tag == TAG_ENUMERATED else 0,
    )


def _octets(entries: dict[str, tuple[int, bytes]], oid: str, size: int) -> bytes:
    tag, value = entries[oid]
    if tag != TAG_OCTET_STRING or len(value) != size:
        raise ValueError(f"{oid} must be an OCTET STRING of {size} bytes")
    return value


def _oid_value_pairs(extension_value: bytes) -> dict[str, tuple[int, bytes]]:
    return _pairs(sequence_elements(extension_value))


def _oid_value_pairs_of(sequence_content: bytes) -> dict[str, tuple[int, bytes]]:
    return _pairs(list(iter_elements(sequence_content)))


def _pairs(elements: list[tuple[int, bytes]]) -> dict[str, tuple[int, bytes]]:
    pairs: dict[str, tuple[int, bytes]] = {}
    for tag, content in elements:
        if tag != TAG_SEQUENCE:
            raise ValueError(f"expected an (OID, value) SEQUENCE, found tag 0x{tag:02x}")
        inner = list(iter_elements(content))
        if len(inner) != 2 or inner[0][0] != TAG_OID:
            raise ValueError("expected an (OID, value) pair")
        pairs[decode_oid(inner[0][1])] = inner[1]
    return pairs
