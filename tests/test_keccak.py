"""Keccak-256 called straight through pycryptodome's binding is eth_hash's, for any input."""

from __future__ import annotations

from eth_hash.auto import keccak
from hypothesis import given
from hypothesis import strategies as st

from attestation.keccak import keccak256


@given(st.binary(max_size=600))
def test_keccak256_is_eth_hashs(data: bytes) -> None:
    assert keccak256(data) == keccak(data)


def test_known_answers_and_the_direct_path_is_the_one_in_use() -> None:
    # Keccak-256 of the empty string, and of a rate-sized block (136 bytes: padding alone
    # fills a second block), as Ethereum hashes them.
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert keccak256(bytes(136)) == keccak(bytes(136))
    assert keccak256 is not keccak  # pycryptodome on cffi: the direct calls, not eth_hash's
