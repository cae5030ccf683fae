"""The simulated platform's event log: its exact form, its replay to the sim quote's
registers, and `sim quote --event-log-out` then `verify quote --event-log` end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from attestation.checks import CheckName
from attestation.event_log import verify_event_log
from attestation.trust import TrustAnchors, default_trust_anchors, load_trust_root_file
from attestation.verifier import verify_evidence
from enclave.__main__ import main as enclave_main
from enclave.config import load_config
from enclave.measurement import REGISTER_SIZE, expected_sim_measurement, rtmr_extend
from enclave.platform.sim import SimPlatform
from enclave.platform.sim_pki import SimPki, create_sim_pki
from host.cli import main
from tests.enclave_harness import config_toml
from tests.event_log_builders import NOW

CONFIG = hashlib.sha256(b"config").digest()
MODEL = hashlib.sha256(b"model").digest()
REPORT_DATA = bytes(range(64))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SimPki:
    return create_sim_pki(tmp_path_factory.mktemp("sim") / "platform", now=NOW)


def anchors(pki: SimPki) -> TrustAnchors:
    return default_trust_anchors().with_extra_roots(
        load_trust_root_file(pki.directory / "root.pem")
    )


def test_the_sim_log_is_the_contracts_json_form(pki: SimPki) -> None:
    platform = SimPlatform(pki.directory, config_hash=CONFIG, model_hash=MODEL)
    assert json.loads(platform.event_log()) == [
        {"imr": 0, "event_type": 0x08000002, "digest": CONFIG.hex() + "00" * 16,
         "event": "tee-agent.config-hash", "event_payload": CONFIG.hex()},
        {"imr": 1, "event_type": 0x08000002, "digest": MODEL.hex() + "00" * 16,
         "event": "tee-agent.model-hash", "event_payload": MODEL.hex()},
    ]  # fmt: skip
    assert SimPlatform(pki.directory, config_hash=None, model_hash=None).event_log() == b"[]"
    without_model = SimPlatform(pki.directory, config_hash=CONFIG, model_hash=None)
    assert [e["event"] for e in json.loads(without_model.event_log())] == ["tee-agent.config-hash"]


@pytest.mark.parametrize("model", [MODEL, None])
def test_the_sim_log_replays_to_its_quote_and_the_registers_are_unchanged(
    pki: SimPki, model: bytes | None
) -> None:
    platform = SimPlatform(pki.directory, config_hash=CONFIG, model_hash=model)
    # The registers stay as enclave.measurement defines them.
    assert platform.measurement() == expected_sim_measurement(CONFIG, model)
    assert platform.measurement().values["rtmr0"] == rtmr_extend(bytes(REGISTER_SIZE), CONFIG).hex()
    report = verify_evidence(
        platform.quote(REPORT_DATA), at=NOW, anchors=anchors(pki), event_log=platform.event_log()
    )
    assert report.valid and report.tee == "sim", report.error
    assert report.event_log is not None and report.event_log.verified


def test_a_sim_log_with_an_edited_payload_fails_the_digest_check(pki: SimPki) -> None:
    platform = SimPlatform(pki.directory, config_hash=CONFIG, model_hash=MODEL)
    quote = verify_evidence(platform.quote(REPORT_DATA), at=NOW, anchors=anchors(pki))
    events = json.loads(platform.event_log())
    events[0]["event_payload"] = "00" + events[0]["event_payload"][2:]
    report = verify_event_log(quote, json.dumps(events).encode())
    assert not report.check(CheckName.EVENT_LOG_DIGESTS).passed  # type: ignore[union-attr]
    assert not report.valid


# --- the command line: sim quote --event-log-out, then verify quote --event-log -----------


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, pki: SimPki) -> dict[str, Path]:
    """A sim quote over a real config and its event log, written by `sim quote`."""
    root = tmp_path_factory.mktemp("quote")
    config = root / "enclave.toml"
    config.write_text(config_toml(SigningKey.generate().verify_key.encode().hex()))
    quote, log = root / "quote.bin", root / "log.json"
    code = enclave_main(["sim", "quote", "--dir", str(pki.directory), "--report-data",
                         REPORT_DATA.hex(), "--config", str(config), "--out", str(quote),
                         "--event-log-out", str(log)])  # fmt: skip
    assert code == 0
    return {"config": config, "quote": quote, "log": log, "root": pki.directory / "root.pem"}


def verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["verify", "quote", *argv, "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and len(out.splitlines()) == 1
    return code, json.loads(out)


def test_verify_quote_with_the_sims_log_passes(
    capsys: pytest.CaptureFixture[str], made: dict[str, Path]
) -> None:
    code, out = verify(capsys, str(made["quote"]), "--event-log", str(made["log"]),
                       "--trust-root", str(made["root"]))  # fmt: skip
    assert code == 0 and out["valid"] is True and out["error"] is None
    config_hash = load_config(made["config"]).config_hash().hex()
    log = out["event_log"]
    assert log["verified"] is True and log["rtmrs"]["rtmr0"] == out["measurements"]["rtmr0"]
    assert set(log["rtmrs"]) == {"rtmr0", "rtmr1", "rtmr2", "rtmr3"}
    assert [(e["imr"], e["event"], e["payload"]) for e in log["events"]] == [
        (0, "tee-agent.config-hash", config_hash)
    ]


def test_verify_quote_with_a_flipped_event_fails(
    capsys: pytest.CaptureFixture[str], made: dict[str, Path], tmp_path: Path
) -> None:
    events = json.loads(made["log"].read_text())
    digest = bytearray.fromhex(events[0]["digest"])
    digest[0] ^= 1
    events[0]["digest"] = digest.hex()
    flipped = tmp_path / "flipped.json"
    flipped.write_text(json.dumps(events))
    code, out = verify(capsys, str(made["quote"]), "--event-log", str(flipped),
                       "--trust-root", str(made["root"]))  # fmt: skip
    assert code == 1 and out["valid"] is False and out["event_log"]["verified"] is False
    failed = {c["name"] for c in out["checks"] if not c["passed"]}
    assert failed == {"event_log_digests", "event_log_replay"}


def test_the_agent_events_policy_on_a_sim_quote(
    capsys: pytest.CaptureFixture[str], made: dict[str, Path], tmp_path: Path
) -> None:
    config_hash = load_config(made["config"]).config_hash().hex()
    measurement = expected_sim_measurement(bytes.fromhex(config_hash), None).values
    policy = tmp_path / "policy.toml"
    policy.write_text(f'allow_debug = false\naccepted_tcb_statuses = ["UpToDate"]\n'
                      f'[event_log]\nconfig_hash = "{config_hash}"\n'
                      f'[[tdx]]\nmr_td = "{measurement["mr_td"]}"\n')  # fmt: skip
    code, out = verify(capsys, str(made["quote"]), "--event-log", str(made["log"]),
                       "--trust-root", str(made["root"]), "--policy", str(policy))  # fmt: skip
    checks = {c["name"]: c["passed"] for c in out["checks"]}
    assert checks["policy_event_log"] and checks["policy_agent_events"]
    # The sim has no TCB status, so the policy still refuses it, by that rule alone.
    assert [name for name, passed in checks.items() if not passed] == ["policy_tcb_status"]
    assert code == 1


def test_the_human_summary_lists_the_events(
    capsys: pytest.CaptureFixture[str], made: dict[str, Path]
) -> None:
    code = main(["verify", "quote", str(made["quote"]), "--event-log", str(made["log"]),
                 "--trust-root", str(made["root"])])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "event log (dstack-json, 1 events): replays to the quote's RTMRs" in out
    assert "  rtmr0 tee-agent.config-hash " in out


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "cannot read event log file"),
        (b"\x00garbage", "start neither dstack's JSON form"),
        (b'[{"imr": 9}]', "event 0"),
    ],
)
def test_an_unusable_event_log_exits_2_with_a_json_error(
    capsys: pytest.CaptureFixture[str], made: dict[str, Path], tmp_path: Path,
    content: bytes | None, error: str,
) -> None:  # fmt: skip
    log = tmp_path / "log"
    if content is not None:
        log.write_bytes(content)
    code, out = verify(capsys, str(made["quote"]), "--event-log", str(log),
                       "--trust-root", str(made["root"]))  # fmt: skip
    assert code == 2 and out["valid"] is False and error in out["error"]
    assert out["event_log"] is None
