"""Validation of a verified event log: the caller's `[event_log]` rules on its events.

`attestation.event_log` says whether the log holds (digests, replay to the quote's RTMRs);
these checks say whether what it records is acceptable: dstack's compose hash, and the
agent's own measurement events, whose register layout depends on the platform:

| platform | event | register | event type |
| --- | --- | --- | --- |
| tdx | `tee-agent.config-hash`, then `tee-agent.model-hash` | RTMR3 | 0x08000001 (dstack runtime) |
| sim | `tee-agent.config-hash` | RTMR0 | 0x08000002 (raw digest) |
| sim | `tee-agent.model-hash` | RTMR1 | 0x08000002 (raw digest) |

The model-hash event is absent when the agent runs without a model.
"""

from __future__ import annotations

from attestation.binding import EnclaveIdentity
from attestation.checks import CheckName
from attestation.formats.event_log import DSTACK_RUNTIME_EVENT_TYPE, RAW_DIGEST_EVENT_TYPE
from attestation.policy_schema import EventLogRule
from attestation.report import Check, LoggedEventView, VerificationReport

# dstack-util system_setup.rs: emit_runtime_event("compose-hash", ...), into RTMR3.
COMPOSE_HASH_EVENT = "compose-hash"
DSTACK_APP_RTMR = 3
# The agent's own events (the measurement contract in docs/enclave.md, "Event logs").
CONFIG_HASH_EVENT = "tee-agent.config-hash"
MODEL_HASH_EVENT = "tee-agent.model-hash"
# Where each platform records the agent's events: event name -> (imr, event type).
AGENT_EVENT_LAYOUT = {
    "tdx": {
        CONFIG_HASH_EVENT: (DSTACK_APP_RTMR, DSTACK_RUNTIME_EVENT_TYPE),
        MODEL_HASH_EVENT: (DSTACK_APP_RTMR, DSTACK_RUNTIME_EVENT_TYPE),
    },
    "sim": {
        CONFIG_HASH_EVENT: (0, RAW_DIGEST_EVENT_TYPE),
        MODEL_HASH_EVENT: (1, RAW_DIGEST_EVENT_TYPE),
    },
}


def event_log_policy_checks(report: VerificationReport, rule: EventLogRule) -> list[Check]:
    """`policy_event_log`, then `policy_compose_hash` and `policy_agent_events` when the
    rule pins a compose hash or a config hash."""
    section = report.event_log
    if section is None:
        present = Check(
            name=CheckName.POLICY_EVENT_LOG,
            passed=False,
            detail="the policy has [event_log] rules, but no event log came with the "
            "evidence: give `verify quote` one with --event-log FILE; an agent serves its own "
            "with its attestation, and an empty one (SGX, or a host that withheld it) "
            "satisfies no rule",
        )
    else:
        present = Check(
            name=CheckName.POLICY_EVENT_LOG,
            passed=section.verified,
            detail="the event log verified against the quote's RTMRs"
            if section.verified
            else "the event log did not verify (see event_log_digests, event_log_replay), "
            "so no rule accepts its events",
        )
    checks = [present]
    events = [] if section is None else section.events
    if rule.compose_hash is not None:
        checks.append(_compose_hash_check(events, rule.compose_hash))
    if rule.config_hash is not None:
        checks.append(_agent_events_check(report.tee, events, rule))
    return checks


def identity_events_check(report: VerificationReport, identity: EnclaveIdentity) -> Check:
    """`event_log_binds_identity`: the verified log's `tee-agent.config-hash` event holds the
    config hash that the quote's report_data binds for `identity` (its first 32 bytes are
    SHA-256(tag, address, X25519 key, config hash): `attestation.binding`).

    For a verifier that knows the agent's identity (`tee-agent verify agent`, an SDK): the
    log then says which config the attested keys run, without pinning it in a policy.
    """
    name = CheckName.EVENT_LOG_BINDS_IDENTITY
    section = report.event_log
    if section is None or not section.verified:
        return Check(name=name, passed=False, detail="no verified event log to compare")
    bound = identity.identity_digest().hex()
    if report.report_data.lower()[: 2 * len(identity.identity_digest())] != bound:
        return Check(
            name=name,
            passed=False,
            detail=f"report_data does not bind this identity (expected {bound} first)",
        )
    rule = EventLogRule(config_hash=identity.config_hash.hex())
    model = [e.payload for e in section.events if e.event == MODEL_HASH_EVENT]
    if len(model) == 1:
        rule = EventLogRule(config_hash=rule.config_hash, model_hash=model[0])
    problem = _agent_events_problem(report.tee, section.events, rule)
    if problem is not None:
        return Check(name=name, passed=False, detail=problem)
    return Check(
        name=name,
        passed=True,
        detail=f"the event log records config hash {rule.config_hash}, the one report_data "
        "binds with the agent's address and X25519 key",
    )


def compose_hashes(events: list[LoggedEventView]) -> list[str]:
    """The payloads (hex) of dstack's compose-hash runtime events in RTMR3, in log order."""
    return [
        e.payload
        for e in events
        if e.event == COMPOSE_HASH_EVENT
        and e.imr == DSTACK_APP_RTMR
        and e.event_type == DSTACK_RUNTIME_EVENT_TYPE
    ]


def _compose_hash_check(events: list[LoggedEventView], expected: str) -> Check:
    found = compose_hashes(events)
    if len(found) != 1:
        return Check(
            name=CheckName.POLICY_COMPOSE_HASH,
            passed=False,
            detail=f"expected one {COMPOSE_HASH_EVENT} runtime event in RTMR3 holding "
            f"{expected}, found {len(found)}" + (f": {', '.join(found)}" if found else ""),
        )
    passed = found[0] == expected
    return Check(
        name=CheckName.POLICY_COMPOSE_HASH,
        passed=passed,
        detail=f"{COMPOSE_HASH_EVENT} is {expected}"
        if passed
        else f"{COMPOSE_HASH_EVENT} expected {expected}, found {found[0]}",
    )


def _agent_events_check(tee: str, events: list[LoggedEventView], rule: EventLogRule) -> Check:
    problem = _agent_events_problem(tee, events, rule)
    if problem is not None:
        return Check(name=CheckName.POLICY_AGENT_EVENTS, passed=False, detail=problem)
    model = f"model hash {rule.model_hash}" if rule.model_hash else "no model"
    return Check(
        name=CheckName.POLICY_AGENT_EVENTS,
        passed=True,
        detail=f"the agent's events record config hash {rule.config_hash} and {model}",
    )


def _agent_events_problem(
    tee: str, events: list[LoggedEventView], rule: EventLogRule
) -> str | None:
    layout = AGENT_EVENT_LAYOUT.get(tee)
    if layout is None:
        return f"a {tee} report has no agent events: they are recorded on tdx and sim only"
    found: dict[str, list[tuple[int, LoggedEventView]]] = {name: [] for name in layout}
    for position, event in enumerate(events):
        if event.event in layout:
            imr, event_type = layout[event.event]
            if (event.imr, event.event_type) != (imr, event_type):
                return (
                    f"{event.event} expected in rtmr{imr} as type {event_type:#x} on {tee}, "
                    f"found in rtmr{event.imr} as type {event.event_type:#x}"
                )
            found[event.event].append((position, event))
    configs, models = found[CONFIG_HASH_EVENT], found[MODEL_HASH_EVENT]
    if len(configs) != 1 or len(models) > 1:
        return (
            f"expected one {CONFIG_HASH_EVENT} and at most one {MODEL_HASH_EVENT} event, "
            f"found {len(configs)} and {len(models)}"
        )
    config = configs[0][1].payload
    if config != rule.config_hash:
        return f"{CONFIG_HASH_EVENT} expected {rule.config_hash}, found {config}"
    if not models:
        if rule.model_hash is not None:
            return f"{MODEL_HASH_EVENT} expected {rule.model_hash}, found no such event"
        return None
    position, event = models[0]
    if position < configs[0][0]:
        return f"{MODEL_HASH_EVENT} comes before {CONFIG_HASH_EVENT}; the order is config, model"
    if rule.model_hash is None:
        return (
            f"the log records model hash {event.payload}, but the policy pins no model: "
            "set [event_log] model_hash"
        )
    if event.payload != rule.model_hash:
        return f"{MODEL_HASH_EVENT} expected {rule.model_hash}, found {event.payload}"
    return None
