"""Intel SGX backend under Gramine: quotes and the MRENCLAVE sealing key from /dev/attestation.

Gramine documentation, "Attestation and Secret Provisioning", section "Low-level
/dev/attestation interface": write 64 bytes to `user_report_data`, then read `quote`;
`attestation_type` names the scheme the manifest enabled (`none`, `epid` or `dcap`). The same
section describes `keys/<key_name>` as 16-byte raw keys; "Manifest syntax", section
"Encrypted files", names `_sgx_mrenclave`, the SGX sealing key bound to MRENCLAVE.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from attestation.errors import QuoteFormatError
from attestation.formats.dcap import SgxReportBody, parse_dcap_quote
from enclave.platform.base import REPORT_DATA_SIZE, Measurement, PlatformError

# "Low-level /dev/attestation interface": the pseudo-files this backend uses.
DEFAULT_ATTESTATION_DIR = Path("/dev/attestation")
USER_REPORT_DATA = "user_report_data"  # "an arbitrary string of size 64B"
QUOTE = "quote"  # "will contain the SGX quote" over the last user_report_data written
ATTESTATION_TYPE = "attestation_type"  # "one of none, epid and dcap"
DCAP = "dcap"  # the only scheme whose quotes attestation/ verifies (ECDSA, DCAP)
# "Encrypted files" (Manifest syntax) and "/dev/attestation/keys/<key_name>": a 128-bit key,
# derived by the CPU (EGETKEY) from MRENCLAVE, so only this enclave on this CPU obtains it.
MRENCLAVE_KEY = Path("keys") / "_sgx_mrenclave"
MRENCLAVE_KEY_SIZE = 16

_MANIFEST_HINT = 'is this process running under gramine-sgx with sgx.remote_attestation = "dcap"?'

# The pseudo-files are process-local but shared by every thread of the process: writing
# user_report_data and reading quote must not interleave with another thread's pair.
_DEVICE_LOCK = threading.Lock()


class SgxPlatform:
    """An Intel SGX enclave run by Gramine, quoting through /dev/attestation."""

    name: str = "sgx"
    simulated: bool = False

    def __init__(self, base: Path = DEFAULT_ATTESTATION_DIR) -> None:
        self.base = base
        self._measurement: Measurement | None = None

    def __repr__(self) -> str:
        return f"SgxPlatform(base={str(self.base)!r})"

    def quote(self, report_data: bytes) -> bytes:
        """An SGX DCAP quote (the raw `quote` pseudo-file) over exactly 64 bytes of report data.

        Raises:
            PlatformError: report_data is not 64 bytes (checked before touching the device);
                /dev/attestation or one of its files is missing or not accessible; the
                attestation type is not `dcap`; or the quote is empty.
        """
        if len(report_data) != REPORT_DATA_SIZE:
            raise PlatformError(
                f"report_data must be exactly {REPORT_DATA_SIZE} bytes; got {len(report_data)}"
            )
        if not self.base.is_dir():
            raise PlatformError(
                f"Gramine's /dev/attestation is not available at {self.base}: {_MANIFEST_HINT}"
            )
        with _DEVICE_LOCK, _device_errors():
            self._check_attestation_type()
            _write_once(self.base / USER_REPORT_DATA, report_data)
            quote = (self.base / QUOTE).read_bytes()
        if not quote:
            raise PlatformError(
                f"Gramine returned an empty quote at {self.base / QUOTE}: is the AESM service "
                "with the DCAP quote provider reachable from the host?"
            )
        return quote

    def measurement(self) -> Measurement:
        """MRENCLAVE and MRSIGNER (lowercase hex), from a quote over 64 zero bytes; cached.

        Raises:
            PlatformError: the quote fails (see `quote`), or it is not an SGX quote.
        """
        if self._measurement is None:
            self._measurement = _sgx_measurement(self.quote(bytes(REPORT_DATA_SIZE)))
        return self._measurement

    def event_log(self) -> bytes:
        """SGX keeps no event log: MRENCLAVE covers the config and model as trusted files of
        the Gramine manifest."""
        return b"[]"

    def sealing_key(self) -> bytes:
        """Gramine's MRENCLAVE-bound sealing key: 16 raw bytes.

        Shorter than the 32 bytes other backends give: SGX keys are 128-bit. Callers must
        derive their keys from it (enclave.sealing uses HKDF), as Gramine requires of any
        key also used for encrypted-files mounts.

        Raises:
            PlatformError: the key file is missing or unreadable, or is not 16 bytes.
                Messages name the file, never its contents.
        """
        path = self.base / MRENCLAVE_KEY
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            raise PlatformError(
                f"Gramine's MRENCLAVE sealing key is not available at {path}: is this process "
                "running under gramine-sgx (SGX keys exist only inside an enclave)?"
            ) from None
        except PermissionError:
            raise PlatformError(f"permission denied reading the sealing key at {path}") from None
        except OSError as exc:
            raise PlatformError(f"cannot read the sealing key at {path}: {exc.strerror}") from None
        if len(key) != MRENCLAVE_KEY_SIZE:
            raise PlatformError(
                f"the sealing key at {path} is {len(key)} bytes; Gramine's _sgx_mrenclave key "
                f"is {MRENCLAVE_KEY_SIZE}"
            )
        return key

    def _check_attestation_type(self) -> None:
        path = self.base / ATTESTATION_TYPE
        try:
            kind = path.read_bytes().decode(errors="replace").strip("\x00\n ")
        except FileNotFoundError:
            return  # older Gramine: no attestation_type to check
        if kind != DCAP:
            raise PlatformError(
                f"Gramine's attestation type at {path} is {kind!r}; expected {DCAP!r} "
                '(set sgx.remote_attestation = "dcap" in the manifest)'
            )


@contextmanager
def _device_errors() -> Iterator[None]:
    """Turn OSError from /dev/attestation into PlatformError naming the file."""
    try:
        yield
    except FileNotFoundError as exc:
        raise PlatformError(
            f"{exc.filename} does not exist: Gramine exposes it only when remote attestation "
            f"is enabled; {_MANIFEST_HINT}"
        ) from exc
    except PermissionError as exc:
        raise PlatformError(f"permission denied on {exc.filename}") from exc
    except OSError as exc:
        raise PlatformError(
            f"Gramine attestation failed on {exc.filename}: {exc.strerror}"
        ) from exc


def _write_once(path: Path, data: bytes) -> None:
    """One write of the whole buffer, without creating or truncating (a pseudo-file)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):
        raise PlatformError(f"short write to {path}: {written} of {len(data)} bytes")


def _sgx_measurement(quote: bytes) -> Measurement:
    try:
        parsed = parse_dcap_quote(quote)
    except QuoteFormatError as exc:
        raise PlatformError(f"Gramine returned a quote that cannot be parsed: {exc}") from exc
    body = parsed.body
    if not isinstance(body, SgxReportBody):
        raise PlatformError(
            f"Gramine returned a quote with TEE type {parsed.header.tee_type:#x}; "
            "expected an SGX quote (0x0)"
        )
    return Measurement(
        values={"mr_enclave": body.mr_enclave.hex(), "mr_signer": body.mr_signer.hex()}
    )
