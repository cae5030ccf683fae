"""A fake Linux configfs-tsm report interface: plays the kernel's part for TdxPlatform tests.

An ordinary directory cannot react to mkdir or write the way configfs does, so the fake is
a `ConfigfsOps` that performs each real file operation (the production code path) and then
does what the kernel would: populate a new entry with its attributes, and on a write to
`inblob` advance `generation` and put a quote in `outblob`. The quote is a real TDX quote
from the vectors with its REPORTDATA replaced by the bytes found in `inblob`; its signature
no longer verifies, which these tests do not need.

The fake also keeps RTMR3: its quotes carry the register's current value, and
`FakeTdxMeasurements` plays the kernel's sysfs RTMR interface (Linux 6.16+), where a 48-byte
write to `rtmr3:sha384` extends it, so tests see what a verifier would: the quoted RTMR3
after the agent's extensions.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from enclave.platform.runtime_events import rtmr_extend
from enclave.platform.tdx import GENERATION, INBLOB, OUTBLOB, PROVIDER, ConfigfsOps
from enclave.platform.tdx_rtmr import RTMR3_ATTRIBUTE, MeasurementRegisterOps

# Intel TDX DCAP Quoting Library API: header (48 bytes, A.3.1), then for v5 a body
# descriptor (type u16 + size u32, A.4.2), then the TD report whose REPORTDATA starts at
# byte 520 of the body (A.3.2: 16+48+48+8+8+8+48*8 = 520) in TD report 1.0 and 1.5 alike.
HEADER_SIZE = 48
V5_BODY_DESCRIPTOR_SIZE = 6
TD_REPORT_DATA_OFFSET = 520
REPORT_DATA_SIZE = 64
# A.3.2 again: RTMR3 is the 48 bytes right before REPORTDATA (16+48+48+8+8+8+48*4+48*3 = 472),
# RTMR0..2 the three before it.
TD_RTMR3_OFFSET = 472
RTMR_SIZE = 48


def report_data_offset(quote: bytes) -> int:
    """Where REPORTDATA starts in a TDX v4 or v5 quote."""
    version = int.from_bytes(quote[:2], "little")
    if version not in (4, 5):
        raise ValueError(f"not a TDX v4/v5 quote: version {version}")
    descriptor = V5_BODY_DESCRIPTOR_SIZE if version == 5 else 0
    return HEADER_SIZE + descriptor + TD_REPORT_DATA_OFFSET


def _rtmr_offset(quote: bytes, index: int) -> int:
    return (
        report_data_offset(quote)
        - TD_REPORT_DATA_OFFSET
        + TD_RTMR3_OFFSET
        - RTMR_SIZE * (3 - index)
    )


def rtmr3_of(quote: bytes) -> bytes:
    """The RTMR3 field of a TDX v4 or v5 quote."""
    start = _rtmr_offset(quote, 3)
    return quote[start : start + RTMR_SIZE]


def with_rtmr(quote: bytes, index: int, value: bytes) -> bytes:
    """The quote with its RTMR`index` field replaced."""
    start = _rtmr_offset(quote, index)
    return quote[:start] + value + quote[start + RTMR_SIZE :]


def with_rtmr3(quote: bytes, rtmr3: bytes) -> bytes:
    """The quote with its RTMR3 field replaced."""
    return with_rtmr(quote, 3, rtmr3)


def with_report_data(quote: bytes, report_data: bytes) -> bytes:
    """The quote with its REPORTDATA field replaced."""
    start = report_data_offset(quote)
    return quote[:start] + report_data + quote[start + REPORT_DATA_SIZE :]


class FakeConfigfsTsm(ConfigfsOps):
    """configfs-tsm on an ordinary directory, answering with a given TDX quote.

    provider: what `provider` reads ("tdx_guest"), or None to leave the attribute out.
    racing_writes: how many inblob writes (the first ones) another writer "races", making
        generation advance by two instead of one.
    outblob: if given, returned as is instead of the spliced quote (e.g. b"" or garbage).
    deny: refuse to create entries, as configfs does for an unprivileged process.
    rtmr3: RTMR3 at boot (None: the template quote's own value); extensions move it and
        every later quote carries it.
    boot_rtmrs: RTMR0..2 as the firmware left them (None: the template quote's own), e.g.
        what a CCEL log replays to.
    """

    def __init__(
        self,
        base: Path,
        quote: bytes,
        *,
        provider: str | None = "tdx_guest",
        racing_writes: int = 0,
        outblob: bytes | None = None,
        deny: bool = False,
        rtmr3: bytes | None = None,
        boot_rtmrs: tuple[bytes, bytes, bytes] | None = None,
    ) -> None:
        report_data_offset(quote)  # fail early on a template that is not TDX v4/v5
        for index, value in enumerate(boot_rtmrs or ()):
            quote = with_rtmr(quote, index, value)
        self.rtmr3 = rtmr3_of(quote) if rtmr3 is None else rtmr3
        self.extensions: list[bytes] = []
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.quote = quote
        self.provider = provider
        self.racing_writes = racing_writes
        self.outblob = outblob
        self.deny = deny
        self.entries_created: list[Path] = []
        self.inblobs: list[bytes] = []

    def create_entry(self, entry: Path) -> None:
        if self.deny:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(entry))
        super().create_entry(entry)
        self.entries_created.append(entry)
        if self.provider is not None:
            (entry / PROVIDER).write_text(f"{self.provider}\n")
        (entry / GENERATION).write_text("0\n")
        (entry / INBLOB).write_bytes(b"")
        (entry / OUTBLOB).write_bytes(b"")

    def write(self, path: Path, data: bytes) -> None:
        super().write(path, data)
        entry = path.parent
        bumps = 1
        if path.name == INBLOB:
            received = path.read_bytes()  # what the production write left in the file
            self.inblobs.append(received)
            if len(self.inblobs) <= self.racing_writes:
                bumps += 1
            spliced = with_report_data(with_rtmr3(self.quote, self.rtmr3), received)
            (entry / OUTBLOB).write_bytes(spliced if self.outblob is None else self.outblob)
        generation = int((entry / GENERATION).read_text()) + bumps
        (entry / GENERATION).write_text(f"{generation}\n")

    def leftover_entries(self) -> list[Path]:
        """Entry directories still present under base."""
        return sorted(self.base.iterdir())

    def extend_rtmr3(self, digest: bytes) -> None:
        """TDG.MR.RTMR.EXTEND on RTMR3, as the TDX module does it."""
        self.rtmr3 = rtmr_extend(self.rtmr3, digest)
        self.extensions.append(digest)


class FakeTdxMeasurements(MeasurementRegisterOps):
    """The tdx_guest sysfs measurements directory on an ordinary directory: a 48-byte write
    to rtmr3:sha384 extends the fake TD's RTMR3, a read returns its value. `missing` leaves
    the attribute out (a kernel before 6.16)."""

    def __init__(self, directory: Path, td: FakeConfigfsTsm, *, missing: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.td = td
        if not missing:
            (directory / RTMR3_ATTRIBUTE).write_bytes(td.rtmr3)

    def write(self, path: Path, data: bytes) -> None:
        if len(data) != RTMR_SIZE:  # "Partial writes will result in EINVAL"
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), str(path))
        super().write(path, data)
        self.td.extend_rtmr3(path.read_bytes()[:RTMR_SIZE])
        path.write_bytes(self.td.rtmr3)

    def read(self, path: Path) -> bytes:
        if path.name == RTMR3_ATTRIBUTE:
            path.write_bytes(self.td.rtmr3)  # the register may have moved through dstack
        return super().read(path)
