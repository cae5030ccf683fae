"""AWS Nitro Enclaves attestation documents: COSE_Sign1 over CBOR, bytes to a frozen model.

Layout: RFC 9052 section 4.2 (COSE_Sign1 = [protected: bstr, unprotected: map, payload: bstr,
signature: bstr], optionally under CBOR tag 18) and the AWS Nitro Enclaves attestation
document specification (aws-nitro-enclaves-nsm-api, docs/attestation_process.md, sections
2.2 "Attestation Document Specification" and 3.2.2 "Syntactical validation").

The parser checks structure only. The algorithm named in the protected header is recorded
(`algorithm`) but not judged here: a well-formed document that names another algorithm than
ES384 is a verification failure (check `cose_algorithm`), not a format error. Bytes after the
top-level CBOR item are ignored (its true length comes from the structure); bytes after the
single CBOR item inside `protected` or `payload` are refused, since they are signed but
would be invisible to the verifier.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import cbor2
from pydantic import BaseModel, ConfigDict

from attestation.encoding import MAX_EVIDENCE_BYTES
from attestation.errors import NitroFormatError

# RFC 9052 section 4.2 / IANA "CBOR Tags": tag 18 marks a COSE_Sign1 structure.
COSE_SIGN1_TAG = 18
COSE_SIGN1_LENGTH = 4
# RFC 9052 section 3.1: header label 1 is "alg"; IANA COSE Algorithms: -35 is ES384.
COSE_HEADER_ALG = 1
COSE_ALG_ES384 = -35

# AWS attestation_process.md 3.1: the payload is "bstr .size (1..16384)".
MAX_PAYLOAD_BYTES = 16384
# Generous bound for the signature bstr (ES384 needs 96; the verifier judges the length).
MAX_SIGNATURE_BYTES = 1024
# attestation_process.md 2.2: "cert = bytes .size (1..1024)", "user_data = bytes .size
# (0..1024)" (section 3.2.2.2 narrows user_data and nonce to 512, which this parser does not
# enforce), "index = 0..31", "pcr = bytes .size (32/48/64)"; 3.2.2.2: pcrs has 1..32 entries.
MAX_CERT_BYTES = 1024
MAX_USER_DATA_BYTES = 1024
PCR_INDEX_RANGE = range(32)
PCR_LENGTHS = (32, 48, 64)
MAX_PCR_COUNT = 32
# attestation_process.md 2.2: "digest = "SHA384"".
DIGEST_SHA384 = "SHA384"
# Nesting in a real document is 3 levels (map > pcrs map > bstr); anything deeper is hostile.
_MAX_CBOR_DEPTH = 16

_MANDATORY_FIELDS = ("module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle")
_OPTIONAL_FIELDS = ("public_key", "user_data", "nonce")
_MAX_UINT64 = (1 << 64) - 1


class NitroDocument(BaseModel):
    """One parsed attestation document: the payload fields and the COSE_Sign1 parts."""

    model_config = ConfigDict(frozen=True)

    # Payload fields, named as in the AWS specification.
    module_id: str
    digest: str
    timestamp: int  # milliseconds since the Unix epoch, UTC
    pcrs: dict[int, bytes]
    certificate: bytes  # DER
    cabundle: tuple[bytes, ...]  # DER, root first, then down to the certificate's issuer
    public_key: bytes | None
    user_data: bytes | None
    nonce: bytes | None
    # COSE_Sign1 parts verification needs.
    tagged: bool  # True when the structure carried CBOR tag 18
    protected_header: bytes  # the raw `protected` bstr, exactly as signed
    algorithm: int | str | None  # protected header label 1 (alg); None when absent
    payload: bytes  # the raw payload bstr, exactly as signed
    signature: bytes  # raw r || s


def parse_nitro_document(data: bytes) -> NitroDocument:
    """Parse an AWS Nitro attestation document (tagged or untagged COSE_Sign1).

    Raises:
        NitroFormatError: empty or oversized input, CBOR that does not decode, or a structure
            or payload field that does not match the AWS specification. No other exception
            escapes, whatever the input.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise NitroFormatError(f"Nitro document: expected bytes, found {type(data).__name__}")
    raw = bytes(data)
    if not raw:
        raise NitroFormatError(
            "Nitro document: expected a CBOR COSE_Sign1 structure, found 0 bytes"
        )
    if len(raw) > MAX_EVIDENCE_BYTES:
        raise NitroFormatError(
            f"Nitro document: {len(raw)} bytes is over the limit of {MAX_EVIDENCE_BYTES} bytes"
        )
    top = _decode(raw, "COSE_Sign1 structure", whole=False)
    tagged = False
    if isinstance(top, cbor2.CBORTag):
        if top.tag != COSE_SIGN1_TAG:
            raise NitroFormatError(
                f"Nitro document: expected CBOR tag {COSE_SIGN1_TAG} (COSE_Sign1) or no tag, "
                f"found tag {top.tag}"
            )
        tagged = True
        top = top.value  # cbor2 decodes the contents of a tag as immutable (tuple, frozendict)
    if not isinstance(top, list | tuple) or len(top) != COSE_SIGN1_LENGTH:
        found = f"an array of {len(top)}" if isinstance(top, list | tuple) else _describe(top)
        raise NitroFormatError(
            f"Nitro document: COSE_Sign1 must be an array of {COSE_SIGN1_LENGTH} "
            "[protected, unprotected, payload, signature], "
            f"found {found}"
        )
    protected, unprotected, payload, signature = top
    protected_bytes = _bstr(protected, "COSE_Sign1 protected header", 0, MAX_PAYLOAD_BYTES)
    header = _decode(protected_bytes, "protected header", whole=True) if protected_bytes else {}
    if not isinstance(header, dict):
        raise NitroFormatError(
            f"Nitro document: protected header must decode to a map, found {_describe(header)}"
        )
    # Label 1 as a CBOR integer; Python's True == 1, so a boolean key must not count.
    labelled = [
        value for key, value in header.items() if type(key) is int and key == COSE_HEADER_ALG
    ]
    algorithm = labelled[0] if labelled else None
    if labelled and (isinstance(algorithm, bool) or not isinstance(algorithm, int | str)):
        raise NitroFormatError(
            "Nitro document: protected header alg (label 1) must be an integer or text, "
            f"found {_describe(algorithm)}"
        )
    if not isinstance(unprotected, Mapping):
        raise NitroFormatError(
            f"Nitro document: COSE_Sign1 unprotected header must be a map, "
            f"found {_describe(unprotected)}"
        )
    payload_bytes = _bstr(payload, "COSE_Sign1 payload", 1, MAX_PAYLOAD_BYTES)
    signature_bytes = _bstr(signature, "COSE_Sign1 signature", 1, MAX_SIGNATURE_BYTES)
    fields = _payload_fields(_decode(payload_bytes, "payload", whole=True))
    return NitroDocument(
        **fields,
        tagged=tagged,
        protected_header=protected_bytes,
        algorithm=algorithm,
        payload=payload_bytes,
        signature=signature_bytes,
    )


def _payload_fields(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise NitroFormatError(
            f"Nitro document: payload must decode to a map, found {_describe(payload)}"
        )
    unknown = [key for key in payload if key not in (*_MANDATORY_FIELDS, *_OPTIONAL_FIELDS)]
    if unknown:
        names = ", ".join(_describe(key) for key in unknown[:5])
        raise NitroFormatError(
            "Nitro document: payload has field(s) the AWS specification does not allow: "
            f"{names}; expected only {', '.join((*_MANDATORY_FIELDS, *_OPTIONAL_FIELDS))}"
        )
    missing = [name for name in _MANDATORY_FIELDS if name not in payload]
    if missing:
        raise NitroFormatError(
            f"Nitro document: payload is missing mandatory field(s) {', '.join(missing)}"
        )
    module_id = payload["module_id"]
    if not isinstance(module_id, str) or not module_id:
        raise NitroFormatError(
            "Nitro document: field 'module_id' must be non-empty text, "
            f"found {_describe(module_id)}"
        )
    digest = payload["digest"]
    if not isinstance(digest, str) or digest != DIGEST_SHA384:
        raise NitroFormatError(
            f"Nitro document: field 'digest' must be the text {DIGEST_SHA384!r}, "
            f"found {_describe(digest)}"
        )
    timestamp = payload["timestamp"]
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int)
        or not 0 < timestamp <= _MAX_UINT64
    ):
        raise NitroFormatError(
            "Nitro document: field 'timestamp' must be an unsigned 64-bit integer greater "
            f"than 0 (milliseconds since the epoch), found {_describe(timestamp)}"
        )
    certificate = _bstr(payload["certificate"], "field 'certificate'", 1, MAX_CERT_BYTES)
    cabundle = payload["cabundle"]
    if not isinstance(cabundle, list) or not cabundle:
        raise NitroFormatError(
            "Nitro document: field 'cabundle' must be a non-empty array of DER certificates, "
            f"found {_describe(cabundle)}"
        )
    bundle = tuple(
        _bstr(entry, f"field 'cabundle[{index}]'", 1, MAX_CERT_BYTES)
        for index, entry in enumerate(cabundle)
    )
    optional = {
        name: _optional_bstr(payload.get(name), name, MAX_USER_DATA_BYTES)
        for name in _OPTIONAL_FIELDS
    }
    return {
        "module_id": module_id,
        "digest": digest,
        "timestamp": timestamp,
        "pcrs": _pcrs(payload["pcrs"]),
        "certificate": certificate,
        "cabundle": bundle,
        **optional,
    }


def _pcrs(pcrs: Any) -> dict[int, bytes]:
    if not isinstance(pcrs, dict) or not 1 <= len(pcrs) <= MAX_PCR_COUNT:
        found = f"a map of {len(pcrs)} entries" if isinstance(pcrs, dict) else _describe(pcrs)
        raise NitroFormatError(
            f"Nitro document: field 'pcrs' must be a map of 1..{MAX_PCR_COUNT} entries, "
            f"found {found}"
        )
    result: dict[int, bytes] = {}
    for index, value in pcrs.items():
        if isinstance(index, bool) or not isinstance(index, int) or index not in PCR_INDEX_RANGE:
            raise NitroFormatError(
                "Nitro document: field 'pcrs' keys must be integers 0..31, "
                f"found {_describe(index)}"
            )
        if not isinstance(value, bytes) or len(value) not in PCR_LENGTHS:
            found = f"{len(value)} bytes" if isinstance(value, bytes) else _describe(value)
            raise NitroFormatError(
                f"Nitro document: field 'pcrs' entry {index} must be a byte string of "
                f"32, 48 or 64 bytes, found {found}"
            )
        result[index] = value
    return dict(sorted(result.items()))


def _optional_bstr(value: Any, name: str, maximum: int) -> bytes | None:
    # The AWS text says no field may be null, but real documents (NSM) encode an absent
    # public_key / user_data / nonce as CBOR null, so null is accepted for these three.
    if value is None:
        return None
    return _bstr(value, f"field {name!r}", 0, maximum)


def _bstr(value: Any, what: str, minimum: int, maximum: int) -> bytes:
    if not isinstance(value, bytes):
        raise NitroFormatError(
            f"Nitro document: {what} must be a byte string, found {_describe(value)}"
        )
    if not minimum <= len(value) <= maximum:
        raise NitroFormatError(
            f"Nitro document: {what} must be {minimum}..{maximum} bytes, found {len(value)} bytes"
        )
    return value


def _decode(data: bytes, what: str, *, whole: bool) -> Any:
    """Decode one CBOR item; with `whole`, refuse bytes after it. Only NitroFormatError escapes."""
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(stream, max_depth=_MAX_CBOR_DEPTH, allow_duplicate_keys=False)
        item = decoder.decode()
        end = stream.tell()
    except Exception as exc:  # cbor2 raises many types on hostile input; all mean "malformed"
        raise NitroFormatError(
            f"Nitro document: {what} is not valid CBOR ({type(exc).__name__}: {_clip(exc)})"
        ) from None
    if whole and end != len(data):
        raise NitroFormatError(
            f"Nitro document: {what} must hold exactly one CBOR item of {end} bytes, "
            f"found {len(data) - end} byte(s) after it"
        )
    return item


def _describe(value: Any) -> str:
    """A short, safe description of a decoded CBOR value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}" if abs(value) < 1 << 128 else "a very large integer"
    if isinstance(value, str):
        return f"text {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if isinstance(value, bytes):
        return f"a byte string of {len(value)} bytes"
    if isinstance(value, list | tuple):
        return f"an array of {len(value)}"
    if isinstance(value, Mapping):
        return f"a map of {len(value)} entries"
    if isinstance(value, cbor2.CBORTag):
        return f"CBOR tag {value.tag}"
    return f"a value of type {type(value).__name__}"


def _clip(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a pathological __str__ must not escape the parser
        text = "(no message)"
    return text if len(text) <= 160 else text[:160] + "..."
