"""Intel TDX backend: quotes through Linux configfs-tsm, the agent's events in RTMR3, and a
sealing key from dstack's KMS (or a provisioned file).

Quotes follow the kernel's report interface (Documentation/ABI/testing/configfs-tsm-report):
make a report entry directory under /sys/kernel/config/tsm/report, write up to 64 bytes to
its `inblob`, read the quote from its `outblob`, remove the directory. The `generation`
attribute counts writes, so reading it before and after shows whether another writer raced
us; every attempt uses a fresh entry of its own, as that document recommends.

Before its first quote or sealing key, the backend extends RTMR3 with the config and model
hashes (`enclave.platform.tdx_rtmr`), once per boot, and checks that the quoted RTMR3 replays
from the event log it serves. That log explains RTMR0-2 too: dstack's holds the firmware's
events; without dstack they come from the firmware's CCEL table (`enclave.platform.tdx_ccel`).

TDX has no hardware sealing key. In a dstack CVM the KMS hands the app its keys after
checking the TD's quote, and the guest agent derives ours with GetKey
(`enclave.platform.dstack_agent`); elsewhere a KMS may provision a key file, which this
backend reads. `enclave.sealing` binds the measurement, config and model on top.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from attestation.errors import QuoteFormatError
from attestation.formats.dcap import TdReport10, parse_dcap_quote
from enclave.platform.base import REPORT_DATA_SIZE, Measurement, PlatformError
from enclave.platform.dstack_agent import DstackAgent, DstackAgentError
from enclave.platform.tdx_ccel import DEFAULT_CCEL, firmware_entries
from enclave.platform.tdx_rtmr import Rtmr3Measurer, check_replay, write_whole

# configfs-tsm-report ABI: the report interface root and the attributes of an entry.
DEFAULT_TSM_REPORT_DIR = Path("/sys/kernel/config/tsm/report")
INBLOB = "inblob"  # "(WO) Up to 64 bytes of user specified binary data"
OUTBLOB = "outblob"  # "(RO) Binary attestation report generated from @inblob"
PROVIDER = "provider"  # "(RO) A name for the format-specification of @outblob"
GENERATION = "generation"  # "(RO) ... increments each time @inblob or any option is written"
# The TDX guest driver (drivers/virt/coco/tdx-guest) registers as its module name.
TDX_PROVIDER = "tdx_guest"
# We write inblob once per attempt, so generation must advance by exactly this much.
WRITES_PER_ATTEMPT = 1
# Attempts before giving up when generation shows a concurrent writer.
MAX_ATTEMPTS = 3
# Prefix of our entry names, so an operator can tell whose leftovers they are.
ENTRY_PREFIX = "tee-agent"

# The provisioned key: 32 raw bytes, or the same as 64 hex characters (whitespace around it
# is ignored). Files longer than this cannot be either form.
SEALING_KEY_SIZE = 32
_MAX_KEY_FILE_SIZE = 4096
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
# GetKey's path is "the domain separator for deterministic key material" (dstack's
# sdk/curl/api.md); the version lets a later derivation take a new path.
KMS_SEALING_KEY_PATH = "tee-agent/sealing-key/v1"
KMS_SEALING_KEY_PURPOSE = "sealing"


class ConfigfsOps:
    """The file operations TdxPlatform performs on configfs-tsm, each a plain system call.

    The kernel acts on them: `mkdir` makes an entry's attributes appear, a write to `inblob`
    advances `generation`, reading `outblob` produces the quote. Tests pass a subclass that
    calls these and then plays the kernel's part on an ordinary directory.
    """

    def create_entry(self, entry: Path) -> None:
        """Make a new report entry directory (fails if it exists)."""
        entry.mkdir()

    def read(self, path: Path) -> bytes:
        """Read an attribute whole."""
        return path.read_bytes()

    def write(self, path: Path, data: bytes) -> None:
        """Write an attribute in one open-write-close (configfs commits it on close)."""
        write_whole(path, data)

    def remove_entry(self, entry: Path) -> None:
        """Remove a report entry directory.

        In configfs the attributes vanish with the directory; an ordinary directory standing
        in for it (tests, or a wrongly configured base) must be emptied first.
        """
        try:
            entry.rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            for child in entry.iterdir():
                child.unlink()
            entry.rmdir()


class TdxPlatform:
    """An Intel TDX guest, quoting through configfs-tsm.

    base: the configfs-tsm report directory. Sealing key source, one of: sealing_key_file,
    where a KMS provisioned the key; kms, dstack's guest agent (GetKey); neither makes
    sealing_key() refuse. rtmr3: what puts the agent's events in RTMR3 (None: nothing is
    extended, and the log holds no agent event). ccel: the firmware's event log, served
    when dstack's is not there. ops: the file operations, left as the plain system calls
    except in tests, which pass a fake kernel (tests/fake_tsm.py).
    """

    name: str = "tdx"
    simulated: bool = False

    def __init__(
        self,
        base: Path = DEFAULT_TSM_REPORT_DIR,
        sealing_key_file: Path | None = None,
        *,
        kms: DstackAgent | None = None,
        rtmr3: Rtmr3Measurer | None = None,
        ccel: Path = DEFAULT_CCEL,
        ops: ConfigfsOps | None = None,
    ) -> None:
        if sealing_key_file is not None and kms is not None:
            raise PlatformError(
                "TDX takes one sealing key source: a provisioned key file or dstack's KMS"
            )
        self.base = base
        self.sealing_key_file = sealing_key_file
        self.kms = kms
        self.rtmr3 = rtmr3
        self.ccel = ccel
        self._ops = ops if ops is not None else ConfigfsOps()
        self._measurement: Measurement | None = None
        self._measured = False

    def __repr__(self) -> str:
        key_file = None if self.sealing_key_file is None else str(self.sealing_key_file)
        return (
            f"TdxPlatform(base={str(self.base)!r}, sealing_key_file={key_file!r}, kms={self.kms!r})"
        )

    def quote(self, report_data: bytes) -> bytes:
        """A TDX quote (the raw `outblob`) over exactly 64 bytes of report data.

        Raises:
            PlatformError: report_data is not 64 bytes (checked before touching the device);
                RTMR3 cannot be measured (see `measurement`); configfs-tsm is missing or not accessible; the provider is not `tdx_guest`;
                the outblob is empty; or another writer raced us on every attempt.
        """
        if len(report_data) != REPORT_DATA_SIZE:
            raise PlatformError(
                f"report_data must be exactly {REPORT_DATA_SIZE} bytes; got {len(report_data)}"
            )
        self._ensure_measured()
        return self._device_quote(report_data)

    def _device_quote(self, report_data: bytes) -> bytes:
        if not self.base.is_dir():
            raise PlatformError(
                f"configfs-tsm is not available at {self.base}: is this a TDX guest with "
                "CONFIG_TSM_REPORTS and configfs mounted?"
            )
        for _ in range(MAX_ATTEMPTS):
            outblob = self._attempt(report_data)
            if outblob is not None:
                return outblob
        raise PlatformError(
            f"configfs-tsm generation under {self.base} advanced by more than our "
            f"{WRITES_PER_ATTEMPT} write on each of {MAX_ATTEMPTS} attempts: another writer "
            "raced us every time, so no quote can be trusted to carry our report data"
        )

    def measurement(self) -> Measurement:
        """MRTD and RTMR0..3 (lowercase hex), from a quote over 64 zero bytes, taken after
        RTMR3 holds the agent's events; cached.

        Raises:
            PlatformError: measuring RTMR3 fails (see `tdx_rtmr`), the quote fails (see
                `quote`), or the outblob is not a TDX quote.
        """
        self._ensure_measured()
        if self._measurement is None:
            self._measurement = _td_measurement(self._device_quote(bytes(REPORT_DATA_SIZE)))
        return self._measurement

    def event_log(self) -> bytes:
        """The event log that explains RTMR0-3 (dstack's JSON form): dstack's, which holds
        the firmware's events, when its guest agent is there; else the firmware's CCEL
        events (none without the table); then the agent's RTMR3 events. b"[]" for none.

        Raises:
            PlatformError: as `measurement`, or a log cannot be read.
        """
        self._ensure_measured()
        runtime = [] if self.rtmr3 is None else self.rtmr3.entries()
        from_dstack = self.rtmr3 is not None and self.rtmr3.dstack is not None
        boot = [] if from_dstack else firmware_entries(self.ccel)
        return json.dumps(boot + runtime).encode()

    def sealing_key(self) -> bytes:
        """The 32-byte sealing key, from dstack's KMS or the provisioned file, after RTMR3
        holds the agent's events.

        Raises:
            PlatformError: no key source is configured; dstack's agent fails (the message
                says how, never with the key); or the file is missing, unreadable,
                accessible to group or others, or holds neither 32 raw bytes nor 64 hex
                characters (messages name the file, never its contents).
        """
        if self.kms is None and self.sealing_key_file is None:
            raise PlatformError(
                "TDX has no hardware sealing key and none is configured: use dstack's KMS "
                "(sealing key source dstack-kms, in a dstack CVM) or a key file a KMS "
                "provisions after attestation (sealing key source file)"
            )
        self._ensure_measured()
        if self.kms is not None:
            try:
                return self.kms.get_key(KMS_SEALING_KEY_PATH, KMS_SEALING_KEY_PURPOSE)
            except DstackAgentError as exc:
                raise PlatformError(f"no sealing key from dstack's KMS: {exc}") from None
        assert self.sealing_key_file is not None
        return _read_key_file(self.sealing_key_file)

    def _ensure_measured(self) -> None:
        """Once per process: extend RTMR3 (unless this boot did), quote, check the replay."""
        if self._measured or self.rtmr3 is None:
            return
        self.rtmr3.ensure()
        measurement = _td_measurement(self._device_quote(bytes(REPORT_DATA_SIZE)))
        check_replay(self.rtmr3.entries(), bytes.fromhex(measurement.values["rtmr3"]))
        self._measurement = measurement
        self._measured = True

    def _attempt(self, report_data: bytes) -> bytes | None:
        """One quote in a fresh entry; None when `generation` shows a concurrent writer."""
        entry = self.base / f"{ENTRY_PREFIX}-{os.getpid()}-{secrets.token_hex(8)}"
        with _device_errors(self.base):
            self._ops.create_entry(entry)
        try:
            with _device_errors(self.base):
                self._check_provider(entry)
                before = self._generation(entry)
                self._ops.write(entry / INBLOB, report_data)
                outblob = self._ops.read(entry / OUTBLOB)
                after = self._generation(entry)
        finally:
            with _device_errors(self.base):
                self._ops.remove_entry(entry)
        if after - before != WRITES_PER_ATTEMPT:
            return None
        if not outblob:
            raise PlatformError(
                f"configfs-tsm returned an empty outblob at {entry / OUTBLOB}: the TDX quoting "
                "service (QGS) may be unreachable from this guest"
            )
        return outblob

    def _check_provider(self, entry: Path) -> None:
        try:
            provider = self._ops.read(entry / PROVIDER).decode(errors="replace").strip()
        except FileNotFoundError:
            return  # no provider attribute to check
        if provider != TDX_PROVIDER:
            raise PlatformError(
                f"configfs-tsm provider at {entry / PROVIDER} is {provider!r}; expected "
                f"{TDX_PROVIDER!r}: this is not a TDX guest"
            )

    def _generation(self, entry: Path) -> int:
        text = self._ops.read(entry / GENERATION).decode(errors="replace").strip()
        try:
            return int(text)
        except ValueError:
            raise PlatformError(
                f"configfs-tsm generation at {entry / GENERATION} is {text[:32]!r}; "
                "expected a decimal count"
            ) from None


@contextmanager
def _device_errors(base: Path) -> Iterator[None]:
    """Turn OSError from configfs into PlatformError naming the path and the likely cause."""
    try:
        yield
    except PermissionError as exc:
        raise PlatformError(
            f"permission denied on {exc.filename or base}: configfs-tsm reports need root, "
            f"or write access to {base}"
        ) from exc
    except OSError as exc:
        raise PlatformError(
            f"configfs-tsm failed on {exc.filename or base}: {exc.strerror or exc}"
        ) from exc


def _td_measurement(quote: bytes) -> Measurement:
    try:
        parsed = parse_dcap_quote(quote)
    except QuoteFormatError as exc:
        raise PlatformError(f"configfs-tsm returned an outblob that is not a quote: {exc}") from exc
    body = parsed.body
    if not isinstance(body, TdReport10):
        raise PlatformError(
            f"configfs-tsm returned a quote with TEE type {parsed.header.tee_type:#x}; "
            "expected a TDX quote (0x81)"
        )
    fields = ("mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3")
    return Measurement(values={name: getattr(body, name).hex() for name in fields})


def _read_key_file(path: Path) -> bytes:
    """Read a provisioned key file, refusing loose permissions; errors never hold the key."""
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise PlatformError(f"sealing key file {path} is not a regular file")
            check_key_file_access(path, stat.S_IMODE(info.st_mode), info.st_uid, os.geteuid())
            data = handle.read(_MAX_KEY_FILE_SIZE + 1)
    except FileNotFoundError:
        raise PlatformError(
            f"sealing key file {path} does not exist: has the KMS provisioned this TD's key?"
        ) from None
    except PermissionError:
        raise PlatformError(f"permission denied reading sealing key file {path}") from None
    except IsADirectoryError:
        raise PlatformError(f"sealing key file {path} is not a regular file") from None
    except OSError as exc:
        raise PlatformError(f"cannot read sealing key file {path}: {exc.strerror}") from None
    return _parse_key(data, path)


def check_key_file_access(path: Path, mode: int, owner: int, euid: int) -> None:
    """Refuse a key file others could read, by PostgreSQL's rule for its server key.

    Owned by this process's user: no access for group or others (0600 or less). Owned by
    root while the process is not root: group read is allowed too (0640 or less), which is
    how Kubernetes mounts a Secret under a pod's fsGroup (root-owned, 0440) and how a
    provisioning service running as root hands a key to a service account's group. Any
    other owner could change the file's mode at will: refused.
    """
    if owner not in (euid, 0):
        raise PlatformError(
            f"sealing key file {path} is owned by uid {owner}: it must be owned by this "
            f"process's user (uid {euid}) or by root"
        )
    allowed = 0o040 if owner == 0 and euid != 0 else 0
    if mode & 0o077 & ~allowed:
        rule, fix = (
            ("a root-owned key file may be readable by its group, no more", "chmod 640")
            if allowed
            else ("group and others must have no access to it", "chmod 600")
        )
        raise PlatformError(
            f"sealing key file {path} has mode {mode:04o}: {rule}; fix with `{fix} {path}`"
        )


def _parse_key(data: bytes, path: Path) -> bytes:
    if len(data) == SEALING_KEY_SIZE:
        return data
    text = data.strip()
    if len(text) == 2 * SEALING_KEY_SIZE and _HEX_DIGITS.issuperset(text):
        return bytes.fromhex(text.decode("ascii"))
    size = f"more than {_MAX_KEY_FILE_SIZE}" if len(data) > _MAX_KEY_FILE_SIZE else len(data)
    raise PlatformError(
        f"sealing key file {path} holds {size} bytes that are neither {SEALING_KEY_SIZE} raw "
        f"bytes nor {2 * SEALING_KEY_SIZE} hex characters"
    )
