"""The event log an agent serves with its attestation (issue 14): the enclave reads it from
its platform and bounds it, the host relays it in GetAttestation, `attest --out` saves it
where `verify quote --event-log` reads it, and `attest` replays it, refusing one tampered
with or swollen on the way. Against a real host with its simulated enclave over gRPC, and
a relay that edits what it passes on (a host nobody trusts); the enclave's cap on its core.
(`verify agent` over the same: tests/test_cli_json_contract.py, tests/test_chain_agent.py.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tee_agent_rpc import agent_pb2 as pb

from attestation.binding import MAX_SERVED_EVENT_LOG_SIZE
from attestation.trust import default_trust_anchors, load_trust_root_file
from attestation.verifier import verify_evidence
from enclave.config import load_config
from enclave.core import EnclaveCore, EnclaveError
from enclave.platform.sim import SimPlatform
from enclave.server import make_policy
from host.cli import main
from tests.agent_relay import flip_first_digest, flip_first_event, relay
from tests.enclave_harness import EnclaveWorld
from tests.host_harness import HostUnderTest, running_host


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> EnclaveWorld:
    return EnclaveWorld(tmp_path_factory.mktemp("event-log"))


@pytest.fixture(scope="module")
def host(world: EnclaveWorld) -> Iterator[HostUnderTest]:
    with running_host(world) as host:
        yield host


@pytest.fixture
def address(host: HostUnderTest) -> str:
    return f"127.0.0.1:{host.running.port}"


def config_hash(world: EnclaveWorld) -> bytes:
    return load_config(world.config_path).config_hash()


def root(world: EnclaveWorld) -> str:
    return str(world.sim_dir / "root.pem")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    """`tee-agent argv... --json` in-process: exit code and its one JSON object."""
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and len(out.splitlines()) == 1, out + err
    return code, json.loads(out)


def failed(out: dict[str, Any]) -> list[str]:
    return [check["name"] for check in out["checks"] if not check["passed"]]


def test_get_attestation_relays_the_sims_event_log_and_it_replays(
    world: EnclaveWorld, host: HostUnderTest
) -> None:
    answer = host.stub.GetAttestation(pb.GetAttestationRequest(nonce=os.urandom(32)))
    # The platform's log, byte for byte, through the enclave and the host.
    platform = SimPlatform(world.sim_dir, config_hash=config_hash(world), model_hash=None)
    assert answer.event_log == platform.event_log()
    [event] = json.loads(answer.event_log)
    assert (event["imr"], event["event"]) == (0, "tee-agent.config-hash")
    assert event["event_payload"] == config_hash(world).hex()
    anchors = default_trust_anchors().with_extra_roots(load_trust_root_file(Path(root(world))))
    report = verify_evidence(
        answer.quote, at=datetime.now(UTC), anchors=anchors, event_log=answer.event_log
    )
    assert report.valid and report.event_log is not None and report.event_log.verified


def test_attest_out_saves_the_log_and_verify_quote_replays_it_from_that_file(
    capsys: pytest.CaptureFixture[str], world: EnclaveWorld, address: str, tmp_path: Path
) -> None:
    saved = tmp_path / "attestation.json"
    code, out = run(capsys, "attest", "--host", address, "--trust-root", root(world),
                    "--out", str(saved))  # fmt: skip
    assert code == 0 and out["accepted"] is True and failed(out) == []
    assert out["event_log"]["verified"] is True and len(out["event_log"]["events"]) == 1
    document = json.loads(saved.read_text())
    assert [e["event"] for e in document["event_log"]] == ["tee-agent.config-hash"]

    # The attestation file is itself an event log file (an object with `event_log`).
    quote = tmp_path / "quote.hex"
    quote.write_text(document["quote"])
    code, report = run(capsys, "verify", "quote", str(quote), "--event-log", str(saved),
                       "--trust-root", root(world))  # fmt: skip
    assert code == 0 and report["valid"] is True and report["event_log"]["verified"] is True
    assert report["event_log"]["rtmrs"] == {
        name: report["measurements"][name] for name in ("rtmr0", "rtmr1", "rtmr2", "rtmr3")
    }

    # One bit of the saved log flipped: the same command fails, naming the checks.
    document["event_log"] = flip_first_digest(document["event_log"])
    saved.write_text(json.dumps(document))
    code, report = run(capsys, "verify", "quote", str(quote), "--event-log", str(saved),
                       "--trust-root", root(world))  # fmt: skip
    assert code == 1 and failed(report) == ["event_log_digests", "event_log_replay"]


def test_attest_refuses_a_log_tampered_with_or_swollen_by_the_host(
    capsys: pytest.CaptureFixture[str], world: EnclaveWorld, host: HostUnderTest
) -> None:
    with relay(host.stub, attestation=flip_first_event) as tampering:
        code, out = run(capsys, "attest", "--host", tampering, "--trust-root", root(world))
    assert code == 1 and out["accepted"] is False and out["binding"]["passed"] is True
    assert failed(out) == ["event_log_digests", "event_log_replay"]
    assert out["error"].startswith("event_log_digests: event 0 (imr 0, tee-agent.config-hash)")

    def swell(answer: Any) -> None:  # still JSON, one byte over the cap
        answer.event_log = answer.event_log.ljust(MAX_SERVED_EVENT_LOG_SIZE + 1, b" ")

    with relay(host.stub, attestation=swell) as swelling:
        code, out = run(capsys, "attest", "--host", swelling, "--trust-root", root(world))
    assert code == 1 and out["accepted"] is False
    assert "the agent sent a malformed attestation event_log" in out["error"]
    assert f"over the {MAX_SERVED_EVENT_LOG_SIZE} (1 MiB)" in out["error"]


def test_a_host_that_withholds_the_log_fails_a_policy_that_needs_one(
    capsys: pytest.CaptureFixture[str], world: EnclaveWorld, host: HostUnderTest, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[[tdx]]\nmr_td = "{"00" * 48}"\n'
                      f'[event_log]\nconfig_hash = "{config_hash(world).hex()}"\n')  # fmt: skip

    def withhold(answer: Any) -> None:
        answer.event_log = b""

    with relay(host.stub, attestation=withhold) as withholding:
        code, out = run(capsys, "attest", "--host", withholding, "--trust-root", root(world),
                        "--policy", str(policy))  # fmt: skip
    assert code == 1 and out["event_log"] is None
    detail = next(c["detail"] for c in out["checks"] if c["name"] == "policy_event_log")
    assert "no event log came with the evidence" in detail
    assert {"policy_event_log", "policy_agent_events"} <= set(failed(out))


class _Swollen(SimPlatform):
    """The sim platform with a log over the cap (still JSON): a broken firmware log."""

    def event_log(self) -> bytes:
        return super().event_log().ljust(MAX_SERVED_EVENT_LOG_SIZE + 1, b" ")


class _NoLog(SimPlatform):
    """A platform that keeps no log (as SGX): its log is []."""

    def event_log(self) -> bytes:
        return b"[]"


def test_the_enclave_refuses_to_attest_with_a_log_over_the_cap(world: EnclaveWorld) -> None:
    config = load_config(world.config_path)
    platform = _Swollen(world.sim_dir, config_hash=config.config_hash(), model_hash=None)
    core = EnclaveCore(platform, config, make_policy(config))
    core.open(b"")
    with pytest.raises(EnclaveError, match=r"over the 1048576 bytes \(1 MiB") as refused:
        core.attest(os.urandom(32))
    assert refused.value.kind == "failed_precondition"

    quiet = EnclaveCore(_NoLog(world.sim_dir, config_hash=None, model_hash=None), config,
                        make_policy(config))  # fmt: skip
    quiet.open(b"")
    assert quiet.attest(os.urandom(32)).event_log == b""  # "empty for none"
