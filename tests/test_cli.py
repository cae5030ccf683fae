"""`tee-agent verify quote`: exit codes, JSON, the human summary, policies, and no tracebacks.

Most tests call `host.cli.main` in-process; a few run the installed console script as a real
subprocess, the way a user does.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from attestation.binding import NONCE_SIZE
from host.cli import main, parser, verify_quote
from tests.manifest import VECTORS_DIR, vector_bytes, vectors

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_POLICY = REPO / "examples" / "policy-tdx.toml"
TDX = "tdx-v4-phala-1.bin"
TDX_COLLATERAL = "collateral-phala-tdx-b0c06f000000.json"
TDX_AT = "2025-07-01T00:00:00Z"

REPORT_KEYS = {
    "valid",
    "tee",
    "version",
    "report_data",
    "measurements",
    "debug",
    "fields",
    "tcb_status",
    "advisory_ids",
    "policy_ok",
    "checks",
    "error",
}


def entry(name: str) -> dict[str, Any]:
    return next(v for v in vectors() if v["file"] == name)


def vector(name: str) -> str:
    return str(VECTORS_DIR / name)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `tee-agent argv...` in-process; return exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert "Traceback" not in out
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, *argv, "--json")
    document = json.loads(out)
    assert isinstance(document, dict)
    assert document.keys() >= REPORT_KEYS
    return code, document


def verify_tdx() -> list[str]:
    return ["verify", "quote", vector(TDX), "--collateral", vector(TDX_COLLATERAL), "--at", TDX_AT]


def expected_verdict(item: dict[str, Any]) -> bool:
    expected = item["expected"]
    for key in ("overall_signature_and_chain_verdict_at_verify_at", "overall_verdict_at_verify_at"):
        if key in expected:
            return bool(expected[key])
    if item["type"] == "amd-sev-snp-attestation-report":
        return bool(expected["report_signature_valid_with_vcek"])
    return False  # the Intel test-signed sample: its chain ends in a test root


def collateral_args(item: dict[str, Any]) -> list[str]:
    if item["type"] == "amd-sev-snp-attestation-report":
        return ["--collateral", vector(item["collateral"]["vcek"])]
    return []


# --- verdicts and exit codes -----------------------------------------------------------


@pytest.mark.parametrize("item", vectors(), ids=[v["file"] for v in vectors()])
def test_every_vector_exits_as_the_manifest_says(
    capsys: pytest.CaptureFixture[str], item: dict[str, Any]
) -> None:
    argv = ["verify", "quote", vector(item["file"]), "--at", item["expected"]["verify_at"]]
    code, document = run_json(capsys, *argv, *collateral_args(item))
    verdict = expected_verdict(item)
    assert document["valid"] is verdict, document["error"]
    assert code == (0 if verdict else 1)
    assert document["policy_ok"] is None
    assert (document["error"] is None) is verdict


def test_genuine_tdx_quote_with_collateral(capsys: pytest.CaptureFixture[str]) -> None:
    code, document = run_json(capsys, *verify_tdx())
    assert code == 0
    assert document["valid"] is True
    assert document["tee"] == "tdx"
    assert document["version"] == 4
    assert document["measurements"]["mr_td"] == entry(TDX)["expected_fields"]["mr_td"]
    assert document["report_data"] == entry(TDX)["expected_fields"]["report_data"]
    assert document["tcb_status"] == "UpToDate"
    assert document["advisory_ids"] == []
    assert document["debug"] is False
    assert document["policy_ok"] is None
    assert document["error"] is None
    assert all(set(check) == {"name", "passed", "detail"} for check in document["checks"])
    assert all(check["passed"] for check in document["checks"])


def test_human_summary_starts_with_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *verify_tdx())
    assert code == 0
    assert out.splitlines() == ["VALID (tdx, quote v4)", "tcb status: UpToDate"]
    assert err == ""


def test_invalid_nitro_document_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    name = "nitro-eternis-invalid-1.cbor"
    argv = ["verify", "quote", vector(name), "--at", entry(name)["expected"]["verify_at"]]
    code, out, _ = run(capsys, *argv)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "INVALID (nitro, document)"
    assert "failed checks:" in lines
    assert any(line.startswith("  cose_signature: ") for line in lines)


@pytest.mark.parametrize("when", ["2025-02-05T23:25:51Z", "2032-02-07T23:25:51Z"])
def test_valid_quote_outside_its_chain_window_exits_1(
    capsys: pytest.CaptureFixture[str], when: str
) -> None:
    assert entry(TDX)["expected"]["chain_valid_at"][when] is False
    code, document = run_json(capsys, "verify", "quote", vector(TDX), "--at", when)
    assert code == 1
    assert document["valid"] is False
    assert "pck_chain_validity" in document["error"]


def test_hex_and_base64_encodings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    raw = vector_bytes(TDX)
    (tmp_path / "quote.hex").write_text(raw.hex() + "\n")
    (tmp_path / "quote.b64").write_text(base64.b64encode(raw).decode() + "\n")
    for name in ("quote.hex", "quote.b64"):
        code, _, _ = run(capsys, "verify", "quote", str(tmp_path / name), "--at", TDX_AT)
        assert code == 0, name


@pytest.mark.parametrize(
    "content",
    [b"", b"\x04\x00\x02\x00" + b"\x00" * 60, b"not evidence, just some words\n", b"\xff" * 300],
    ids=["empty", "truncated", "text", "garbage"],
)
def test_unparseable_evidence_exits_2_with_a_json_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "evidence.bin"
    path.write_bytes(content)
    code, out, err = run(capsys, "verify", "quote", str(path), "--at", TDX_AT, "--json")
    assert code == 2
    document = json.loads(out)
    assert document.keys() >= REPORT_KEYS
    assert document["valid"] is False
    assert document["error"]
    assert err.startswith("error: ")
    assert len(err.splitlines()) == 1


def test_truncated_real_quote_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(vector_bytes(TDX)[:700])
    code, _, err = run(capsys, "verify", "quote", str(path), "--at", TDX_AT)
    assert code == 2
    assert err.startswith("error: ")
    assert "truncated" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["verify", "quote", "/nonexistent/quote.bin"], "cannot read evidence file"),
        (["verify", "quote", vector(TDX), "--at", "2025-07-01"], "--at: expected an RFC 3339"),
        (["verify", "quote", vector(TDX), "--at", "yesterday"], "--at: expected an RFC 3339"),
        (["verify", "quote", vector(TDX), "--collateral", "/nonexistent"], "cannot read"),
        (["verify", "quote", vector(TDX), "--trust-root", str(EXAMPLE_POLICY)], "certificate"),
        (["verify", "quote", vector(TDX), "--nonce", "00" * 32], "--nonce is only used with"),
        (["verify", "quote", vector(TDX), "--policy", "/nonexistent.toml"], "cannot read policy"),
    ],
)
def test_unusable_input_exits_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert message in err


def test_bad_collateral_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bogus = tmp_path / "collateral.json"
    bogus.write_text("{ this is not collateral")
    argv = ["verify", "quote", vector(TDX), "--collateral", str(bogus), "--at", TDX_AT]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ")


def test_an_extra_trusted_root_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    root = vector("intel-sgx-root-ca.der")
    code, _, _ = run(capsys, "verify", "quote", vector(TDX), "--at", TDX_AT, "--trust-root", root)
    assert code == 0


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--help"], 0),
        (["verify", "--help"], 0),
        (["verify", "quote", "--help"], 0),
        ([], 2),
        (["verify"], 2),
        (["verify", "quote"], 2),
        (["verify", "quote", "x", "--no-such-option"], 2),
        (["frobnicate"], 2),
    ],
)
def test_help_exits_0_and_misuse_exits_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int
) -> None:
    assert run(capsys, *argv)[0] == code


def test_an_unexpected_error_prints_one_line_and_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(verify_quote, "verify_evidence", explode)
    code, out, err = run(capsys, *verify_tdx(), "--json")
    assert code == 2
    assert err.strip() == "internal error: RuntimeError: boom"
    assert json.loads(out)["error"] == "internal error: RuntimeError: boom"

    assert main(["--verbose", *verify_tdx()]) == 2
    assert "Traceback" in capsys.readouterr().err  # only when asked for


# --- policies --------------------------------------------------------------------------


def write_policy(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return str(path)


def failed_names(document: dict[str, Any]) -> list[str]:
    return [check["name"] for check in document["checks"] if not check["passed"]]


def test_matching_policy_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, document = run_json(capsys, *verify_tdx(), "--policy", str(EXAMPLE_POLICY))
    assert code == 0
    assert document["policy_ok"] is True
    code, out, _ = run(capsys, *verify_tdx(), "--policy", str(EXAMPLE_POLICY))
    assert out.splitlines()[:2] == ["VALID (tdx, quote v4)", "policy: OK"]


def test_non_matching_measurement_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, f'[[tdx]]\nmr_td = "{"00" * 48}"\n')
    code, document = run_json(capsys, *verify_tdx(), "--policy", policy)
    assert code == 1
    assert document["valid"] is True
    assert document["policy_ok"] is False
    assert failed_names(document) == ["policy_measurement"]
    code, out, _ = run(capsys, *verify_tdx(), "--policy", policy)
    lines = out.splitlines()
    assert lines[:2] == ["VALID (tdx, quote v4)", "policy: REJECTED"]
    assert any(line.startswith("  policy_measurement: no allowed set matches") for line in lines)


def test_tcb_status_not_accepted_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fields = entry("sgx-v3-phala-1.bin")["expected_fields"]
    sgx_set = f'[[sgx]]\nmr_enclave = "{fields["mr_enclave"]}"\n'
    argv = [
        "verify",
        "quote",
        vector("sgx-v3-phala-1.bin"),
        "--collateral",
        vector("collateral-phala-sgx-00a067110000.json"),
        "--at",
        "2025-07-01T00:00:00Z",
    ]
    strict = write_policy(tmp_path, sgx_set)
    code, document = run_json(capsys, *argv, "--policy", strict)
    assert code == 1
    assert failed_names(document) == ["policy_tcb_status"]
    lenient = write_policy(
        tmp_path,
        'accepted_tcb_statuses = ["UpToDate", "ConfigurationAndSWHardeningNeeded"]\n' + sgx_set,
    )
    assert run(capsys, *argv, "--policy", lenient)[0] == 0


def test_quote_without_collateral_fails_the_tcb_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["verify", "quote", vector(TDX), "--at", TDX_AT, "--policy", str(EXAMPLE_POLICY)]
    code, document = run_json(capsys, *argv)
    assert code == 1
    assert document["valid"] is True
    check = next(c for c in document["checks"] if c["name"] == "policy_tcb_status")
    assert check["detail"].startswith("TCB status unknown: pass collateral")


def nitro_argv(name: str, when: str | None = None) -> list[str]:
    return ["verify", "quote", vector(name), "--at", when or entry(name)["expected"]["verify_at"]]


def nitro_policy(tmp_path: Path, name: str, extra: str = "") -> str:
    pcr0 = entry(name)["expected_fields"]["pcrs"]["0"]
    return write_policy(tmp_path, f'{extra}[[nitro]]\npcrs = {{ 0 = "{pcr0}" }}\n')


def test_debug_enclave_is_refused_unless_allowed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = "nitro-evervault-2.cbor"  # a debug-mode enclave: PCR0 is all zeros
    code, document = run_json(capsys, *nitro_argv(name), "--policy", nitro_policy(tmp_path, name))
    assert code == 1
    assert document["debug"] is True
    assert failed_names(document) == ["policy_debug"]
    allowing = nitro_policy(tmp_path, name, "allow_debug = true\n")
    assert run(capsys, *nitro_argv(name), "--policy", allowing)[0] == 0


def test_max_age_uses_the_nitro_timestamp(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = "nitro-evervault-1.cbor"  # made at 2022-10-13T08:58:02Z
    policy = nitro_policy(tmp_path, name, "max_age_seconds = 60\n")
    assert run(capsys, *nitro_argv(name), "--policy", policy)[0] == 0
    code, document = run_json(capsys, *nitro_argv(name, "2022-10-13T09:08:02Z"), "--policy", policy)
    assert code == 1
    assert document["valid"] is True  # the chain is still valid ten minutes later
    assert failed_names(document) == ["policy_evidence_age"]


def test_report_data_prefix_and_nonce(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report_data = entry(TDX)["expected_fields"]["report_data"]
    prefix, nonce = report_data[:64], report_data[64:]
    mr_td = entry(TDX)["expected_fields"]["mr_td"]
    policy = write_policy(
        tmp_path, f'[report_data]\nprefix = "{prefix}"\n[[tdx]]\nmr_td = "{mr_td}"\n'
    )
    assert run(capsys, *verify_tdx(), "--policy", policy, "--nonce", nonce)[0] == 0
    code, document = run_json(capsys, *verify_tdx(), "--policy", policy, "--nonce", "00" * 32)
    assert code == 1
    assert failed_names(document) == ["policy_report_data"]
    code, document = run_json(capsys, *verify_tdx(), "--policy", policy)
    assert code == 1
    assert failed_names(document) == ["policy_report_data"]
    code, _, err = run(capsys, *verify_tdx(), "--policy", policy, "--nonce", "abcd")
    assert code == 2
    assert "--nonce: expected 32 bytes, found 2 bytes" in err


def test_report_data_exact_mismatch(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    mr_td = entry(TDX)["expected_fields"]["mr_td"]
    policy = write_policy(
        tmp_path, f'[report_data]\nexact = "{"00" * 64}"\n[[tdx]]\nmr_td = "{mr_td}"\n'
    )
    code, document = run_json(capsys, *verify_tdx(), "--policy", policy)
    assert code == 1
    assert failed_names(document) == ["policy_report_data"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[tdx]\nmr_td = 1\n", "not valid TOML"),
        (f'[[tdx]]\nmr_td = "{"00" * 48}"\nrtmr4 = "00"\n', "tdx[0].rtmr4: unknown key"),
        ('accepted_tcb_statuses = ["uptodate"]\n', "unknown TCB status uptodate"),
    ],
)
def test_malformed_policy_exits_2_with_a_readable_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    policy = write_policy(tmp_path, text)
    code, out, err = run(capsys, *verify_tdx(), "--policy", policy, "--json")
    assert code == 2
    assert err.startswith(f"error: {policy}: ")
    assert message in err
    assert json.loads(out)["error"].startswith(policy)


# --- the installed console script ------------------------------------------------------


def console_script() -> str:
    beside_python = Path(sys.executable).parent / "tee-agent"
    found = str(beside_python) if beside_python.exists() else shutil.which("tee-agent")
    if found is None:
        pytest.fail("the tee-agent console script is not installed: run ./scripts/bootstrap")
    return found


def run_script(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [console_script(), *argv],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


def test_console_script_verifies_a_real_quote() -> None:
    done = run_script(*verify_tdx(), "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["valid"] is True
    assert document["measurements"]["mr_td"] == entry(TDX)["expected_fields"]["mr_td"]
    assert b"Traceback" not in done.stderr


def test_console_script_exit_codes() -> None:
    invalid = "nitro-eternis-invalid-1.cbor"
    assert run_script(*nitro_argv(invalid)).returncode == 1
    garbage = run_script("verify", "quote", "-", "--at", TDX_AT, stdin=b"\x00garbage")
    assert garbage.returncode == 2
    assert garbage.stderr.startswith(b"error: ")
    assert run_script("--help").returncode == 0
    misuse = run_script("verify", "quote")
    assert misuse.returncode == 2
    for done in (garbage, misuse):
        assert b"Traceback" not in done.stderr


def test_console_script_reads_stdin() -> None:
    done = run_script("verify", "quote", "-", "--at", TDX_AT, stdin=vector_bytes(TDX))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines()[0] == "VALID (tdx, quote v4)"


def test_console_script_keeps_stderr_clean_on_success() -> None:
    snp = entry("sev-snp-go-sev-guest-1.bin")
    argv = ["verify", "quote", vector(snp["file"]), "--at", snp["expected"]["verify_at"]]
    done = run_script(*argv, *collateral_args(snp))
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert done.stdout.decode().splitlines()[0] == "VALID (sev-snp, report v2)"


# --- the parser and startup ------------------------------------------------------------


def test_the_parser_states_the_nonce_size_that_attestation_checks() -> None:
    assert parser.NONCE_SIZE == NONCE_SIZE


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["status", "--help"],
        ["verify", "quote", "--help"],
        ["init", "--help"],
        ["vault", "--help"],
    ],
)
def test_a_command_does_not_wait_for_web3_unless_it_uses_it(argv: list[str]) -> None:
    # web3 takes over a second to import; only `verify agent`, `run` and `vault` need it.
    probe = f"import sys; from host.cli import main; main({argv!r}); print('web3' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, timeout=120, check=True, cwd=REPO
    )
    assert done.stdout.decode().splitlines()[-1] == "False"
