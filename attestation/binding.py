"""The report_data binding between an enclave's identity, a verifier's nonce and a quote.

    report_data = SHA-256("tee-agent/identity/v1" || address (20 bytes) ||
                          X25519 public key (32 bytes) || config hash (32 bytes))
                  || nonce (32 bytes)

The domain tag keeps a quote made for this purpose from being passed off for another.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, field_validator

from attestation.checks import CheckName
from attestation.jsontext import loads_bounded
from attestation.report import Check

IDENTITY_TAG = b"tee-agent/identity/v1"
NONCE_SIZE = 32
# The largest event log an attestation carries (1 MiB). A TD's firmware log with the agent's
# events is tens of KiB in dstack's JSON form; the cap keeps a broken or hostile platform
# log (or host) from swelling a reply, and leaves the reply far below gRPC's 4 MiB default.
MAX_SERVED_EVENT_LOG_SIZE = 1 << 20
_IDENTITY_BYTES = ("x25519_public_key", "config_hash", "model_hash")


def _thirty_two_bytes(value: bytes) -> bytes:
    if len(value) != 32:
        raise ValueError(f"must be 32 bytes, found {len(value)}")
    return value


class EnclaveIdentity(BaseModel):
    """What an enclave claims to be; a quote's report_data proves the claim."""

    model_config = ConfigDict(frozen=True)

    address: str
    x25519_public_key: bytes
    config_hash: bytes

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if len(value) != 42 or not value.startswith("0x"):
            raise ValueError(f"address must be 0x and 40 hex digits, found {value!r}")
        bytes.fromhex(value[2:])
        return value

    _thirty_two = field_validator("x25519_public_key", "config_hash")(_thirty_two_bytes)

    def identity_digest(self) -> bytes:
        """The first half of report_data."""
        return hashlib.sha256(
            IDENTITY_TAG
            + bytes.fromhex(self.address[2:])
            + self.x25519_public_key
            + self.config_hash
        ).digest()


class AgentIdentity(BaseModel):
    """Everything an agent says about itself: what its report_data binds (address, X25519
    key, config hash) and what its quote's measurement, receipts and transactions must
    agree with (model hash, measurement, platform, chain, policy)."""

    model_config = ConfigDict(frozen=True)

    address: str
    x25519_public_key: bytes
    config_hash: bytes
    model_hash: bytes
    # Measurement register name (mr_td, rtmr0.. or mr_enclave, mr_signer) -> lowercase hex.
    measurement: dict[str, str]
    platform: str
    simulated: bool
    chain_id: int
    policy: str

    _thirty_two = field_validator(*_IDENTITY_BYTES)(_thirty_two_bytes)

    def to_json_dict(self) -> dict[str, object]:
        """The identity as JSON values, its bytes as 0x-hex."""
        out = self.model_dump()
        for name in _IDENTITY_BYTES:
            out[name] = "0x" + out[name].hex()
        return out

    @classmethod
    def from_json_dict(cls, data: object) -> AgentIdentity:
        """Parse what `to_json_dict` produced.

        Raises:
            ValueError: not an object, a bytes field that is not hex, or a value that does
                not fit (pydantic.ValidationError included).
        """
        if not isinstance(data, dict):
            raise ValueError(f"an identity must be a JSON object, found {type(data).__name__}")
        return cls.model_validate(
            {**data, **{name: _hex(data.get(name)) for name in _IDENTITY_BYTES}}
        )

    def binding(self) -> EnclaveIdentity:
        """The part of the identity a quote's report_data binds.

        Raises:
            pydantic.ValidationError: the address is not 0x and 40 hex digits.
        """
        return EnclaveIdentity(
            address=self.address,
            x25519_public_key=self.x25519_public_key,
            config_hash=self.config_hash,
        )


class AgentAttestation(BaseModel):
    """A quote over a verifier's nonce, with the identity the agent claims it binds and the
    platform's event log (dstack's JSON form, empty for none): what `tee-agent attest --out`
    saves and `tee-agent verify agent` checks.

    The event log is at most `MAX_SERVED_EVENT_LOG_SIZE` bytes of JSON; nothing here says
    whether it replays to the quote (`attestation.event_log` does).
    """

    model_config = ConfigDict(frozen=True)

    quote: bytes
    nonce: bytes
    identity: AgentIdentity
    event_log: bytes = b""

    @field_validator("event_log")
    @classmethod
    def _event_log(cls, value: bytes) -> bytes:
        if len(value) > MAX_SERVED_EVENT_LOG_SIZE:
            raise ValueError(
                f"the event log is {len(value)} bytes, over the {MAX_SERVED_EVENT_LOG_SIZE} "
                "(1 MiB) an attestation carries (MAX_SERVED_EVENT_LOG_SIZE)"
            )
        if value:
            try:
                loads_bounded(value)
            except ValueError as exc:
                raise ValueError(f"the event log is not JSON (dstack's form): {exc}") from None
        return value

    def to_file_dict(self) -> dict[str, object]:
        """The attestation as JSON values: quote and nonce in hex, the identity's bytes as
        0x-hex, the event log as its JSON value (an array of events; [] for none), so that
        the file itself is what `tee-agent verify quote --event-log` reads (what
        `tee-agent attest --out` writes)."""
        identity = self.identity.to_json_dict()
        event_log = loads_bounded(self.event_log) if self.event_log else []
        return {
            "quote": self.quote.hex(),
            "nonce": self.nonce.hex(),
            "identity": identity,
            "event_log": event_log,
        }

    @classmethod
    def from_file_dict(cls, data: object) -> AgentAttestation:
        """Parse what `to_file_dict` wrote (a file without `event_log`, as written before
        attestations carried one, has none). The event log comes back as compact JSON text:
        the same events, though not necessarily the bytes the agent served.

        Raises:
            ValueError: not an object with the quote, the nonce and the identity, or a
                value that is not hex or does not fit (pydantic.ValidationError included).
        """
        if not isinstance(data, dict):
            raise ValueError("expected an object with quote, nonce and identity")
        identity = AgentIdentity.from_json_dict(data.get("identity"))
        logged = data.get("event_log")
        event_log = b"" if logged is None or logged == [] else _compact_json(logged)
        return cls(
            quote=_hex(data.get("quote")),
            nonce=_hex(data.get("nonce")),
            identity=identity,
            event_log=event_log,
        )


def _compact_json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def _hex(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"expected a hex string, found {type(value).__name__}")
    return bytes.fromhex(value.removeprefix("0x"))


def identity_report_data(identity: EnclaveIdentity, nonce: bytes) -> bytes:
    """The 64 bytes of report_data an enclave with `identity` puts in a quote for `nonce`.

    Raises:
        ValueError: the nonce is not 32 bytes.
    """
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"the nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
    return identity.identity_digest() + nonce


def check_binding(report_data_hex: str, identity: EnclaveIdentity, nonce: bytes) -> Check:
    """Check that a verified quote's report_data binds `identity` and `nonce`."""
    expected = identity_report_data(identity, nonce).hex()
    found = report_data_hex.lower()
    if found == expected:
        return Check(
            name=CheckName.REPORT_DATA_BINDING,
            passed=True,
            detail=f"report_data binds address {identity.address}, its X25519 key, config hash "
            f"{identity.config_hash.hex()} and the nonce",
        )
    if found[:64] == expected[:64]:
        detail = f"report_data binds the identity but not this nonce (found {found[64:]})"
    else:
        detail = (
            "report_data does not bind this identity: expected SHA-256(tag, address, X25519 key,"
            f" config hash) = {expected[:64]}, found {found[:64]}"
        )
    return Check(name=CheckName.REPORT_DATA_BINDING, passed=False, detail=detail)
