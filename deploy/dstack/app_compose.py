"""Write deploy/dstack/app-compose.json, the manifest dstack measures, from docker-compose.yaml.

    python deploy/dstack/app_compose.py            # (re)write app-compose.json beside it
    python deploy/dstack/app_compose.py --check    # exit 1 when the committed one is stale

dstack's guest hashes the app-compose.json file it is given, byte for byte
(Dstack-TEE/dstack, dstack/dstack-util/src/system_setup.rs, `measure_app_info`:
`sha256_file(app_compose_file)`), and extends RTMR3 with that hash as its `compose-hash`
event. Its SDKs compute the same hash over their normalized JSON (docs/normalized-app-compose.md:
keys sorted, no whitespace, UTF-8 unescaped), so this file is written in that form and
without a trailing newline: the raw-bytes hash and the SDKs' hash are then the same.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COMPOSE_FILE = HERE / "docker-compose.yaml"
APP_COMPOSE_FILE = HERE / "app-compose.json"

# The app-compose fields (dstack-types/src/lib.rs, `AppCompose`, at commit 312dc605). Left
# out: event_log_version (absent = v1 runtime-event digests, which the verifier recomputes),
# requirements (needs manifest_version "3"), init_script, pre_launch_script (unmeasured
# shell would run before the app).
MANIFEST: dict[str, Any] = {
    "manifest_version": 2,
    "name": "tee-agent",
    "runner": "docker-compose",
    # The app's disk key and the enclave's sealing key (GetKey) come from dstack's KMS,
    # which releases them only to a CVM whose quote and compose hash its policy accepts.
    "kms_enabled": True,
    "key_provider": "kms",
    # Empty: any KMS the operator's deployment names; pin its id here to refuse others.
    "key_provider_id": "",
    "local_key_provider_enabled": False,
    # The gRPC port is published by the compose file; dstack's gateway is not needed.
    "gateway_enabled": False,
    # Container logs stay private: the receipts, not the logs, are what an auditor checks.
    "public_logs": False,
    "public_sysinfo": True,
    "public_tcbinfo": True,
    # The only variables dstack's encrypted environment may set (docker-compose.yaml).
    "allowed_envs": ["TEE_AGENT_AUTH_TOKEN", "TEE_AGENT_POOL", "TEE_AGENT_RPC_URL"],
    "no_instance_id": False,
    "secure_time": True,
}


def app_compose_bytes(compose_text: str) -> bytes:
    """The app-compose.json bytes for this docker-compose text (dstack's normalized JSON)."""
    manifest = {**MANIFEST, "docker_compose_file": compose_text}
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compose", type=Path, default=COMPOSE_FILE)
    parser.add_argument("--out", type=Path, default=APP_COMPOSE_FILE)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    try:
        wanted = app_compose_bytes(args.compose.read_text(encoding="utf-8"))
        if args.check:
            if args.out.read_bytes() != wanted:
                print(
                    f"app_compose: {args.out} is not what {args.compose} gives: "
                    "run python deploy/dstack/app_compose.py",
                    file=sys.stderr,
                )
                return 1
            return 0
        args.out.write_bytes(wanted)
    except OSError as exc:
        print(f"app_compose: error: {exc}", file=sys.stderr)
        return 2
    print(f"app_compose: wrote {args.out} ({len(wanted)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
