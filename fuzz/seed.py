"""Write each target's seed corpus (`python -m fuzz.seed [TARGET...]`): fuzz/corpus/<target>/.

Seeds are real inputs: the attestation vectors, receipts and attestations a real enclave
core made, valid requests built in code. They are committed, so a run starts from them.
"""

from __future__ import annotations

import hashlib
import importlib
import sys

from fuzz import TARGETS
from fuzz.harness import CORPUS


def seeds_of(target: str) -> list[bytes]:
    module = importlib.import_module(f"fuzz.{target}")
    found: list[bytes] = module.seeds()
    return found


def write_corpus(target: str) -> int:
    """Replace fuzz/corpus/<target>/ with the target's seeds; returns how many."""
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    seeds = seeds_of(target)
    for data in seeds:
        (directory / hashlib.sha1(data, usedforsecurity=False).hexdigest()).write_bytes(data)
    return len(seeds)


def main() -> None:
    targets = sys.argv[1:] or list(TARGETS)
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        print(f"error: unknown targets {unknown}; targets: {', '.join(TARGETS)}", file=sys.stderr)
        sys.exit(2)
    for target in targets:
        print(f"{target}: {write_corpus(target)} seeds in {CORPUS / target}")


if __name__ == "__main__":
    main()
