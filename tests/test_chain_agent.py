"""The agent trading for real on a local chain: anvil, Uniswap V2, the host, the enclave, the
broadcaster, and `tee-agent verify agent` over all of it."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector

from tests.needs_anvil import skip_without_anvil

skip_without_anvil()

from attestation.receipt_texts import ReceiptTexts  # noqa: E402
from devnet.accounts import DEPLOYER  # noqa: E402
from devnet.demo import Session, demo_session  # noqa: E402
from devnet.dex import balances  # noqa: E402
from host.chain.audit import AuditCheck, audit_agent  # noqa: E402
from host.cli import main  # noqa: E402
from host.run import RunningHost  # noqa: E402
from tests.agent_relay import flip_first_digest  # noqa: E402
from wire.records import ReceiptRecord  # noqa: E402

# The vault's swap(address,address,address,uint256,uint256,uint256,uint64,bytes32).
VAULT_SWAP = function_signature_to_4byte_selector(
    "swap(address,address,address,uint256,uint256,uint256,uint64,bytes32)"
)


def args(tmp: Path, hours: int = 36) -> argparse.Namespace:
    return argparse.Namespace(
        policy="rule", model=None, hours=hours, start_row=3060, keep=tmp, json=False
    )


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    with demo_session(args(tmp_path_factory.mktemp("chain"))) as running:
        yield running


def test_buys_and_sells_go_through_the_vault_and_its_balances_move_as_decided(
    session: Session,
) -> None:
    w3, storage, vault = session.w3, session.host.storage, session.vault.vault
    records = {r.receipt.seq: r for r in storage.receipts(1, 10_000)}
    trades = {t.receipt_seq: t for t in vault.trades() if t.agent == session.address}
    actions = []
    for tx in storage.transactions():
        onchain = w3.eth.get_transaction(tx.tx_hash)
        data = bytes(onchain["input"])
        assert data[:4] == VAULT_SWAP and onchain["to"] == vault.address
        router, token_in, token_out, amount_in, min_out, _, seq, digest = decode(
            ["address", "address", "address", "uint256", "uint256", "uint256", "uint64",
             "bytes32"], data[4:],
        )  # fmt: skip
        # The transaction carries its receipt: the seq and the EIP-712 digest.
        record = records[tx.receipt_seq]
        assert seq == tx.receipt_seq and record.receipt.verdict == "signed"
        assert digest == record.receipt_hash
        assert router.lower() == session.dex.router.lower()
        if tx.status != "mined":
            continue
        trade = trades[seq]
        assert trade.receipt_digest == digest and trade.amount_in == amount_in
        assert trade.amount_out >= min_out
        decision = json.loads(record.decision_json)
        buying = token_in.lower() == session.dex.usd.lower()
        assert {token_in.lower(), token_out.lower()} == {session.dex.usd.lower(),
                                                         session.dex.weth.lower()}  # fmt: skip
        assert buying == (decision["action"] == "buy")
        if not buying:
            assert abs(amount_in - int(float(decision["amount"]) * 10**18)) <= 10**12
        actions.append(decision["action"])
    assert "buy" in actions and "sell" in actions
    end = session.vault_balances()
    assert end["WETH"] != session.start_balances["WETH"]
    # The agent's own address holds only gas money: the funds stayed in the vault.
    held = balances(w3, session.dex, session.address)
    assert held["WETH"] == held["USD"] == 0


def test_every_transaction_has_a_receipt_and_verify_agent_passes(
    session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    root = session.workdir / "agent" / "sim" / "root.pem"
    host: RunningHost = session.host
    code = main(["verify", "agent", "--rpc", session.anvil.url, "--host", f"127.0.0.1:{host.port}",
                 "--trust-root", str(root), "--vault", session.vault.vault.address, "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, report["error"]
    names = {check["name"]: check["passed"] for check in report["checks"]}
    assert names["transactions_have_receipts"] and names["receipts_on_chain"]
    assert names["receipt_texts"]
    assert report["transactions_on_chain"] == len(host.storage.transactions()) > 0


def _exported(session: Session, tmp: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    host = session.host
    target = f"127.0.0.1:{host.port}"
    root = session.workdir / "agent" / "sim" / "root.pem"
    receipts, attestation = tmp / "receipts.json", tmp / "attestation.json"
    assert main(["receipts", "--host", target, "--out", str(receipts)]) == 0
    assert (
        main(["attest", "--host", target, "--trust-root", str(root), "--out", str(attestation)])
        == 0
    )
    capsys.readouterr()
    return receipts, attestation


def _verify_report(
    session: Session, receipts: Path, attestation: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any]]:
    root = session.workdir / "agent" / "sim" / "root.pem"
    code = main(["verify", "agent", "--rpc", session.anvil.url, "--receipts", str(receipts),
                 "--attestation", str(attestation), "--trust-root", str(root),
                 "--vault", session.vault.vault.address, "--json"])  # fmt: skip
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _verify_files(
    session: Session, receipts: Path, attestation: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, bool]]:
    code, report = _verify_report(session, receipts, attestation, capsys)
    return code, {check["name"]: check["passed"] for check in report["checks"]}


def test_verify_agent_fails_on_an_edited_or_dropped_receipt(
    session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receipts, attestation = _exported(session, tmp_path, capsys)
    assert _verify_files(session, receipts, attestation, capsys)[0] == 0
    items = json.loads(receipts.read_text())
    signed = next(i for i, item in enumerate(items) if item["verdict"] == "signed")

    edited = [dict(item) for item in items]
    edited[signed]["verdict"] = "hold"
    receipts.write_text(json.dumps(edited))
    code, checks = _verify_files(session, receipts, attestation, capsys)
    assert code == 1 and not checks["receipt_chain"]

    dropped = items[:signed] + items[signed + 1 :]
    receipts.write_text(json.dumps(dropped))
    code, checks = _verify_files(session, receipts, attestation, capsys)
    assert code == 1 and not checks["receipt_chain"] and not checks["transactions_have_receipts"]


def _edited_texts(records: list[ReceiptRecord]) -> tuple[int, str, int, str]:
    """A hold decision rewritten as a buy, and the inputs of another receipt replaced:
    (seq, decision text) and (seq, input text)."""
    hold = next(r for r in records if r.receipt.verdict == "hold")
    decision = json.loads(hold.decision_json)
    assert decision["action"] == "hold"
    decision.update(action="buy", amount="1")
    other = next(r for r in records if r.receipt.seq != hold.receipt.seq and r.input_json)
    inputs = json.loads(other.input_json)
    inputs[next(iter(sorted(inputs)))] = "replaced"
    return (
        hold.receipt.seq, json.dumps(decision, sort_keys=True, separators=(",", ":")),
        other.receipt.seq, json.dumps(inputs, sort_keys=True, separators=(",", ":")),
    )  # fmt: skip


def test_verify_agent_fails_on_an_edited_decision_or_replaced_inputs(
    session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each text fails exactly receipt_texts, naming the receipt and the field; the receipt
    itself, its chain and the chain's record are untouched."""
    receipts, attestation = _exported(session, tmp_path, capsys)
    code, checks = _verify_files(session, receipts, attestation, capsys)
    assert code == 0 and checks["receipt_texts"]
    items = json.loads(receipts.read_text())
    records = session.host.storage.receipts(1, 1_000_000)
    hold_seq, buy, input_seq, inputs = _edited_texts(records)
    for seq, field, text in ((hold_seq, "decision_json", buy), (input_seq, "input_json", inputs)):
        edited = [dict(item) for item in items]
        edited[seq - 1][field] = text
        receipts.write_text(json.dumps(edited))
        code, report = _verify_report(session, receipts, attestation, capsys)
        failed = {c["name"]: c["detail"] for c in report["checks"] if not c["passed"]}
        assert code == 1 and set(failed) == {"receipt_texts"}, failed
        assert f"seq {seq} {field} edited" in failed["receipt_texts"]

    # A text left out of one item of a file that has them is withheld.
    withheld = [dict(item) for item in items]
    del withheld[hold_seq - 1]["decision_json"]
    receipts.write_text(json.dumps(withheld))
    code, report = _verify_report(session, receipts, attestation, capsys)
    assert code == 1 and f"seq {hold_seq} decision_json withheld" in report["error"]


def test_verify_agent_replays_the_event_log_of_the_attestation_file(
    session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The log `attest --out` saved replays, and applies the policy's [event_log]; flipped,
    it fails the checks `verify quote` names; withheld, a policy that needs it fails."""
    receipts, attestation = _exported(session, tmp_path, capsys)
    code, report = _verify_report(session, receipts, attestation, capsys)
    assert code == 0 and report["event_log"]["verified"] is True
    assert [e["event"] for e in report["event_log"]["events"]] == ["tee-agent.config-hash"]
    passed = {c["name"] for c in report["checks"] if c["passed"]}
    assert {"event_log_digests", "event_log_replay", "event_log_binds_identity"} <= passed

    saved = json.loads(attestation.read_text())
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[[tdx]]\nmr_td = "{report["attestation"]["measurements"]["mr_td"]}"\n'
                      f'[event_log]\nconfig_hash = "{saved["identity"]["config_hash"][2:]}"\n')  # fmt: skip

    def policy_detail() -> str:
        code = main(["verify", "agent", "--rpc", session.anvil.url, "--receipts", str(receipts),
                     "--attestation", str(attestation), "--trust-root",
                     str(session.workdir / "agent" / "sim" / "root.pem"), "--policy", str(policy),
                     "--vault", session.vault.vault.address, "--json"])  # fmt: skip
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert code == 1  # a simulated quote has no TCB status, which no policy accepts
        return next(c["detail"] for c in out["checks"] if c["name"] == "attestation_policy")

    assert "policy_event_log" not in policy_detail()  # the log holds the pinned config hash

    attestation.write_text(
        json.dumps({**saved, "event_log": flip_first_digest(saved["event_log"])})
    )
    code, report = _verify_report(session, receipts, attestation, capsys)
    failed = [c["name"] for c in report["checks"] if not c["passed"]]
    assert code == 1 and failed == ["event_log_digests", "event_log_replay"]
    assert report["error"].startswith("event_log_digests") and not report["event_log"]["verified"]

    attestation.write_text(json.dumps({**saved, "event_log": []}))
    code, report = _verify_report(session, receipts, attestation, capsys)
    assert code == 0 and report["event_log"] is None  # no log, and no policy asking for one
    assert "policy_event_log: the policy has [event_log] rules, but no event log" in policy_detail()


def test_audit_agent_checks_every_receipt_text(session: Session) -> None:
    """In process, as the demo audits: honest texts pass; an edited decision and replaced
    inputs each fail exactly receipt_texts."""
    storage = session.host.storage
    records = storage.receipts(1, 1_000_000)
    receipts = [r.receipt for r in records]
    honest = [ReceiptTexts(decision_json=r.decision_json, input_json=r.input_json)
              for r in records]  # fmt: skip

    def audit(texts: list[ReceiptTexts]) -> dict[str, str]:
        report = audit_agent(
            session.host.agent.attest(os.urandom(32)), receipts, session.w3,
            anchors=session.anchors, at=datetime.now(UTC), expected_head_hash=storage.head()[1],
            vault=session.vault.vault.address, texts=texts,
        )  # fmt: skip
        assert AuditCheck.RECEIPT_TEXTS in {c.name for c in report.checks}
        return {c.name: c.detail for c in report.checks if not c.passed}

    assert audit(honest) == {}
    hold_seq, buy, input_seq, inputs = _edited_texts(records)
    for seq, field, text in ((hold_seq, "decision_json", buy), (input_seq, "input_json", inputs)):
        texts = list(honest)
        texts[seq - 1] = texts[seq - 1].model_copy(update={field: text})
        failed = audit(texts)
        assert (
            set(failed) == {"receipt_texts"}
            and f"seq {seq} {field} edited" in failed["receipt_texts"]
        )


def test_a_refused_decision_leaves_no_transaction_on_chain(tmp_path: Path) -> None:
    # The rule policy asks for 50 bps of slippage; this config allows 10: every trade it
    # proposes is refused by the guardrail, which the policy knows nothing about.
    with demo_session(args(tmp_path, hours=30), max_slippage_bps=10) as running:
        receipts = [r.receipt for r in running.host.storage.receipts(1, 10_000)]
        nonce = running.w3.eth.get_transaction_count(running.address)
        stored = running.host.storage.transactions()
    refused = [r for r in receipts if r.verdict == "refused:max_slippage"]
    assert refused, [r.verdict for r in receipts]
    assert nonce == 0 and stored == []
    assert all(r.tx_hash == bytes(32) for r in receipts)


def test_verify_agent_fails_on_a_transaction_the_enclave_never_signed(
    session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    """Last, since it changes the chain: a transaction from the agent's address that no
    receipt records (anvil can send one without the key: impersonation)."""
    w3 = session.w3
    w3.provider.make_request("anvil_impersonateAccount", [session.address])
    tx_hash = w3.eth.send_transaction({"from": session.address, "to": DEPLOYER.address, "value": 1})
    w3.eth.wait_for_transaction_receipt(tx_hash)
    root = session.workdir / "agent" / "sim" / "root.pem"
    code = main(["verify", "agent", "--rpc", session.anvil.url,
                 "--host", f"127.0.0.1:{session.host.port}", "--trust-root", str(root),
                 "--vault", session.vault.vault.address, "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1
    failed = {check["name"] for check in report["checks"] if not check["passed"]}
    assert "transactions_have_receipts" in failed
    assert tx_hash.hex().removeprefix("0x") in json.dumps(report)
