"""Keccak-256 (the original Keccak padding, as Ethereum hashes): pycryptodome's compiled
Keccak, called directly.

`eth_hash.auto.keccak` reaches the same C functions through two wrappers of Python (its
backend, then pycryptodome's hash object), which cost more than the hash itself of the
short inputs the enclave hashes for every receipt and transaction (`benchmarks.signing`
measures both). Here the same four calls are made straight through pycryptodome's cffi
binding. Without that binding (pycryptodome on its ctypes backend), eth_hash's is used.
"""

from __future__ import annotations

from collections.abc import Callable

from Crypto.Hash import keccak as pycryptodome_keccak
from Crypto.Util import _raw_api
from eth_hash.auto import keccak as eth_hash_keccak

# Keccak-256 in pycryptodome's raw interface: capacity 2 * 256 bits = 64 bytes, 24 rounds,
# and the padding byte 0x01 of the original Keccak (FIPS 202's SHA-3 pads with 0x06).
_CAPACITY_BYTES = 64
_ROUNDS = 24
_KECCAK_PADDING = 0x01
_DIGEST_BYTES = 32


def _direct() -> Callable[[bytes], bytes] | None:
    if getattr(_raw_api, "backend", None) != "cffi":
        return None
    ffi, lib = _raw_api.ffi, getattr(pycryptodome_keccak, "_raw_keccak_lib", None)
    if lib is None:
        return None
    # The C types looked up once, not parsed from their names on every call.
    state_holder, digest_buffer = ffi.typeof("void *[1]"), ffi.typeof("uint8_t[]")

    def keccak256(data: bytes) -> bytes:
        holder = ffi.new(state_holder)
        if lib.keccak_init(holder, _CAPACITY_BYTES, _ROUNDS):
            raise ValueError("keccak_init failed")
        state = holder[0]
        try:
            out = ffi.new(digest_buffer, _DIGEST_BYTES)
            if lib.keccak_absorb(state, data, len(data)) or lib.keccak_digest(
                state, out, _DIGEST_BYTES, _KECCAK_PADDING
            ):
                raise ValueError("keccak failed")
        finally:
            lib.keccak_destroy(state)
        return bytes(ffi.buffer(out))

    return keccak256


# Keccak-256 of bytes (32 bytes): the same as `eth_hash.auto.keccak`, which it falls back to.
keccak256: Callable[[bytes], bytes] = _direct() or eth_hash_keccak
