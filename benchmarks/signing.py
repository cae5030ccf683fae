"""Signing on one core: our EIP-1559 signer beside raw libsecp256k1 and eth-account, same run.

The same distinct transactions go through `AccountSigner.sign_transaction`, through
eth-account's `Account.sign_transaction` (the reference it must match byte for byte), and,
as the floor no Python signer can beat, their signing hashes through coincurve's
`sign_recoverable` alone. Receipts are made beside eth-account's `sign_typed_data` of the
same EIP-712 data, and verified as a chain beside eth-account's `recover_message` of each
(recovery alone, no chain checks). Seal+unseal round trips of a 2 KiB state run beside bare
AES-256-GCM encrypt+decrypt of the same bytes. Each figure is the best of alternating
rounds, after a warm-up, in this one process pinned to one core.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from coincurve import PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address

from attestation.receipt import ZERO_HASH, Receipt, receipt_hash
from attestation.receipt_chain import verify_receipts
from benchmarks.one_core import one_core
from enclave.platform.base import Measurement
from enclave.receipts import make_receipt
from enclave.sealing import Sealer
from enclave.signer import AccountSigner, Eip1559Transaction
from tests.test_receipts import typed_data

ROUNDS = 5
DISTINCT_TRANSACTIONS = 256
CHAIN_ID = 31337
CHAIN_LENGTH = 1000
SEALED_STATE_BYTES = 2048


def _transactions() -> list[Eip1559Transaction]:
    """Realistic calls: ERC-20 transfers and swaps with calldata from 0 to ~600 bytes."""
    return [
        Eip1559Transaction(
            chain_id=CHAIN_ID,
            nonce=nonce,
            max_priority_fee_per_gas=10**9 + nonce,
            max_fee_per_gas=30 * 10**9,
            gas=21_000 + 1_000 * (nonce % 200),
            to=(nonce * 7919).to_bytes(20, "big"),
            value=0 if nonce % 2 else 10**15 * nonce,
            data=bytes([nonce % 256]) * (4 + 68 * (nonce % 9)) if nonce % 4 else b"",
        )
        for nonce in range(DISTINCT_TRANSACTIONS)
    ]


def _eth_account_dict(tx: Eip1559Transaction) -> dict[str, Any]:
    return {
        "type": 2,
        "chainId": tx.chain_id,
        "nonce": tx.nonce,
        "maxPriorityFeePerGas": tx.max_priority_fee_per_gas,
        "maxFeePerGas": tx.max_fee_per_gas,
        "gas": tx.gas,
        "to": to_checksum_address(tx.to),
        "value": tx.value,
        "data": "0x" + tx.data.hex(),
        "accessList": [],
    }


def _receipt_fields(seq: int, prev_hash: bytes) -> dict[str, Any]:
    return {
        "chain_id": CHAIN_ID,
        "seq": seq,
        "prev_hash": prev_hash,
        "input_digest": seq.to_bytes(32, "big"),
        "model_hash": b"\x01" * 32,
        "config_hash": b"\x02" * 32,
        "decision_hash": (seq * 3).to_bytes(32, "big"),
        "verdict": "signed" if seq % 4 else "refused:max_notional_per_trade",
        "tx_hash": (seq * 5).to_bytes(32, "big"),
        "timestamp": 1_750_000_000 + seq,
    }


def _chain(signer: AccountSigner, length: int) -> list[Receipt]:
    chain, prev = [], ZERO_HASH
    for seq in range(1, length + 1):
        chain.append(make_receipt(signer, **_receipt_fields(seq, prev)))
        prev = receipt_hash(chain[-1], CHAIN_ID)
    return chain


def _rate(run: Callable[[int], object], count: int) -> float:
    start = time.perf_counter()
    run(count)
    return count / (time.perf_counter() - start)


def main() -> dict[str, float]:
    """Measure on one core and print; returns the figures."""
    with one_core():
        return _measure()


def _measure() -> dict[str, float]:
    signer = AccountSigner.generate()
    secret = signer.secret_bytes()  # benchmark key only: made here, never stored
    key = PrivateKey(secret)  # the same key, bare, for the raw baseline
    txs = _transactions()
    dicts = [_eth_account_dict(tx) for tx in txs]
    hashes = [tx.signing_hash() for tx in txs]
    ours_first = signer.sign_transaction(txs[1])
    assert ours_first.raw_transaction == Account.sign_transaction(dicts[1], secret).raw_transaction

    def ours(count: int) -> None:
        for index in range(count):
            signer.sign_transaction(txs[index % DISTINCT_TRANSACTIONS])

    def raw(count: int) -> None:
        for index in range(count):
            key.sign_recoverable(hashes[index % DISTINCT_TRANSACTIONS], hasher=None)

    def reference(count: int) -> None:
        for index in range(count):
            Account.sign_transaction(dicts[index % DISTINCT_TRANSACTIONS], secret)

    def make(count: int) -> None:
        prev = ZERO_HASH
        for seq in range(1, count + 1):
            prev = receipt_hash(make_receipt(signer, **_receipt_fields(seq, prev)), CHAIN_ID)

    account = Account.from_key(secret)
    first_fields = _receipt_fields(1, ZERO_HASH)
    assert account.sign_typed_data(full_message=typed_data(first_fields, CHAIN_ID)).signature == (
        make_receipt(signer, **first_fields).signature
    )

    def make_reference(count: int) -> None:
        prev = ZERO_HASH
        for seq in range(1, count + 1):
            fields = _receipt_fields(seq, prev)
            account.sign_typed_data(full_message=typed_data(fields, CHAIN_ID))
            prev = seq.to_bytes(32, "big")  # eth-account has no chain: any 32 bytes do

    chain = _chain(signer, CHAIN_LENGTH)
    signables = [
        encode_typed_data(full_message=typed_data(receipt.model_dump(), CHAIN_ID))
        for receipt in chain
    ]

    def verify_reference(count: int) -> None:
        for _ in range(count // CHAIN_LENGTH):
            for signable, receipt in zip(signables, chain, strict=True):
                assert Account.recover_message(signable, signature=receipt.signature)

    def verify(count: int) -> None:
        for _ in range(count // CHAIN_LENGTH):
            report = verify_receipts(chain, address=signer.address, chain_id=CHAIN_ID)
            assert report.valid

    sealer = Sealer(
        bytes(range(32)),
        Measurement(values={"mr_td": "00" * 48}),
        config_hash=bytes(32),
        model_hash=bytes(32),
    )
    state = os.urandom(SEALED_STATE_BYTES)

    def seal(count: int) -> None:
        for _ in range(count):
            assert sealer.unseal(sealer.seal(state)) == state

    aead, nonce = AESGCM(bytes(range(32))), bytes(12)

    def bare_aead(count: int) -> None:
        for _ in range(count):
            assert aead.decrypt(nonce, aead.encrypt(nonce, state, None), None) == state

    cases: dict[str, tuple[Callable[[int], object], int]] = {
        "ours": (ours, 5000),
        "raw": (raw, 5000),
        "eth_account": (reference, 300),
        "make_receipt": (make, 3000),
        "eth_account_sign_typed_data": (make_reference, 300),
        "verify_receipts": (verify, 3 * CHAIN_LENGTH),
        "eth_account_recover": (verify_reference, CHAIN_LENGTH),
        "seal_unseal": (seal, 5000),
        "bare_aes_gcm": (bare_aead, 5000),
    }
    for run, count in cases.values():
        run(min(count, CHAIN_LENGTH))  # warm-up: imports, caches, first-run dispatch
    best = dict.fromkeys(cases, 0.0)
    for _ in range(ROUNDS):
        for name, (run, count) in cases.items():
            best[name] = max(best[name], _rate(run, count))
    best["ratio_raw"] = best["ours"] / best["raw"]
    best["ratio_eth_account"] = best["ours"] / best["eth_account"]

    print(f"signing: EIP-1559 transactions, one core, {DISTINCT_TRANSACTIONS} distinct")
    print(f"  AccountSigner.sign_transaction      {best['ours']:10.0f} tx/s")
    print(f"  coincurve sign_recoverable (floor)  {best['raw']:10.0f} signatures/s")
    print(f"  eth-account sign_transaction (ref)  {best['eth_account']:10.0f} tx/s")
    print(f"  ratio ours/raw                      {best['ratio_raw']:10.2f}x  (target >= 0.25)")
    print(f"  ratio ours/eth-account              {best['ratio_eth_account']:10.2f}x")
    best["ratio_make"] = best["make_receipt"] / best["eth_account_sign_typed_data"]
    best["ratio_verify"] = best["verify_receipts"] / best["eth_account_recover"]
    best["ratio_seal"] = best["seal_unseal"] / best["bare_aes_gcm"]
    print("receipts: EIP-712 hash chain, one core")
    print(f"  make_receipt                        {best['make_receipt']:10.0f} receipts/s")
    print(f"  eth-account sign_typed_data (ref)   {best['eth_account_sign_typed_data']:10.0f}/s")
    print(f"  ratio                               {best['ratio_make']:10.2f}x")
    print(
        f"  verify_receipts (chain of {CHAIN_LENGTH})     "
        f"{best['verify_receipts']:10.0f} receipts/s"
    )
    print(f"  eth-account recover_message (ref)   {best['eth_account_recover']:10.0f}/s")
    print(f"  ratio                               {best['ratio_verify']:10.2f}x")
    print(f"sealing: AES-256-GCM, {SEALED_STATE_BYTES} B state, one core")
    print(f"  Sealer seal + unseal                {best['seal_unseal']:10.0f} round trips/s")
    print(f"  bare AESGCM encrypt + decrypt       {best['bare_aes_gcm']:10.0f} round trips/s")
    print(f"  ratio ours/bare                     {best['ratio_seal']:10.2f}x")
    return best


if __name__ == "__main__":
    main()
