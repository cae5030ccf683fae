"""The validation policy's schema: a frozen pydantic model, read from a TOML file.

Every key is checked when the file is loaded (unknown keys, types, hex lengths), so a typo
is an error rather than a rule that silently never applies. `attestation.policy` applies
the policy to a verification report.

    accepted_tcb_statuses = ["UpToDate"]   # default
    allow_debug = false                    # default
    max_age_seconds = 300                  # optional; needs evidence that carries a time
    [report_data]                          # optional; exactly one of:
    exact = "<hex>"                        #   the whole report_data
    prefix = "<32 bytes hex>"              #   report_data = prefix || the caller's nonce
    [event_log]                            # optional: needs a TDX event log (--event-log)
    compose_hash = "<32 bytes hex>"        #   dstack's compose-hash event in RTMR3 holds this
    config_hash = "<32 bytes hex>"         #   the agent's own events hold this config hash
    model_hash = "<32 bytes hex>"          #   and this model hash (none allowed without it)
    [[tdx]]                                # TDX and simulated quotes; any one set may match
    mr_td = "<48 bytes hex>"               #   rtmr0..rtmr3 optional
    [[sgx]]                                # mr_enclave and/or mr_signer (+ isv_prod_id),
    mr_enclave = "<32 bytes hex>"          #   min_isv_svn (default 0)
    [[nitro]]
    pcrs = { 0 = "<48 bytes hex>" }        # PCRs by index
    [[sev_snp]]
    measurement = "<48 bytes hex>"
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from attestation.errors import PolicyFormatError

# TCB statuses Intel PCS reports in TCB Info and QE Identity ("Intel SGX/TDX PCS API",
# tcbLevels[].tcbStatus). Listed so that a misspelt status is an error, not a silent no-op.
KNOWN_TCB_STATUSES = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
        "Revoked",
        # Reported by this package's verifier when no TCB level matches (Intel's QVL:
        # STATUS_TCB_NOT_SUPPORTED); known so that the error for a typo stays accurate.
        "Unsupported",
    }
)

# Sizes in bytes. TDX: TDX DCAP Quoting Library API A.3.2 (MRTD, RTMR0-3 are SHA-384).
# SGX: ECDSA Quote Library API A.4.6 (MRENCLAVE, MRSIGNER are SHA-256). Nitro: PCRs are
# SHA-384 (Nitro Enclaves User Guide, "Where to get an enclave's measurements"). SEV-SNP:
# MEASUREMENT is 48 bytes (SEV-SNP ABI spec, Table 22 ATTESTATION_REPORT).
TDX_MEASUREMENT_SIZE = 48
SGX_MEASUREMENT_SIZE = 32
NITRO_PCR_SIZE = 48
NITRO_MAX_PCR_INDEX = 31
SNP_MEASUREMENT_SIZE = 48
REPORT_DATA_PREFIX_SIZE = 32
# dstack's compose hash is SHA-256 of the app compose file (dstack-util system_setup.rs,
# emit_runtime_event("compose-hash", ...)); tee-agent's config and model hashes are SHA-256.
EVENT_HASH_SIZE = 32
# Nitro user data is at most 512 bytes; DCAP and SNP report_data is 64 bytes.
MAX_REPORT_DATA_SIZE = 1024
U16_MAX = 0xFFFF


def _hex_of_size(size: int | None) -> AfterValidator:
    """A validator: hex text (optional 0x) of exactly `size` bytes, normalized to lowercase."""

    def check(text: str) -> str:
        digits = text.strip().lower().removeprefix("0x")
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            raise ValueError(f"expected hex digits, found {text!r}") from None
        if size is not None and len(raw) != size:
            raise ValueError(
                f"expected {size} bytes ({2 * size} hex digits), found {len(raw)} bytes"
            )
        if size is None and not 1 <= len(raw) <= MAX_REPORT_DATA_SIZE:
            raise ValueError(f"expected 1 to {MAX_REPORT_DATA_SIZE} bytes, found {len(raw)}")
        return raw.hex()

    return AfterValidator(check)


TdxHex = Annotated[StrictStr, _hex_of_size(TDX_MEASUREMENT_SIZE)]
SgxHex = Annotated[StrictStr, _hex_of_size(SGX_MEASUREMENT_SIZE)]
NitroPcrHex = Annotated[StrictStr, _hex_of_size(NITRO_PCR_SIZE)]
SnpHex = Annotated[StrictStr, _hex_of_size(SNP_MEASUREMENT_SIZE)]
PrefixHex = Annotated[StrictStr, _hex_of_size(REPORT_DATA_PREFIX_SIZE)]
EventHashHex = Annotated[StrictStr, _hex_of_size(EVENT_HASH_SIZE)]
AnyHex = Annotated[StrictStr, _hex_of_size(None)]
U16 = Annotated[StrictInt, Field(ge=0, le=U16_MAX)]


def _pcr_indexes(value: object) -> object:
    # TOML table keys are always strings; accept only plain decimal PCR indexes.
    if not isinstance(value, dict):
        return value
    converted: dict[int, object] = {}
    for key, pcr in value.items():
        text = str(key)
        if not (text.isascii() and text.isdigit()) or int(text) > NITRO_MAX_PCR_INDEX:
            raise ValueError(
                f"PCR index must be a whole number from 0 to {NITRO_MAX_PCR_INDEX}, found {text!r}"
            )
        converted[int(text)] = pcr
    return converted


_STRICT = ConfigDict(frozen=True, extra="forbid")


class TdxMeasurementSet(BaseModel):
    """One allowed TD (also used for simulated quotes): MRTD, and any RTMRs to pin."""

    model_config = _STRICT

    mr_td: TdxHex
    rtmr0: TdxHex | None = None
    rtmr1: TdxHex | None = None
    rtmr2: TdxHex | None = None
    rtmr3: TdxHex | None = None

    def pinned(self) -> dict[str, str]:
        """The measurements this set pins, by the name the report uses."""
        return {k: v for k, v in self.model_dump().items() if isinstance(v, str)}


class SgxMeasurementSet(BaseModel):
    """One allowed enclave: MRENCLAVE and/or MRSIGNER, product id, minimum ISV SVN."""

    model_config = _STRICT

    mr_enclave: SgxHex | None = None
    mr_signer: SgxHex | None = None
    isv_prod_id: U16 | None = None
    min_isv_svn: U16 = 0

    @model_validator(mode="after")
    def _names_an_enclave(self) -> SgxMeasurementSet:
        if self.mr_enclave is None and self.mr_signer is None:
            raise ValueError("an [[sgx]] set needs mr_enclave, mr_signer or both; found neither")
        if self.mr_enclave is None and self.isv_prod_id is None:
            # A signer signs many enclaves; without the product id any of them would pass.
            raise ValueError("an [[sgx]] set with only mr_signer also needs isv_prod_id")
        return self


class NitroMeasurementSet(BaseModel):
    """One allowed enclave image: PCR values by index (e.g. 0, 1, 2, 8)."""

    model_config = _STRICT

    pcrs: Annotated[dict[int, NitroPcrHex], BeforeValidator(_pcr_indexes)]

    @model_validator(mode="after")
    def _pins_something(self) -> NitroMeasurementSet:
        if not self.pcrs:
            raise ValueError("a [[nitro]] set needs at least one PCR in pcrs; found none")
        return self


class SnpMeasurementSet(BaseModel):
    """One allowed SEV-SNP guest launch measurement."""

    model_config = _STRICT

    measurement: SnpHex


class ReportDataRule(BaseModel):
    """What report_data must hold: `exact` bytes, or a 32-byte `prefix` then the nonce."""

    model_config = _STRICT

    exact: AnyHex | None = None
    prefix: PrefixHex | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ReportDataRule:
        if (self.exact is None) == (self.prefix is None):
            raise ValueError("[report_data] needs exactly one of exact or prefix")
        return self


class EventLogRule(BaseModel):
    """What the TDX event log given with the evidence must show ([event_log]).

    The table's presence requires a log that verified (digests hold, replay equals the
    quote's RTMRs). `compose_hash`: dstack's `compose-hash` event in RTMR3 carries it.
    `config_hash`: the agent's own events carry it, and `model_hash` (or, without it, no
    model-hash event at all).
    """

    model_config = _STRICT

    compose_hash: EventHashHex | None = None
    config_hash: EventHashHex | None = None
    model_hash: EventHashHex | None = None

    @model_validator(mode="after")
    def _model_with_config(self) -> EventLogRule:
        if self.model_hash is not None and self.config_hash is None:
            raise ValueError("[event_log] model_hash needs config_hash (the agent's events)")
        return self


def _known_statuses(statuses: tuple[str, ...]) -> tuple[str, ...]:
    if not statuses:
        raise ValueError("expected at least one TCB status; an empty list would accept nothing")
    unknown = sorted(set(statuses) - KNOWN_TCB_STATUSES)
    if unknown:
        raise ValueError(
            f"unknown TCB status {', '.join(unknown)}; "
            f"known: {', '.join(sorted(KNOWN_TCB_STATUSES))}"
        )
    return statuses


class ValidationPolicy(BaseModel):
    """The caller's policy; every field has the strict default.

    A TEE kind with no allowed measurement set accepts no evidence of that kind.
    """

    model_config = _STRICT

    accepted_tcb_statuses: Annotated[tuple[StrictStr, ...], AfterValidator(_known_statuses)] = (
        "UpToDate",
    )
    allow_debug: StrictBool = False
    max_age_seconds: Annotated[StrictInt, Field(gt=0)] | None = None
    report_data: ReportDataRule | None = None
    event_log: EventLogRule | None = None
    tdx: tuple[TdxMeasurementSet, ...] = ()
    sgx: tuple[SgxMeasurementSet, ...] = ()
    nitro: tuple[NitroMeasurementSet, ...] = ()
    sev_snp: tuple[SnpMeasurementSet, ...] = ()


def load_policy(path: Path | str) -> ValidationPolicy:
    """Read a validation policy from a TOML file.

    Raises:
        PolicyFormatError: the file cannot be read, is not TOML, or does not match the
            schema (unknown key, wrong type, hex of the wrong length, ...). The message names
            the file and, for each problem, the key path and what is wrong.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise PolicyFormatError(f"{path}: cannot read policy: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PolicyFormatError(f"{path}: policy is not UTF-8 text") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFormatError(f"{path}: not valid TOML: {exc}") from None
    return policy_from_mapping(document, source=str(path))


def policy_from_mapping(document: dict[str, Any], *, source: str) -> ValidationPolicy:
    """Build a policy from already-parsed TOML (or JSON) data; `source` names it in errors.

    Raises:
        PolicyFormatError: the data does not match the schema.
    """
    try:
        return ValidationPolicy.model_validate(document)
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        lines = "\n".join(f"  {problem}" for problem in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        raise PolicyFormatError(
            f"{source}: invalid policy ({len(problems)} {noun}):\n{lines}"
        ) from None


def _describe(error: Any) -> str:
    """One readable line for one pydantic error: key path, then what is wrong."""
    location = _key_path(error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{location}: unknown key; allowed here: {', '.join(_allowed_keys(error['loc']))}"
    if kind == "missing":
        return f"{location}: required key is missing"
    message = _PLAIN_MESSAGES.get(kind) or str(error["msg"]).removeprefix("Value error, ")
    found = error.get("input")
    if "found" not in message and not isinstance(found, dict | list):
        message = f"{message}; found {type(found).__name__} {found!r}"
    return f"{location}: {message}"


_PLAIN_MESSAGES = {
    "tuple_type": "expected a list (or an array of tables, [[name]])",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
    "dict_type": "expected a table",
}


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    tables: dict[str, type[BaseModel]] = {
        "report_data": ReportDataRule,
        "event_log": EventLogRule,
        "tdx": TdxMeasurementSet,
        "sgx": SgxMeasurementSet,
        "nitro": NitroMeasurementSet,
        "sev_snp": SnpMeasurementSet,
    }
    model = tables.get(str(loc[0]), ValidationPolicy) if len(loc) > 1 else ValidationPolicy
    return list(model.model_fields)


def _key_path(loc: tuple[Any, ...]) -> str:
    # ("tdx", 0, "mr_td") -> "tdx[0].mr_td"; ("nitro", 0, "pcrs", 3) -> "nitro[0].pcrs.3".
    # Pydantic adds the validator's name to some locations; those are not keys.
    path = ""
    for part in loc:
        if isinstance(part, int) and path and not path.endswith("pcrs"):
            path += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path
