"""The CLI's JSON contract, on the installed console script in subprocesses: every command
with `--json` (and `enclave measure`, whose output is always JSON) prints exactly one JSON
object on one line on stdout, whether it succeeds (exit 0), a check fails (exit 1) or its
input cannot be used, an agent or node cannot be reached, or it is misused (exit 2; then the
object carries an `error` string, and stderr the message, never a traceback).

One world serves the module (`tests.cli_world`): anvil with Uniswap V2 and a GuardedVault,
and a real host with its simulated enclave. The cases that change nothing run at once,
three at a time; each that sends a transaction or an owner command runs alone, between an
anvil snapshot and its revert. `status`, `vault status`, `backtest` and `enclave measure`
check nothing, so they have no exit-1 case. What each JSON must say: `tests.cli_json_checks`.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from tests.needs_anvil import skip_without_anvil

skip_without_anvil()

from tests import cli_json_checks as checks  # noqa: E402
from tests.cli_json_checks import TDX, Check, entry, refused, sent  # noqa: E402
from tests.cli_world import (  # noqa: E402
    Given,
    ReplayFiles,
    World,
    cli_world,
    expand,
    replay_files,
    tee_agent,
)
from tests.enclave_harness import config_toml  # noqa: E402
from tests.manifest import VECTORS_DIR  # noqa: E402
from tests.vault_harness import fresh  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NITRO_INVALID = "nitro-eternis-invalid-1.cbor"
# Words the templates use beside the world's (`Given.values`).
CONSTANTS = {
    "tdx": str(VECTORS_DIR / TDX),
    "tdx_collateral": str(VECTORS_DIR / "collateral-phala-tdx-b0c06f000000.json"),
    "nitro": str(VECTORS_DIR / NITRO_INVALID),
    "nitro_at": entry(NITRO_INVALID)["expected"]["verify_at"],
    "manifest": str(VECTORS_DIR / "MANIFEST.json"),
    "candles": str(REPO / "data" / "market" / "eth-usdt-binance-1h-2022-2023.csv"),
    # The agent's own TDX events alone: they do not replay to any real quote's RTMRs.
    "agent_events": str(REPO / "tests" / "vectors" / "event-log" / "tee-agent-tdx-events.json"),
}


@dataclass(frozen=True)
class Case:
    """A command line (a template: `tests.cli_world.expand`), its exit code and its check."""

    command: str
    outcome: str  # ok, check_failed, bad_input, unreachable or misuse
    template: str
    code: int
    check: Check | None = None
    error: str = ""  # what an exit-2 case's `error` says
    sends: bool = False  # changes the chain or the agent: run alone, between snapshots
    before: Callable[[World], object] | None = None  # run first, inside that snapshot
    replay: bool = False  # needs the replay files (and llama-cpp-python)
    json_flag: bool = True  # `enclave measure` always prints JSON, and takes no --json
    id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"{self.command.replace(' ', '_')}-{self.outcome}")

    def argv(self, given: Given) -> list[str]:
        flag = ["--json"] if self.json_flag else []
        return [*expand(self.template, {**given.values(), **CONSTANTS}), *flag]


# fmt: off
CASES = [
    Case("status", "ok", "status --host {target}", 0, checks.status_ok),
    Case("status", "unreachable", "status --host {down}", 2, error="cannot reach the agent"),
    Case("receipts", "ok", "receipts --host {target}", 0, checks.receipts_ok),
    Case("receipts", "out", "receipts --host {target} --out {tmp}/receipts.json", 0,
         checks.receipts_written),
    # A host that relays the receipts with their signatures cut short.
    Case("receipts", "check_failed", "receipts --host {relay}", 1,
         refused("the agent sent a malformed receipt: receipt seq 1: signature")),
    Case("receipts", "bad_input", "receipts --host {target} --limit 0", 2,
         error="--limit must be at least 1"),
    Case("receipts", "unreachable", "receipts --host {down}", 2, error="cannot reach the agent"),
    Case("attest", "ok", "attest --host {target} --trust-root {root}", 0, checks.attest_ok),
    Case("attest", "out", "attest --host {target} --trust-root {root} --out "
         "{tmp}/attestation.json", 0, checks.attest_written),
    Case("attest", "check_failed", "attest --host {target}", 1, checks.attest_untrusted),
    # A host that flips one bit of an event in the log it relays with the quote.
    Case("attest", "event_log_tampered", "attest --host {tampered} --trust-root {root}", 1,
         checks.attest_event_log_tampered),
    Case("attest", "bad_input", "attest --host {target} --nonce ab", 2,
         error="--nonce: expected 32 bytes"),
    Case("owner pause", "ok", "owner pause {agent} --trust-root {root}", 0,
         checks.owner_applied("pause"), sends=True),
    Case("owner resume", "ok", "owner resume {agent} --trust-root {root}", 0,
         checks.owner_applied("resume"), sends=True),
    Case("owner pause", "check_failed", "owner pause {agent}", 1, checks.owner_refused),
    Case("owner pause", "bad_input", "owner pause {agent} --key {tmp}/none", 2,
         error="--key {tmp}/none: no such file"),
    Case("verify quote", "ok", "verify quote {tdx} --collateral {tdx_collateral} "
         "--at 2025-07-01T00:00:00Z", 0, checks.quote_ok),
    Case("verify quote", "check_failed", "verify quote {nitro} --at {nitro_at}", 1,
         checks.quote_invalid),
    Case("verify quote", "bad_input", "verify quote {manifest}", 2,
         error="unrecognized evidence"),
    Case("verify quote", "event_log_mismatch", "verify quote {tdx} --collateral {tdx_collateral} "
         "--at 2025-07-01T00:00:00Z --event-log {agent_events}", 1, checks.event_log_mismatch),
    Case("verify quote", "event_log_missing", "verify quote {tdx} --event-log {tmp}/none.json",
         2, error="cannot read event log file {tmp}/none.json"),
    Case("verify quote", "event_log_garbage", "verify quote {tdx} --event-log {candles}", 2,
         error="start neither dstack's JSON form"),
    Case("verify quote", "event_log_not_a_log", "verify quote {tdx} --event-log {manifest}", 2,
         error="expected a JSON array of events"),
    Case("verify agent", "ok", "verify agent --rpc {rpc} --host {target} --trust-root {root}",
         0, checks.agent_ok),
    # The agent attests, but the vault it is audited against has another agent active.
    Case("verify agent", "check_failed", "verify agent --rpc {rpc} --host {target} "
         "--trust-root {root} --vault {vault}", 1, checks.agent_not_in_vault),
    Case("verify agent", "event_log_tampered", "verify agent --rpc {rpc} --host {tampered} "
         "--trust-root {root}", 1, checks.agent_event_log_tampered),
    Case("verify agent", "unreachable", "verify agent --rpc {down_rpc} --host {target}", 2,
         error="cannot reach the chain"),
    Case("replay-decision", "ok", "replay-decision {receipt} --config {llm_config} "
         "--model {model}", 0, checks.replay_ok, replay=True),
    # The receipt claims a decision the model does not make (its decision hash made to match).
    Case("replay-decision", "check_failed", "replay-decision {forged} --config {llm_config} "
         "--model {model}", 1, checks.replay_mismatch, replay=True),
    Case("replay-decision", "bad_input", "replay-decision {llm_config} --config {llm_config} "
         "--model {model}", 2, error="cannot read receipt file", replay=True),
    Case("replay-decision", "misuse", "replay-decision {config}", 2,
         error="tee-agent replay-decision: the following arguments are required: --config"),
    Case("enclave measure", "ok", "enclave measure --config {config}", 0, checks.measured,
         json_flag=False),
    Case("enclave measure", "bad_input", "enclave measure --config {tmp}/none.toml", 2,
         error="cannot read config", json_flag=False),
    Case("vault deploy", "ok", "vault deploy --rpc {rpc} --key {owner_key} --quote-token {usd} "
         "--router {router} --market {weth}={eth_pair}", 0, checks.deployed, sends=True),
    # A market whose pair does not hold the base: the chain refuses, by the contract's error.
    Case("vault deploy", "check_failed", "vault deploy --rpc {rpc} --key {owner_key} "
         "--quote-token {usd} --market {weth}={btc_pair}", 1,
         refused("would revert: InvalidArgument(pair tokens)"), sends=True),
    Case("vault deploy", "bad_input", "vault deploy --rpc {rpc} --key {owner_key} "
         "--quote-token 0x1234", 2, error="--quote-token: expected a 0x-prefixed"),
    Case("vault register", "ok", "vault register {owner} --config {config} --host {target} "
         "--trust-root {root}", 0, checks.registered, sends=True),
    Case("vault register", "check_failed", "vault register {owner} --config {config} "
         "--host {target}", 1, checks.not_registered),
    Case("vault register", "unreachable", "vault register {owner} --config {config} "
         "--host {down}", 2, error="cannot reach the agent"),
    Case("vault revoke", "ok", "vault revoke {owner} --agent {registered}", 0,
         sent("revoke", "AgentRevoked", agent="registered"), sends=True),
    Case("vault revoke", "check_failed", "vault revoke {owner} --agent {stranger}", 1,
         refused("would revert: NotAgent(0x")),
    Case("vault revoke", "bad_input", "vault revoke {owner} --agent 0x12", 2,
         error="--agent: expected a 0x-prefixed"),
    Case("vault deposit", "ok", "vault deposit {owner} --token {usd} --amount 1.5", 0,
         sent("deposit", "Deposited", token="usd", amount=15 * 10**17), sends=True),
    Case("vault deposit", "check_failed", "vault deposit {owner} --token {weth} "
         "--amount 1000000", 1, refused("less than 1000000 WETH; nothing sent")),
    Case("vault deposit", "bad_input", "vault deposit {owner} --token {usd} --amount lots", 2,
         error="--amount: expected a decimal number"),
    Case("vault withdraw", "ok", "vault withdraw {owner} --token {usd} --amount 100 "
         "--to {other}", 0, sent("withdraw", "Withdrawn", to="other", amount=100 * 10**18),
         sends=True),
    Case("vault withdraw", "check_failed", "vault withdraw {owner} --token {weth} --amount 1",
         1, refused("the vault holds 0 WETH, less than 1 WETH; nothing sent")),
    Case("vault withdraw", "bad_input", "vault withdraw {owner} --token {usd} --amount 1 "
         "--to nobody", 2, error="--to: expected a 0x-prefixed"),
    Case("vault pause", "ok", "vault pause {owner}", 0,
         sent("pause", "Paused", account="deployer"), sends=True),
    Case("vault pause", "check_failed", "vault pause --rpc {rpc} --vault {vault} "
         "--key {stranger_key}", 1, refused("is not the vault's owner")),
    Case("vault pause", "unreachable", "vault pause --rpc {down_rpc} --vault {vault} "
         "--key {owner_key}", 2, error="cannot reach the chain"),
    Case("vault pause", "misuse", "vault pause --rpc {rpc}", 2,
         error="tee-agent vault pause: the following arguments are required: --vault, --key"),
    Case("vault unpause", "ok", "vault unpause {owner}", 0,
         sent("unpause", "Unpaused", account="deployer"), sends=True,
         before=lambda world: world.owner.pause()),
    Case("vault unpause", "check_failed", "vault unpause {owner}", 1,
         refused("would revert: ExpectedPause()")),
    Case("vault unpause", "bad_input", "vault unpause --rpc {rpc} --vault {vault} "
         "--key {loose_key}", 2, error="chmod 600"),
    Case("vault observe", "ok", "vault observe {owner} --base {weth}", 0, checks.observed,
         sends=True),
    Case("vault observe", "check_failed", "vault observe {owner} --base {deployer}", 1,
         refused("PathNotAllowed(")),
    Case("vault observe", "bad_input", "vault observe {owner} --base 0x12", 2,
         error="--base: expected a 0x-prefixed"),
    Case("vault status", "ok", "vault status --rpc {rpc} --vault {vault} --agent {registered}",
         0, checks.vault_status_ok),
    Case("vault status", "bad_input", "vault status --rpc {rpc} --vault {other}", 2,
         error="no contract at"),
    Case("backtest", "ok", "backtest --candles {candles} --start 2022-01-01 --end 2022-01-04",
         0, checks.backtested),
    Case("backtest", "bad_input", "backtest --candles {tmp}/none.csv", 2, error="cannot read"),
    Case("init", "ok", "init --dir {tmp}/agent", 0, checks.initialized),
    Case("init", "check_failed", "init --dir {agent_root}", 1,
         refused("already exist; pass --force")),
    Case("init", "misuse", "init --dir", 2, error="--dir: expected one argument"),
]
# fmt: on

Ran = tuple[subprocess.CompletedProcess[str], Given]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with cli_world(tmp_path_factory.mktemp("cli-json")) as built:
        yield built


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> ReplayFiles:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed")
    return replay_files(tmp_path_factory.mktemp("replay"), tiny_model)


@pytest.fixture(scope="module")
def batch(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    """Every case that changes nothing, run at once, three at a time, each with a directory
    of its own: what each printed, and the agent's status after them all."""
    root = tmp_path_factory.mktemp("batch")
    cases = [case for case in CASES if not (case.sends or case.replay)]
    givens = [Given(world, root / case.id) for case in cases]
    for given in givens:
        given.tmp.mkdir()
    with fresh(world.w3):
        before = world.status()
        with ThreadPoolExecutor(max_workers=3) as pool:
            done = list(pool.map(lambda c, g: tee_agent(*c.argv(g), cwd=world.cwd), cases, givens))
        after = world.status()
    # Nothing in the batch changed the agent: the checks compare with this status.
    assert (after.receipts, after.head_hash, after.paused) == (
        before.receipts, before.head_hash, before.paused,
    )  # fmt: skip
    return {
        case.id: (ran, dataclasses.replace(given, status=after))
        for case, ran, given in zip(cases, done, givens, strict=True)
    }


def check_output(case: Case, done: subprocess.CompletedProcess[str], given: Given) -> None:
    """The exit code, one JSON object on one line, the error where it failed, the check."""
    assert "Traceback" not in done.stderr
    assert done.returncode == case.code, done.stderr
    [line] = done.stdout.splitlines()  # exactly one line
    out = json.loads(line)
    assert isinstance(out, dict)
    if case.code == 2:
        words = {k: v for k, v in given.values().items() if isinstance(v, str)}
        assert case.error and case.error.format_map(words) in out["error"], out
        lines = done.stderr.strip().splitlines()
        if case.outcome == "misuse":  # argparse's usage, then `PROG: error: MESSAGE`
            assert lines[0].startswith("usage: "), lines
            assert lines[-1] == out["error"].replace(": ", ": error: ", 1), lines
        else:
            assert len(lines) == 1 and out["error"] in lines[0], lines
    if case.check is not None:
        case.check(out, given)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_command_prints_one_json_object_and_exits_as_documented(
    world: World, case: Case, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if not (case.sends or case.replay):
        check_output(case, *request.getfixturevalue("batch")[case.id])
        return
    replay = request.getfixturevalue("replay") if case.replay else None
    with fresh(world.w3):  # the checks read the chain the command left
        if case.before is not None:
            case.before(world)
        done = tee_agent(*case.argv(Given(world, tmp_path, replay=replay)), cwd=world.cwd)
        check_output(case, done, Given(world, tmp_path, world.status(), replay))


def test_every_command_with_json_has_a_case_of_each_exit_code() -> None:
    from host.cli.parser import build_parser, subcommands

    with_json = {
        parser.prog.removeprefix("tee-agent ")
        for parser in subcommands(build_parser())
        if "--json" in parser._option_string_actions
    }
    covered: dict[str, set[int]] = {}
    for case in CASES:  # `owner pause` and `owner resume` are the one command `owner`
        command = "owner" if case.command.startswith("owner ") else case.command
        covered.setdefault(command, set()).add(case.code)
    assert set(covered) == with_json | {"replay-decision", "enclave measure"}
    checking_nothing = {"status", "vault status", "backtest", "enclave measure"}
    for command, codes in covered.items():
        assert codes == ({0, 2} if command in checking_nothing else {0, 1, 2}), command


def test_sim_init_and_sim_quote_make_a_quote_that_verifies_to_the_named_root(
    tmp_path: Path,
) -> None:
    # Neither takes --json: `sim init` prints text, `sim quote` the quote as one line of hex.
    platform, config = tmp_path / "sim", tmp_path / "enclave.toml"
    config.write_text(config_toml(SigningKey.generate().verify_key.encode().hex()))
    done = tee_agent("sim", "init", "--dir", str(platform), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"pass to verifiers by name: {platform / 'root.pem'}" in done.stdout
    again = tee_agent("sim", "init", "--dir", str(platform), cwd=tmp_path)
    assert (again.returncode, again.stdout) == (1, "")
    assert "already holds a simulated platform" in again.stderr

    report_data = bytes(range(64)).hex()
    log = tmp_path / "event-log.json"
    made = tee_agent("sim", "quote", "--dir", str(platform), "--report-data", report_data,
                     "--config", str(config), "--event-log-out", str(log), cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    [line] = made.stdout.splitlines()
    quote = tmp_path / "quote.hex"
    quote.write_text(line)
    checked = tee_agent("verify", "quote", str(quote), "--trust-root", str(platform / "root.pem"),
                        "--event-log", str(log), "--json", cwd=tmp_path)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["valid"] is True and report["tee"] == "sim"
    assert report["event_log"]["verified"] is True
    # One byte of the config-hash event's payload flipped: its digest no longer follows.
    events = json.loads(log.read_text())
    events[0]["event_payload"] = ("01" if events[0]["event_payload"][:2] != "01" else "02") + (
        events[0]["event_payload"][2:]
    )
    log.write_text(json.dumps(events))
    flipped = tee_agent("verify", "quote", str(quote), "--trust-root", str(platform / "root.pem"),
                        "--event-log", str(log), "--json", cwd=tmp_path)  # fmt: skip
    assert flipped.returncode == 1 and len(flipped.stdout.splitlines()) == 1
    assert json.loads(flipped.stdout)["error"].startswith("event_log_digests")
    assert report["report_data"] == report_data
    # The measurement `enclave measure` says a verifier should expect for this config.
    measure = tee_agent("enclave", "measure", "--config", str(config), cwd=tmp_path)
    expected = json.loads(measure.stdout)
    for register in ("mr_td", "rtmr0", "rtmr1"):
        assert report["measurements"][register] == expected[register], register

    bad = tee_agent("sim", "quote", "--dir", str(platform), "--report-data", "zz", cwd=tmp_path)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.strip() == (
        "error: --report-data: expected 64 bytes as 128 hex digits, found 'zz'"
    )
