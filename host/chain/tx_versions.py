"""The versions of one nonce: the enclave may sign a nonce again at a higher fee when its
transaction stays unmined (`enclave.in_flight`), and each version is a row of its own in
storage (keyed by its hash). The broadcaster sends only the newest version of a nonce, and
once one version is mined (or reverted) the others are "replaced"."""

from __future__ import annotations

from collections.abc import Iterable

from host.storage.base import Storage
from wire.records import TransactionRecord, TxStatus

# A transaction still to be sent or followed; a nonce's other versions retire once one lands.
OPEN_STATUSES: frozenset[TxStatus] = frozenset({"signed", "pending"})
LANDED_STATUSES: frozenset[TxStatus] = frozenset({"mined", "reverted"})


def newest_versions(records: Iterable[TransactionRecord]) -> list[TransactionRecord]:
    """Of each nonce in `records`, the version signed last (the highest receipt seq: a
    replacement's receipt comes after the one it replaces), in nonce order."""
    newest: dict[int, TransactionRecord] = {}
    for record in records:
        known = newest.get(record.nonce)
        if known is None or record.receipt_seq > known.receipt_seq:
            newest[record.nonce] = record
    return sorted(newest.values(), key=lambda record: record.nonce)


def versions(storage: Storage, nonce: int) -> list[TransactionRecord]:
    """Every stored version of `nonce`."""
    found = []
    for record in storage.transactions_from_nonce(nonce):
        if record.nonce != nonce:
            break
        found.append(record)
    return found


def landed_version(storage: Storage, record: TransactionRecord) -> TransactionRecord | None:
    """Another version of `record`'s nonce recorded mined or reverted, if any."""
    return next(
        (
            other
            for other in versions(storage, record.nonce)
            if other.tx_hash != record.tx_hash and other.status in LANDED_STATUSES
        ),
        None,
    )


def open_rivals(storage: Storage, landed: TransactionRecord) -> list[TransactionRecord]:
    """The other versions of `landed`'s nonce still "signed" or "pending"."""
    return [
        other
        for other in versions(storage, landed.nonce)
        if other.tx_hash != landed.tx_hash and other.status in OPEN_STATUSES
    ]


def highest_landed(storage: Storage) -> TransactionRecord | None:
    """The stored transaction of the highest nonce recorded mined or reverted, if any."""
    landed = storage.transactions("mined") + storage.transactions("reverted")
    return max(landed, key=lambda record: record.nonce, default=None)
