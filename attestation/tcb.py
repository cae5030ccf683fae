"""Intel TCB status by Intel's matching rules: platform level, TDX module, QE identity.

The models mirror Intel PCS "TCB Info" v2/v3 and "Enclave Identity" v2 JSON (Intel SGX and
TDX PCS API specification, sections "TCB Info V3" and "Enclave Identity V2");
`parse_collateral_document` reads either document's JSON into them. The matching follows
Intel's Quote Verification Library (QuoteVerifier.cpp / TcbLevelCheck):
- the platform TCB level is the first level (in the document's order, highest first) whose
  SGX components and PCESVN are all <= the PCK certificate's, and, for TDX, whose TDX
  components are <= the quote's TEE_TCB_SVN (skipping its first two bytes when the TDX
  module major version, TEE_TCB_SVN[1], is not zero);
- for TDX with a module major version, the TDX module identity "TDX_<major>" must match
  MRSIGNERSEAM and SEAMATTRIBUTES, and its level is the first whose ISVSVN <= TEE_TCB_SVN[0];
- the QE identity must match the QE report, and its level is the first whose ISVSVN <= the
  QE's ISVSVN;
- an OutOfDate module or QE lowers the platform status (UpToDate/SWHardeningNeeded become
  OutOfDate, the Configuration* ones OutOfDateConfigurationNeeded); Revoked anywhere wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, ValidationError

from attestation.formats.dcap import SgxReportBody, TdReport10
from attestation.formats.pck_extension import PckTcb
from attestation.jsontext import loads_bounded
from attestation.timefmt import parse_time

# Status reported when no TCB level matches: Intel's QVL calls it STATUS_TCB_NOT_SUPPORTED.
TCB_UNSUPPORTED = "Unsupported"
REVOKED = "Revoked"
OUT_OF_DATE = "OutOfDate"
_LOWERED_BY_OUT_OF_DATE = {
    "UpToDate": "OutOfDate",
    "SWHardeningNeeded": "OutOfDate",
    "ConfigurationNeeded": "OutOfDateConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded": "OutOfDateConfigurationNeeded",
}

_MODEL = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


def _hex_text(text: str) -> str:
    # Matching turns these fields into bytes; checking them here makes bad hex in a TCB Info
    # or QE Identity a schema error naming the field, not a ValueError deep in the matching.
    try:
        bytes.fromhex(text)
    except ValueError:
        shown = text if len(text) <= 100 else text[:100] + "..."
        raise ValueError(f"expected hex digits, found {shown!r}") from None
    return text


# Hex text as Intel writes it, kept as given (the matching compares it case-insensitively).
HexText = Annotated[StrictStr, AfterValidator(_hex_text)]


class TcbComponent(BaseModel):
    model_config = _MODEL
    svn: int = Field(ge=0, le=255)


class PlatformTcb(BaseModel):
    """A TCB level's `tcb`: v3 component lists, or v2's sgxtcbcompNNsvn keys (normalized)."""

    model_config = _MODEL
    sgxtcbcomponents: list[TcbComponent] = Field(min_length=16, max_length=16)
    pcesvn: int = Field(ge=0, le=65535)
    tdxtcbcomponents: list[TcbComponent] | None = Field(default=None, min_length=16, max_length=16)


class TcbLevel(BaseModel):
    model_config = _MODEL
    tcb: PlatformTcb
    tcb_date: str = Field(alias="tcbDate")
    tcb_status: str = Field(alias="tcbStatus")
    advisory_ids: list[str] = Field(default_factory=list, alias="advisoryIDs")


class IsvSvnTcb(BaseModel):
    model_config = _MODEL
    isvsvn: int = Field(ge=0, le=65535)


class IsvTcbLevel(BaseModel):
    model_config = _MODEL
    tcb: IsvSvnTcb
    tcb_date: str = Field(alias="tcbDate")
    tcb_status: str = Field(alias="tcbStatus")
    advisory_ids: list[str] = Field(default_factory=list, alias="advisoryIDs")


class TdxModule(BaseModel):
    model_config = _MODEL
    mrsigner: HexText
    attributes: HexText
    attributes_mask: HexText = Field(alias="attributesMask")


class TdxModuleIdentity(TdxModule):
    id: str
    tcb_levels: list[IsvTcbLevel] = Field(alias="tcbLevels")


class TcbInfo(BaseModel):
    model_config = _MODEL
    id: str = "SGX"
    version: int
    issue_date: str = Field(alias="issueDate")
    next_update: str = Field(alias="nextUpdate")
    fmspc: HexText
    pce_id: HexText = Field(alias="pceId")
    tcb_evaluation_data_number: int = Field(alias="tcbEvaluationDataNumber")
    tdx_module: TdxModule | None = Field(default=None, alias="tdxModule")
    tdx_module_identities: list[TdxModuleIdentity] = Field(
        default_factory=list, alias="tdxModuleIdentities"
    )
    tcb_levels: list[TcbLevel] = Field(alias="tcbLevels", min_length=1)


class QeIdentity(BaseModel):
    model_config = _MODEL
    id: str
    version: int
    issue_date: str = Field(alias="issueDate")
    next_update: str = Field(alias="nextUpdate")
    miscselect: HexText
    miscselect_mask: HexText = Field(alias="miscselectMask")
    attributes: HexText
    attributes_mask: HexText = Field(alias="attributesMask")
    mrsigner: HexText
    isvprodid: int
    tcb_levels: list[IsvTcbLevel] = Field(alias="tcbLevels", min_length=1)


@dataclass(frozen=True)
class LevelMatch:
    """The TCB level a platform, module or QE landed on (or why none matched)."""

    status: str
    advisory_ids: tuple[str, ...]
    detail: str


def normalize_v2_levels(raw: dict[str, object]) -> dict[str, object]:
    """Rewrite TCB Info v2 levels (`sgxtcbcompNNsvn` keys) into the v3 component-list form."""
    for level in raw.get("tcbLevels", []) or []:  # type: ignore[attr-defined]
        tcb = level.get("tcb") if isinstance(level, dict) else None
        if isinstance(tcb, dict) and "sgxtcbcomponents" not in tcb:
            tcb["sgxtcbcomponents"] = [
                {"svn": tcb.get(f"sgxtcbcomp{index:02d}svn")} for index in range(1, 17)
            ]
    return raw


def parse_collateral_document(text: bytes, kind: str) -> TcbInfo | QeIdentity | str:
    """The parsed TCB Info (`kind` "tcb_info") or QE Identity, or what about it does not fit
    the schema, as a short message (the text may be unsigned, so nothing in it raises).

    The hex fields the matching reads are checked by the models' HexText type.
    """
    try:
        raw = loads_bounded(text)
        if not isinstance(raw, dict):
            return f"expected a JSON object, found {type(raw).__name__}"
        parsed: TcbInfo | QeIdentity = (
            TcbInfo.model_validate(normalize_v2_levels(raw))
            if kind == "tcb_info"
            else QeIdentity.model_validate(raw)
        )
    except ValidationError as exc:
        return _schema_problems(exc)
    # The text may be unsigned, so deep nesting must fail the format check rather than
    # escape: loads_bounded refuses it as a ValueError; RecursionError is the backstop.
    except (ValueError, AttributeError, TypeError, RecursionError) as exc:
        return _shortened(str(exc))
    for key, value in (("issueDate", parsed.issue_date), ("nextUpdate", parsed.next_update)):
        try:
            parse_time(value)
        except ValueError as exc:
            return f"{key}: {_shortened(str(exc))}"
    return parsed


def _schema_problems(error: ValidationError) -> str:
    # The first few problems are enough to name what is wrong; unsigned text could hold
    # thousands of them.
    problems = [
        f"{'.'.join(map(str, item['loc']))}: {_shortened(item['msg'])}"
        for item in error.errors()[:3]
    ]
    more = error.error_count() - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def _shortened(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def match_platform_level(tcb_info: TcbInfo, pck: PckTcb, tee_tcb_svn: bytes | None) -> LevelMatch:
    """The first TCB level the PCK certificate's SVNs (and the TD's TEE_TCB_SVN) reach."""
    tdx_start = 2 if tee_tcb_svn is not None and tee_tcb_svn[1] > 0 else 0
    for level in tcb_info.tcb_levels:
        required = level.tcb
        if any(
            have < need.svn
            for have, need in zip(pck.sgx_tcb_components, required.sgxtcbcomponents, strict=True)
        ):
            continue
        if pck.pce_svn < required.pcesvn:
            continue
        if tee_tcb_svn is not None:
            if required.tdxtcbcomponents is None:
                continue
            if any(
                tee_tcb_svn[index] < required.tdxtcbcomponents[index].svn
                for index in range(tdx_start, 16)
            ):
                continue
        return LevelMatch(
            level.tcb_status,
            tuple(level.advisory_ids),
            f"platform TCB level of {level.tcb_date}: {level.tcb_status}",
        )
    return LevelMatch(
        TCB_UNSUPPORTED,
        (),
        "no TCB level in the TCB Info is reached by the PCK certificate's SGX TCB components "
        f"{list(pck.sgx_tcb_components)} and PCESVN {pck.pce_svn}"
        + (f" with TEE_TCB_SVN {tee_tcb_svn.hex()}" if tee_tcb_svn is not None else ""),
    )


def match_tdx_module(tcb_info: TcbInfo, body: TdReport10) -> LevelMatch | None:
    """The TDX module's level, or None when the module has no identity levels to check.

    A module whose signer or attributes do not match comes back as Unsupported.
    """
    major = body.tee_tcb_svn[1]
    if major == 0 or not tcb_info.tdx_module_identities:
        module = tcb_info.tdx_module
        if module is not None and not _module_matches(module, body):
            return LevelMatch(
                TCB_UNSUPPORTED, (), _module_mismatch_detail("tdxModule", module, body)
            )
        return None
    wanted = f"TDX_{major:02X}"
    identity = next(
        (item for item in tcb_info.tdx_module_identities if item.id.upper() == wanted), None
    )
    if identity is None:
        return LevelMatch(TCB_UNSUPPORTED, (), f"the TCB Info has no TDX module identity {wanted}")
    if not _module_matches(identity, body):
        return LevelMatch(TCB_UNSUPPORTED, (), _module_mismatch_detail(wanted, identity, body))
    isv_svn = body.tee_tcb_svn[0]
    for level in identity.tcb_levels:
        if level.tcb.isvsvn <= isv_svn:
            return LevelMatch(
                level.tcb_status,
                tuple(level.advisory_ids),
                f"TDX module {wanted} SVN {isv_svn}: {level.tcb_status}",
            )
    return LevelMatch(
        TCB_UNSUPPORTED, (), f"TDX module {wanted} SVN {isv_svn} is below every listed level"
    )


def _module_matches(module: TdxModule, body: TdReport10) -> bool:
    mask = bytes.fromhex(module.attributes_mask)
    masked = bytes(a & m for a, m in zip(body.seam_attributes, mask, strict=False))
    return bytes.fromhex(module.mrsigner) == body.mr_signer_seam and masked == bytes.fromhex(
        module.attributes
    )


def _module_mismatch_detail(name: str, module: TdxModule, body: TdReport10) -> str:
    return (
        f"TDX module identity {name} expects MRSIGNERSEAM {module.mrsigner.lower()} and "
        f"SEAMATTRIBUTES {module.attributes.lower()} (mask {module.attributes_mask.lower()}); "
        f"the quote has {body.mr_signer_seam.hex()} and {body.seam_attributes.hex()}"
    )


def match_qe_identity(identity: QeIdentity, qe_report: SgxReportBody) -> LevelMatch:
    """The QE's level under its identity; Unsupported when the QE does not match it."""
    problems = []
    if bytes.fromhex(identity.mrsigner) != qe_report.mr_signer:
        problems.append(
            f"MRSIGNER {qe_report.mr_signer.hex()} (expected {identity.mrsigner.lower()})"
        )
    if identity.isvprodid != qe_report.isv_prod_id:
        problems.append(f"ISVPRODID {qe_report.isv_prod_id} (expected {identity.isvprodid})")
    if not _masked_equal(qe_report.misc_select, identity.miscselect_mask, identity.miscselect):
        problems.append(f"MISCSELECT {qe_report.misc_select.hex()} under the identity's mask")
    if not _masked_equal(qe_report.attributes, identity.attributes_mask, identity.attributes):
        problems.append(f"ATTRIBUTES {qe_report.attributes.hex()} under the identity's mask")
    if problems:
        return LevelMatch(
            TCB_UNSUPPORTED,
            (),
            f"the QE does not match identity {identity.id}: " + "; ".join(problems),
        )
    for level in identity.tcb_levels:
        if level.tcb.isvsvn <= qe_report.isv_svn:
            return LevelMatch(
                level.tcb_status,
                tuple(level.advisory_ids),
                f"QE {identity.id} ISVSVN {qe_report.isv_svn}: {level.tcb_status}",
            )
    return LevelMatch(
        TCB_UNSUPPORTED,
        (),
        f"QE ISVSVN {qe_report.isv_svn} is below every level of identity {identity.id}",
    )


def _masked_equal(value: bytes, mask_hex: str, expected_hex: str) -> bool:
    mask = bytes.fromhex(mask_hex)
    expected = bytes.fromhex(expected_hex)
    if len(mask) != len(value) or len(expected) != len(value):
        return False
    return bytes(v & m for v, m in zip(value, mask, strict=True)) == expected


def converge(platform: LevelMatch, others: list[LevelMatch]) -> tuple[str, list[str]]:
    """Combine the platform status with the TDX module and QE statuses, as Intel's QVL does."""
    status = platform.status
    advisories = list(platform.advisory_ids)
    for other in others:
        if other.status == REVOKED:
            status = REVOKED
        elif other.status == OUT_OF_DATE and status in _LOWERED_BY_OUT_OF_DATE:
            status = _LOWERED_BY_OUT_OF_DATE[status]
        for advisory in other.advisory_ids:
            if advisory not in advisories:
                advisories.append(advisory)
    return status, advisories
