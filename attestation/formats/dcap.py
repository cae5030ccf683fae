"""Intel DCAP ECDSA quotes: SGX v3, TDX v4 and v5 (TD report 1.0 and 1.5), bytes to models.

Layouts follow "Intel SGX ECDSA Quote Library API" (quote v3, section A.4) and "Intel TDX
DCAP Quoting Library API" (quote v4, section A.3; quote v5, section A.4). All integers are
little-endian. A quote may be followed by trailing bytes (padded buffers, appended text);
its true length comes from the structure and is reported as `length`.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from attestation.errors import QuoteFormatError
from attestation.formats.cursor import ByteCursor, Layout, layout

HEADER_SIZE = 48
SGX_REPORT_BODY_SIZE = 384  # Enclave Report Body, ECDSA Quote Library API A.4.6
TD_REPORT10_SIZE = 584  # TD Quote Body v4, TDX DCAP Quoting Library API A.3.2
TD_REPORT15_SIZE = 648  # TD Quote Body v5 (TDX 1.5): + TEE_TCB_SVN_2 (16) + MRSERVICETD (48)
ECDSA_P256_SIGNATURE_SIZE = 64
ECDSA_P256_KEY_SIZE = 64

ATT_KEY_TYPE_ECDSA_P256 = 2  # Quote header "Attestation Key Type"
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081

# v5 body descriptor "Type" values (TDX DCAP Quoting Library API A.4.2).
BODY_TYPE_SGX: Literal[1] = 1
BODY_TYPE_TD10: Literal[2] = 2
BODY_TYPE_TD15: Literal[3] = 3

# Certification Data Types (ECDSA Quote Library API A.4.11).
CERT_TYPE_PCK_CHAIN = 5
CERT_TYPE_QE_REPORT = 6

# Attribute flag bits: SGX ATTRIBUTES.DEBUG is bit 1 of the flags; TDX TD_ATTRIBUTES.DEBUG
# is bit 0 (TDX Module ABI spec, TDINFO_STRUCT).
SGX_ATTRIBUTE_DEBUG = 0x02
TD_ATTRIBUTE_DEBUG = 0x01

# Generous bound on signature data: a full PCK chain is about 4 KB.
MAX_SIGNATURE_DATA_SIZE = 64 * 1024

_FROZEN = ConfigDict(frozen=True)


class QuoteHeader(BaseModel):
    """The 48-byte quote header common to v3, v4 and v5."""

    model_config = _FROZEN

    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


class SgxReportBody(BaseModel):
    """An SGX enclave report body (the quoted enclave, or the QE's own report)."""

    model_config = _FROZEN

    cpu_svn: bytes
    misc_select: bytes
    isv_ext_prod_id: bytes
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes

    @property
    def debug(self) -> bool:
        return bool(self.attributes[0] & SGX_ATTRIBUTE_DEBUG)


class TdReport10(BaseModel):
    """A TD quote body for TDX 1.0 (584 bytes)."""

    model_config = _FROZEN

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    rtmr3: bytes
    report_data: bytes

    @property
    def debug(self) -> bool:
        return bool(self.td_attributes[0] & TD_ATTRIBUTE_DEBUG)


class TdReport15(TdReport10):
    """A TD quote body for TDX 1.5 (648 bytes)."""

    tee_tcb_svn2: bytes
    mr_servicetd: bytes


ReportBody = SgxReportBody | TdReport10 | TdReport15


class KeyCertification(BaseModel):
    """The attestation key and the QE data that certify it: the quote signature data after
    the quote signature (ECDSA Quote Library API A.4.9), as the exact bytes in `raw`.

    A platform's quoting enclave puts the same bytes here in every quote it signs, so what
    they prove is worked out once per `raw` (see `attestation.verify_dcap`).
    """

    model_config = _FROZEN

    raw: bytes
    attestation_key: bytes
    qe_report: SgxReportBody
    qe_report_raw: bytes
    qe_report_signature: bytes
    qe_auth_data: bytes
    certification_data_type: int
    certification_data: bytes


@dataclass(frozen=True, slots=True)
class DcapQuote:
    """A parsed DCAP quote with the byte ranges that verification needs.

    A plain frozen dataclass: only `parse_dcap_quote` makes one, from values it has already
    checked, and it is made for every quote verified (a model's validation would be waste).
    """

    header: QuoteHeader
    body_type: Literal[1, 2, 3]
    body: SgxReportBody | TdReport15 | TdReport10
    signed_region: bytes
    quote_signature: bytes
    key_certification: KeyCertification
    length: int

    @property
    def is_tdx(self) -> bool:
        return self.body_type in (BODY_TYPE_TD10, BODY_TYPE_TD15)

    # The key certification's parts, read as parts of the quote.
    @property
    def attestation_key(self) -> bytes:
        return self.key_certification.attestation_key

    @property
    def qe_report(self) -> SgxReportBody:
        return self.key_certification.qe_report

    @property
    def qe_report_raw(self) -> bytes:
        return self.key_certification.qe_report_raw

    @property
    def qe_report_signature(self) -> bytes:
        return self.key_certification.qe_report_signature

    @property
    def qe_auth_data(self) -> bytes:
        return self.key_certification.qe_auth_data

    @property
    def certification_data_type(self) -> int:
        return self.key_certification.certification_data_type

    @property
    def certification_data(self) -> bytes:
        return self.key_certification.certification_data


# version, att_key_type, tee_type, qe_svn, pce_svn, qe_vendor_id, user_data (A.4.3).
_HEADER = struct.Struct("<HHIHH16s20s")
_SGX_REPORT_BODY = layout(  # ECDSA Quote Library API A.4.6
    ("cpu_svn", "16s"),
    ("misc_select", "4s"),
    (None, "12x"),
    ("isv_ext_prod_id", "16s"),
    ("attributes", "16s"),
    ("mr_enclave", "32s"),
    (None, "32x"),
    ("mr_signer", "32s"),
    (None, "32x"),
    ("config_id", "64s"),
    ("isv_prod_id", "H"),
    ("isv_svn", "H"),
    ("config_svn", "H"),
    (None, "42x"),
    ("isv_family_id", "16s"),
    ("report_data", "64s"),
)
_TD10_FIELDS: tuple[tuple[str | None, str], ...] = (  # TDX DCAP Quoting Library API A.3.2
    ("tee_tcb_svn", "16s"),
    ("mr_seam", "48s"),
    ("mr_signer_seam", "48s"),
    ("seam_attributes", "8s"),
    ("td_attributes", "8s"),
    ("xfam", "8s"),
    ("mr_td", "48s"),
    ("mr_config_id", "48s"),
    ("mr_owner", "48s"),
    ("mr_owner_config", "48s"),
    ("rtmr0", "48s"),
    ("rtmr1", "48s"),
    ("rtmr2", "48s"),
    ("rtmr3", "48s"),
    ("report_data", "64s"),
)
_TD_REPORTS: dict[int, Layout] = {
    BODY_TYPE_TD10: layout(*_TD10_FIELDS),
    BODY_TYPE_TD15: layout(*_TD10_FIELDS, ("tee_tcb_svn2", "16s"), ("mr_servicetd", "48s")),
}
assert _HEADER.size == HEADER_SIZE and _SGX_REPORT_BODY.struct.size == SGX_REPORT_BODY_SIZE
assert _TD_REPORTS[BODY_TYPE_TD10].struct.size == TD_REPORT10_SIZE
assert _TD_REPORTS[BODY_TYPE_TD15].struct.size == TD_REPORT15_SIZE


def parse_dcap_quote(data: bytes) -> DcapQuote:
    """Parse an SGX v3 or TDX v4/v5 ECDSA quote from its raw bytes.

    Raises:
        QuoteFormatError: the bytes are truncated, inconsistent or of an unsupported kind.
    """
    cursor = ByteCursor(data, QuoteFormatError, "DCAP quote")
    header = _parse_header(cursor.take(HEADER_SIZE, "header"))
    body_type = _body_type(cursor, header)
    if body_type == BODY_TYPE_SGX:
        body: ReportBody = _parse_sgx_report_body(cursor, "report body")
    else:
        body = _parse_td_report(cursor, body_type)
    signed_region = data[: cursor.offset]

    signature_data_size = cursor.u32("signature data length")
    if signature_data_size > MAX_SIGNATURE_DATA_SIZE:
        raise cursor.fail(
            f"signature data length {signature_data_size} exceeds the limit of "
            f"{MAX_SIGNATURE_DATA_SIZE} bytes"
        )
    if signature_data_size < ECDSA_P256_SIGNATURE_SIZE:
        raise cursor.fail(
            f"signature data length {signature_data_size} is shorter than the quote "
            f"signature ({ECDSA_P256_SIGNATURE_SIZE} bytes)"
        )
    quote_signature = cursor.take(ECDSA_P256_SIGNATURE_SIZE, "quote signature")
    key_certification = cursor.take(
        signature_data_size - ECDSA_P256_SIGNATURE_SIZE, "signature data"
    )
    return DcapQuote(
        header=header,
        body_type=body_type,
        body=body,
        signed_region=signed_region,
        quote_signature=quote_signature,
        key_certification=parse_key_certification(key_certification, header.version),
        length=cursor.offset,
    )


@functools.lru_cache(maxsize=256)
def parse_key_certification(data: bytes, version: int) -> KeyCertification:
    """Parse the signature data after the quote signature of a quote of `version`.

    Cached by the exact bytes: they repeat on every quote from one platform. Only results
    are cached; a malformed input raises again on every call.

    Raises:
        QuoteFormatError: the bytes are truncated or the certification data type is wrong.
    """
    sig = ByteCursor(data, QuoteFormatError, "DCAP quote key certification data")
    attestation_key = sig.take(ECDSA_P256_KEY_SIZE, "attestation public key")
    if version == 3:
        qe_section = sig
    else:
        outer_type = sig.u16("certification data type")
        outer_size = sig.u32("certification data size")
        outer = sig.take(outer_size, "QE report certification data")
        if outer_type != CERT_TYPE_QE_REPORT:
            raise sig.fail(
                f"certification data type is {outer_type}; a v{version} quote carries "
                f"type {CERT_TYPE_QE_REPORT} (QE report certification data)"
            )
        qe_section = ByteCursor(outer, QuoteFormatError, "QE report certification data")
    qe_report_raw = qe_section.take(SGX_REPORT_BODY_SIZE, "QE report")
    qe_report = _parse_sgx_report_body(
        ByteCursor(qe_report_raw, QuoteFormatError, "QE report"), "QE report"
    )
    qe_report_signature = qe_section.take(ECDSA_P256_SIGNATURE_SIZE, "QE report signature")
    qe_auth_data = qe_section.take(qe_section.u16("QE authentication data size"), "QE auth data")
    certification_data_type = qe_section.u16("PCK certification data type")
    certification_data = qe_section.take(
        qe_section.u32("PCK certification data size"), "PCK certification data"
    )
    return KeyCertification(
        raw=data,
        attestation_key=attestation_key,
        qe_report=qe_report,
        qe_report_raw=qe_report_raw,
        qe_report_signature=qe_report_signature,
        qe_auth_data=qe_auth_data,
        certification_data_type=certification_data_type,
        certification_data=certification_data,
    )


@functools.lru_cache(maxsize=256)
def _parse_header(raw: bytes) -> QuoteHeader:
    """The header, cached by its exact bytes: one platform's QE writes the same header on
    every quote. A refused header raises again on every call."""
    version, att_key_type, tee_type, qe_svn, pce_svn, qe_vendor_id, user_data = _HEADER.unpack(raw)
    if version not in (3, 4, 5):
        raise QuoteFormatError(f"DCAP quote: quote version is {version}; expected 3, 4 or 5")
    if att_key_type != ATT_KEY_TYPE_ECDSA_P256:
        raise QuoteFormatError(
            f"DCAP quote: attestation key type is {att_key_type}; only "
            f"{ATT_KEY_TYPE_ECDSA_P256} (ECDSA-256-with-P-256) is supported"
        )
    if tee_type not in (TEE_TYPE_SGX, TEE_TYPE_TDX):
        raise QuoteFormatError(
            f"DCAP quote: TEE type is {tee_type:#x}; expected {TEE_TYPE_SGX:#x} (SGX) "
            f"or {TEE_TYPE_TDX:#x} (TDX)"
        )
    if version == 3 and tee_type != TEE_TYPE_SGX:
        raise QuoteFormatError(
            f"DCAP quote: a v3 quote must be SGX, but its TEE type is {tee_type:#x}"
        )
    return QuoteHeader(
        version=version,
        att_key_type=att_key_type,
        tee_type=tee_type,
        qe_svn=qe_svn,
        pce_svn=pce_svn,
        qe_vendor_id=qe_vendor_id,
        user_data=user_data,
    )


def _body_type(cursor: ByteCursor, header: QuoteHeader) -> Literal[1, 2, 3]:
    if header.version < 5:
        return BODY_TYPE_TD10 if header.tee_type == TEE_TYPE_TDX else BODY_TYPE_SGX
    body_type = cursor.u16("body type")
    body_size = cursor.u32("body size")
    expected = {
        BODY_TYPE_SGX: SGX_REPORT_BODY_SIZE,
        BODY_TYPE_TD10: TD_REPORT10_SIZE,
        BODY_TYPE_TD15: TD_REPORT15_SIZE,
    }
    if body_type not in expected:
        raise cursor.fail(
            f"v5 body type is {body_type}; expected 1 (SGX), 2 (TD 1.0) or 3 (TD 1.5)"
        )
    if body_size != expected[body_type]:
        raise cursor.fail(
            f"v5 body of type {body_type} must be {expected[body_type]} bytes, "
            f"but its descriptor says {body_size}"
        )
    is_tdx_body = body_type != BODY_TYPE_SGX
    if is_tdx_body != (header.tee_type == TEE_TYPE_TDX):
        raise cursor.fail(
            f"v5 body type {body_type} does not match the header's TEE type {header.tee_type:#x}"
        )
    if body_type == BODY_TYPE_SGX:
        return BODY_TYPE_SGX
    return BODY_TYPE_TD10 if body_type == BODY_TYPE_TD10 else BODY_TYPE_TD15


def _parse_sgx_report_body(cursor: ByteCursor, what: str) -> SgxReportBody:
    return SgxReportBody.model_validate(cursor.read(_SGX_REPORT_BODY, what))


def _parse_td_report(cursor: ByteCursor, body_type: int) -> TdReport10:
    values = cursor.read(_TD_REPORTS[body_type], "TD report")
    if body_type == BODY_TYPE_TD15:
        return TdReport15.model_validate(values)
    return TdReport10.model_validate(values)
