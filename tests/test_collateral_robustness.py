"""Collateral that was changed, cut or garbled is refused by name, never with a crash."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from attestation import collateral_checks
from attestation.errors import CollateralFormatError
from attestation.jsontext import loads_bounded
from attestation.tcb import TcbInfo
from attestation.verifier import verify_evidence
from tests.dcap_collateral import collateral_bytes_for
from tests.manifest import at, vector_bytes, vectors

WITH_TCB = [v for v in vectors() if v["type"].startswith("intel-") and "tcb" in v["expected"]]
PHALA_TDX = next(v for v in WITH_TCB if v["file"] == "tdx-v4-phala-1.bin")
AUTOMATA = next(v for v in WITH_TCB if v["file"] == "tdx-v4-automata-1.bin")


def _verify(vector: dict[str, Any], collateral: list[bytes]):  # type: ignore[no-untyped-def]
    return verify_evidence(
        vector_bytes(vector["file"]), at=at(vector["expected"]["verify_at"]), collateral=collateral
    )


def test_an_edited_tcb_info_fails_its_signature_and_yields_no_status() -> None:
    bundle = json.loads(collateral_bytes_for(PHALA_TDX)[0])
    assert '"tcbStatus":"UpToDate"' in bundle["tcb_info"]
    bundle["tcb_info"] = bundle["tcb_info"].replace('"OutOfDate"', '"UpToDate"')
    report = _verify(PHALA_TDX, [json.dumps(bundle).encode()])
    failed = {check.name for check in report.failed_checks()}
    assert failed == {"collateral_tcb_info_signature"}
    assert report.tcb_status is None
    assert report.valid is False


def test_an_edited_qe_identity_fails_its_signature() -> None:
    bundle = json.loads(collateral_bytes_for(PHALA_TDX)[0])
    bundle["qe_identity"] = bundle["qe_identity"].replace('"isvprodid":2', '"isvprodid":3')
    report = _verify(PHALA_TDX, [json.dumps(bundle).encode()])
    assert {check.name for check in report.failed_checks()} == {"collateral_qe_identity_signature"}
    assert report.tcb_status is None


def test_a_crl_from_another_issuer_is_missing_not_trusted() -> None:
    files = collateral_bytes_for(AUTOMATA)
    without_pck_crl = [
        f for f in files if f != vector_bytes("collateral-automata-pck-platform-crl.der")
    ]
    report = _verify(AUTOMATA, without_pck_crl)
    check = report.check("collateral_pck_crl")
    assert check is not None and not check.passed
    assert "no CRL issued by" in check.detail


def test_collateral_of_one_vector_does_not_fit_another() -> None:
    sgx = next(v for v in WITH_TCB if v["file"] == "sgx-v3-phala-1.bin")
    report = _verify(PHALA_TDX, collateral_bytes_for(sgx))
    failed = {check.name for check in report.failed_checks()}
    assert "collateral_tcb_info_matches_platform" in failed
    assert report.tcb_status is None
    assert report.valid is False


NOT_COLLATERAL = "collateral file 1 is not Intel collateral"


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        (b"", NOT_COLLATERAL),
        (b"{", "collateral file 1 is not valid JSON: Expecting property name"),
        (b"[]", NOT_COLLATERAL),
        (b'{"tcbInfo": 1}', "collateral file 1: 'signature' must be hex text"),
        (b'{"tcb_info": "x"}', "collateral file 1: 'tcb_info_issuer_chain' must be PEM text"),
        (b"\x30\x82\x01", NOT_COLLATERAL),
        (b"not collateral", NOT_COLLATERAL),
    ],
)
def test_unreadable_collateral_is_a_format_error(garbage: bytes, message: str) -> None:
    with pytest.raises(CollateralFormatError, match=message):
        _verify(PHALA_TDX, [garbage])


DEPTH = 100_000


def test_deeply_nested_collateral_json_is_a_format_error() -> None:
    nested = b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
    with pytest.raises(
        CollateralFormatError, match="collateral file 1 is not valid JSON: JSON nested too deeply"
    ):
        _verify(PHALA_TDX, [nested])


def test_json_depth_bound_counts_only_structure() -> None:
    # Brackets and escaped quotes inside strings are text, not nesting.
    inside_strings = '["' + "[" * 500 + '", "\\"{{{", {"k": "]]]"}]'
    assert loads_bounded(inside_strings, max_depth=2) == json.loads(inside_strings)
    assert loads_bounded(b"[" * 3 + b"]" * 3, max_depth=3) == [[[]]]
    with pytest.raises(ValueError, match=r"expected at most 3 levels .* found more at character 3"):
        loads_bounded("[" * 4 + "]" * 4, max_depth=3)
    # Bytes are decoded as json.loads decodes them (here UTF-16 with its BOM).
    assert loads_bounded('{"a": [1]}'.encode("utf-16")) == {"a": [1]}
    # An unterminated string stops the scan; json.loads names the problem.
    with pytest.raises(json.JSONDecodeError, match="Unterminated string"):
        loads_bounded('["abc')


@pytest.mark.parametrize("kind", ["tcb_info", "qe_identity"])
def test_deeply_nested_signed_text_in_a_bundle_fails_its_format_check(kind: str) -> None:
    # The signed texts of a QuoteCollateralV3 bundle are JSON strings that are parsed again,
    # before anything says they are signed.
    bundle = json.loads(collateral_bytes_for(PHALA_TDX)[0])
    bundle[kind] = "[" * DEPTH + "]" * DEPTH
    report = _verify(PHALA_TDX, [json.dumps(bundle).encode()])
    failed = {check.name for check in report.failed_checks()}
    assert {f"collateral_{kind}_signature", f"collateral_{kind}_format"} <= failed
    assert report.valid is False
    assert report.tcb_status is None


@pytest.mark.parametrize(
    ("kind", "path", "bad"),
    [
        ("tcb_info", ("tdxModule", "mrsigner"), "zz" * 48),
        ("tcb_info", ("tdxModule", "attributes"), "00000000000000G0"),
        ("tcb_info", ("tdxModule", "attributesMask"), "FFFFFFFFFFFFFFF"),
        ("tcb_info", ("tdxModuleIdentities", 0, "attributesMask"), "FFFFFFFFFFFFFFFG"),
        ("tcb_info", ("fmspc",), "B0C06F00000X"),
        ("qe_identity", ("miscselect",), "0000000Z"),
        ("qe_identity", ("miscselectMask",), "FFFFFFFZ"),
        ("qe_identity", ("attributes",), "1" * 31),
        ("qe_identity", ("attributesMask",), "0x" + "F" * 30),
        ("qe_identity", ("mrsigner",), "DC9E" * 15 + "XYZW"),
    ],
)
def test_bad_hex_in_signed_collateral_fails_the_format_check_naming_the_field(
    kind: str, path: tuple[str | int, ...], bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if Intel had signed it: the matching must never see hex it cannot decode.
    monkeypatch.setattr(collateral_checks, "_signature_valid", lambda *_: True)
    bundle = json.loads(collateral_bytes_for(PHALA_TDX)[0])
    document = json.loads(bundle[kind])
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = bad
    bundle[kind] = json.dumps(document)
    report = _verify(PHALA_TDX, [json.dumps(bundle).encode()])
    check = report.check(f"collateral_{kind}_format")
    assert check is not None and not check.passed, report.failed_checks()
    field = ".".join(map(str, path))
    assert f"{field}: Value error, expected hex digits, found {bad!r}" in check.detail
    assert report.valid is False
    assert report.tcb_status is None


def test_tcb_models_refuse_bad_hex_by_field() -> None:
    document = json.loads(json.loads(collateral_bytes_for(PHALA_TDX)[0])["tcb_info"])
    assert TcbInfo.model_validate(document).tdx_module is not None
    document["tdxModule"]["mrsigner"] = "not hex"
    with pytest.raises(ValidationError, match=r"tdxModule\.mrsigner\n.*found 'not hex'"):
        TcbInfo.model_validate(document)
    document["tdxModule"]["mrsigner"] = 48
    with pytest.raises(ValidationError, match=r"tdxModule\.mrsigner\n  Input should be a valid"):
        TcbInfo.model_validate(document)


# Where each signed text sits in a collateral file: the string members of a
# QuoteCollateralV3 bundle (their decoded content is what Intel signed) and the object
# members of PCS response bodies (their exact source text is what Intel signed).
_BUNDLE_TEXTS = {"tcb_info": "tcb_info", "qe_identity": "qe_identity"}
_PCS_TEXTS = {"tcbInfo": "tcb_info", "enclaveIdentity": "qe_identity", "qeIdentity": "qe_identity"}


def _signed_text_spans(data: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges [start, end) of the signed texts in a JSON collateral file, by kind."""
    if not data.lstrip().startswith(b"{"):
        return {}
    text = data.decode("utf-8")
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    position = _skip_space(text, text.index("{") + 1)
    while text[position] != "}":
        key, position = decoder.raw_decode(text, position)
        position = _skip_space(text, position)
        assert text[position] == ":"
        start = _skip_space(text, position + 1)
        _, end = decoder.raw_decode(text, start)
        position = _skip_space(text, end)
        if text[position] == ",":
            position = _skip_space(text, position + 1)
        if key in _BUNDLE_TEXTS:
            start, end = start + 1, end - 1  # inside the quotes of the string
        kind = _BUNDLE_TEXTS.get(key) or _PCS_TEXTS.get(key)
        if kind is not None:
            spans[kind] = (len(text[:start].encode()), len(text[:end].encode()))
    return spans


def _skip_space(text: str, position: int) -> int:
    while text[position] in " \t\r\n":
        position += 1
    return position


def test_signed_text_spans_find_both_signed_texts_of_every_vector() -> None:
    for vector in WITH_TCB:
        found: dict[str, bytes] = {}
        for data in collateral_bytes_for(vector):
            for kind, (start, end) in _signed_text_spans(data).items():
                found[kind] = data[start:end]
        assert set(found) == {"tcb_info", "qe_identity"}, vector["file"]
        for kind, raw in found.items():
            # Either the object itself (PCS body) or its escaped text (bundle string).
            assert raw.startswith(b"{") and raw.endswith(b"}"), (vector["file"], kind)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_collateral_is_refused_or_judged(data: st.DataObject) -> None:
    vector = data.draw(st.sampled_from(WITH_TCB), label="vector")
    files = collateral_bytes_for(vector)
    index = data.draw(st.integers(0, len(files) - 1), label="file")
    original = files[index]
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    how = data.draw(st.sampled_from(["flip", "cut", "drop"]), label="how")
    if how == "flip":
        changed = (
            original[:position] + bytes([original[position] ^ 0x01]) + original[position + 1 :]
        )
        touched_end = position + 1
    elif how == "cut":
        changed = original[:position]
        touched_end = len(original)
    else:
        changed = original[:position] + original[position + 16 :]
        touched_end = position + 16
    files = [*files[:index], changed, *files[index + 1 :]]
    try:
        report = _verify(vector, files)
    except CollateralFormatError as exc:
        message = str(exc)
        assert message.startswith("collateral file")
        return
    # A change that still parses is either harmless (a case change in hex, an unused field)
    # or caught by a named check: it never yields another verdict that passes.
    if report.valid:
        assert report.tcb_status == vector["expected"]["tcb"]["status"]
        assert report.advisory_ids == vector["expected"]["tcb"]["advisory_ids"]
        return
    failed = {check.name for check in report.failed_checks()}
    assert failed, f"invalid without a failed check: {report.error}"
    # A change to signed text that still parses changes what was signed, so that text's
    # own signature check must be among the failures (not only some later check).
    for kind, (start, end) in _signed_text_spans(original).items():
        if position < end and start < touched_end:
            assert f"collateral_{kind}_signature" in failed, (kind, how, position, failed)


def test_a_crl_claiming_an_unknown_version_is_a_format_error() -> None:
    # cryptography raises InvalidVersion (not a ValueError) for a CRL version field of 5.
    der = vector_bytes("collateral-go-tdx-guest-root-ca-crl.der")
    version = der.index(b"\x02\x01\x01") + 2  # INTEGER 1 (v2), the CRL's version
    bad = der[:version] + b"\x05" + der[version + 1 :]
    pem = b"-----BEGIN X509 CRL-----\n" + base64.encodebytes(bad) + b"-----END X509 CRL-----\n"
    with pytest.raises(CollateralFormatError, match="is not Intel collateral"):
        _verify(PHALA_TDX, [bad])
    with pytest.raises(CollateralFormatError, match="5 is not a valid CRL version"):
        _verify(PHALA_TDX, [pem])
