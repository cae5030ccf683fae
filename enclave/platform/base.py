"""What every TEE backend offers the enclave: its measurement, quotes, and sealing.

Backends keep device access apart from what they produce: each reads or writes its device
(configfs-tsm, Gramine's /dev/attestation, or the simulated platform's files) and hands back
plain bytes, which `attestation/` parses and verifies like any other evidence.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

REPORT_DATA_SIZE = 64


class PlatformError(Exception):
    """The TEE device or simulated platform cannot do what was asked; the message says why."""


class Measurement(BaseModel):
    """What the platform says is running, as the fields a verifier compares (lowercase hex).

    TDX and the simulated platform fill `mr_td` and `rtmr0`..`rtmr3`; SGX fills
    `mr_enclave` and `mr_signer`.
    """

    model_config = ConfigDict(frozen=True)

    values: dict[str, str]

    def digest_input(self) -> bytes:
        """A canonical encoding, used to bind sealed state to this exact measurement."""
        return b"".join(
            name.encode() + b"=" + bytes.fromhex(value) + b";"
            for name, value in sorted(self.values.items())
        )


class Platform(Protocol):
    """A TEE backend."""

    name: str
    simulated: bool

    def measurement(self) -> Measurement:
        """The measurement of the running enclave.

        Raises:
            PlatformError: the device cannot report it.
        """
        ...

    def quote(self, report_data: bytes) -> bytes:
        """A quote (raw bytes) over exactly 64 bytes of report data.

        Raises:
            PlatformError: report_data is not 64 bytes, or the device fails.
        """
        ...

    def event_log(self) -> bytes:
        """The platform's event log in dstack's JSON form, b"[]" when it keeps none.

        A JSON array of {"imr": 0..3, "event_type": int, "digest": 48 bytes lowercase hex,
        "event": name, "event_payload": lowercase hex}, one object per extension of an
        RTMR, in order, so that a verifier replays it to the quote's RTMR0-3
        (`attestation.event_log`). The agent's own events are `tee-agent.config-hash` and
        `tee-agent.model-hash` (docs/enclave.md, "Event logs").

        Raises:
            PlatformError: the platform's log cannot be read.
        """
        ...

    def sealing_key(self) -> bytes:
        """Secret key material (at least 16 bytes) only this measurement on this platform
        can obtain.

        `enclave.sealing` derives the AES-256-GCM key from it (HKDF, with the measurement).

        Raises:
            PlatformError: the platform offers no sealing key.
        """
        ...
