"""The GuardedVault's committed artifact (what contracts/build.js writes): its ABI, its
creation and runtime code, and where the constructor writes immutables. Plain JSON, no
web3: the node-error decoder names the vault's custom errors from it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

ARTIFACT: Final = Path(__file__).with_name("GuardedVault.json")


class ArtifactError(Exception):
    """The committed artifact is missing or is not one contracts/build.js writes."""


@dataclass(frozen=True)
class VaultArtifact:
    """What contracts/build.js wrote: the ABI, the creation and runtime code, the compiler."""

    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    compiler: str
    # (offset, length) of each immutable in the runtime code, written at deployment.
    immutables: tuple[tuple[int, int], ...]


@functools.cache
def load_artifact(path: Path = ARTIFACT) -> VaultArtifact:
    """The committed GuardedVault artifact.

    Raises:
        ArtifactError: the file is missing or is not an artifact contracts/build.js writes.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return VaultArtifact(
            abi=list(raw["abi"]),
            bytecode=bytes.fromhex(str(raw["bytecode"]).removeprefix("0x")),
            deployed_bytecode=bytes.fromhex(str(raw["deployedBytecode"]).removeprefix("0x")),
            compiler=str(raw["compiler"]["version"]),
            immutables=tuple(
                (int(place["start"]), int(place["length"]))
                for places in raw["immutableReferences"].values()
                for place in places
            ),
        )
    except FileNotFoundError:
        raise ArtifactError(f"missing {path}: rebuild it with `node contracts/build.js`") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path} is not a GuardedVault artifact: {exc}") from None


def same_code(deployed: bytes, artifact: VaultArtifact) -> bool:
    """Whether `deployed` runtime code is the artifact's, but for the immutables the
    constructor wrote into it (the quote token)."""
    expected = bytearray(artifact.deployed_bytecode)
    if len(deployed) != len(expected):
        return False
    masked = bytearray(deployed)
    for start, length in artifact.immutables:
        masked[start : start + length] = expected[start : start + length]
    return bytes(masked) == bytes(expected)
