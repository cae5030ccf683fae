"""`tee-agent owner pause|resume` against a real host and its real enclave, run as the
installed console script in a subprocess, as an owner would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey
from tee_agent_rpc import agent_pb2 as pb

from attestation.receipt_chain import verify_receipts
from tests.enclave_harness import CHAIN_ID, EnclaveWorld, config_toml, ticks
from tests.host_harness import AUTH, TOKEN, HostUnderTest, running_host
from tests.test_host_api import all_receipts, receipt_of

TEE_AGENT = Path(sys.executable).parent / "tee-agent"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> EnclaveWorld:
    world = EnclaveWorld(tmp_path_factory.mktemp("owner"))
    world.write_config(decision_interval_seconds=3600)
    return world


@pytest.fixture(scope="module")
def host(world: EnclaveWorld) -> Iterator[HostUnderTest]:
    with running_host(world) as host:
        host.stub.StreamMarketData(iter([ticks([100.0, 101.0])]), metadata=AUTH)
        yield host


@pytest.fixture(scope="module")
def files(world: EnclaveWorld) -> Path:
    """An owner's directory as `tee-agent init` leaves it: owner.key and auth-token."""
    directory = world.root / "owner-files"
    directory.mkdir()
    secret(directory / "owner.key", world.owner.encode().hex())
    secret(directory / "auth-token", TOKEN)
    return directory


def secret(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text + "\n")
    path.chmod(mode)


def owner(
    world: EnclaveWorld, host: HostUnderTest, directory: Path, *arguments: str, trusted: bool = True
) -> tuple[int, str, str]:
    """Run `tee-agent owner ...` in `directory` (where owner.key and auth-token are found)."""
    trust = ["--trust-root", str(world.sim_dir / "root.pem")] if trusted else []
    environment = {k: v for k, v in os.environ.items() if k != "TEE_AGENT_TOKEN"}
    done = subprocess.run(
        [str(TEE_AGENT), "owner", *arguments, "--host", f"127.0.0.1:{host.running.port}", *trust],
        cwd=directory, capture_output=True, text=True, timeout=300, env=environment,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def status(host: HostUnderTest) -> pb.Status:
    return host.stub.GetStatus(pb.GetStatusRequest())  # type: ignore[no-any-return]


def test_pause_then_resume_each_print_their_signed_receipt(
    world: EnclaveWorld, host: HostUnderTest, files: Path
) -> None:
    code, out, err = owner(world, host, files, "pause", "--json")
    assert code == 0, err
    [line] = out.splitlines()  # one JSON object on one line
    paused = json.loads(line)
    assert paused["applied"] is True and paused["paused"] is True
    assert paused["receipt"]["verdict"] == "owner:pause"
    assert json.loads(paused["receipt"]["input_json"])["action"] == "pause"
    assert status(host).paused and status(host).receipts == paused["receipt"]["seq"]

    code, out, err = owner(world, host, files, "resume")
    assert code == 0, err
    assert "resume applied" in out and "owner:resume" in out
    now = status(host)
    assert not now.paused
    # The receipts of both commands are in the chain the attested key signed.
    events = all_receipts(host.stub)
    assert [e.receipt.verdict for e in events[-2:]] == ["owner:pause", "owner:resume"]
    chain = verify_receipts(
        [receipt_of(e) for e in events], address=now.address, chain_id=CHAIN_ID,
        expected_head_hash=now.head_hash,
    )  # fmt: skip
    assert chain.valid, chain.error


def test_a_replayed_counter_and_another_owners_key_are_refused_by_the_enclave(
    world: EnclaveWorld, host: HostUnderTest, files: Path, tmp_path: Path
) -> None:
    before = status(host)
    code, _, err = owner(world, host, files, "pause", "--counter", "7")
    assert code == 1 and "owner_command_replayed" in err  # the clock-based counters were higher
    stranger = tmp_path / "stranger.key"
    secret(stranger, SigningKey.generate().encode().hex())
    code, out, err = owner(world, host, files, "pause", "--key", str(stranger), "--json")
    assert code == 1 and "owner_signature_invalid" in err
    assert json.loads(out)["applied"] is False
    after = status(host)
    assert (after.paused, after.receipts) == (before.paused, before.receipts)


def test_nothing_is_sent_to_an_agent_that_does_not_attest_as_required(
    world: EnclaveWorld, host: HostUnderTest, files: Path, tmp_path: Path
) -> None:
    before = status(host).receipts
    # The simulated root is not trusted unless named: the quote fails, nothing is sent.
    code, _, err = owner(world, host, files, "pause", trusted=False)
    assert code == 1 and "nothing sent" in err
    # A config that is not the attested one, or names another owner: nothing sent.
    other = tmp_path / "other.toml"
    other.write_text(config_toml(SigningKey.generate().verify_key.encode().hex()))
    code, _, err = owner(world, host, files, "pause", "--config", str(other))
    assert code == 1 and "config hash" in err and "nothing sent" in err
    assert status(host).receipts == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: (d / "auth-token").unlink(), "auth-token: no such file"),
        (lambda d: (d / "owner.key").chmod(0o644), "lets other users read"),
        (lambda d: secret(d / "owner.key", "zz"), "expected an Ed25519 seed as 64 hex digits"),
    ],
)
def test_bad_local_files_exit_2_with_a_message_and_never_show_the_key(
    world: EnclaveWorld,
    host: HostUnderTest,
    files: Path,
    tmp_path: Path,
    change,
    message,  # type: ignore[no-untyped-def]
) -> None:
    directory = tmp_path / "copy"
    directory.mkdir()
    secret(directory / "owner.key", world.owner.encode().hex())
    secret(directory / "auth-token", TOKEN)
    change(directory)
    code, out, err = owner(world, host, directory, "pause")
    assert code == 2 and message in err, err
    assert world.owner.encode().hex() not in out + err
