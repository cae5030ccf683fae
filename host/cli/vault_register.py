"""`tee-agent vault register`: verify an agent's attestation, then register it on the vault.

    tee-agent vault register --rpc URL --key FILE --vault ADDR --config enclave.toml
                             (--host HOST:PORT [--tls-ca PEM] | --attestation FILE)
                             [--trust-root PEM]... [--policy FILE] [--at RFC3339] [--json]

Nothing is sent until every check holds; they run in stages, each only when the one before
holds:
1. the attestation, exactly as `tee-agent attest` verifies it (`host.cli.agent_attestation`):
   the quote to a trusted root, the policy, the report_data binding of the agent's identity;
2. `config_hash`: the attested config hash is the SHA-256 config hash of --config;
3. `vault_address`: that config's [vault] names this vault;
4. on chain: `owner` (the key owns the vault), `chain_id` (the config's chain is the node's),
   `quote_token` (the config's pairs share one quote token, the vault's, with the decimals
   the config gives it), `twap_settings` (the vault's TWAP settings are the config's) and
   `caps` (the guardrails' notional limits in the quote token's smallest units fit the vault).
Then the attested address is registered with those caps, the config hash, the digest of the
quote's measurement registers and the quote's SHA-256. A failed check: exit 1, nothing sent.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from eth_utils import to_checksum_address

from attestation.binding import NONCE_SIZE, AgentAttestation
from attestation.report import CheckList
from enclave.config import ConfigError, EnclaveConfig, load_config
from host.chain.transact import units
from host.chain.vault import VaultState
from host.chain.vault_owner import VaultOwner, measurement_digest, quote_hash
from host.cli.agent_attestation import (
    AttestationVerdict,
    fetch_attestation,
    read_attestation,
    trust_settings,
    verify_attestation,
)
from host.cli.outcome import EXIT_CHECK_FAILED, EXIT_OK, UsageError, print_json
from host.cli.summary import report_summary
from host.cli.vault_chain import (
    connect,
    describe_event,
    open_vault,
    parse_address,
    print_result,
    run_on_chain,
    token,
    transaction,
    vault_events,
    whole,
)
from host.cli.vault_key import load_owner_key

# The vault keeps caps as uint128 (GuardedVault.Agent).
_MAX_CAP = 2**128 - 1


class RegisterCheck(StrEnum):
    """The checks `vault register` makes beyond the attestation's own."""

    CONFIG_HASH = "config_hash"
    VAULT_ADDRESS = "vault_address"
    OWNER = "owner"
    CHAIN_ID = "chain_id"
    QUOTE_TOKEN = "quote_token"  # noqa: S105 (a check name, not a secret)
    TWAP_SETTINGS = "twap_settings"
    CAPS = "caps"


@dataclass(frozen=True)
class _Caps:
    per_trade: int
    per_day: int
    decimals: int
    symbol: str


def run(args: argparse.Namespace) -> int:
    """Carry out `vault register`; print the checks and the registration; return the exit code."""
    return run_on_chain(args, _register)


def _register(args: argparse.Namespace) -> int:
    vault_address = parse_address(args.vault, "--vault")
    trust = trust_settings(args)
    config = _config(args.config)
    account = load_owner_key(args.key)
    attestation = (
        read_attestation(args.attestation)
        if args.attestation is not None
        else fetch_attestation(args, os.urandom(NONCE_SIZE))
    )
    verdict = verify_attestation(attestation, trust)
    checks = _attestation_checks(verdict)
    # Each stage only once the one before holds: --config is compared with what the agent
    # attests only once the attestation holds, and the chain is asked only once --config
    # is known to be the agent's.
    if not checks.all_passed or not _check_config(checks, attestation, config, vault_address):
        return _refuse(args, checks, verdict)

    w3 = connect(args.rpc)
    vault = open_vault(w3, vault_address)
    state = vault.state()
    checks.add(
        RegisterCheck.OWNER,
        state.owner == account.address,
        f"--key is the vault's owner {state.owner}"
        if state.owner == account.address
        else f"--key is {account.address}, the vault's owner is {state.owner}",
    )
    chain_id = w3.eth.chain_id
    checks.add(
        RegisterCheck.CHAIN_ID,
        chain_id == config.chain.chain_id,
        f"the config's chain is {config.chain.chain_id}, the node's is {chain_id}",
    )
    caps = _check_quote_token(checks, config, state, token(w3, state.quote_token).decimals)
    _check_twap(checks, config, state)
    if caps is None or not checks.all_passed:
        return _refuse(args, checks, verdict)

    agent = to_checksum_address(attestation.identity.address)
    receipt = VaultOwner(vault, account).register(
        agent,
        caps.per_trade,
        caps.per_day,
        attestation.identity.config_hash,
        measurement_digest(verdict.report),
        quote_hash(attestation),
    )
    events = vault_events(vault, receipt)
    result: dict[str, object] = {
        "registered": True,
        "vault": vault.address,
        "agent": agent,
        "config_hash": "0x" + attestation.identity.config_hash.hex(),
        "measurement": "0x" + measurement_digest(verdict.report).hex(),
        "quote_hash": "0x" + quote_hash(attestation).hex(),
        "cap_per_trade": whole(caps.per_trade, caps.decimals),
        "cap_per_trade_units": caps.per_trade,
        "cap_per_day": whole(caps.per_day, caps.decimals),
        "cap_per_day_units": caps.per_day,
        **transaction(receipt),
        "events": events,
        "checks": [check.model_dump() for check in checks.items],
        "error": None,
    }
    lines = [
        report_summary(verdict.report),
        *_check_lines(checks, verdict),
        f"registered agent {agent} on {vault.address}: caps "
        f"{result['cap_per_trade']} {caps.symbol} per trade, {result['cap_per_day']} "
        f"{caps.symbol} per 24 h (tx {result['tx']}, block {result['block']})",
        *(f"  event {describe_event(event)}" for event in events),
    ]
    print_result(args, result, lines)
    return EXIT_OK


def _config(path: Path) -> EnclaveConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError(f"--config: {exc}") from None


def _attestation_checks(verdict: AttestationVerdict) -> CheckList:
    """The quote's checks (verification, then the policy's) and the binding, as one list."""
    checks = CheckList()
    for check in verdict.report.checks:
        checks.append(check)
    checks.append(verdict.binding)
    if not verdict.accepted and checks.all_passed:  # a verdict with no failed check to name
        checks.add("attestation", False, verdict.report.error or "the quote is not valid")
    return checks


def _check_config(
    checks: CheckList, attestation: AgentAttestation, config: EnclaveConfig, vault: str
) -> bool:
    """Check that --config is the attested config and names this vault; whether both hold."""
    attested, given = attestation.identity.config_hash, config.config_hash()
    if not checks.add(
        RegisterCheck.CONFIG_HASH,
        attested == given,
        f"the agent attests config hash 0x{attested.hex()}, the hash of --config"
        if attested == given
        else f"the agent attests config hash 0x{attested.hex()}, --config hashes to "
        f"0x{given.hex()}: not the config the agent runs",
    ):
        return False
    named = to_checksum_address(config.vault.address)
    return checks.add(
        RegisterCheck.VAULT_ADDRESS,
        named == vault,
        f"the config's [vault] is {named}"
        + ("" if named == vault else f", not --vault {vault}: the agent trades elsewhere"),
    )


def _check_quote_token(
    checks: CheckList, config: EnclaveConfig, state: VaultState, decimals: int
) -> _Caps | None:
    """Check the quote token; the caps in its smallest units when it and they fit."""
    symbols = sorted({pair.quote for pair in config.pairs})
    if len(symbols) != 1:
        checks.add(
            RegisterCheck.QUOTE_TOKEN,
            False,
            f"the config's pairs are priced in {', '.join(symbols)}: the vault counts caps "
            "in one quote token",
        )
        return None
    symbol = symbols[0]
    configured = config.tokens[symbol]
    problems = []
    if configured.address != state.quote_token:
        problems.append(f"is {configured.address}, the vault's is {state.quote_token}")
    if configured.decimals != decimals:
        problems.append(f"has {configured.decimals} decimals in the config, {decimals} on chain")
    checks.add(
        RegisterCheck.QUOTE_TOKEN,
        not problems,
        f"the config's quote token {symbol} "
        + ("; ".join(problems) if problems else f"is the vault's {state.quote_token}"),
    )
    rails = config.guardrails
    per_trade = units(rails.max_notional_per_trade_usd, decimals)
    per_day = units(rails.max_notional_per_day_usd, decimals)
    fits = all(1 <= cap <= _MAX_CAP for cap in (per_trade, per_day))
    checks.add(
        RegisterCheck.CAPS,
        fits,
        f"{rails.max_notional_per_trade_usd} {symbol} per trade, "
        f"{rails.max_notional_per_day_usd} {symbol} per 24 h: {per_trade} and {per_day} units"
        + ("" if fits else ", outside 1 to 2**128 - 1"),
    )
    return _Caps(per_trade, per_day, decimals, symbol) if fits else None


def _check_twap(checks: CheckList, config: EnclaveConfig, state: VaultState) -> None:
    settings = config.vault
    configured = (
        settings.twap_window_seconds,
        settings.twap_max_age_seconds,
        settings.max_twap_deviation_bps,
    )
    on_chain = (state.twap_window, state.twap_max_age, state.max_deviation_bps)
    checks.add(
        RegisterCheck.TWAP_SETTINGS,
        configured == on_chain,
        f"window, max age, max deviation: {_twap(configured)} in the config"
        + ("" if configured == on_chain else f", {_twap(on_chain)} on the vault"),
    )


def _twap(settings: tuple[int, int, int]) -> str:
    window, max_age, deviation = settings
    return f"{window} s, {max_age} s, {deviation} bps"


def _check_lines(checks: CheckList, verdict: AttestationVerdict) -> list[str]:
    """The binding and this command's checks (the quote's own are in the report summary)."""
    own = [c for c in checks.items if c not in verdict.report.checks]
    return [f"  {'ok  ' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in own]


def _refuse(args: argparse.Namespace, checks: CheckList, verdict: AttestationVerdict) -> int:
    """Say which check failed; nothing was sent."""
    failure = checks.first_failure()
    print(f"error: refused, nothing sent: {failure}", file=sys.stderr)
    if args.json:
        out = {"registered": False, "agent": verdict.attestation.identity.address,
               "checks": [check.model_dump() for check in checks.items], "error": failure}  # fmt: skip
        print_json(out)
    else:
        print(report_summary(verdict.report))
        print("\n".join(_check_lines(checks, verdict)))
    return EXIT_CHECK_FAILED
