"""A trade priced under the market, healed: anvil, Uniswap V2, the guarded vault, the host,
the simulated enclave and the broadcaster, fed hourly candles as the demo feeds them, with
the chain's view of the agent's account (as `host.chain.link` reads it) in every batch.

The agent's first trade is signed at the fee the chain asked for; then the base fee jumps
above it (`anvil_setNextBlockBaseFeePerGas`), so the node refuses it. Blocks pass, and the
enclave signs the same call again at a higher fee; that replacement is priced out too, and
the enclave's second replacement is mined. The later trades follow it, the receipt chain
verifies, and `tee-agent verify agent` passes; with the replacement receipt withheld or its
transaction hash changed, it fails `replacements_have_receipts`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import rlp  # type: ignore[import-untyped]

from tests.needs_anvil import skip_without_anvil

skip_without_anvil()

from attestation.receipt_chain import verify_receipts  # noqa: E402
from devnet.demo_run import Session, run_candles, started_session  # noqa: E402
from devnet.dex import set_next_block_time  # noqa: E402
from devnet.vault import observe_all  # noqa: E402
from host.chain.fees import account_view, fee_hint  # noqa: E402
from host.cli import main  # noqa: E402
from host.enclave_client import FeeHint  # noqa: E402
from host.market.feed import ticks_input  # noqa: E402
from wire.records import TransactionRecord  # noqa: E402
from wire.ticks import Tick  # noqa: E402

GWEI = 10**9


def args(tmp: Path) -> argparse.Namespace:
    return argparse.Namespace(
        policy="rule", model=None, hours=40, start_row=3060, keep=tmp, json=False
    )


def max_fee(record: TransactionRecord) -> int:
    """The max fee per gas of a signed EIP-1559 transaction."""
    return int.from_bytes(rlp.decode(record.raw_transaction[1:])[3], "big")


def raise_base_fee(session: Session, above: int) -> int:
    """Mine a block whose base fee is three times `above`; returns it."""
    base = 3 * above
    for method, params in (("anvil_setNextBlockBaseFeePerGas", [hex(base)]), ("evm_mine", [])):
        answer = session.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        assert "error" not in answer, answer
    assert session.w3.eth.get_block("latest")["baseFeePerGas"] == base
    return base


@dataclass
class Run:
    """The session after the replay, and what the test saw happen during it."""

    session: Session
    # The stuck trade: its receipt seq, and its versions in the order they were signed.
    seq: int = 0
    versions: list[TransactionRecord] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    def verdict(self, record: TransactionRecord) -> str:
        stored = self.session.host.storage.receipt(record.receipt_seq)
        assert stored is not None
        return stored.receipt.verdict


def feed(session: Session, ticks: list[Tick]) -> list[TransactionRecord]:
    """One batch as the demo's honest host relays it, with the chain's view of the agent's
    account (as `ChainLink.enrich` reads it). Returns the transactions the enclave released."""
    before = {record.tx_hash for record in session.host.storage.transactions()}
    work = dataclasses.replace(
        ticks_input(ticks),
        fees=FeeHint(*fee_hint(session.w3)),
        balances=session.vault_balances(),
        twaps=session.twaps(),
        account=account_view(session.w3, session.address),
    )
    session.host.agent.ingest(work)
    return [r for r in session.host.storage.transactions() if r.tx_hash not in before]


def candle_ticks(session: Session, seq: int, candle: Any) -> list[Tick]:
    """Move the pool to the candle's close at its time and record a price observation."""
    set_next_block_time(session.w3, candle.timestamp_ms // 1000)
    price = session.mover.move_to(Decimal(repr(candle.price)), "ETH/USD")
    observe_all(session.vault, session.dex)
    return [Tick(seq, candle.timestamp_ms, "ETH/USD", float(price), candle.volume)]


def mine(session: Session, blocks: int) -> None:
    for _ in range(blocks):
        answer = session.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        assert "error" not in answer, answer


def settle(session: Session) -> None:
    """One broadcaster round, then wait for everything sent to be mined or to fail."""
    session.broadcaster.poll_once()
    waiting = [
        r.tx_hash for r in session.host.storage.transactions() if r.status in ("signed", "pending")
    ]
    if waiting:
        session.broadcaster.wait_mined(waiting, timeout=60)


def heal(run: Run, original: TransactionRecord) -> None:
    """The agent's first trade, priced out by a jump of the base fee; blocks pass (seconds,
    not hours: the swap's deadline holds), the enclave replaces it, and the first
    replacement is priced out the same way; the second one goes through."""
    session = run.session
    run.seq, run.versions = original.receipt_seq, [original]
    while len(run.versions) < 3:
        raise_base_fee(session, max_fee(run.versions[-1]))
        session.broadcaster.poll_once()
        stored = {r.tx_hash: r for r in session.host.storage.transactions()}
        assert stored[run.versions[-1].tx_hash].status == "signed"
        run.refusals.append(stored[run.versions[-1].tx_hash].detail)
        # Not yet: one block fewer than replace_after_blocks (3) since it was signed.
        mine(session, 1)
        assert not [r for r in feed(session, []) if r.nonce == original.nonce]
        mine(session, 1)
        again = [r for r in feed(session, []) if r.nonce == original.nonce]
        assert [run.verdict(r) for r in again] == [f"replaced:{run.seq}"]
        run.versions.extend(again)
    settle(session)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    options = args(tmp_path_factory.mktemp("stuck"))
    candles = run_candles(options)
    with started_session(options, candles[0]) as session:
        seen = Run(session)
        for index, candle in enumerate(candles):
            new = feed(session, candle_ticks(session, index + 1, candle))
            trades = [r for r in new if seen.verdict(r) == "signed"]
            if trades and not seen.versions:
                heal(seen, trades[0])
            else:
                settle(session)
        yield seen


def test_a_trade_priced_out_is_replaced_until_mined_and_later_trades_follow(run: Run) -> None:
    session, storage = run.session, run.session.host.storage
    assert len(run.versions) == 3, [r.receipt_seq for r in run.versions]
    original, first, second = run.versions
    assert run.verdict(original) == "signed"
    assert run.verdict(first) == run.verdict(second) == f"replaced:{run.seq}"
    # While priced out, the node refused each version and the broadcaster kept it "signed".
    assert any("max fee per gas less than block base fee" in d for d in run.refusals)
    # Same nonce, each version's max fee at least 12.5 % above the one before, within the cap.
    assert original.nonce == first.nonce == second.nonce
    fees = [max_fee(r) for r in run.versions]
    assert fees[1] * 8 >= fees[0] * 9 and fees[2] * 8 >= fees[1] * 9
    assert fees[2] <= 100 * GWEI
    stored = {r.tx_hash: r for r in storage.transactions()}
    assert stored[second.tx_hash].status == "mined"
    for loser in (original, first):
        assert stored[loser.tx_hash].status == "replaced"
        assert stored[loser.tx_hash].detail == (
            f"replaced: nonce {original.nonce} went to 0x{second.tx_hash.hex()}"
        )
    # The replacement receipts name the new transactions; the call still carries the
    # original receipt, so the vault's Traded event names it.
    receipts = {r.receipt.seq: r for r in storage.receipts(1, 100_000)}
    assert receipts[first.receipt_seq].receipt.tx_hash == first.tx_hash
    assert receipts[second.receipt_seq].receipt.tx_hash == second.tx_hash
    facts = json.loads(receipts[second.receipt_seq].input_json)
    assert facts["original_tx"] == "0x" + original.tx_hash.hex()
    assert facts["replaced_tx"] == "0x" + first.tx_hash.hex()
    trades = {t.receipt_seq: t for t in session.vault.vault.trades() if t.agent == session.address}
    assert trades[run.seq].tx_hash == second.tx_hash
    assert trades[run.seq].receipt_digest == receipts[run.seq].receipt_hash
    # Later trades went through, at later nonces (one signed while the stuck one waited may
    # have been replaced too); every nonce was settled on chain by one version.
    later = [r for r in storage.transactions() if r.nonce > original.nonce]
    assert later and any(r.status == "mined" for r in later)
    assert all(r.status in ("mined", "reverted", "replaced") for r in later)
    landed = [r.nonce for r in storage.transactions() if r.status in ("mined", "reverted")]
    assert sorted(landed) == list(range(max(landed) + 1))
    assert session.w3.eth.get_transaction_count(session.address) == max(landed) + 1
    chain = verify_receipts(
        [r.receipt for r in receipts.values()],
        address=session.address,
        chain_id=session.config.chain.chain_id,
        config_hash=session.config.config_hash(),
    )
    assert chain.valid, chain.checks


def _verify(run: Run, *target: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    session = run.session
    root = session.workdir / "agent" / "sim" / "root.pem"
    code = main(["verify", "agent", "--rpc", session.anvil.url, *target, "--trust-root",
                 str(root), "--vault", session.vault.vault.address, "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return code, {c["name"]: (c["passed"], c["detail"]) for c in report["checks"]}


def test_verify_agent_accepts_the_replacement_only_with_its_receipt(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = f"127.0.0.1:{run.session.host.port}"
    code, checks = _verify(run, "--host", host, capsys=capsys)
    assert code == 0, {name: c for name, c in checks.items() if not c[0]}
    passed, detail = checks["replacements_have_receipts"]
    assert passed and detail.startswith("2 replacement receipt(s) for 1 decision(s)")
    root = run.session.workdir / "agent" / "sim" / "root.pem"
    receipts, attestation = tmp_path / "receipts.json", tmp_path / "attestation.json"
    assert main(["receipts", "--host", host, "--out", str(receipts)]) == 0
    assert main(["attest", "--host", host, "--trust-root", str(root),
                 "--out", str(attestation)]) == 0  # fmt: skip
    capsys.readouterr()
    files = ("--receipts", str(receipts), "--attestation", str(attestation))
    assert _verify(run, *files, capsys=capsys)[0] == 0
    items = json.loads(receipts.read_text())
    mined = run.versions[2]
    index = next(i for i, item in enumerate(items) if item["seq"] == mined.receipt_seq)

    withheld = items[:index] + items[index + 1 :]
    receipts.write_text(json.dumps(withheld))
    code, checks = _verify(run, *files, capsys=capsys)
    assert code == 1 and not checks["replacements_have_receipts"][0]
    assert (
        f"0x{mined.tx_hash.hex()} carries out seq {run.seq}, which was replaced"
        in (checks["replacements_have_receipts"][1])
    )

    doctored = [dict(item) for item in items]
    doctored[index]["tx_hash"] = "0x" + "ab" * 32
    receipts.write_text(json.dumps(doctored))
    code, checks = _verify(run, *files, capsys=capsys)
    assert code == 1 and not checks["replacements_have_receipts"][0]
    assert f"0x{mined.tx_hash.hex()}" in checks["replacements_have_receipts"][1]
