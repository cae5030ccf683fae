"""Who the agent is, on the wire: the `Identity` and `Attestation` messages and their values.

The enclave says who it is (`Open`, `GetIdentity`) and attests to it (`Attest`, with its
platform's event log) in these messages; the host relays them to clients (`GetAttestation`),
and the clients (`tee-agent attest`, `verify agent`) read them back here into
`attestation.binding` values, which the verifiers check.
"""

from __future__ import annotations

from pydantic import ValidationError
from tee_agent_rpc.messages_pb2 import Attestation as AttestationMessage
from tee_agent_rpc.messages_pb2 import Identity as IdentityMessage

from attestation.binding import AgentAttestation, AgentIdentity, identity_report_data
from wire.errors import MalformedMessage


def identity_message(identity: AgentIdentity) -> IdentityMessage:
    """The `Identity` message of `identity`."""
    return IdentityMessage(**identity.model_dump())


def identity_from_message(message: IdentityMessage) -> AgentIdentity:
    """The identity an `Identity` message carries.

    Raises:
        MalformedMessage: a key or hash is not 32 bytes.
    """
    fields = {name: getattr(message, name) for name in AgentIdentity.model_fields}
    fields["measurement"] = dict(message.measurement)
    try:
        return AgentIdentity.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise MalformedMessage(f"identity {error['loc'][0]}: {error['msg']}") from None


def attestation_message(attestation: AgentAttestation) -> AttestationMessage:
    """The `Attestation` message of `attestation`, with the report_data its identity and
    nonce give (what the quote holds when the agent is what it says).

    Raises:
        pydantic.ValidationError: the identity's address is not 0x and 40 hex digits.
        ValueError: the nonce is not 32 bytes.
    """
    report_data = identity_report_data(attestation.identity.binding(), attestation.nonce)
    return AttestationMessage(
        quote=attestation.quote,
        identity=identity_message(attestation.identity),
        report_data=report_data,
        nonce=attestation.nonce,
        event_log=attestation.event_log,
    )


def attestation_from_message(
    message: AttestationMessage, nonce: bytes | None = None
) -> AgentAttestation:
    """The quote, nonce, identity and event log an `Attestation` message carries (its
    report_data is not read: the quote's own is the one a verifier checks).

    `nonce`: the nonce the caller asked for, which a client takes instead of the echoed
    one (the host may echo anything); None takes the echoed one.

    Raises:
        MalformedMessage: as `identity_from_message`, or an event log over
            `MAX_SERVED_EVENT_LOG_SIZE` (1 MiB) or that is not JSON.
    """
    identity = identity_from_message(message.identity)
    try:
        return AgentAttestation(
            quote=message.quote,
            nonce=message.nonce if nonce is None else nonce,
            identity=identity,
            event_log=message.event_log,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        raise MalformedMessage(f"attestation {error['loc'][0]}: {error['msg']}") from None
