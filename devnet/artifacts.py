"""The Uniswap V2 build artifacts from npm, and the addresses they imply.

`load_artifact` reads WETH9, the test ERC20, UniswapV2Factory, UniswapV2Pair and
UniswapV2Router02 (abi and bytecode) from `@uniswap/v2-core` and `@uniswap/v2-periphery`
under tools/chain/node_modules; `pair_init_code_hash` and `create2_pair_address` compute
where a factory puts a pair (UniswapV2Library.pairFor), which the deployment checks.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract

from devnet.anvil import NODE_MODULES
from host.chain.transact import ChainError

# Artifact name -> its file in the npm packages (tools/chain/package.json pins them).
_ARTIFACTS: Final[Mapping[str, str]] = {
    "WETH9": "@uniswap/v2-periphery/build/WETH9.json",
    "ERC20": "@uniswap/v2-periphery/build/ERC20.json",
    "UniswapV2Factory": "@uniswap/v2-core/build/UniswapV2Factory.json",
    "UniswapV2Pair": "@uniswap/v2-core/build/UniswapV2Pair.json",
    "UniswapV2Router02": "@uniswap/v2-periphery/build/UniswapV2Router02.json",
}


@dataclass(frozen=True)
class Artifact:
    """A contract's build output: its ABI and creation bytecode."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes


@functools.cache
def load_artifact(name: str, node_modules: Path = NODE_MODULES) -> Artifact:
    """A Uniswap V2 build artifact ("abi" and "bytecode") from the npm packages.

    Raises:
        ChainError: naming `./scripts/bootstrap`, when the file is missing or malformed.
    """
    path = node_modules / _ARTIFACTS[name]
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        abi, bytecode = raw["abi"], raw["bytecode"]
        code = bytes.fromhex(bytecode.removeprefix("0x"))
    except FileNotFoundError:
        raise ChainError(
            f"missing {path}: run ./scripts/bootstrap (it installs tools/chain)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ChainError(f"{path} is not a build artifact with abi and bytecode: {exc}") from None
    if not code:
        raise ChainError(f"{path} has no bytecode")
    return Artifact(name=name, abi=abi, bytecode=code)


def contract_at(w3: Web3, name: str, address: str) -> Contract:
    """A web3 handle on the deployed contract `address`, with artifact `name`'s ABI.

    Raises:
        ChainError: the artifact is missing or malformed.
    """
    return w3.eth.contract(address=to_checksum_address(address), abi=load_artifact(name).abi)


def pair_init_code_hash() -> bytes:
    """keccak256 of the UniswapV2Pair creation code: what CREATE2 pair addresses hash in.

    Raises:
        ChainError: the artifact is missing or malformed.
    """
    return keccak(load_artifact("UniswapV2Pair").bytecode)


def create2_pair_address(factory: str, token_a: str, token_b: str, init_code_hash: bytes) -> str:
    """The address a Uniswap V2 factory gives the pair of two tokens (`pairFor`)."""
    token0, token1 = sorted(
        (to_checksum_address(token_a), to_checksum_address(token_b)), key=str.lower
    )
    salt = keccak(bytes.fromhex(token0[2:]) + bytes.fromhex(token1[2:]))
    digest = keccak(
        b"\xff" + bytes.fromhex(to_checksum_address(factory)[2:]) + salt + init_code_hash
    )
    return to_checksum_address(digest[12:])
