"""The TDX backend against a fake configfs-tsm directory answering with real TDX quotes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attestation.formats.dcap import parse_dcap_quote
from enclave.platform.base import REPORT_DATA_SIZE, Platform, PlatformError
from enclave.platform.tdx import MAX_ATTEMPTS, TdxPlatform, check_key_file_access
from tests.fake_tsm import FakeConfigfsTsm, report_data_offset
from tests.manifest import vector_bytes, vector_ids, vectors

TDX = vectors("intel-tdx-quote")
VECTOR = next(v for v in TDX if v["file"] == "tdx-v4-phala-1.bin")
QUOTE = vector_bytes(VECTOR["file"])
REPORT_DATA = bytes(range(0x40, 0x80))
KEY = bytes(range(0xA0, 0xC0))


def fake_tsm(tmp_path: Path, quote: bytes = QUOTE, **options: Any) -> FakeConfigfsTsm:
    return FakeConfigfsTsm(tmp_path / "tsm" / "report", quote, **options)


def platform_on(fake: FakeConfigfsTsm, key_file: Path | None = None) -> TdxPlatform:
    return TdxPlatform(fake.base, key_file, ops=fake)


def test_satisfies_the_platform_protocol(tmp_path: Path) -> None:
    platform: Platform = platform_on(fake_tsm(tmp_path))
    assert (platform.name, platform.simulated) == ("tdx", False)


def test_quote_carries_exactly_the_report_data_written(tmp_path: Path) -> None:
    fake = fake_tsm(tmp_path)
    quote = platform_on(fake).quote(REPORT_DATA)

    assert fake.inblobs == [REPORT_DATA]
    assert parse_dcap_quote(quote).body.report_data == REPORT_DATA
    start = report_data_offset(QUOTE)
    assert quote[:start] == QUOTE[:start]
    assert quote[start + REPORT_DATA_SIZE :] == QUOTE[start + REPORT_DATA_SIZE :]


def test_each_quote_uses_a_fresh_entry_and_removes_it(tmp_path: Path) -> None:
    fake = fake_tsm(tmp_path)
    platform = platform_on(fake)
    platform.quote(REPORT_DATA)
    platform.quote(bytes(REPORT_DATA_SIZE))

    first, second = fake.entries_created
    assert first != second
    assert first.parent == fake.base and first.name.startswith("tee-agent-")
    assert fake.leftover_entries() == []


@pytest.fixture(scope="module")
def shared_fake(tmp_path_factory: pytest.TempPathFactory) -> FakeConfigfsTsm:
    return fake_tsm(tmp_path_factory.mktemp("tdx"))


@settings(max_examples=25, deadline=None)
@given(report_data=st.binary(min_size=REPORT_DATA_SIZE, max_size=REPORT_DATA_SIZE))
def test_any_report_data_round_trips(shared_fake: FakeConfigfsTsm, report_data: bytes) -> None:
    quote = platform_on(shared_fake).quote(report_data)
    assert parse_dcap_quote(quote).body.report_data == report_data
    assert shared_fake.leftover_entries() == []


@settings(max_examples=25, deadline=None)
@given(report_data=st.binary(max_size=2 * REPORT_DATA_SIZE).filter(lambda b: len(b) != 64))
def test_wrong_size_is_refused_before_touching_the_device(
    shared_fake: FakeConfigfsTsm, report_data: bytes
) -> None:
    created = len(shared_fake.entries_created)
    with pytest.raises(PlatformError, match=f"exactly 64 bytes; got {len(report_data)}"):
        platform_on(shared_fake).quote(report_data)
    assert len(shared_fake.entries_created) == created


def test_wrong_size_is_reported_even_without_configfs(tmp_path: Path) -> None:
    with pytest.raises(PlatformError, match="exactly 64 bytes; got 32"):
        TdxPlatform(tmp_path / "absent").quote(bytes(32))


@pytest.mark.parametrize("vector", TDX, ids=vector_ids(TDX))
def test_measurement_equals_the_vector(tmp_path: Path, vector: dict[str, Any]) -> None:
    fake = fake_tsm(tmp_path, vector_bytes(vector["file"]))
    platform = platform_on(fake)
    fields = vector["expected_fields"]
    expected = {name: fields[name] for name in ("mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3")}

    assert platform.measurement().values == expected
    assert platform.measurement().values == expected
    assert fake.inblobs == [bytes(REPORT_DATA_SIZE)], "one quote over zeros, then cached"


def test_measurement_refuses_an_sgx_quote(tmp_path: Path) -> None:
    sgx = vector_bytes("sgx-v3-phala-1.bin")
    fake = fake_tsm(tmp_path, outblob=sgx)
    with pytest.raises(PlatformError, match="expected a TDX quote"):
        platform_on(fake).measurement()


def test_measurement_refuses_garbage(tmp_path: Path) -> None:
    fake = fake_tsm(tmp_path, outblob=b"not a quote")
    with pytest.raises(PlatformError, match="not a quote"):
        platform_on(fake).measurement()


def test_one_race_is_retried_in_a_fresh_entry(tmp_path: Path) -> None:
    fake = fake_tsm(tmp_path, racing_writes=1)
    quote = platform_on(fake).quote(REPORT_DATA)
    assert parse_dcap_quote(quote).body.report_data == REPORT_DATA
    assert len(fake.entries_created) == 2
    assert fake.leftover_entries() == []


def test_racing_on_every_attempt_fails_after_the_bound(tmp_path: Path) -> None:
    fake = fake_tsm(tmp_path, racing_writes=MAX_ATTEMPTS + 10)
    with pytest.raises(PlatformError, match=f"each of {MAX_ATTEMPTS} attempts: another writer"):
        platform_on(fake).quote(REPORT_DATA)
    assert len(fake.entries_created) == MAX_ATTEMPTS
    assert fake.leftover_entries() == []


def test_missing_configfs_is_explained(tmp_path: Path) -> None:
    missing = tmp_path / "sys" / "kernel" / "config" / "tsm" / "report"
    with pytest.raises(PlatformError) as caught:
        TdxPlatform(missing).quote(REPORT_DATA)
    assert str(caught.value) == (
        f"configfs-tsm is not available at {missing}: is this a TDX guest with "
        "CONFIG_TSM_REPORTS and configfs mounted?"
    )


def test_permission_denied_is_explained(tmp_path: Path) -> None:
    fake = fake_tsm(tmp_path, deny=True)
    with pytest.raises(PlatformError, match=r"permission denied on .*need root"):
        platform_on(fake).quote(REPORT_DATA)


def test_another_provider_is_refused_and_the_entry_removed(tmp_path: Path) -> None:
    fake = fake_tsm(tmp_path, provider="sev_guest")
    with pytest.raises(PlatformError, match=r"provider .* is 'sev_guest'; expected 'tdx_guest'"):
        platform_on(fake).quote(REPORT_DATA)
    assert fake.inblobs == [], "nothing is written to another TEE's device"
    assert fake.leftover_entries() == []


def test_a_missing_provider_attribute_is_tolerated(tmp_path: Path) -> None:
    fake = fake_tsm(tmp_path, provider=None)
    assert parse_dcap_quote(platform_on(fake).quote(REPORT_DATA)).body.report_data == REPORT_DATA


def test_empty_outblob_is_refused(tmp_path: Path) -> None:
    fake = fake_tsm(tmp_path, outblob=b"")
    with pytest.raises(PlatformError, match="empty outblob"):
        platform_on(fake).quote(REPORT_DATA)
    assert fake.leftover_entries() == []


# Sealing key file ---------------------------------------------------------------------------


def key_file(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "sealing.key"
    path.write_bytes(content)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize(
    "content",
    [KEY, KEY.hex().encode(), KEY.hex().upper().encode() + b"\n"],
    ids=["raw", "hex", "upper-hex-newline"],
)
def test_sealing_key_is_read_from_the_provisioned_file(tmp_path: Path, content: bytes) -> None:
    platform = platform_on(fake_tsm(tmp_path), key_file(tmp_path, content))
    assert platform.sealing_key() == KEY


# Each way the key file is refused: how to make the file (in a fresh directory) and the message.
KEY_FILE_FAILURES: list[tuple[str, Callable[[Path], Path | None], str]] = [
    ("unset", lambda d: None, "no hardware sealing key"),
    ("missing", lambda d: d / "absent.key", "absent.key does not exist"),
    ("short", lambda d: key_file(d, KEY[:31]), "holds 31 bytes"),
    ("long-hex", lambda d: key_file(d, KEY.hex().encode() + b"0"), "holds 65 bytes"),
    ("not-hex", lambda d: key_file(d, KEY.hex().encode()[:-1] + b"g"), "holds 64 bytes"),
    ("mode-0644", lambda d: key_file(d, KEY, 0o644), r"mode 0644.*`chmod 600 .*sealing.key`"),
    ("mode-0640", lambda d: key_file(d, KEY, 0o640), "mode 0640"),
    ("mode-0604", lambda d: key_file(d, KEY, 0o604), "mode 0604"),
    ("mode-0620", lambda d: key_file(d, KEY, 0o620), "mode 0620"),
    ("directory", lambda d: d, "is not a regular file"),
]


@pytest.mark.parametrize(
    ("make", "message"),
    [(make, message) for _, make, message in KEY_FILE_FAILURES],
    ids=[case for case, _, _ in KEY_FILE_FAILURES],
)
def test_sealing_key_file_is_refused_with_its_name(
    tmp_path: Path, make: Callable[[Path], Path | None], message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(PlatformError, match=message) as caught:
        platform_on(fake_tsm(tmp_path), path).sealing_key()
    if path is not None:
        assert str(path) in str(caught.value)
    assert_key_absent(caught.value)


# (mode, owner uid, process euid, refused with): PostgreSQL's rule for its server key. The
# tests run as root, so the non-root cases are checked on the rule itself.
KEY_FILE_ACCESS: list[tuple[int, int, int, str | None]] = [
    (0o600, 10001, 10001, None),
    (0o400, 10001, 10001, None),
    (0o640, 10001, 10001, r"mode 0640: group and others .*`chmod 600 "),
    (0o440, 0, 10001, None),  # a Kubernetes Secret under the pod's fsGroup
    (0o640, 0, 10001, None),
    (0o660, 0, 10001, r"mode 0660: a root-owned key file may be readable by its group, no more"),
    (0o644, 0, 10001, r"`chmod 640 "),
    (0o440, 0, 0, "mode 0440: group and others"),  # root reading its own file: the strict rule
    (0o600, 4242, 10001, r"owned by uid 4242: .*\(uid 10001\) or by root"),
    (0o600, 4242, 0, "owned by uid 4242"),
]


@pytest.mark.parametrize(("mode", "owner", "euid", "refused"), KEY_FILE_ACCESS)
def test_key_file_access_follows_postgresql_s_rule(
    mode: int, owner: int, euid: int, refused: str | None
) -> None:
    path = Path("/run/secrets/sealing-key")
    if refused is None:
        check_key_file_access(path, mode, owner, euid)
    else:
        with pytest.raises(PlatformError, match=refused) as caught:
            check_key_file_access(path, mode, owner, euid)
        assert str(path) in str(caught.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_key_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = key_file(tmp_path, KEY)
    os.chown(path, 4242, 4242)
    with pytest.raises(PlatformError, match="owned by uid 4242") as caught:
        platform_on(fake_tsm(tmp_path), path).sealing_key()
    assert_key_absent(caught.value)


def test_key_never_appears_in_repr(tmp_path: Path) -> None:
    platform = platform_on(fake_tsm(tmp_path), key_file(tmp_path, KEY.hex().encode()))
    assert platform.sealing_key() == KEY
    text = repr(platform)
    assert text == (
        f"TdxPlatform(base={str(tmp_path / 'tsm' / 'report')!r}, "
        f"sealing_key_file={str(tmp_path / 'sealing.key')!r}, kms=None)"
    )
    assert KEY.hex() not in text.lower()


def assert_key_absent(error: BaseException) -> None:
    """Neither the error nor anything chained to it shows the key, raw or as hex."""
    seen: BaseException | None = error
    while seen is not None:
        text = str(seen) + repr(seen.args)
        assert KEY.hex() not in text.lower() and KEY.hex()[:-1] not in text.lower()
        assert repr(KEY) not in text and repr(KEY[:31]) not in text
        seen = seen.__cause__ or seen.__context__
