"""What each command's JSON must say, for tests/test_cli_json_contract.py: one check per
outcome, each reading the fields an integrator reads and comparing them with the world
(the agent's status, the chain, the vectors' manifest)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tee_agent_rpc import agent_pb2 as pb

from attestation.receipt import Receipt
from attestation.receipt_chain import verify_receipts
from devnet.accounts import DEPLOYER
from enclave.config import load_config
from host.chain.vault import Vault
from tests.cli_world import REGISTERED, TICKS, UNITS, Given
from tests.enclave_harness import CHAIN_ID
from tests.manifest import vectors

Check = Callable[[dict[str, Any], Given], None]
TDX = "tdx-v4-phala-1.bin"


def failed(out: dict[str, Any]) -> list[str]:
    return [check["name"] for check in out["checks"] if not check["passed"]]


def is_tx(out: dict[str, Any]) -> None:
    assert out["tx"].startswith("0x") and len(out["tx"]) == 66
    assert out["block"] > 0 and out["gas_used"] > 0


def entry(name: str) -> dict[str, Any]:
    """A vector's manifest entry."""
    return next(v for v in vectors() if v["file"] == name)


def refused(text: str) -> Check:
    """A refusal (or a failure) whose error names `text`."""

    def check(out: dict[str, Any], _: Given) -> None:
        assert text in out["error"], out["error"]

    return check


# --- the agent's clients: status, receipts, attest, owner --------------------------------


def status_ok(out: dict[str, Any], given: Given) -> None:
    now = given.now
    assert list(out) == [f.name for f in pb.Status.DESCRIPTOR.fields]
    assert out["ticks_accepted"] == now.ticks_accepted == TICKS and out["ticks_refused"] == 0
    assert out["receipts"] == now.receipts > 0 and out["head_hash"] == "0x" + now.head_hash.hex()
    assert out["address"] == now.address and out["enclave_state"] == "running"


def receipts_ok(out: dict[str, Any], given: Given) -> None:
    now = given.now
    items = out["receipts"]
    assert [item["seq"] for item in items] == list(range(1, now.receipts + 1))
    chain = verify_receipts(
        [Receipt.from_json_dict({k: v for k, v in i.items() if k in Receipt.model_fields})
         for i in items],
        address=now.address, chain_id=CHAIN_ID, expected_head_hash=now.head_hash,
    )  # fmt: skip
    assert chain.valid, chain.error


def receipts_written(out: dict[str, Any], given: Given) -> None:
    assert out == {"out": str(given.tmp / "receipts.json"), "written": given.now.receipts}
    assert len(json.loads((given.tmp / "receipts.json").read_text())) == out["written"]


def sim_event_log_verified(log: dict[str, Any], given: Given) -> None:
    """The sim enclave's served log, replayed: its one event records the config hash."""
    config_hash = load_config(Path(given.world.config)).config_hash().hex()
    assert log["verified"] is True and set(log["rtmrs"]) == {f"rtmr{i}" for i in range(4)}
    assert [(e["imr"], e["event"], e["payload"]) for e in log["events"]] == [
        (0, "tee-agent.config-hash", config_hash)
    ]


def attest_ok(out: dict[str, Any], given: Given) -> None:
    assert out["valid"] is True and out["accepted"] is True and out["binding"]["passed"]
    assert out["tee"] == "sim" and failed(out) == [] and len(out["checks"]) > 5
    assert out["identity"]["address"] == given.now.address
    sim_event_log_verified(out["event_log"], given)


def attest_written(out: dict[str, Any], given: Given) -> None:
    attest_ok(out, given)
    saved = json.loads((given.tmp / "attestation.json").read_text())
    assert set(saved) == {"quote", "nonce", "identity", "event_log"}
    assert saved["nonce"] == out["nonce"] and saved["identity"] == out["identity"]
    [event] = saved["event_log"]  # dstack's JSON form, as the agent served it
    assert set(event) == {"imr", "event_type", "digest", "event", "event_payload"}
    assert event["event_payload"] == out["event_log"]["events"][0]["payload"]


def attest_untrusted(out: dict[str, Any], _: Given) -> None:
    assert out["valid"] is False and out["accepted"] is False
    assert failed(out) == ["pck_chain_root_pinned"]


def attest_event_log_tampered(out: dict[str, Any], _: Given) -> None:
    # The quote and its binding hold; the relayed log no longer replays to its RTMRs.
    assert out["valid"] is False and out["accepted"] is False and out["binding"]["passed"]
    assert failed(out) == ["event_log_digests", "event_log_replay"]
    assert out["error"].startswith("event_log_digests") and out["event_log"]["verified"] is False


def owner_applied(action: str) -> Check:
    def check(out: dict[str, Any], given: Given) -> None:
        assert out["applied"] is True and out["action"] == action
        assert out["paused"] is (action == "pause") is given.now.paused
        assert out["receipt"]["verdict"] == f"owner:{action}"
        assert out["receipt"]["seq"] == given.now.receipts

    return check


def owner_refused(out: dict[str, Any], _: Given) -> None:
    assert out["applied"] is False and "nothing sent" in out["error"]


# --- offline verification: verify quote, verify agent, replay-decision, enclave measure --


def quote_ok(out: dict[str, Any], _: Given) -> None:
    assert out["valid"] is True and out["tee"] == "tdx" and out["tcb_status"] == "UpToDate"
    assert out["measurements"]["mr_td"] == entry(TDX)["expected_fields"]["mr_td"]
    assert failed(out) == [] and out["error"] is None


def quote_invalid(out: dict[str, Any], _: Given) -> None:
    assert out["valid"] is False and out["tee"] == "nitro"
    assert "cose_signature" in failed(out) and out["error"].startswith("cose_signature")


def event_log_mismatch(out: dict[str, Any], _: Given) -> None:
    # The quote itself verifies; its RTMRs are not what the log replays to.
    assert out["valid"] is False and out["tee"] == "tdx"
    assert failed(out) == ["event_log_replay"] and out["error"].startswith("event_log_replay")
    log = out["event_log"]
    assert log["verified"] is False and set(log["rtmrs"]) == {f"rtmr{i}" for i in range(4)}
    assert [(e["imr"], e["event"]) for e in log["events"]] == [
        (3, "tee-agent.config-hash"),
        (3, "tee-agent.model-hash"),
    ]


def agent_ok(out: dict[str, Any], given: Given) -> None:
    assert out["valid"] is True and out["error"] is None and failed(out) == []
    assert out["address"] == given.now.address and out["receipts"] == given.now.receipts
    names = {check["name"] for check in out["checks"]}
    assert {"attestation", "report_data_binding", "receipt_chain", "receipts_on_chain"} <= names
    assert {"event_log_digests", "event_log_replay", "event_log_binds_identity"} <= names
    sim_event_log_verified(out["event_log"], given)


def agent_event_log_tampered(out: dict[str, Any], given: Given) -> None:
    # Everything holds but the log: its first event's digest was flipped on the way.
    assert out["valid"] is False and out["address"] == given.now.address
    assert failed(out) == ["event_log_digests", "event_log_replay"]
    assert out["error"].startswith("event_log_digests") and out["event_log"]["verified"] is False


def agent_not_in_vault(out: dict[str, Any], given: Given) -> None:
    assert out["valid"] is False and out["vault"] == given.world.vault
    assert "vault_agents_attested" in failed(out)
    assert out["error"].startswith(failed(out)[0])


def replay_ok(out: dict[str, Any], given: Given) -> None:
    assert out["matches"] is True and out["replayed"] == out["recorded"]
    assert out["recorded"] == given.files.decision_json


def replay_mismatch(out: dict[str, Any], _: Given) -> None:
    assert out["matches"] is False and out["recorded"] != out["replayed"]
    assert "a decision the model never made" in out["recorded"]


def measured(out: dict[str, Any], given: Given) -> None:
    config = load_config(Path(given.world.config))
    assert out["config_hash"] == config.config_hash().hex()
    assert set(out) == {"config_hash", "mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3"}
    assert out["rtmr1"] == "00" * 48  # no model


# --- the vault ------------------------------------------------------------------------


def deployed(out: dict[str, Any], given: Given) -> None:
    w3, dex = given.world.w3, given.world.dex
    is_tx(out)
    assert out["owner"] == DEPLOYER.address and out["quote_token"] == dex.usd
    assert out["chain_id"] == CHAIN_ID and len(w3.eth.get_code(out["address"])) > 0
    assert out["router"]["address"] == dex.router and out["router"]["tx"].startswith("0x")
    assert [m["base"] for m in out["markets"]] == [dex.weth]


def registered(out: dict[str, Any], given: Given) -> None:
    is_tx(out)
    assert out["registered"] is True and out["error"] is None and failed(out) == []
    assert out["agent"] == given.now.address
    assert out["cap_per_trade"] == "1000" and out["cap_per_day"] == "5000"
    record = Vault(given.world.w3, given.world.vault).contract.functions.agentOf(out["agent"])
    assert record.call()[0] is True  # active on chain


def not_registered(out: dict[str, Any], _: Given) -> None:
    assert out["registered"] is False and out["error"].startswith("pck_chain_root_pinned")


def sent(action: str, event: str, **fields: object) -> Check:
    """A vault call done: its transaction, and the vault's event with these fields (a field
    given by name, "usd" or "other", is that address)."""

    def check(out: dict[str, Any], given: Given) -> None:
        is_tx(out)
        assert out["action"] == action and out["vault"] == given.world.vault
        found = next(e for e in out["events"] if e["event"] == event)
        values = given.values()
        expected = {k: values.get(v, v) if isinstance(v, str) else v for k, v in fields.items()}
        assert {k: found[k] for k in expected} == expected

    return check


def observed(out: dict[str, Any], given: Given) -> None:
    [observation] = out["observations"]
    assert out["vault"] == given.world.vault and observation["base"] == given.world.dex.weth
    is_tx(observation)
    assert isinstance(observation["recorded"], bool)


def vault_status_ok(out: dict[str, Any], given: Given) -> None:
    dex = given.world.dex
    assert out["vault"] == given.world.vault and out["owner"] == DEPLOYER.address
    assert out["paused"] is False and out["quote_token"]["address"] == dex.usd
    assert out["twap"] == {"window_seconds": 1800, "max_age_seconds": 7200,
                           "max_deviation_bps": 300}  # fmt: skip
    assert out["balances"][0]["amount"] == "2500"
    agent = out["agent"]
    assert agent["address"] == REGISTERED.address and agent["active"] is True
    assert (agent["cap_per_trade"], agent["cap_per_day"]) == ("1000", "5000")
    assert agent["cap_per_day_units"] == 5000 * UNITS and agent["left_24h"] == "5000"


# --- backtest and init -------------------------------------------------------------------


def backtested(out: dict[str, Any], _: Given) -> None:
    assert out["candles"] == 3 * 24 and out["policy"] == "rule" and out["gaps"] == []
    assert out["start_balances"] == {"USDT": "10000", "WETH": "2"}
    assert out["decisions"] > 0 and out["start_value_usd"] > 10_000


def initialized(out: dict[str, Any], given: Given) -> None:
    directory = given.tmp / "agent"
    names = ["tee-agent.toml", "enclave.toml", "owner.key", "auth-token"]
    assert out["directory"] == str(directory)
    assert out["files"] == [str(directory / name) for name in names]
    assert out["owner_public_key"] == load_config(directory / "enclave.toml").owner.public_key
    leaked = (directory / "owner.key").read_text().strip() in json.dumps(out)
    assert not leaked, "the owner key appears in init's output"
