"""`tee-agent vault …` on a real chain: anvil, Uniswap V2, the committed GuardedVault, and a
real simulated enclave behind a real host for `vault register`.

Every command runs in-process through `host.cli.main`; the tests read its exit code, its
JSON, and the chain itself (balances, agentOf, paused()).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.needs_anvil import skip_without_anvil

skip_without_anvil()

from web3 import Web3  # noqa: E402

from devnet.accounts import DEPLOYER, DEV_ACCOUNTS, DEV_PRIVATE_KEYS  # noqa: E402
from devnet.anvil import Anvil  # noqa: E402
from devnet.dex import Dex  # noqa: E402
from devnet.enclave_config import enclave_config_toml  # noqa: E402
from devnet.market import deploy_market, fund  # noqa: E402
from enclave.config import load_config  # noqa: E402
from enclave.platform.sim_pki import create_sim_pki  # noqa: E402
from host.chain.vault import Vault  # noqa: E402
from host.chain.vault_owner import TwapSettings, VaultOwner, deploy_vault  # noqa: E402
from host.cli import main  # noqa: E402
from host.cli.vault_chain import balance_of  # noqa: E402
from tests.enclave_harness import EnclaveWorld  # noqa: E402
from tests.host_harness import HostUnderTest, running_host  # noqa: E402

STRANGER = DEV_ACCOUNTS[3]
OTHER = DEV_ACCOUNTS[5]
UNITS = 10**18  # every devnet token has 18 decimals
TT = "TT"  # the symbol of Uniswap's test ERC-20, which the devnet's USD and WBTC are


@dataclass
class Chain:
    anvil: Anvil
    w3: Web3
    dex: Dex

    @property
    def rpc(self) -> str:
        return self.anvil.url


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    with Anvil.start() as anvil:
        w3 = anvil.web3()
        dex = deploy_market(w3, 2000, 60000)
        fund(w3, dex, DEPLOYER, DEPLOYER.address, weth=10)
        yield Chain(anvil, w3, dex)


def key_file(directory: Path, key: str = DEV_PRIVATE_KEYS[0], mode: int = 0o600) -> Path:
    path = directory / "owner.key"
    path.write_text(f"  {key}\n")
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def owner_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return key_file(tmp_path_factory.mktemp("key"))


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Run `tee-agent ARGV --json`: exit code, the JSON on stdout, stderr."""
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def deploy(chain: Chain, key: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """A vault owned by DEPLOYER, priced in USD, Router02 and the two markets allowed."""
    dex = chain.dex
    code, out, _ = run_json(
        capsys, "vault", "deploy", "--rpc", chain.rpc, "--key", str(key),
        "--quote-token", dex.usd, "--router", dex.router,
        "--market", f"{dex.weth}={dex.pairs['ETH/USD']}",
        "--market", f"{dex.tokens['WBTC']}={dex.pairs['BTC/USD']}",
    )  # fmt: skip
    assert code == 0
    return str(out["address"])


@pytest.fixture
def vault(chain: Chain, owner_key: Path, capsys: pytest.CaptureFixture[str]) -> str:
    return deploy(chain, owner_key, capsys)


def owner_call(chain: Chain, key: Path, vault: str, *argv: str) -> list[str]:
    return ["vault", *argv, "--rpc", chain.rpc, "--key", str(key), "--vault", vault]


def balance(chain: Chain, token: str, holder: str) -> int:
    return balance_of(chain.w3, token, holder)


def sent_by(chain: Chain, account: str) -> int:
    return int(chain.w3.eth.get_transaction_count(account))


# --- deploy and status ------------------------------------------------------------------


def test_deploy_allowlists_the_router_and_markets_and_status_reads_them_back(
    chain: Chain, owner_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dex = chain.dex
    code, out, _ = run_json(
        capsys, "vault", "deploy", "--rpc", chain.rpc, "--key", str(owner_key),
        "--quote-token", dex.usd, "--router", dex.router, "--twap-window", "600",
        "--twap-max-age", "3600", "--max-deviation-bps", "150",
        "--market", f"{dex.weth}={dex.pairs['ETH/USD']}",
    )  # fmt: skip
    assert code == 0
    assert out["owner"] == DEPLOYER.address and out["quote_token"] == dex.usd
    assert out["twap"] == {"window_seconds": 600, "max_age_seconds": 3600, "max_deviation_bps": 150}
    assert out["router"]["address"] == dex.router and out["router"]["tx"].startswith("0x")
    assert [m["base"] for m in out["markets"]] == [dex.weth]
    contract = Vault(chain.w3, out["address"]).contract
    assert contract.functions.routers(dex.router).call()
    assert contract.functions.markets(dex.weth).call()[2]

    code, status, _ = run_json(
        capsys, "vault", "status", "--rpc", chain.rpc, "--vault", out["address"]
    )
    assert code == 0
    assert set(status) == {"vault", "chain_id", "block", "owner", "paused", "quote_token",
                           "twap", "routers", "markets", "balances", "agent"}  # fmt: skip
    assert status["owner"] == DEPLOYER.address and status["paused"] is False
    assert status["quote_token"] == {"address": dex.usd, "symbol": TT, "decimals": 18}
    assert status["twap"] == out["twap"]
    assert status["routers"] == [{"address": dex.router, "allowed": True}]
    assert status["markets"] == [{"base": dex.weth, "pair": dex.pairs["ETH/USD"], "allowed": True}]
    assert [(b["address"], b["amount"], b["units"]) for b in status["balances"]] == [
        (dex.usd, "0", 0),
        (dex.weth, "0", 0),
    ]
    assert status["agent"] is None


def test_deploy_refuses_bad_settings_before_sending(
    chain: Chain, owner_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sent_by(chain, DEPLOYER.address)
    base = ["vault", "deploy", "--rpc", chain.rpc, "--key", str(owner_key)]
    for extra, expected in (
        (["--quote-token", "0x1234"], "--quote-token"),
        (["--quote-token", chain.dex.usd, "--market", chain.dex.weth], "BASE=PAIR"),
        (["--quote-token", chain.dex.usd, "--twap-window", "0"], "--twap-window"),
        (["--quote-token", chain.dex.usd, "--twap-max-age", "60"], "--twap-max-age"),
        (["--quote-token", chain.dex.usd, "--max-deviation-bps", "10000"], "--max-deviation"),
        (["--quote-token", DEPLOYER.address], "not an ERC-20 token"),
    ):
        assert main([*base, *extra]) == 2, extra
        assert expected in capsys.readouterr().err
    assert sent_by(chain, DEPLOYER.address) == before


def test_status_shows_an_agent_its_caps_and_balances(
    chain: Chain, owner_key: Path, vault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = VaultOwner(Vault(chain.w3, vault), DEPLOYER)
    agent = DEV_ACCOUNTS[4].address
    owner.register(agent, 1000 * UNITS, 5000 * UNITS, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32)
    owner.deposit(chain.dex.usd, 2500 * UNITS)
    code, status, _ = run_json(
        capsys, "vault", "status", "--rpc", chain.rpc, "--vault", vault, "--agent", agent
    )
    assert code == 0
    assert status["agent"] == {
        "address": agent, "active": True,
        "cap_per_trade": "1000", "cap_per_trade_units": 1000 * UNITS,
        "cap_per_day": "5000", "cap_per_day_units": 5000 * UNITS,
        "notional_24h": "0", "notional_24h_units": 0,
        "left_24h": "5000", "left_24h_units": 5000 * UNITS,
        "last_receipt_seq": 0,
        "config_hash": "0x" + "01" * 32, "measurement": "0x" + "02" * 32,
        "quote_hash": "0x" + "03" * 32,
    }  # fmt: skip
    assert status["balances"][0]["amount"] == "2500"
    assert [b["symbol"] for b in status["balances"]] == [TT, "WETH", TT]

    assert main(["vault", "status", "--rpc", chain.rpc, "--vault", vault, "--agent", agent]) == 0
    shown = capsys.readouterr().out
    assert f"agent {agent}: active" in shown
    assert "caps: 1000 TT per trade, 5000 TT per 24 h" in shown
    assert "balances: 2500 TT, 0 WETH, 0 TT" in shown


# --- the owner's calls ------------------------------------------------------------------


def test_deposit_and_withdraw_move_whole_token_amounts(
    chain: Chain, owner_key: Path, vault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    usd = chain.dex.usd
    held = balance(chain, usd, DEPLOYER.address)
    code, out, _ = run_json(
        capsys, *owner_call(chain, owner_key, vault, "deposit"), "--token", usd,
        "--amount", "1500.5",
    )  # fmt: skip
    assert code == 0
    assert out["amount"] == "1500.5" and out["units"] == 15005 * UNITS // 10
    assert out["events"] == [{"event": "Deposited", "token": usd, "amount": 15005 * UNITS // 10}]
    assert balance(chain, usd, vault) == 15005 * UNITS // 10
    assert balance(chain, usd, DEPLOYER.address) == held - 15005 * UNITS // 10

    code, out, _ = run_json(
        capsys, *owner_call(chain, owner_key, vault, "withdraw"), "--token", usd,
        "--amount", "0.5", "--to", OTHER.address,
    )  # fmt: skip
    assert code == 0
    assert out["events"] == [
        {"event": "Withdrawn", "token": usd, "to": OTHER.address, "amount": UNITS // 2}
    ]
    assert balance(chain, usd, vault) == 1500 * UNITS
    assert balance(chain, usd, OTHER.address) == UNITS // 2

    # Without --to, to the owner; the human form names the amount and the event.
    assert main([*owner_call(chain, owner_key, vault, "withdraw"), "--token", usd,
                 "--amount", "1000"]) == 0  # fmt: skip
    shown = capsys.readouterr().out
    assert shown.startswith(f"withdrew 1000 TT to {DEPLOYER.address} (tx 0x")
    assert "event Withdrawn(" in shown
    assert balance(chain, usd, vault) == 500 * UNITS


def test_deposit_and_withdraw_refuse_what_is_not_there(
    chain: Chain, owner_key: Path, vault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    weth = chain.dex.weth
    before = sent_by(chain, DEPLOYER.address)
    assert main([*owner_call(chain, owner_key, vault, "withdraw"), "--token", weth,
                 "--amount", "1"]) == 1  # fmt: skip
    assert "the vault holds 0 WETH, less than 1 WETH; nothing sent" in capsys.readouterr().err
    assert main([*owner_call(chain, owner_key, vault, "deposit"), "--token", weth,
                 "--amount", "1000000"]) == 1  # fmt: skip
    assert "less than 1000000 WETH; nothing sent" in capsys.readouterr().err
    for amount in ("0", "-1", "abc", "0.0000000000000000001", "NaN"):
        assert main([*owner_call(chain, owner_key, vault, "deposit"), "--token", weth,
                     "--amount", amount]) == 2, amount  # fmt: skip
        assert "--amount" in capsys.readouterr().err
    assert sent_by(chain, DEPLOYER.address) == before


def test_pause_and_unpause(
    chain: Chain, owner_key: Path, vault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    paused = Vault(chain.w3, vault).contract.functions.paused
    code, out, _ = run_json(capsys, *owner_call(chain, owner_key, vault, "pause"))
    assert code == 0 and paused().call()
    assert out["action"] == "pause" and out["events"] == [
        {"event": "Paused", "account": DEPLOYER.address}
    ]
    # The chain refuses a second pause, by the contract's own error: exit 1.
    code, out, err = run_json(capsys, *owner_call(chain, owner_key, vault, "pause"))
    assert code == 1 and "EnforcedPause()" in out["error"] and "EnforcedPause()" in err
    code, out, _ = run_json(capsys, *owner_call(chain, owner_key, vault, "unpause"))
    assert code == 0 and not paused().call()
    assert out["events"][0]["event"] == "Unpaused"


def test_observe_records_once_per_window_with_any_funded_key(
    chain: Chain, vault: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not the owner's key: anyone may record an observation (a keeper pays the gas).
    keeper = key_file(tmp_path, DEV_PRIVATE_KEYS[5])
    weth = chain.dex.weth
    argv = ["vault", "observe", "--rpc", chain.rpc, "--key", str(keeper), "--vault", vault,
            "--base", weth]  # fmt: skip
    contract = Vault(chain.w3, vault).contract
    code, out, _ = run_json(capsys, *argv)
    assert code == 0 and out["observations"][0]["base"] == weth
    newest = contract.functions.observations(weth).call()[1]
    assert out["observations"][0]["recorded"] == (
        newest == chain.w3.eth.get_block("latest")["timestamp"]
    )
    # Within a window of the newest: nothing recorded, and it says so.
    code, out, _ = run_json(capsys, *argv)
    assert code == 0 and out["observations"][0]["recorded"] is False
    assert contract.functions.observations(weth).call()[1] == newest
    chain.w3.provider.make_request("evm_increaseTime", [1800])  # type: ignore[arg-type]
    assert main(argv) == 0
    assert "observation recorded at" in capsys.readouterr().out
    assert contract.functions.observations(weth).call()[1] > newest
    # A token the vault does not trade: the contract's own error, exit 1.
    code, out, _ = run_json(capsys, *argv[:-1], DEPLOYER.address)
    assert code == 1 and "PathNotAllowed(" in out["error"]


def test_revoke_stops_an_agent_and_a_second_revoke_names_the_contract_error(
    chain: Chain, owner_key: Path, vault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = Vault(chain.w3, vault).contract
    agent = DEV_ACCOUNTS[4].address
    VaultOwner(Vault(chain.w3, vault), DEPLOYER).register(
        agent, 10 * UNITS, 20 * UNITS, b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    )
    assert contract.functions.agentOf(agent).call()[0]
    code, out, _ = run_json(capsys, *owner_call(chain, owner_key, vault, "revoke"),
                            "--agent", agent)  # fmt: skip
    assert code == 0 and out["events"] == [{"event": "AgentRevoked", "agent": agent}]
    assert not contract.functions.agentOf(agent).call()[0]
    assert main([*owner_call(chain, owner_key, vault, "revoke"), "--agent", agent]) == 1
    err = capsys.readouterr().err
    assert f"would revert: NotAgent({agent.lower()})" in err
    assert len(err.strip().splitlines()) == 1


def test_a_key_that_does_not_own_the_vault_sends_nothing(
    chain: Chain, vault: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = key_file(tmp_path, DEV_PRIVATE_KEYS[3])
    assert main(owner_call(chain, stranger, vault, "pause")) == 1
    assert f"{STRANGER.address} is not the vault's owner" in capsys.readouterr().err
    assert sent_by(chain, STRANGER.address) == 0


# --- bad input: key files, nodes, addresses ---------------------------------------------

SECRET = "5d" * 32  # a key whose digits must never show in any output


@pytest.mark.parametrize(
    ("content", "mode", "expected"),
    [
        (None, 0o600, "no such file"),
        (SECRET, 0o644, "chmod 600"),
        (SECRET, 0o640, "chmod 600"),
        (SECRET[:-2], 0o600, "64 hex digits"),
        (SECRET + "00", 0o600, "64 hex digits"),
        (SECRET[:-1] + "g", 0o600, "64 hex digits"),
        (f"0x{SECRET}\n0x{SECRET}", 0o600, "64 hex digits"),
        ("00" * 32, 0o600, "not a valid secp256k1 private key"),
        ("ff" * 32, 0o600, "not a valid secp256k1 private key"),
    ],
)
def test_a_bad_key_file_exits_2_without_showing_the_key(
    chain: Chain,
    vault: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    mode: int,
    expected: str,
) -> None:
    path = tmp_path / "owner.key"
    if content is not None:
        path.write_text(content)
        path.chmod(mode)
    code, out, err = run_json(capsys, *owner_call(chain, path, vault, "pause"))
    assert code == 2
    assert expected in err and expected in out["error"]
    assert len(err.strip().splitlines()) == 1
    assert SECRET[:16] not in err + json.dumps(out)


def test_bad_rpc_urls_and_a_node_that_is_down_exit_2(
    chain: Chain, vault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for url, expected in (
        ("notaurl", "--rpc: expected an http:// or https:// URL"),
        ("ftp://127.0.0.1:1", "--rpc: expected an http:// or https:// URL"),
        ("http://127.0.0.1:1/v3/SECRET-API-KEY", "cannot reach the chain at http://127.0.0.1:1"),
    ):
        code, out, err = run_json(capsys, "vault", "status", "--rpc", url, "--vault", vault)
        assert code == 2, url
        assert expected in err and len(err.strip().splitlines()) == 1
        assert "SECRET-API-KEY" not in err + json.dumps(out)


def test_an_address_that_holds_no_vault_exits_2(
    chain: Chain, owner_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for address, expected in (
        (OTHER.address, "no contract at"),
        (chain.dex.usd, "is not the committed GuardedVault's"),
        ("0xnot-an-address", "--vault: expected a 0x-prefixed"),
    ):
        assert main(["vault", "status", "--rpc", chain.rpc, "--vault", address]) == 2
        assert expected in capsys.readouterr().err
        assert main(owner_call(chain, owner_key, address, "pause")) == 2
        assert expected in capsys.readouterr().err


# --- register: a real simulated enclave behind a real host -------------------------------


@dataclass
class Agent:
    host: HostUnderTest
    world: EnclaveWorld
    vault: str  # the vault its config names
    config: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.host.running.port}"

    @property
    def root(self) -> Path:
        return self.world.sim_dir / "root.pem"


def agent_config(dex: Dex, owner_public_hex: str, vault: str, path: Path, **limits: Any) -> Path:
    """The enclave config of this deployment, naming `vault`, written by
    `devnet.enclave_config`."""
    enclave_config_toml(dex, owner_public_hex, path=path, vault=vault, **limits)
    return path


@pytest.fixture(scope="module")
def agent(chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    # A module fixture cannot use capsys: this vault is deployed with the owner's own handle.
    vault, _ = deploy_vault(chain.w3, DEPLOYER, chain.dex.usd, TwapSettings(1800, 7200, 300))
    world = EnclaveWorld(tmp_path_factory.mktemp("agent"))
    owner_hex = world.owner.verify_key.encode().hex()
    agent_config(chain.dex, owner_hex, vault.address, world.config_path)
    with running_host(world) as host:
        yield Agent(host, world, vault.address, world.config_path)


def register(
    chain: Chain, key: Path, agent: Agent, *argv: str, vault: str | None = None
) -> list[str]:
    return ["vault", "register", "--rpc", chain.rpc, "--key", str(key),
            "--vault", vault or agent.vault, "--config", str(agent.config), *argv]  # fmt: skip


def agent_record(chain: Chain, vault: str, address: str) -> tuple[Any, ...]:
    return tuple(Vault(chain.w3, vault).contract.functions.agentOf(address).call())


def attested(agent: Agent, tmp: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp / "attestation.json"
    argv = ["attest", "--host", agent.target, "--trust-root", str(agent.root), "--out", str(path)]
    assert main(argv) == 0
    capsys.readouterr()
    return path


def test_register_verifies_the_agent_then_registers_it_with_its_config(
    chain: Chain, owner_key: Path, agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(agent.config)
    code, out, err = run_json(
        capsys, *register(chain, owner_key, agent, "--host", agent.target,
                          "--trust-root", str(agent.root)),
    )  # fmt: skip
    assert code == 0, err
    address = out["agent"]
    names = {check["name"]: check["passed"] for check in out["checks"]}
    for name in ("report_data_binding", "config_hash", "vault_address", "owner", "chain_id",
                 "quote_token", "twap_settings", "caps"):  # fmt: skip
        assert names[name], name
    assert out["cap_per_trade"] == "1000" and out["cap_per_day"] == "5000"
    assert out["events"][0]["event"] == "AgentRegistered"
    active, per_trade, per_day, _seq, config_hash, measurement, quote = agent_record(
        chain, agent.vault, address
    )
    assert active and (per_trade, per_day) == (1000 * UNITS, 5000 * UNITS)
    assert config_hash == config.config_hash()
    assert "0x" + measurement.hex() == out["measurement"]
    assert "0x" + quote.hex() == out["quote_hash"]

    # From a saved attestation: the quote's hash is that file's quote's.
    saved = attested(agent, tmp_path, capsys)
    code, out, _ = run_json(
        capsys, *register(chain, owner_key, agent, "--attestation", str(saved),
                          "--trust-root", str(agent.root)),
    )  # fmt: skip
    assert code == 0
    quote_bytes = bytes.fromhex(json.loads(saved.read_text())["quote"])
    assert agent_record(chain, agent.vault, address)[6] == hashlib.sha256(quote_bytes).digest()

    # The human form: the verdict, the checks, the registration.
    assert main([*register(chain, owner_key, agent, "--attestation", str(saved),
                           "--trust-root", str(agent.root))]) == 0  # fmt: skip
    shown = capsys.readouterr().out
    assert shown.startswith("VALID (sim, quote v4)")
    assert f"registered agent {address} on {agent.vault}: caps 1000 USD per trade" in shown


def test_register_refuses_an_attestation_to_an_untrusted_root(
    chain: Chain, owner_key: Path, agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sent_by(chain, DEPLOYER.address)
    other_root = tmp_path / "other-sim"
    create_sim_pki(other_root)
    for roots in ([], ["--trust-root", str(other_root / "root.pem")]):
        code, out, err = run_json(
            capsys, *register(chain, owner_key, agent, "--host", agent.target, *roots)
        )
        assert code == 1
        assert out["registered"] is False and out["error"].startswith("pck_chain_root_pinned")
        assert err.startswith("error: refused, nothing sent: pck_chain_root_pinned")
    assert sent_by(chain, DEPLOYER.address) == before


def test_register_refuses_a_tampered_attestation_file(
    chain: Chain, owner_key: Path, agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = attested(agent, tmp_path, capsys)
    data = json.loads(saved.read_text())
    data["identity"]["address"] = STRANGER.address  # claim another key as the agent's
    saved.write_text(json.dumps(data))
    before = sent_by(chain, DEPLOYER.address)
    code, out, _ = run_json(
        capsys, *register(chain, owner_key, agent, "--attestation", str(saved),
                          "--trust-root", str(agent.root)),
    )  # fmt: skip
    assert code == 1 and out["error"].startswith("report_data_binding")
    assert not agent_record(chain, agent.vault, STRANGER.address)[0]
    assert sent_by(chain, DEPLOYER.address) == before
    saved.write_text("{not json")
    assert main(register(chain, owner_key, agent, "--attestation", str(saved))) == 2
    assert "cannot read the attestation file" in capsys.readouterr().err


def test_register_refuses_a_config_the_agent_does_not_run(
    chain: Chain, owner_key: Path, agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The same deployment with a higher daily cap: another config hash.
    owner_hex = agent.world.owner.verify_key.encode().hex()
    looser = agent_config(chain.dex, owner_hex, agent.vault, tmp_path / "enclave.toml",
                          max_notional_per_day_usd=50_000)  # fmt: skip
    before = sent_by(chain, DEPLOYER.address)
    argv = register(chain, owner_key, agent, "--host", agent.target, "--trust-root",
                    str(agent.root))  # fmt: skip
    argv[argv.index("--config") + 1] = str(looser)
    code, out, err = run_json(capsys, *argv)
    assert code == 1 and out["error"].startswith("config_hash: the agent attests config hash")
    assert "not the config the agent runs" in err
    assert sent_by(chain, DEPLOYER.address) == before


def test_register_refuses_a_config_that_names_another_vault(
    chain: Chain, owner_key: Path, agent: Agent, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = deploy(chain, owner_key, capsys)  # not the vault the agent's config names
    before = sent_by(chain, DEPLOYER.address)
    argv = register(chain, owner_key, agent, "--host", agent.target, "--trust-root",
                    str(agent.root), vault=elsewhere)  # fmt: skip
    code, out, _ = run_json(capsys, *argv)
    assert code == 1 and out["error"].startswith("vault_address: the config's [vault] is")
    assert sent_by(chain, DEPLOYER.address) == before


def test_register_refuses_a_key_that_does_not_own_the_vault(
    chain: Chain, agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = key_file(tmp_path, DEV_PRIVATE_KEYS[3])
    code, out, _ = run_json(
        capsys, *register(chain, stranger, agent, "--host", agent.target, "--trust-root",
                          str(agent.root)),
    )  # fmt: skip
    assert code == 1 and out["error"].startswith("owner: --key is")
    assert sent_by(chain, STRANGER.address) == 0


def test_register_refuses_unusable_input_with_exit_2(
    chain: Chain, owner_key: Path, agent: Agent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[chain]\nchain_id = 0\n")
    argv = register(chain, owner_key, agent, "--host", agent.target)
    argv[argv.index("--config") + 1] = str(broken)
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: --config:")
    assert main(register(chain, owner_key, agent, "--host", "127.0.0.1:1")) == 2
    assert "cannot reach the agent" in capsys.readouterr().err
    assert main(register(chain, owner_key, agent, "--host", agent.target,
                         "--policy", str(broken))) == 2  # fmt: skip
    # Neither or both of --host and --attestation: argparse's misuse.
    assert main(register(chain, owner_key, agent)) == 2
    capsys.readouterr()
