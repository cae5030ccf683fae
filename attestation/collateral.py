"""Intel DCAP collateral: read it in any common form, check it, and derive the TCB status.

Accepted inputs (any mix, one file each):
- a dcap-qvl / Intel PCCS `QuoteCollateralV3` JSON bundle (signed JSON texts, hex
  signatures, PEM issuer chains, hex DER CRLs);
- Intel PCS response bodies: `{"tcbInfo": {...}, "signature": "..."}` and
  `{"enclaveIdentity": {...}, "signature": "..."}`, where the signature covers the exact
  text of the inner object;
- CRLs (DER or PEM) and certificates (DER or PEM) such as the Intel SGX TCB Signing
  certificate, for collateral whose issuer chains travelled separately.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.errors import CollateralFormatError
from attestation.jsontext import loads_bounded
from attestation.trust import MALFORMED_X509, strict_x509_parsing
from attestation.x509chain import load_certificate

MAX_COLLATERAL_FILE_BYTES = 4 << 20


@dataclass(frozen=True)
class SignedDocument:
    """A signed JSON text (TCB Info or QE Identity) with its raw r||s signature."""

    text: bytes
    signature: bytes
    issuer_chain: tuple[bytes, ...]


@dataclass(frozen=True)
class IntelCollateral:
    """Collateral pieces as given; any of them may be missing."""

    tcb_info: SignedDocument | None = None
    qe_identity: SignedDocument | None = None
    crls: tuple[bytes, ...] = ()
    certificates: tuple[bytes, ...] = ()


def load_intel_collateral(files: list[bytes]) -> IntelCollateral:
    """Combine collateral files (see the module docstring for the forms) into one set.

    Raises:
        CollateralFormatError: a file is none of the accepted forms, or a piece is given twice.
    """
    return _load_cached(tuple(files))


@functools.lru_cache(maxsize=64)
def _load_cached(files: tuple[bytes, ...]) -> IntelCollateral:
    tcb_info: SignedDocument | None = None
    qe_identity: SignedDocument | None = None
    crls: list[bytes] = []
    certificates: list[bytes] = []
    for index, data in enumerate(files, start=1):
        name = f"collateral file {index}"
        if len(data) > MAX_COLLATERAL_FILE_BYTES:
            raise CollateralFormatError(
                f"{name} is {len(data)} bytes; the limit is {MAX_COLLATERAL_FILE_BYTES}"
            )
        pieces = _read_collateral_file(data, name)
        for kind, piece in pieces:
            if kind == "tcb_info":
                if tcb_info is not None:
                    raise CollateralFormatError(f"{name}: a second TCB Info was given")
                tcb_info = piece  # type: ignore[assignment]
            elif kind == "qe_identity":
                if qe_identity is not None:
                    raise CollateralFormatError(f"{name}: a second QE Identity was given")
                qe_identity = piece  # type: ignore[assignment]
            elif kind == "crl":
                crls.append(piece)  # type: ignore[arg-type]
            else:
                certificates.append(piece)  # type: ignore[arg-type]
    return IntelCollateral(tcb_info, qe_identity, tuple(crls), tuple(certificates))


def _read_collateral_file(data: bytes, name: str) -> list[tuple[str, object]]:
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        return _read_json_collateral(data, name)
    if b"-----BEGIN X509 CRL-----" in data:
        try:
            der = x509.load_pem_x509_crl(data).public_bytes(Encoding.DER)
        except MALFORMED_X509 as exc:
            raise CollateralFormatError(f"{name}: PEM CRL cannot be read: {exc}") from None
        return [("crl", _checked_crl(der, name))]
    if b"-----BEGIN CERTIFICATE-----" in data:
        return [("certificate", der) for der in _pem_certificates(data.decode("latin-1"), name)]
    try:
        return [("crl", _checked_crl(data, name))]
    except CollateralFormatError:
        pass
    try:
        load_certificate(data)
        return [("certificate", data)]
    except ValueError:
        pass
    raise CollateralFormatError(
        f"{name} is not Intel collateral: expected QuoteCollateralV3 JSON, a PCS TCB Info or "
        "QE Identity body, or a CRL or certificate in DER or PEM"
    )


def _read_json_collateral(data: bytes, name: str) -> list[tuple[str, object]]:
    try:
        text = data.decode("utf-8")
        document = loads_bounded(text)
    # Deep nesting is a ValueError from loads_bounded; RecursionError is the backstop.
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CollateralFormatError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise CollateralFormatError(f"{name}: expected a JSON object at the top level")
    if "tcb_info" in document or "qe_identity" in document:
        return _read_bundle(document, name)
    for key, kind in (
        ("tcbInfo", "tcb_info"),
        ("enclaveIdentity", "qe_identity"),
        ("qeIdentity", "qe_identity"),
    ):
        if key in document:
            inner = _raw_member_text(text, key, name)
            signature = _hex_field(document, "signature", name, size=64)
            return [(kind, SignedDocument(inner.encode("utf-8"), signature, ()))]
    raise CollateralFormatError(
        f"{name}: JSON has none of the keys tcb_info/qe_identity (QuoteCollateralV3), tcbInfo "
        f"or enclaveIdentity (PCS); found {sorted(document)[:8]}"
    )


def _read_bundle(document: dict[str, object], name: str) -> list[tuple[str, object]]:
    pieces: list[tuple[str, object]] = []
    for kind in ("tcb_info", "qe_identity"):
        text = document.get(kind)
        if not isinstance(text, str):
            raise CollateralFormatError(f"{name}: '{kind}' must be the signed JSON text")
        chain = document.get(f"{kind}_issuer_chain")
        if not isinstance(chain, str):
            raise CollateralFormatError(f"{name}: '{kind}_issuer_chain' must be PEM text")
        pieces.append(
            (
                kind,
                SignedDocument(
                    text.encode("utf-8"),
                    _hex_field(document, f"{kind}_signature", name, size=64),
                    tuple(_pem_certificates(chain, name)),
                ),
            )
        )
    for key in ("root_ca_crl", "pck_crl"):
        if key in document:
            pieces.append(("crl", _checked_crl(_hex_field(document, key, name), f"{name} {key}")))
    chain_text = document.get("pck_crl_issuer_chain")
    if isinstance(chain_text, str):
        pieces.extend(("certificate", der) for der in _pem_certificates(chain_text, name))
    return pieces


def _hex_field(document: dict[str, object], key: str, name: str, size: int | None = None) -> bytes:
    value = document.get(key)
    try:
        if not isinstance(value, str):
            raise ValueError("missing or not a string")
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise CollateralFormatError(f"{name}: '{key}' must be hex text ({exc})") from None
    if size is not None and len(raw) != size:
        raise CollateralFormatError(f"{name}: '{key}' must be {size} bytes, found {len(raw)}")
    return raw


def _pem_certificates(text: str, name: str) -> list[bytes]:
    try:
        certificates = x509.load_pem_x509_certificates(text.encode("latin-1"))
        chain = [cert.public_bytes(Encoding.DER) for cert in certificates]
        for der in chain:
            load_certificate(der)
    except MALFORMED_X509 as exc:
        raise CollateralFormatError(f"{name}: certificate PEM cannot be read: {exc}") from None
    return chain


def _checked_crl(der: bytes, name: str) -> bytes:
    """`der` if it is a well-formed CRL, every field verification reads parsed up front."""
    try:
        with strict_x509_parsing():
            crl = x509.load_der_x509_crl(der)
            crl.issuer.rfc4514_string()
            _ = crl.last_update_utc, crl.next_update_utc, crl.signature_algorithm_oid
            for revoked in crl:
                _ = revoked.serial_number, revoked.revocation_date_utc
    except MALFORMED_X509 as exc:
        raise CollateralFormatError(f"{name}: not a well-formed DER CRL ({exc})") from None
    return der


def _raw_member_text(text: str, key: str, name: str) -> str:
    """The exact source text of a top-level member's value: that is what Intel signed."""
    try:
        return _member_text(text, key)
    except (ValueError, IndexError, KeyError):
        raise CollateralFormatError(f"{name}: cannot locate the text of '{key}'") from None


def _member_text(text: str, key: str) -> str:
    decoder = json.JSONDecoder()
    position = text.index("{") + 1
    while True:
        position = _skip_space(text, position)
        member, position = decoder.raw_decode(text, position)
        position = _skip_space(text, position)
        if text[position] != ":":
            break
        start = _skip_space(text, position + 1)
        _, end = decoder.raw_decode(text, start)
        if member == key:
            return text[start:end]
        position = _skip_space(text, end)
        if text[position] != ",":
            break
        position += 1
    raise KeyError(key)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position
