"""`verify agent --vault` on real anvil, the real Uniswap V2 and the real GuardedVault: an agent
key we hold makes receipts first and trades through the vault with their digests, then the
audit runs over a simulated attestation of that key. Each way to break the record fails
exactly the checks it must; and GetStatus serves the vault as a `VaultWatch` read it."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from tee_agent_rpc import agent_pb2 as pb
from web3 import Web3

from tests.needs_anvil import skip_without_anvil

skip_without_anvil()

from attestation.binding import AgentAttestation, AgentIdentity, identity_report_data  # noqa: E402
from attestation.receipt import ZERO_HASH, Receipt, receipt_hash, receipts_to_json  # noqa: E402
from attestation.trust import (  # noqa: E402
    TrustAnchors,
    certificates_from_bytes,
    default_trust_anchors,
)
from devnet.accounts import DEPLOYER, DEV_ACCOUNTS  # noqa: E402
from devnet.anvil import Anvil  # noqa: E402
from devnet.dex import Dex  # noqa: E402
from devnet.market import deploy_market, fund  # noqa: E402
from devnet.vault import advance, deploy_guarded_vault  # noqa: E402
from enclave.platform.sim import SimPlatform  # noqa: E402
from enclave.platform.sim_pki import create_sim_pki  # noqa: E402
from enclave.receipts import make_receipt  # noqa: E402
from enclave.signer import AccountSigner  # noqa: E402
from host.chain.audit import AuditCheck, AuditReport, audit_agent  # noqa: E402
from host.chain.fees import fee_hint  # noqa: E402
from host.chain.transact import send_transaction  # noqa: E402
from host.chain.vault_owner import VaultOwner  # noqa: E402
from host.cli import main  # noqa: E402
from host.vault_watch import VaultWatch, whole_tokens  # noqa: E402
from tests.enclave_harness import EnclaveWorld  # noqa: E402
from tests.host_harness import running_host  # noqa: E402

CHAIN_ID = 31337
AGENT_KEY = hashlib.sha256(b"tee-agent vault audit agent key").digest()
CONFIG_HASH = hashlib.sha256(b"enclave.toml with a [vault] table").digest()
MODEL_HASH = hashlib.sha256(b"SmolLM2-135M-Instruct.gguf").digest()
USD = 10**18  # the devnet quote token has 18 decimals
CAP_PER_TRADE, CAP_PER_DAY = 1000 * USD, 5000 * USD
SECOND_AGENT, STRANGER = DEV_ACCOUNTS[4], DEV_ACCOUNTS[5]
ALL_CHECKS = [
    "attestation", "report_data_binding", "receipt_chain", "receipts_on_chain",
    "transactions_have_receipts", "replacements_have_receipts",
    "nonce_accounts_for_every_transaction", "vault_code",
    "vault_agents_attested", "vault_trades_have_receipts", "vault_outflows",
]  # fmt: skip


@dataclass
class VaultAgent:
    """An agent on the vault: its key (as the enclave signs receipts, and as an account that
    sends transactions), its receipts so far, and its attestation."""

    w3: Any
    dex: Dex
    owner: VaultOwner
    signer: AccountSigner
    account: LocalAccount
    evidence: AgentAttestation
    anchors: TrustAnchors
    root_pem: Path
    receipts: list[Receipt] = field(default_factory=list)

    @property
    def vault(self) -> str:
        return self.owner.vault.address

    def receipt(self, verdict: str = "signed") -> Receipt:
        """The next receipt, as the enclave makes a trade's: before the transaction, so
        with no transaction hash."""
        seq = len(self.receipts) + 1
        prev = receipt_hash(self.receipts[-1], CHAIN_ID) if self.receipts else ZERO_HASH
        made = make_receipt(
            self.signer, chain_id=CHAIN_ID, seq=seq, prev_hash=prev,
            input_digest=hashlib.sha256(b"ticks %d" % seq).digest(), model_hash=MODEL_HASH,
            config_hash=CONFIG_HASH, decision_hash=hashlib.sha256(b"decision %d" % seq).digest(),
            verdict=verdict, tx_hash=ZERO_HASH, timestamp=1_760_000_000 + seq,
        )  # fmt: skip
        self.receipts.append(made)
        return made

    def swap_call(
        self, seq: int, digest: bytes, *, buy: bool = True, min_out: int | None = None
    ) -> Any:
        """The vault swap a trade's transaction carries: 500 USD of WETH, or 0.2 WETH sold."""
        dex = self.dex
        token_in, token_out = (dex.usd, dex.weth) if buy else (dex.weth, dex.usd)
        amount = 500 * USD if buy else 2 * 10**17
        if min_out is None:
            quoted = (
                dex.router_contract(self.w3)
                .functions.getAmountsOut(amount, [token_in, token_out])
                .call()[-1]
            )
            min_out = quoted * 995 // 1000
        return self.owner.vault.contract.functions.swap(
            dex.router, token_in, token_out, amount, min_out, 2**40, seq, digest
        )

    def trade(self, *, buy: bool = True) -> Receipt:
        """A decision to trade: its receipt first, then the vault swap carrying its digest."""
        made = self.receipt()
        call = self.swap_call(made.seq, receipt_hash(made, CHAIN_ID), buy=buy)
        send_transaction(self.w3, self.account, call, what="vault swap")
        return made

    def audit(self, receipts: list[Receipt] | None = None, vault: str | None = "") -> AuditReport:
        """`audit_agent` over these receipts (or others), with the agent's own vault (or
        another address, or None: no vault)."""
        return audit_agent(
            self.evidence, self.receipts if receipts is None else receipts, self.w3,
            anchors=self.anchors, at=datetime.now(UTC),
            vault=self.vault if vault == "" else vault,
        )  # fmt: skip


def failed(report: AuditReport) -> dict[str, str]:
    return {check.name: check.detail for check in report.checks if not check.passed}


def detail(report: AuditReport, name: AuditCheck) -> str:
    return next(check.detail for check in report.checks if check.name == name)


def sim_attestation(directory: Path, address: str) -> tuple[AgentAttestation, TrustAnchors]:
    """A simulated TDX quote binding `address` and CONFIG_HASH, with the root that verifies it."""
    pki = create_sim_pki(directory)
    platform = SimPlatform(directory, config_hash=CONFIG_HASH, model_hash=MODEL_HASH)
    identity = AgentIdentity(
        address=address, x25519_public_key=hashlib.sha256(b"x25519").digest(),
        config_hash=CONFIG_HASH, model_hash=MODEL_HASH,
        measurement=platform.measurement().values, platform="sim", simulated=True,
        chain_id=CHAIN_ID, policy="rule",
    )  # fmt: skip
    nonce = os.urandom(32)
    quote = platform.quote(identity_report_data(identity.binding(), nonce))
    anchors = default_trust_anchors().with_extra_roots(
        certificates_from_bytes(pki.root_pem, source="sim root")
    )
    return AgentAttestation(quote=quote, nonce=nonce, identity=identity), anchors


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultAgent]:
    """A vault with the agent registered, funded, its TWAP warm, and two trades on record
    beside a hold and a refusal."""
    sim_dir = tmp_path_factory.mktemp("vault-audit") / "sim"
    with Anvil.start() as anvil:
        w3 = anvil.web3()
        dex = deploy_market(w3, 2000, 60000)
        owner = deploy_guarded_vault(w3, dex)
        signer, account = AccountSigner.from_bytes(AGENT_KEY), Account.from_key(AGENT_KEY)
        assert signer.address == account.address
        evidence, anchors = sim_attestation(sim_dir, account.address)
        owner.register(
            account.address, CAP_PER_TRADE, CAP_PER_DAY, CONFIG_HASH, bytes(32), bytes(32)
        )
        fund(w3, dex, DEPLOYER, account.address, eth=10)
        fund(w3, dex, DEPLOYER, DEPLOYER.address, weth=10)
        owner.deposit(dex.usd, 10_000 * USD)
        owner.deposit(dex.weth, 5 * 10**18)
        advance(w3, 1800)
        agent = VaultAgent(w3, dex, owner, signer, account, evidence, anchors, sim_dir / "root.pem")
        agent.receipt("hold")
        agent.trade(buy=True)
        agent.receipt("refused:max_notional_per_trade")
        agent.trade(buy=False)
        yield agent


@pytest.fixture
def agent(world: VaultAgent) -> Iterator[VaultAgent]:
    """The world, put back as it was after the test (anvil's snapshot, and the receipts)."""
    snapshot = world.w3.provider.make_request("evm_snapshot", [])["result"]
    receipts = list(world.receipts)
    try:
        yield world
    finally:
        world.receipts = receipts
        assert world.w3.provider.make_request("evm_revert", [snapshot])["result"] is True


def test_an_honest_vault_agent_passes_every_check(
    agent: VaultAgent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = agent.audit()
    assert report.valid, failed(report)
    assert [check.name for check in report.checks] == ALL_CHECKS
    assert report.vault == agent.vault and report.vault_trades == 2
    assert "all 2 vault trade receipts travel in a swap" in detail(
        report, AuditCheck.RECEIPTS_ON_CHAIN
    )
    assert "2 of them vault swaps" in detail(report, AuditCheck.TRANSACTIONS_HAVE_RECEIPTS)
    assert "2 paid into a pool by a trade, 0 owner withdrawal(s)" in detail(
        report, AuditCheck.VAULT_OUTFLOWS
    )

    # The same through the command line, from files.
    receipts_file, attestation_file = tmp_path / "receipts.json", tmp_path / "attestation.json"
    receipts_file.write_text(receipts_to_json(agent.receipts))
    attestation_file.write_text(json.dumps(agent.evidence.to_file_dict()))
    rpc = agent.w3.provider.endpoint_uri
    command = ["verify", "agent", "--rpc", rpc, "--receipts", str(receipts_file),
               "--attestation", str(attestation_file), "--trust-root", str(agent.root_pem)]  # fmt: skip
    assert main([*command, "--vault", agent.vault, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["valid"] and printed["vault"] == agent.vault and printed["vault_trades"] == 2

    # Without --vault the audit is today's: the swaps name no receipt by hash, and it says why.
    assert main(command) == 1
    out = capsys.readouterr().out
    assert "FAIL transactions_have_receipts" in out and "pass --vault ADDRESS" in out
    assert main([*command, "--vault", "0x1234"]) == 2
    assert "--vault must be an address" in capsys.readouterr().err


def test_a_replacement_receipt_must_name_an_earlier_signed_receipt_and_a_transaction(
    agent: VaultAgent,
) -> None:
    hold = next(r for r in agent.receipts if r.verdict == "hold")
    agent.receipt(f"replaced:{hold.seq}")
    agent.receipt(f"replaced:{len(agent.receipts) + 5}")
    problems = failed(agent.audit())
    assert set(problems) == {"replacements_have_receipts"}, problems
    text = problems["replacements_have_receipts"]
    assert f"replaces seq {hold.seq}, but that is seq {hold.seq} ('hold')" in text
    assert "but that is no receipt" in text
    assert f"replacement receipt seq {len(agent.receipts)} names no transaction" in text


def test_a_swap_the_agent_key_signs_outside_the_record_fails_the_trade_checks(
    agent: VaultAgent,
) -> None:
    """A leaked key trades under a digest no receipt has (the seq the next receipt would take)."""
    forged = hashlib.sha256(b"no receipt has this digest").digest()
    call = agent.swap_call(len(agent.receipts) + 1, forged)
    tx = send_transaction(agent.w3, agent.account, call, what="swap outside the record")
    report = agent.audit()
    problems = failed(report)
    assert set(problems) == {"transactions_have_receipts", "vault_trades_have_receipts"}
    for name in problems:
        assert (
            forged.hex() in problems[name]
            and tx["transactionHash"].hex().removeprefix("0x") in problems[name]
        )
    # It is a trade, within the vault's limits: the value went into a pool, not elsewhere.
    assert "3 paid into a pool by a trade" in detail(report, AuditCheck.VAULT_OUTFLOWS)


def test_a_receipt_edited_after_the_fact_fails_the_chain_and_every_digest_link(
    agent: VaultAgent,
) -> None:
    """The host edits the first trade's receipt: its signature no longer verifies, and its
    digest is no longer the one the chain carries, so neither the receipt nor the trade nor
    the transaction finds its counterpart."""
    index = next(i for i, r in enumerate(agent.receipts) if r.verdict == "signed")
    edited = list(agent.receipts)
    edited[index] = edited[index].model_copy(update={"timestamp": edited[index].timestamp + 1})
    problems = failed(agent.audit(edited))
    assert set(problems) == {
        "receipt_chain", "receipts_on_chain", "transactions_have_receipts",
        "vault_trades_have_receipts",
    }  # fmt: skip
    assert f"seq {edited[index].seq}" in problems["receipts_on_chain"]


def test_a_second_active_agent_fails_the_agents_check_and_its_trades_the_trade_check(
    agent: VaultAgent,
) -> None:
    owner = agent.owner
    owner.register(
        SECOND_AGENT.address, CAP_PER_TRADE, CAP_PER_DAY, b"\x42" * 32, bytes(32), bytes(32)
    )
    problems = failed(agent.audit())
    assert set(problems) == {"vault_agents_attested"}
    assert SECOND_AGENT.address in problems["vault_agents_attested"]

    # It trades, then is revoked: no longer active, but its trade has no receipt of ours.
    fund(agent.w3, agent.dex, DEPLOYER, SECOND_AGENT.address, eth=1)
    call = agent.swap_call(1, b"\x07" * 32)
    send_transaction(agent.w3, SECOND_AGENT, call, what="the second agent's swap")
    owner.revoke(SECOND_AGENT.address)
    problems = failed(agent.audit())
    assert set(problems) == {"vault_trades_have_receipts"}
    assert (
        f"agent other than the attested {agent.account.address}"
        in problems["vault_trades_have_receipts"]
    )
    assert SECOND_AGENT.address in problems["vault_trades_have_receipts"]


def test_the_attested_agent_revoked_or_registered_with_another_config_fails(
    agent: VaultAgent,
) -> None:
    owner, address = agent.owner, agent.account.address
    owner.register(address, CAP_PER_TRADE, CAP_PER_DAY, b"\x01" * 32, bytes(32), bytes(32))
    problems = failed(agent.audit())
    assert set(problems) == {"vault_agents_attested"}
    assert CONFIG_HASH.hex() in problems["vault_agents_attested"]
    owner.revoke(address)
    assert "was revoked" in failed(agent.audit())["vault_agents_attested"]


def test_an_owner_withdrawal_passes_and_a_transfer_out_by_another_path_fails(
    agent: VaultAgent,
) -> None:
    w3, dex, vault = agent.w3, agent.dex, agent.vault
    agent.owner.withdraw(dex.usd, 123 * USD, STRANGER.address)
    report = agent.audit()
    assert report.valid, failed(report)
    assert "1 owner withdrawal(s)" in detail(report, AuditCheck.VAULT_OUTFLOWS)

    # Tokens leave the vault with neither a trade nor a withdrawal: a path the contract does
    # not have, made here by anvil sending from the vault's own address.
    w3.provider.make_request("anvil_impersonateAccount", [vault])
    w3.provider.make_request("anvil_setBalance", [vault, hex(10**18)])
    usd = dex.token(w3, "USD")
    tx = usd.functions.transfer(STRANGER.address, 77 * USD).transact({"from": vault})
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    w3.provider.make_request("anvil_stopImpersonatingAccount", [vault])
    problems = failed(agent.audit())
    assert set(problems) == {"vault_outflows"}
    assert f"{77 * USD} of {dex.usd} to {STRANGER.address}" in problems["vault_outflows"]


def test_a_reverted_swap_counts_as_on_chain_and_is_named(agent: VaultAgent) -> None:
    made = agent.receipt()
    # A minimum output no pool gives: the router reverts after the vault admitted the trade.
    call = agent.swap_call(made.seq, receipt_hash(made, CHAIN_ID), min_out=10**30)
    max_fee, priority = fee_hint(agent.w3)
    tx = call.build_transaction({
        "from": agent.account.address, "gas": 600_000, "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": priority, "chainId": CHAIN_ID,
        "nonce": agent.w3.eth.get_transaction_count(agent.account.address),
    })  # fmt: skip
    sent = agent.w3.eth.send_raw_transaction(agent.account.sign_transaction(tx).raw_transaction)
    assert agent.w3.eth.wait_for_transaction_receipt(sent)["status"] == 0
    report = agent.audit()
    assert report.valid, failed(report)
    assert report.transactions_on_chain == 3 and report.vault_trades == 2
    on_chain = detail(report, AuditCheck.RECEIPTS_ON_CHAIN)
    assert f"1 of those swaps reverted: seq {made.seq} (tx 0x{bytes(sent).hex()})" in on_chain


def test_a_signed_receipt_never_sent_fails_receipts_on_chain(agent: VaultAgent) -> None:
    made = agent.receipt()
    problems = failed(agent.audit())
    assert set(problems) == {"receipts_on_chain"}
    assert (
        f"seq {made.seq} (digest 0x{receipt_hash(made, CHAIN_ID).hex()})"
        in problems["receipts_on_chain"]
    )


def test_an_address_that_is_no_vault_fails_the_vault_checks_without_raising(
    agent: VaultAgent,
) -> None:
    problems = failed(agent.audit(vault=agent.dex.router))
    assert {"vault_code", "vault_agents_attested", "vault_trades_have_receipts",
            "vault_outflows", "receipts_on_chain"} <= set(problems)  # fmt: skip
    assert all(agent.dex.router in text for text in problems.values()), problems
    assert "is not the committed GuardedVault's" in problems["vault_code"]


def test_get_status_serves_the_vault_a_vault_watch_read(
    world: VaultAgent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over real gRPC, with the real enclave: the vault block of GetStatus is what the
    VaultWatch on the agent read last, and a failed read keeps it beside the error."""
    enclave_world = EnclaveWorld(tmp_path)
    enclave_world.write_config(decision_interval_seconds=3600)
    # A client of its own, so that the test can take its node away.
    w3 = Web3(Web3.HTTPProvider(world.w3.provider.endpoint_uri))
    with running_host(enclave_world) as host:
        assert host.agent.vault_watch is None
        assert not host.stub.GetStatus(pb.GetStatusRequest()).HasField("vault")

        watch = VaultWatch(w3, world.vault, world.account.address, quote_decimals=18)
        host.agent.vault_watch = watch
        before = host.stub.GetStatus(pb.GetStatusRequest()).vault
        assert before.address == world.vault and before.block == 0 and before.error

        reading = watch.refresh()
        assert reading.error is None and reading.state is not None
        vault = host.stub.GetStatus(pb.GetStatusRequest()).vault
        record = world.owner.vault.state(world.account.address).agent
        assert record is not None
        assert vault.address == world.vault and vault.block == reading.state.block > 0
        assert vault.quote_token == world.dex.usd and not vault.paused and vault.agent_active
        assert (vault.cap_per_trade, vault.cap_per_day) == ("1000", "5000")
        assert vault.notional_24h == whole_tokens(record.notional_24h, 18) != "0"
        assert vault.notional_24h_left == whole_tokens(CAP_PER_DAY - record.notional_24h, 18)
        assert vault.last_receipt_seq == 4
        assert (vault.twap_window_seconds, vault.max_deviation_bps) == (1800, 300)
        assert vault.error == ""

        # `tee-agent status` prints it, and its JSON carries it as an object.
        target = f"127.0.0.1:{host.running.port}"
        assert main(["status", "--host", target]) == 0
        out = capsys.readouterr().out
        assert f"vault {world.vault} at block {vault.block:,}: trading, agent active" in out
        assert "caps: 1000 per trade, 5000 per 24h" in out
        assert f"notional 24h: {vault.notional_24h} used, {vault.notional_24h_left} left" in out
        assert main(["status", "--host", target, "--json"]) == 0
        printed = json.loads(capsys.readouterr().out)["vault"]
        assert printed["cap_per_day"] == "5000" and printed["last_receipt_seq"] == 4

        # The node goes away: the error is served beside the last state read.
        w3.provider = Web3.HTTPProvider("http://127.0.0.1:9", request_kwargs={"timeout": 2})
        assert watch.refresh().state == reading.state
        served = host.stub.GetStatus(pb.GetStatusRequest()).vault
        assert served.block == reading.state.block and served.notional_24h == vault.notional_24h
        assert "127.0.0.1:9" in served.error
        assert main(["status", "--host", target]) == 0
        assert "the last read failed (figures above are older)" in capsys.readouterr().out


def test_whole_tokens_are_exact_decimal_strings() -> None:
    assert whole_tokens(0, 18) == "0"
    assert whole_tokens(5000 * 10**18, 18) == "5000"
    assert whole_tokens(10005 * 10**17, 18) == "1000.5"
    assert whole_tokens(1, 6) == "0.000001"
    assert whole_tokens(123_456_789, 6) == "123.456789"
