"""Target `receipts_file`: the files `tee-agent verify agent --receipts F --attestation F`
reads, through the same readers (`host.cli.evidence_files`), then the checks it runs on the
receipts (the signed chain, and the texts against their signed hashes).

The first byte picks the file: 0 the receipts file, 1 the attestation file. Documented
outcomes: a chain report, or `EvidenceFileError` (a ValueError) for a file that cannot be
used, as for a file that is not UTF-8.
"""

from __future__ import annotations

import json

from attestation.receipt_chain import verify_receipts
from attestation.receipt_texts import check_receipt_texts
from fuzz.enclave_world import maker, traded_state
from fuzz.harness import choose, with_choice
from host.cli.evidence_files import read_attestation_file, read_receipts_file

CHAIN_ID = 31337


def TestOneInput(data: bytes) -> None:
    which, payload = choose(data, 2)
    try:
        text = payload.decode("utf-8")
        if which == 1:
            read_attestation_file(text)
            return
        receipts, texts = read_receipts_file(text)
    except ValueError:  # EvidenceFileError, UnicodeDecodeError: what `verify agent` reports
        return
    verify_receipts(receipts, address=traded_state().address, chain_id=CHAIN_ID)
    if texts is not None:
        check_receipt_texts(receipts, texts)


def seeds() -> list[bytes]:
    state = traded_state()
    items = [
        {
            **record.to_file_dict(),
            "receipt_hash": "0x" + record.receipt_hash.hex(),
            "transaction": None,
        }
        for record in state.receipts
    ]
    bare = [record.receipt.to_json_dict() for record in state.receipts]
    core = maker().core()
    core.open(state.sealed_state)
    attestation = core.attest(bytes(32))
    return [
        with_choice(0, json.dumps(items).encode()),
        with_choice(0, json.dumps(bare[:2]).encode()),
        with_choice(0, json.dumps(items[0]).encode()),
        with_choice(1, json.dumps(attestation.to_file_dict()).encode()),
    ]
