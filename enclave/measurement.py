"""How the simulated TEE measures the enclave, mirroring how a TD measures itself.

This is the one place that defines it:

- `mr_td`  = SHA-384 over the source files of every package the enclave process runs
  (`enclave`, `attestation` and the generated RPC stubs `tee_agent_rpc`), taken in sorted
  order of their package-relative paths, each as  path || 0x00 || length (8 bytes, big-endian)
  || contents. Change one byte of enclave code and `mr_td` changes.
- `rtmr0`  = extend(48 zero bytes, config hash): the measured configuration.
- `rtmr1`  = extend(48 zero bytes, model hash): the model file, or 48 zero bytes without one.
- `rtmr2`, `rtmr3` = 48 zero bytes (unused).

where extend(register, digest) = SHA-384(register || digest padded with zeros to 48 bytes),
the TDX RTMR extension rule (TDX Module ABI, TDG.MR.RTMR.EXTEND). A verifier recomputes all of
them with `expected_sim_measurement`.

`sim_event_log` describes rtmr0 and rtmr1 as an event log in dstack's JSON form, with
tee-agent's raw-digest event type (0x08000002: the digest is the payload zero-padded to 48
bytes), so `attestation.event_log` replays it to the same registers.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources
from importlib.resources.abc import Traversable

from attestation.formats.event_log import RAW_DIGEST_EVENT_TYPE
from attestation.policy_event_log import CONFIG_HASH_EVENT, MODEL_HASH_EVENT
from enclave.platform.base import Measurement

MEASURED_PACKAGES = ("enclave", "attestation", "tee_agent_rpc")
# Files that make up a package's behaviour: code, and the data it loads (pinned roots).
MEASURED_SUFFIXES = (".py", ".pem", ".der", ".proto")
REGISTER_SIZE = 48
ZERO_REGISTER = bytes(REGISTER_SIZE)


def rtmr_extend(register: bytes, digest: bytes) -> bytes:
    """SHA-384(register || digest zero-padded to 48 bytes), as TDX extends an RTMR."""
    if len(register) != REGISTER_SIZE or len(digest) > REGISTER_SIZE:
        raise ValueError("an RTMR is 48 bytes and an extended digest at most 48 bytes")
    return hashlib.sha384(register + digest.ljust(REGISTER_SIZE, b"\x00")).digest()


@functools.cache
def enclave_code_digest() -> bytes:
    """`mr_td`: SHA-384 over the measured packages' source files (see the module docstring)."""
    hasher = hashlib.sha384()
    for path, data in sorted(_measured_files()):
        encoded = path.encode()
        hasher.update(encoded + b"\x00" + len(data).to_bytes(8, "big") + data)
    return hasher.digest()


def _measured_files() -> list[tuple[str, bytes]]:
    files: list[tuple[str, bytes]] = []
    for package in MEASURED_PACKAGES:
        files.extend(_walk(resources.files(package), package))
    return files


def _walk(directory: Traversable, prefix: str) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for entry in directory.iterdir():
        name = f"{prefix}/{entry.name}"
        if entry.is_dir():
            if entry.name != "__pycache__":
                found.extend(_walk(entry, name))
        elif entry.name.endswith(MEASURED_SUFFIXES):
            found.append((name, entry.read_bytes()))
    return found


def expected_sim_measurement(
    config_hash: bytes | None, model_hash: bytes | None, code_digest: bytes | None = None
) -> Measurement:
    """The measurement a simulated enclave with this config and model reports.

    Without a config (or a model) its register stays all zeros. `code_digest` defaults to
    this installation's enclave code; an auditor building from a release passes the `mr_td`
    of that release instead.
    """
    return Measurement(
        values={
            "mr_td": (code_digest or enclave_code_digest()).hex(),
            "rtmr0": (
                rtmr_extend(ZERO_REGISTER, config_hash) if config_hash else ZERO_REGISTER
            ).hex(),
            "rtmr1": (
                rtmr_extend(ZERO_REGISTER, model_hash) if model_hash else ZERO_REGISTER
            ).hex(),
            "rtmr2": ZERO_REGISTER.hex(),
            "rtmr3": ZERO_REGISTER.hex(),
        }
    )


def sim_event_log(config_hash: bytes | None, model_hash: bytes | None) -> bytes:
    """The simulated platform's event log (dstack's JSON form): one raw-digest event per
    register `expected_sim_measurement` extends, b"[]" when it extends none."""
    events = [
        {
            "imr": imr,
            "event_type": RAW_DIGEST_EVENT_TYPE,
            "digest": digest.ljust(REGISTER_SIZE, b"\x00").hex(),
            "event": name,
            "event_payload": digest.hex(),
        }
        for imr, name, digest in (
            (0, CONFIG_HASH_EVENT, config_hash),
            (1, MODEL_HASH_EVENT, model_hash),
        )
        if digest
    ]
    return json.dumps(events, separators=(",", ":")).encode()
