"""Print, as one JSON object, what a verifier should expect of an agent deployed from these
inputs: the compose hash, the config hash, the model hash, the enclave code digest, and the
RTMR3 events (dstack's, where the inputs determine them, and the agent's own).

    python deploy/expected_measurement.py --enclave-config enclave.toml \
        [--app-compose deploy/dstack/app-compose.json] [--model FILE] [--kms-id HEX]

- compose_hash: SHA-256 of the app-compose.json bytes exactly as deployed (dstack-util
  system_setup.rs, `measure_app_info`: `sha256_file`), dstack's `compose-hash` event.
- config_hash: the enclave config's hash (enclave.config, `EnclaveConfig.config_hash`), as
  `tee-agent enclave measure` prints it.
- model_hash: SHA-256 of the model file (enclave.llm_policy.sha256_file), or the config's
  pinned [policy.llm] model_sha256, which the enclave enforces; null for the rule policy.
- enclave_code_digest: enclave.measurement.enclave_code_digest over this checkout's code
  (the simulated platform's mr_td; on TDX it names the code the image carries).
- rtmr3: dstack runtime events (event type 0x08000001) with their v1 digests, SHA-384(type
  as 4 bytes little-endian || ":" || name || ":" || payload) (dstack cc-eventlog
  runtime_events.rs, `RuntimeEvent::digest`); RTMR3 = SHA-384(RTMR3 || digest) from 48 zero
  bytes. dstack's `instance-id` is random per instance, so RTMR3 itself is not predictable:
  a verifier replays the quote's event log and checks these events in it (docs/deploy.md).
- policy: the [event_log] table of a `tee-agent verify quote --policy` file for these values.

Exit 0 with the JSON on stdout; exit 2 with {"error": ...} on stdout when an input cannot be
read or disagrees (a --model whose hash differs from the config's pin).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

# The code measured is this checkout's, not whatever tee-agent is installed.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "proto")]

from enclave.config import ConfigError, EnclaveConfig, load_config  # noqa: E402
from enclave.measurement import enclave_code_digest  # noqa: E402

# dstack cc-eventlog/src/runtime_events.rs: DSTACK_RUNTIME_EVENT_TYPE.
DSTACK_RUNTIME_EVENT_TYPE = 0x08000001
# The enclave's own RTMR3 events (docs/enclave.md, "Event logs").
CONFIG_EVENT = "tee-agent.config-hash"
MODEL_EVENT = "tee-agent.model-hash"
# dstack-util system_setup.rs: app_id defaults to the compose hash's first 20 bytes.
APP_ID_SIZE = 20
# Where the dstack compose embeds the enclave config (docker-compose.yaml, `configs:`): a
# block scalar indented by six spaces.
EMBED_INDENT = " " * 6


class MeasurementInputError(Exception):
    """An input cannot be read, or two inputs disagree; the message names which."""


def runtime_event_digest(name: str, payload: bytes) -> bytes:
    """A dstack runtime event's v1 digest (48 bytes)."""
    preimage = DSTACK_RUNTIME_EVENT_TYPE.to_bytes(4, "little") + b":" + name.encode() + b":"
    return hashlib.sha384(preimage + payload).digest()


def event(name: str, payload: bytes, when: str | None = None) -> dict[str, Any]:
    """One RTMR3 event as the JSON output shows it."""
    entry: dict[str, Any] = {
        "event": name,
        "payload": payload.hex(),
        "digest": runtime_event_digest(name, payload).hex(),
    }
    if when is not None:
        entry["when"] = when
    return entry


def sha256_file(path: Path) -> bytes:
    """SHA-256 of the file's bytes, as enclave.llm_policy.sha256_file takes the model's hash
    (that module needs llama.cpp; a verifier's machine need not have it)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def model_hash(config: EnclaveConfig, model: Path | None) -> bytes | None:
    """The model hash the enclave will measure, from the file, the config's pin, or both.

    Raises:
        MeasurementInputError: the LLM policy with neither a file nor a pin, or a file whose
            SHA-256 is not the pin (the enclave would refuse it).
    """
    llm = config.policy.llm if config.policy.kind == "llm" else None
    if llm is None:
        return None
    pinned = llm.model_sha256
    if model is None:
        if pinned is None:
            raise MeasurementInputError(
                "the LLM policy's model is not pinned ([policy.llm] model_sha256): "
                "pass --model FILE"
            )
        return bytes.fromhex(pinned)
    digest = sha256_file(model)
    if pinned is not None and digest.hex() != pinned:
        raise MeasurementInputError(
            f"--model {model} has SHA-256 {digest.hex()}, but the config pins "
            f"model_sha256 = {pinned}: the enclave would refuse this file"
        )
    return digest


def dstack_events(compose_hash: bytes, kms_id: str | None) -> list[dict[str, Any]]:
    """dstack's RTMR3 events that follow from the inputs, in dstack's order (others such as
    instance-id, os-image-hash and storage-fs fall between them)."""
    events = [
        event("system-preparing", b""),
        event(
            "app-id",
            compose_hash[:APP_ID_SIZE],
            "when deployed without an explicit app id (else the KMS-registered app id)",
        ),
        event("compose-hash", compose_hash),
        event("boot-mr-done", b""),
    ]
    if kms_id is not None:
        # system_setup.rs `emit_key_provider_info`: serde_json of KeyProviderInfo {name, id}.
        info = json.dumps({"name": "kms", "id": kms_id}, separators=(",", ":"))
        events.append(event("key-provider", info.encode()))
    events.append(event("system-ready", b""))
    return events


def expected(
    enclave_config: Path,
    app_compose: Path | None = None,
    model: Path | None = None,
    kms_id: str | None = None,
) -> dict[str, Any]:
    """The expected figures as a JSON-ready dict (see the module docstring).

    Raises:
        MeasurementInputError: an input cannot be read, or the model disagrees with the pin.
    """
    try:
        config_text = enclave_config.read_text(encoding="utf-8")
        config = load_config(enclave_config)
        compose_bytes = app_compose.read_bytes() if app_compose is not None else None
    except (OSError, UnicodeDecodeError, ConfigError) as exc:
        raise MeasurementInputError(str(exc)) from None
    config_hash = config.config_hash()
    model_digest = model_hash(config, model)
    agent = [event(CONFIG_EVENT, config_hash)]
    if model_digest is not None:
        agent.append(event(MODEL_EVENT, model_digest))
    result: dict[str, Any] = {
        "compose_hash": None,
        "config_hash": config_hash.hex(),
        "model_hash": None if model_digest is None else model_digest.hex(),
        "enclave_code_digest": enclave_code_digest().hex(),
        "rtmr3": {
            "event_type": DSTACK_RUNTIME_EVENT_TYPE,
            "dstack_events": [],
            "agent_events": agent,
        },
    }
    policy: dict[str, str] = {"config_hash": config_hash.hex()}
    if model_digest is not None:
        policy["model_hash"] = model_digest.hex()
    if compose_bytes is not None:
        compose_hash = hashlib.sha256(compose_bytes).digest()
        result["compose_hash"] = compose_hash.hex()
        result["compose_embeds_enclave_config"] = _embeds(compose_bytes, config_text)
        result["rtmr3"]["dstack_events"] = dstack_events(compose_hash, kms_id)
        policy = {"compose_hash": compose_hash.hex(), **policy}
    result["policy"] = {"event_log": policy}
    return result


def _embeds(compose_bytes: bytes, config_text: str) -> bool:
    """Whether the app-compose's docker-compose text carries this enclave config verbatim."""
    try:
        compose_text = json.loads(compose_bytes)["docker_compose_file"]
    except (ValueError, KeyError, TypeError):
        return False
    block = textwrap.indent(config_text, EMBED_INDENT)
    return isinstance(compose_text, str) and block in compose_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enclave-config", type=Path, required=True, help="enclave.toml")
    parser.add_argument("--app-compose", type=Path, help="app-compose.json, as deployed")
    parser.add_argument("--model", type=Path, help="the GGUF model file the enclave loads")
    parser.add_argument("--kms-id", help="the KMS's id (hex) that dstack logs in key-provider")
    args = parser.parse_args(argv)
    try:
        figures = expected(args.enclave_config, args.app_compose, args.model, args.kms_id)
    except (MeasurementInputError, OSError) as exc:
        print(json.dumps({"error": str(exc)}))
        print(f"expected_measurement: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
