"""AMD SEV-SNP attestation reports (ATTESTATION_REPORT, version 2 and later), bytes to a model.

Layout: "SEV Secure Nested Paging Firmware ABI Specification" (AMD publication 56860),
rev 1.55 section 7.3 Table 22 "ATTESTATION_REPORT Structure" (rev 1.57+: Table 23). All
integers are little-endian. The report is 0x4A0 (1184) bytes; the signature covers bytes
[0, 0x2A0). Version 3 adds CPUID_FAM_ID / CPUID_MOD_ID / CPUID_STEP in what was reserved
space; version 5 adds LAUNCH_MIT_VECTOR / CURRENT_MIT_VECTOR. Reserved (must-be-zero) bytes
are not judged here: they are covered by the signature. Bytes after the report are ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from attestation.encoding import MAX_EVIDENCE_BYTES
from attestation.errors import SnpFormatError

REPORT_SIZE = 0x4A0  # Table 22: the structure is 4A0h bytes
SIGNED_SIZE = 0x2A0  # Table 22: SIGNATURE at 2A0h covers bytes 0h..29Fh
MIN_VERSION = 2  # Table 22: VERSION is 2 for this layout (3 and 5 extend it compatibly)
CPUID_MIN_VERSION = 3  # CPUID_FAM_ID/MOD_ID/STEP at 188h..18Ah, report version 3 and later
MIT_VECTOR_MIN_VERSION = 5  # LAUNCH_MIT_VECTOR 1F8h, CURRENT_MIT_VECTOR 200h, version 5 and later

# Table 22 offsets (and sizes) of each field.
_VERSION = (0x000, 4)
_GUEST_SVN = (0x004, 4)
_POLICY = (0x008, 8)
_FAMILY_ID = (0x010, 16)
_IMAGE_ID = (0x020, 16)
_VMPL = (0x030, 4)
_SIGNATURE_ALGO = (0x034, 4)
_CURRENT_TCB = (0x038, 8)
_PLATFORM_INFO = (0x040, 8)
_SIGNER_INFO = (0x048, 4)  # bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY
_REPORT_DATA = (0x050, 64)
_MEASUREMENT = (0x090, 48)
_HOST_DATA = (0x0C0, 32)
_ID_KEY_DIGEST = (0x0E0, 48)
_AUTHOR_KEY_DIGEST = (0x110, 48)
_REPORT_ID = (0x140, 32)
_REPORT_ID_MA = (0x160, 32)
_REPORTED_TCB = (0x180, 8)
_CPUID_FAM_ID = (0x188, 1)
_CPUID_MOD_ID = (0x189, 1)
_CPUID_STEP = (0x18A, 1)
_CHIP_ID = (0x1A0, 64)
_COMMITTED_TCB = (0x1E0, 8)
_CURRENT_BUILD = (0x1E8, 1)
_CURRENT_MINOR = (0x1E9, 1)
_CURRENT_MAJOR = (0x1EA, 1)
_COMMITTED_BUILD = (0x1EC, 1)
_COMMITTED_MINOR = (0x1ED, 1)
_COMMITTED_MAJOR = (0x1EE, 1)
_LAUNCH_TCB = (0x1F0, 8)
_LAUNCH_MIT_VECTOR = (0x1F8, 8)
_CURRENT_MIT_VECTOR = (0x200, 8)
# Table 22 SIGNATURE (2A0h, 200h bytes) holds, for SIGNATURE_ALGO 1, the spec's "ECDSA
# P-384 with SHA-384 Signature" format (Appendix, Digital Signatures): R at 0h and S at 48h,
# each 72 bytes little-endian, zero-padded.
_SIGNATURE_R = (0x2A0, 72)
_SIGNATURE_S = (0x2E8, 72)

# POLICY bit 19: DEBUG, "debugging is allowed" (ABI spec section 4.3 "Guest Policy").
POLICY_DEBUG_BIT = 19
# SIGNATURE_ALGO 1: ECDSA P-384 with SHA-384 (ABI spec, "Signature Algorithms" table).
SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1


class SnpReport(BaseModel):
    """One parsed ATTESTATION_REPORT; field names follow the ABI specification.

    TCB_VERSION fields (`current_tcb`, `reported_tcb`, `committed_tcb`, `launch_tcb`) are the
    8 raw bytes as they appear in the report (little-endian), because their byte layout
    depends on the processor generation.
    """

    model_config = ConfigDict(frozen=True)

    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: bytes
    platform_info: int
    author_key_en: bool
    mask_chip_key: bool
    signing_key: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: bytes
    cpuid_fam_id: int | None  # version 3 and later
    cpuid_mod_id: int | None  # version 3 and later
    cpuid_step: int | None  # version 3 and later
    chip_id: bytes
    committed_tcb: bytes
    current_build: int
    current_minor: int
    current_major: int
    committed_build: int
    committed_minor: int
    committed_major: int
    launch_tcb: bytes
    launch_mit_vector: int | None  # version 5 and later
    current_mit_vector: int | None  # version 5 and later
    signature_r: bytes  # 72 bytes, little-endian
    signature_s: bytes  # 72 bytes, little-endian
    signed_bytes: bytes  # report bytes [0, 0x2A0), exactly as signed

    @property
    def debug_allowed(self) -> bool:
        """POLICY.DEBUG: the guest policy allows the hypervisor to debug (decrypt) the guest."""
        return bool(self.policy >> POLICY_DEBUG_BIT & 1)


def parse_snp_report(data: bytes) -> SnpReport:
    """Parse an AMD SEV-SNP attestation report of version 2 or later.

    Raises:
        SnpFormatError: the input is not bytes, shorter than 1184 bytes, over the evidence
            size limit, or has a VERSION below 2.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SnpFormatError(f"SEV-SNP report: expected bytes, found {type(data).__name__}")
    raw = bytes(data)
    if len(raw) < REPORT_SIZE:
        raise SnpFormatError(
            f"SEV-SNP report is truncated: expected {REPORT_SIZE} bytes, found {len(raw)}"
        )
    if len(raw) > MAX_EVIDENCE_BYTES:
        raise SnpFormatError(
            f"SEV-SNP report: {len(raw)} bytes is over the limit of {MAX_EVIDENCE_BYTES} bytes"
        )

    def octets(field: tuple[int, int]) -> bytes:
        offset, size = field
        return raw[offset : offset + size]

    def number(field: tuple[int, int]) -> int:
        return int.from_bytes(octets(field), "little")

    version = number(_VERSION)
    if version < MIN_VERSION:
        raise SnpFormatError(
            f"SEV-SNP report: field 'version' must be {MIN_VERSION} or later, found {version}"
        )
    has_cpuid = version >= CPUID_MIN_VERSION
    has_mit = version >= MIT_VECTOR_MIN_VERSION
    signer_info = number(_SIGNER_INFO)
    return SnpReport(
        version=version,
        guest_svn=number(_GUEST_SVN),
        policy=number(_POLICY),
        family_id=octets(_FAMILY_ID),
        image_id=octets(_IMAGE_ID),
        vmpl=number(_VMPL),
        signature_algo=number(_SIGNATURE_ALGO),
        current_tcb=octets(_CURRENT_TCB),
        platform_info=number(_PLATFORM_INFO),
        author_key_en=bool(signer_info & 0b1),
        mask_chip_key=bool(signer_info >> 1 & 0b1),
        signing_key=signer_info >> 2 & 0b111,
        report_data=octets(_REPORT_DATA),
        measurement=octets(_MEASUREMENT),
        host_data=octets(_HOST_DATA),
        id_key_digest=octets(_ID_KEY_DIGEST),
        author_key_digest=octets(_AUTHOR_KEY_DIGEST),
        report_id=octets(_REPORT_ID),
        report_id_ma=octets(_REPORT_ID_MA),
        reported_tcb=octets(_REPORTED_TCB),
        cpuid_fam_id=number(_CPUID_FAM_ID) if has_cpuid else None,
        cpuid_mod_id=number(_CPUID_MOD_ID) if has_cpuid else None,
        cpuid_step=number(_CPUID_STEP) if has_cpuid else None,
        chip_id=octets(_CHIP_ID),
        committed_tcb=octets(_COMMITTED_TCB),
        current_build=number(_CURRENT_BUILD),
        current_minor=number(_CURRENT_MINOR),
        current_major=number(_CURRENT_MAJOR),
        committed_build=number(_COMMITTED_BUILD),
        committed_minor=number(_COMMITTED_MINOR),
        committed_major=number(_COMMITTED_MAJOR),
        launch_tcb=octets(_LAUNCH_TCB),
        launch_mit_vector=number(_LAUNCH_MIT_VECTOR) if has_mit else None,
        current_mit_vector=number(_CURRENT_MIT_VECTOR) if has_mit else None,
        signature_r=octets(_SIGNATURE_R),
        signature_s=octets(_SIGNATURE_S),
        signed_bytes=raw[:SIGNED_SIZE],
    )
