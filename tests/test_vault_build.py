"""The committed GuardedVault artifact is what its sources compile to, and what is deployed.

Recompiling contracts/GuardedVault.sol with `node contracts/build.js --out FILE` (the pinned
solc-js and OpenZeppelin Contracts under tools/chain/node_modules) must give the committed
host/chain/GuardedVault.json byte for byte, so an auditor can reproduce it; the SHA-256 of
every source it records must be that of the file. On anvil, a deployed vault's code is the
artifact's runtime code but for the immutables its constructor writes, and the code check
that `deploy_vault` runs refuses code one byte off.

Of the vault's tests only the recompiling one needs Node.js (the host, the demo and the other
chain tests run on Python and the anvil binary); it is skipped, with the reason, without node
or solc, and the chain tests without anvil: ./scripts/bootstrap installs both from
tools/chain/package-lock.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_typing import HexStr
from eth_utils import to_checksum_address
from web3 import Web3

from devnet.accounts import DEPLOYER
from devnet.anvil import NODE_MODULES, Anvil, AnvilNotFound, find_anvil
from devnet.vault import DEMO_TWAP
from host.chain.transact import send_transaction
from host.chain.vault import Vault, VaultError
from host.chain.vault_artifact import load_artifact, same_code
from host.chain.vault_owner import deploy_vault

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "host" / "chain" / "GuardedVault.json"
BUILD = ROOT / "contracts" / "build.js"
SOURCE = ROOT / "contracts" / "GuardedVault.sol"
SOLC_PIN = json.loads((ROOT / "tools/chain/package.json").read_text())["dependencies"]["solc"]
# The constructor does not call the quote token: any address makes a deployable vault.
QUOTE_TOKEN = to_checksum_address("0x" + "5a" * 20)


def creation_code(runtime: bytes) -> HexStr:
    """Creation code that deploys `runtime` as it is: PUSH2 size, DUP1, PUSH1 12, PUSH1 0,
    CODECOPY (the 12 bytes of this loader are skipped), PUSH1 0, RETURN."""
    loader = bytes.fromhex(f"61{len(runtime):04x}80600c6000396000f3")
    return HexStr("0x" + (loader + runtime).hex())


def _compiler_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not on PATH: recompiling the vault needs Node.js (and npm for bootstrap)"
    if not (NODE_MODULES / "solc" / "package.json").is_file():
        return f"solc is not installed under {NODE_MODULES}: ./scripts/bootstrap installs it"
    return None


def _anvil_missing() -> str | None:
    try:
        find_anvil()
    except AnvilNotFound as exc:
        return str(exc)
    return None


needs_compiler = pytest.mark.skipif(
    _compiler_missing() is not None, reason=str(_compiler_missing())
)
needs_anvil = pytest.mark.skipif(_anvil_missing() is not None, reason=str(_anvil_missing()))


def committed() -> dict[str, Any]:
    return dict(json.loads(ARTIFACT.read_text(encoding="utf-8")))


@needs_compiler
def test_the_artifact_rebuilds_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "GuardedVault.json"
    done = subprocess.run(
        ["node", str(BUILD), "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    rebuilt, expected = json.loads(out.read_text(encoding="utf-8")), committed()
    assert rebuilt["deployedBytecode"] == expected["deployedBytecode"]
    assert rebuilt["bytecode"] == expected["bytecode"]
    assert rebuilt["abi"] == expected["abi"]
    assert rebuilt["immutableReferences"] == expected["immutableReferences"]
    assert rebuilt["sources"] == expected["sources"]
    assert out.read_bytes() == ARTIFACT.read_bytes()


def test_the_artifact_records_the_pinned_compiler_and_the_settings() -> None:
    artifact = committed()
    assert artifact["compiler"]["name"] == "solc-js"
    assert artifact["compiler"]["version"].startswith(f"{SOLC_PIN}+commit.")
    settings = json.loads((ROOT / "contracts" / "solc-settings.json").read_text())
    assert artifact["settings"] == settings
    assert artifact["source"] == "contracts/GuardedVault.sol"


def test_the_recorded_source_hashes_are_the_files() -> None:
    recorded = {name: entry["sha256"] for name, entry in committed()["sources"].items()}
    assert recorded["GuardedVault.sol"] == hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    libraries = {name: sha for name, sha in recorded.items() if name != "GuardedVault.sol"}
    assert libraries and all(name.startswith("@openzeppelin/contracts/") for name in libraries)
    if not (NODE_MODULES / "@openzeppelin" / "contracts").is_dir():
        pytest.skip(f"OpenZeppelin Contracts not under {NODE_MODULES}: ./scripts/bootstrap")
    found = {
        name: hashlib.sha256((NODE_MODULES / name).read_bytes()).hexdigest() for name in libraries
    }
    assert found == libraries


@pytest.fixture(scope="module")
def w3() -> Iterator[Web3]:
    with Anvil.start() as anvil:
        yield anvil.web3()


@needs_anvil
def test_the_deployed_code_is_the_artifact_but_for_the_immutables(w3: Web3) -> None:
    vault, _ = deploy_vault(w3, DEPLOYER, QUOTE_TOKEN, DEMO_TWAP)
    artifact = load_artifact()
    code = bytes(w3.eth.get_code(vault.address))
    assert len(code) == len(artifact.deployed_bytecode)
    masked = set()
    for start, length in artifact.immutables:
        # The one immutable, the quote token, as a 32-byte word; zeros in the artifact.
        assert code[start : start + length] == bytes.fromhex(QUOTE_TOKEN[2:]).rjust(32, b"\0")
        assert artifact.deployed_bytecode[start : start + length] == bytes(length)
        masked.update(range(start, start + length))
    differing = {
        i for i, (a, b) in enumerate(zip(code, artifact.deployed_bytecode, strict=True)) if a != b
    }
    assert differing and differing <= masked
    assert same_code(code, artifact)
    assert vault.contract.functions.quoteToken().call() == QUOTE_TOKEN


@needs_anvil
def test_code_one_byte_off_the_artifacts_is_refused(w3: Web3) -> None:
    artifact = load_artifact()
    good, _ = deploy_vault(w3, DEPLOYER, QUOTE_TOKEN, DEMO_TWAP)  # checked, and accepted
    code = bytes(w3.eth.get_code(good.address))
    masked = {i for start, length in artifact.immutables for i in range(start, start + length)}
    flip = next(i for i in range(len(code) // 2, len(code)) if i not in masked)
    tampered = bytearray(code)
    tampered[flip] ^= 0x01
    assert not same_code(bytes(tampered), artifact)
    assert not same_code(code[:-1], artifact)
    flipped_artifact = bytearray(artifact.deployed_bytecode)
    flipped_artifact[flip] ^= 0x01
    assert not same_code(
        code, dataclasses.replace(artifact, deployed_bytecode=bytes(flipped_artifact))
    )
    # That code deployed as it is (a vault one byte off), a one-byte contract, and no code.
    for runtime in (bytes(tampered), b"\x00"):
        receipt = send_transaction(w3, DEPLOYER, {"data": creation_code(runtime)}, what="code")
        address = receipt["contractAddress"]
        assert address is not None and bytes(w3.eth.get_code(address)) == runtime
        with pytest.raises(VaultError, match="is not the committed GuardedVault's"):
            Vault(w3, address).check_deployed()
    with pytest.raises(VaultError, match="no contract"):
        Vault(w3, DEPLOYER.address).check_deployed()
