"""TDX without dstack serves a log that replays to all four RTMRs: the firmware's CCEL events
(RTMR0-2), then the agent's own (RTMR3). Without the table the verifier finds RTMR0-2
unexplained and fails. Against the fake kernel (tests/fake_tsm.py) whose quotes carry the
registers the CCEL log replays to, checked by the verifier's own code."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from attestation.checks import CheckName
from attestation.event_log import verify_event_log
from attestation.formats.ccel import EV_NO_ACTION
from attestation.report import VerificationReport
from enclave.config import load_config
from enclave.core import EnclaveCore
from enclave.platform.base import PlatformError
from enclave.platform.tdx import TdxPlatform
from enclave.server import make_policy
from tests.enclave_harness import EnclaveWorld
from tests.event_log_builders import EV_EFI_ACTION, EV_SEPARATOR, ccel_log, tdx_report
from tests.test_tdx_rtmr3 import CONFIG_A, MODEL, Td, boot

# (CC MR index, event type, data): one MRTD event (counted, never replayed), an EV_NO_ACTION
# one (logged, never extended), then firmware, boot loader and kernel events in RTMR0-2.
BOOT = [
    (0, EV_EFI_ACTION, b"TD HOB"),
    (1, EV_NO_ACTION, b"StartupLocality\x00\x00"),
    (1, EV_EFI_ACTION, b"TDVF config volume"),
    (1, EV_SEPARATOR, bytes(4)),
    (2, EV_EFI_ACTION, b"shim and grub"),
    (3, EV_EFI_ACTION, b"console=ttyS0 initrd"),
]


def boot_registers(events: list[tuple[int, int, bytes]]) -> tuple[bytes, bytes, bytes]:
    """RTMR0-2 as the TDX module extends them for these events, computed apart from the
    code under test: SHA-384(RTMR || SHA-384(data)) for each, from 48 zero bytes."""
    registers = [bytes(48)] * 3
    for index, event_type, data in events:
        if index == 0 or event_type == EV_NO_ACTION:
            continue
        registers[index - 1] = hashlib.sha384(
            registers[index - 1] + hashlib.sha384(data).digest()
        ).digest()
    return registers[0], registers[1], registers[2]


def quoted(platform: TdxPlatform) -> VerificationReport:
    """A verified report holding the registers the fake TD's quotes carry."""
    values = platform.measurement().values
    return tdx_report({f"rtmr{i}": values[f"rtmr{i}"] for i in range(4)})


def ccel_td(root: Path) -> Td:
    td = boot(root, boot_rtmrs=boot_registers(BOOT))
    td.ccel.parent.mkdir(parents=True)
    td.ccel.write_bytes(ccel_log(BOOT))
    return td


def test_the_firmwares_ccel_events_then_the_agents_replay_to_rtmr0_3(tmp_path: Path) -> None:
    platform = ccel_td(tmp_path).platform()

    report = verify_event_log(quoted(platform), platform.event_log())

    assert report.valid, report.error
    assert report.event_log is not None and report.event_log.verified
    assert [(e.imr, e.event_type, e.event) for e in report.event_log.events] == [
        (0, EV_NO_ACTION, ""),
        (0, EV_EFI_ACTION, ""),
        (0, EV_SEPARATOR, ""),
        (1, EV_EFI_ACTION, ""),
        (2, EV_EFI_ACTION, ""),
        (3, 0x08000001, "tee-agent.config-hash"),
        (3, 0x08000001, "tee-agent.model-hash"),
    ]
    assert report.event_log.events[1].payload == b"TDVF config volume".hex()


def test_the_enclave_serves_that_log_with_its_quote(tmp_path: Path) -> None:
    world = EnclaveWorld(tmp_path / "agent")
    config = load_config(world.config_path)
    key = tmp_path / "sealing.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    platform = ccel_td(tmp_path).platform(config.config_hash(), None, key_file=key)
    core = EnclaveCore(platform, config, make_policy(config))
    core.open(b"")

    attestation = core.attest(os.urandom(32))

    assert attestation.event_log == platform.event_log()
    assert verify_event_log(quoted(platform), attestation.event_log).valid


def test_without_the_ccel_table_rtmr0_2_are_unexplained_and_the_replay_fails(
    tmp_path: Path,
) -> None:
    platform = boot(tmp_path, boot_rtmrs=boot_registers(BOOT)).platform()  # no CCEL file

    report = verify_event_log(quoted(platform), platform.event_log())

    assert not report.valid and report.event_log is not None and not report.event_log.verified
    replay = report.check(CheckName.EVENT_LOG_REPLAY)
    assert replay is not None and not replay.passed
    assert replay.detail.startswith("rtmr0: the quote holds ")
    assert "the event log has no event for it: nothing explains it" in replay.detail
    assert [e.event for e in report.event_log.events] == [
        "tee-agent.config-hash",
        "tee-agent.model-hash",
    ]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"\x00" * 64, "header eventType expected EV_NO_ACTION"),
        (ccel_log(BOOT)[:100], "ends"),
    ],
)
def test_a_ccel_table_that_is_not_a_log_is_a_platform_error_naming_it(
    tmp_path: Path, content: bytes, error: str
) -> None:
    td = boot(tmp_path)
    td.ccel.parent.mkdir(parents=True)
    td.ccel.write_bytes(content)
    with pytest.raises(PlatformError, match=f"firmware's event log {td.ccel}.*{error}"):
        td.platform(CONFIG_A, MODEL).event_log()
