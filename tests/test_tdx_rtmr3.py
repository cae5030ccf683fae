"""TDX measures the config and model in RTMR3, once per boot, through dstack's guest agent or
the kernel's RTMR interface; its quoted RTMR3 replays from the log it serves; its sealing key
comes from dstack's KMS. Against the fake kernel (tests/fake_tsm.py) and a real server
speaking dstack's protocol on a unix socket (tests/fake_dstack.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from enclave.config import load_config
from enclave.core import EnclaveCore, EnclaveError
from enclave.platform.base import PlatformError
from enclave.platform.dstack_agent import DstackAgent
from enclave.platform.runtime_events import (
    CONFIG_EVENT,
    DSTACK_RUNTIME_EVENT_TYPE,
    MODEL_EVENT,
    RuntimeEvent,
    agent_events,
    parse_event_log,
    replay,
)
from enclave.platform.tdx import KMS_SEALING_KEY_PATH, TdxPlatform
from enclave.platform.tdx_rtmr import KernelRtmr3, MeasurementConflict, Rtmr3Measurer
from enclave.sealing import SealedForAnotherConfig
from enclave.server import make_policy
from tests.enclave_harness import EnclaveWorld
from tests.fake_dstack import FakeDstackAgent
from tests.fake_tsm import FakeConfigfsTsm, FakeTdxMeasurements
from tests.manifest import vector_bytes

QUOTE = vector_bytes("tdx-v4-phala-1.bin")
CONFIG_A = hashlib.sha256(b"config A").digest()
CONFIG_B = hashlib.sha256(b"config B").digest()
MODEL = hashlib.sha256(b"model").digest()
APP_SECRET = b"the app key the KMS gave this CVM"
# What dstack itself puts in the event log at boot: RTMR0 digest-only, then its RTMR3
# runtime events (names as dstack's boot emits them).
BOOT_EVENTS = [
    {"imr": 0, "event_type": 1, "digest": "aa" * 48, "event": "", "event_payload": ""},
    *(
        RuntimeEvent(name, payload).log_entry()
        for name, payload in [
            ("system-preparing", b""),
            ("app-id", bytes(20)),
            ("compose-hash", bytes(range(32))),
            ("instance-id", bytes(20)),
            ("boot-mr-done", b""),
            ("key-provider", b'{"type":"kms"}'),
            ("system-ready", b""),
        ]
    ),
]


@dataclass
class Td:
    """One boot of a fake TD: its configfs-tsm, its sysfs RTMRs, its /run, and where its
    firmware's CCEL table would be (no file: no table)."""

    tsm: FakeConfigfsTsm
    sysfs: FakeTdxMeasurements
    run: Path
    ccel: Path

    def kernel(self) -> KernelRtmr3:
        return KernelRtmr3(
            self.sysfs.directory, self.run / "tee-agent" / "rtmr3-events.json", ops=self.sysfs
        )

    def platform(
        self,
        config_hash: bytes = CONFIG_A,
        model_hash: bytes | None = MODEL,
        dstack: DstackAgent | None = None,
        kms: DstackAgent | None = None,
        key_file: Path | None = None,
    ) -> TdxPlatform:
        measurer = Rtmr3Measurer(
            agent_events(config_hash, model_hash), kernel=self.kernel(), dstack=dstack
        )
        return TdxPlatform(
            self.tsm.base, key_file, kms=kms, rtmr3=measurer, ccel=self.ccel, ops=self.tsm
        )


def boot(
    root: Path,
    name: str = "boot",
    rtmr3: bytes = bytes(48),
    boot_rtmrs: tuple[bytes, bytes, bytes] | None = None,
    **sysfs: bool,
) -> Td:
    tsm = FakeConfigfsTsm(root / name / "tsm" / "report", QUOTE, rtmr3=rtmr3, boot_rtmrs=boot_rtmrs)
    measurements = FakeTdxMeasurements(root / name / "sys" / "measurements", tsm, **sysfs)
    return Td(tsm, measurements, root / name / "run", root / name / "sys" / "firmware" / "CCEL")


def rtmr3(platform: TdxPlatform) -> bytes:
    return bytes.fromhex(platform.measurement().values["rtmr3"])


# -- the kernel route ---------------------------------------------------------------------


def test_the_kernel_route_extends_rtmr3_and_the_quote_replays_from_the_log(
    tmp_path: Path,
) -> None:
    td = boot(tmp_path)
    platform = td.platform()
    events = agent_events(CONFIG_A, MODEL)

    measured = rtmr3(platform)

    assert td.tsm.extensions == [event.digest() for event in events]
    log = parse_event_log(platform.event_log(), "platform")
    assert [(e["imr"], e["event"], e["event_type"]) for e in log] == [
        (3, CONFIG_EVENT, DSTACK_RUNTIME_EVENT_TYPE),
        (3, MODEL_EVENT, DSTACK_RUNTIME_EVENT_TYPE),
    ]
    assert [bytes.fromhex(e["event_payload"]) for e in log] == [CONFIG_A, MODEL]
    assert measured == replay(log, 3) != bytes(48)
    # The contract's digest, spelled out once: SHA-384(type LE || ":" || name || ":" || payload).
    assert (
        log[0]["digest"]
        == hashlib.sha384(
            (0x08000001).to_bytes(4, "little") + b":tee-agent.config-hash:" + CONFIG_A
        ).hexdigest()
    )
    # The file on /run is that same log, in dstack's JSON form.
    assert json.loads((td.run / "tee-agent" / "rtmr3-events.json").read_text()) == log


def test_the_model_event_is_left_out_without_a_model(tmp_path: Path) -> None:
    platform = boot(tmp_path).platform(model_hash=None)
    log = parse_event_log(platform.event_log(), "platform")
    assert [e["event"] for e in log] == [CONFIG_EVENT]


def test_a_restart_in_the_same_td_does_not_extend_again(tmp_path: Path) -> None:
    td = boot(tmp_path)
    first = td.platform()
    before = first.measurement()

    again = td.platform()

    assert again.measurement() == before
    assert len(td.tsm.extensions) == 2
    assert again.event_log() == first.event_log()


def test_another_config_in_the_same_td_is_refused_until_a_reboot(tmp_path: Path) -> None:
    td = boot(tmp_path)
    td.platform(CONFIG_A).measurement()

    with pytest.raises(MeasurementConflict, match="Restart the TD") as refused:
        td.platform(CONFIG_B).measurement()
    assert CONFIG_A.hex()[:16] in str(refused.value) and CONFIG_B.hex()[:16] in str(refused.value)
    assert len(td.tsm.extensions) == 2  # nothing more was extended

    rebooted = boot(tmp_path, "second-boot")
    assert rtmr3(rebooted.platform(CONFIG_B)) == replay(
        [event.log_entry() for event in agent_events(CONFIG_B, MODEL)], 3
    )


def test_the_sealing_key_is_not_handed_out_before_rtmr3_is_extended(tmp_path: Path) -> None:
    td = boot(tmp_path)
    with FakeDstackAgent(app_secret=APP_SECRET) as agent:
        td.platform(kms=DstackAgent(agent.socket)).sealing_key()
    assert len(td.tsm.extensions) == 2


def test_an_rtmr3_the_log_does_not_explain_is_refused(tmp_path: Path) -> None:
    td = boot(tmp_path, rtmr3=bytes([7]) * 48)  # extended at boot by something unlogged
    with pytest.raises(PlatformError, match="not what its event log replays to"):
        td.platform().measurement()


def test_a_kernel_without_the_rtmr_interface_is_explained(tmp_path: Path) -> None:
    td = boot(tmp_path, missing=True)
    with pytest.raises(PlatformError, match=r"6\.16"):
        td.platform().measurement()


def test_a_forged_log_entry_is_refused(tmp_path: Path) -> None:
    td = boot(tmp_path)
    td.platform().measurement()
    path = td.run / "tee-agent" / "rtmr3-events.json"
    log = json.loads(path.read_text())
    log[0]["event_payload"] = CONFIG_B.hex()  # claims config B, digest still of config A
    path.write_text(json.dumps(log))
    with pytest.raises(PlatformError, match="digest"):
        td.platform(CONFIG_B).measurement()


# -- through dstack's guest agent ------------------------------------------------------


@pytest.fixture
def dstack_td(tmp_path: Path) -> Iterator[tuple[Td, FakeDstackAgent]]:
    td = boot(tmp_path, rtmr3=replay(BOOT_EVENTS, 3))
    with FakeDstackAgent(
        app_secret=APP_SECRET, on_extend=td.tsm.extend_rtmr3, boot_events=BOOT_EVENTS
    ) as agent:
        yield td, agent


def test_dstack_emit_event_extends_rtmr3_and_its_log_replays(
    dstack_td: tuple[Td, FakeDstackAgent],
) -> None:
    td, agent = dstack_td
    platform = td.platform(dstack=DstackAgent(agent.socket))
    td.ccel.parent.mkdir(parents=True)
    td.ccel.write_bytes(b"not read: dstack's log holds the firmware's events")

    measured = rtmr3(platform)

    assert [m for m, _ in agent.requests if m == "EmitEvent"] == ["EmitEvent", "EmitEvent"]
    assert not (td.run / "tee-agent" / "rtmr3-events.json").exists()
    log = parse_event_log(platform.event_log(), "platform")
    assert log[: len(BOOT_EVENTS)] == BOOT_EVENTS
    assert [e["event"] for e in log[len(BOOT_EVENTS) :]] == [CONFIG_EVENT, MODEL_EVENT]
    assert measured == replay(log, 3)

    again = td.platform(dstack=DstackAgent(agent.socket))
    assert again.measurement().values["rtmr3"] == measured.hex()
    assert len(td.tsm.extensions) == 2
    with pytest.raises(MeasurementConflict):
        td.platform(CONFIG_B, dstack=DstackAgent(agent.socket)).measurement()


def test_dstack_s_compact_log_is_read_with_its_digests_recomputed(tmp_path: Path) -> None:
    # dstack's `tdx-lite` GetQuote replies leave runtime events' digests out.
    td = boot(tmp_path, rtmr3=replay(BOOT_EVENTS, 3))
    with FakeDstackAgent(
        on_extend=td.tsm.extend_rtmr3, boot_events=BOOT_EVENTS, compact=True
    ) as agent:
        measured = rtmr3(td.platform(dstack=DstackAgent(agent.socket)))
        # A restart in the same TD finds its events in the compact log: nothing extended.
        restarted = td.platform(dstack=DstackAgent(agent.socket))
        assert restarted.measurement().values["rtmr3"] == measured.hex()
        served = json.loads(restarted.event_log())
    assert len(td.tsm.extensions) == 2
    assert all(len(bytes.fromhex(entry["digest"])) == 48 for entry in served)
    assert served[: len(BOOT_EVENTS)] == BOOT_EVENTS
    assert measured == replay(served, 3)


def test_a_dstack_without_emit_event_falls_back_to_the_kernel(tmp_path: Path) -> None:
    td = boot(tmp_path, rtmr3=replay(BOOT_EVENTS, 3))
    with FakeDstackAgent(emit_event=False, boot_events=BOOT_EVENTS) as agent:
        platform = td.platform(dstack=DstackAgent(agent.socket))
        measured = rtmr3(platform)
        log = parse_event_log(platform.event_log(), "platform")
        assert len(td.platform(dstack=DstackAgent(agent.socket)).event_log()) == len(
            platform.event_log()
        )
    assert log[: len(BOOT_EVENTS)] == BOOT_EVENTS
    assert [e["event"] for e in log[len(BOOT_EVENTS) :]] == [CONFIG_EVENT, MODEL_EVENT]
    assert measured == replay(log, 3)
    assert len(td.tsm.extensions) == 2


# -- the KMS sealing key -----------------------------------------------------------------


def test_the_sealing_key_comes_from_dstacks_getkey(
    dstack_td: tuple[Td, FakeDstackAgent],
) -> None:
    td, agent = dstack_td
    client = DstackAgent(agent.socket)
    key = td.platform(dstack=client, kms=client).sealing_key()
    assert key == hmac.new(APP_SECRET, KMS_SEALING_KEY_PATH.encode(), hashlib.sha256).digest()
    assert ("GetKey", {"path": KMS_SEALING_KEY_PATH, "purpose": "sealing"}) in agent.requests


def test_no_key_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="dstack-kms"):
        boot(tmp_path).platform().sealing_key()


def test_an_unreachable_kms_is_a_platform_error_naming_it(tmp_path: Path) -> None:
    platform = boot(tmp_path).platform(kms=DstackAgent(str(tmp_path / "no.sock")))
    with pytest.raises(PlatformError, match="no sealing key from dstack's KMS"):
        platform.sealing_key()


def test_two_key_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="one sealing key source"):
        TdxPlatform(tmp_path, tmp_path / "key", kms=DstackAgent("/nonexistent"))


def test_the_attack_on_tdx_with_dstack_kms_across_a_reboot(tmp_path: Path) -> None:
    """Seal under config A; reboot; start with the per-trade limit at 10^9: refused."""
    world = EnclaveWorld(tmp_path / "world")
    honest = load_config(world.config_path)
    world.write_config(max_notional_per_trade_usd=10**9)
    raised = load_config(world.config_path)

    def start(td: Td, config_hash: bytes, agent: FakeDstackAgent) -> TdxPlatform:
        client = DstackAgent(agent.socket)
        return td.platform(config_hash, None, dstack=client, kms=client)

    first = boot(tmp_path, "boot-1", rtmr3=replay(BOOT_EVENTS, 3))
    with FakeDstackAgent(
        app_secret=APP_SECRET, on_extend=first.tsm.extend_rtmr3, boot_events=BOOT_EVENTS
    ) as agent:
        platform = start(first, honest.config_hash(), agent)
        sealed = EnclaveCore(platform, honest, make_policy(honest)).open(b"")[0].sealed_state

    second = boot(tmp_path, "boot-2", rtmr3=replay(BOOT_EVENTS, 3))
    with FakeDstackAgent(
        app_secret=APP_SECRET, on_extend=second.tsm.extend_rtmr3, boot_events=BOOT_EVENTS
    ) as agent:
        platform = start(second, raised.config_hash(), agent)
        with pytest.raises(EnclaveError, match="another config") as refused:
            EnclaveCore(platform, raised, make_policy(raised)).open(sealed)
    assert isinstance(refused.value.__cause__, SealedForAnotherConfig)
