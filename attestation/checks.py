"""The name of every check attestation/ makes: one `CheckName` member each.

A member is a `StrEnum`, so it IS its string: reports, JSON output and comparisons with
plain strings read exactly as before. Verifiers name the checks they make, and callers the
checks they look for, through these members, so a misspelt name fails at import time
rather than matching nothing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class CheckName(StrEnum):
    """Every check name a verifier, the validation policy or the receipt chain reports."""

    # Intel DCAP quotes (attestation.verify_dcap), in the order they run.
    QUOTE_SIGNATURE = "quote_signature"
    QE_REPORT_DATA_BINDS_ATTESTATION_KEY = "qe_report_data_binds_attestation_key"
    PCK_CHAIN_PRESENT = "pck_chain_present"
    QE_REPORT_SIGNATURE = "qe_report_signature"
    PCK_CHAIN_SIGNATURES = "pck_chain_signatures"
    PCK_CHAIN_ROOT_PINNED = "pck_chain_root_pinned"
    PCK_CHAIN_VALIDITY = "pck_chain_validity"
    COLLATERAL_APPLICABLE = "collateral_applicable"

    # Intel collateral (attestation.collateral_checks): CRLs, TCB Info, QE Identity, TCB.
    PCK_SGX_EXTENSION = "pck_sgx_extension"
    COLLATERAL_ROOT_CA_CRL = "collateral_root_ca_crl"
    COLLATERAL_PCK_CRL = "collateral_pck_crl"
    COLLATERAL_TCB_INFO = "collateral_tcb_info"
    COLLATERAL_TCB_INFO_SIGNATURE = "collateral_tcb_info_signature"
    COLLATERAL_TCB_INFO_ISSUER_CHAIN_SIGNATURES = "collateral_tcb_info_issuer_chain_signatures"
    COLLATERAL_TCB_INFO_ISSUER_CHAIN_ROOT_PINNED = "collateral_tcb_info_issuer_chain_root_pinned"
    COLLATERAL_TCB_INFO_ISSUER_CHAIN_VALIDITY = "collateral_tcb_info_issuer_chain_validity"
    COLLATERAL_TCB_INFO_FORMAT = "collateral_tcb_info_format"
    COLLATERAL_TCB_INFO_VALIDITY = "collateral_tcb_info_validity"
    COLLATERAL_QE_IDENTITY = "collateral_qe_identity"
    COLLATERAL_QE_IDENTITY_SIGNATURE = "collateral_qe_identity_signature"
    COLLATERAL_QE_IDENTITY_ISSUER_CHAIN_SIGNATURES = (
        "collateral_qe_identity_issuer_chain_signatures"
    )
    COLLATERAL_QE_IDENTITY_ISSUER_CHAIN_ROOT_PINNED = (
        "collateral_qe_identity_issuer_chain_root_pinned"
    )
    COLLATERAL_QE_IDENTITY_ISSUER_CHAIN_VALIDITY = "collateral_qe_identity_issuer_chain_validity"
    COLLATERAL_QE_IDENTITY_FORMAT = "collateral_qe_identity_format"
    COLLATERAL_QE_IDENTITY_VALIDITY = "collateral_qe_identity_validity"
    COLLATERAL_TCB_INFO_MATCHES_PLATFORM = "collateral_tcb_info_matches_platform"
    COLLATERAL_QE_IDENTITY_MATCHES_QUOTE_TYPE = "collateral_qe_identity_matches_quote_type"
    TCB_LEVEL_MATCHED = "tcb_level_matched"
    TDX_MODULE_IDENTITY = "tdx_module_identity"
    QE_IDENTITY_LEVEL_MATCHED = "qe_identity_level_matched"
    TCB_NOT_REVOKED = "tcb_not_revoked"

    # AWS Nitro attestation documents (attestation.verify_nitro).
    COSE_ALGORITHM = "cose_algorithm"
    COSE_SIGNATURE = "cose_signature"
    NITRO_CHAIN_SIGNATURES = "nitro_chain_signatures"
    NITRO_CHAIN_ROOT_PINNED = "nitro_chain_root_pinned"
    NITRO_CHAIN_VALIDITY = "nitro_chain_validity"

    # AMD SEV-SNP reports (attestation.verify_snp).
    REPORT_SIGNATURE = "report_signature"
    VCEK_CHAIN_SIGNATURES = "vcek_chain_signatures"
    VCEK_CHAIN_ROOT_PINNED = "vcek_chain_root_pinned"
    VCEK_CHAIN_VALIDITY = "vcek_chain_validity"
    VCEK_CHIP_ID = "vcek_chip_id"
    VCEK_TCB = "vcek_tcb"

    # The identity binding in report_data (attestation.binding).
    REPORT_DATA_BINDING = "report_data_binding"

    # A TDX event log given with the evidence (attestation.event_log).
    EVENT_LOG_DIGESTS = "event_log_digests"
    EVENT_LOG_REPLAY = "event_log_replay"
    EVENT_LOG_BINDS_IDENTITY = "event_log_binds_identity"

    # The validation policy (attestation.policy): one per rule, see POLICY_CHECKS.
    POLICY_VERIFIED = "policy_verified"
    POLICY_MEASUREMENT = "policy_measurement"
    POLICY_TCB_STATUS = "policy_tcb_status"
    POLICY_DEBUG = "policy_debug"
    POLICY_REPORT_DATA = "policy_report_data"
    POLICY_EVIDENCE_AGE = "policy_evidence_age"
    POLICY_EVENT_LOG = "policy_event_log"
    POLICY_COMPOSE_HASH = "policy_compose_hash"
    POLICY_AGENT_EVENTS = "policy_agent_events"

    # A chain of decision receipts (attestation.receipt_chain).
    RECEIPT_SIGNATURE = "receipt_signature"
    RECEIPT_SEQUENCE = "receipt_sequence"
    RECEIPT_CHAIN = "receipt_chain"
    RECEIPT_CONFIG_HASH = "receipt_config_hash"
    RECEIPT_MODEL_HASH = "receipt_model_hash"
    RECEIPT_HEAD = "receipt_head"


# The checks `attestation.policy.validate` appends: the caller's judgement of the fields,
# as opposed to whether the evidence is genuine.
POLICY_CHECKS = frozenset(
    {
        CheckName.POLICY_VERIFIED,
        CheckName.POLICY_MEASUREMENT,
        CheckName.POLICY_TCB_STATUS,
        CheckName.POLICY_DEBUG,
        CheckName.POLICY_REPORT_DATA,
        CheckName.POLICY_EVIDENCE_AGE,
        CheckName.POLICY_EVENT_LOG,
        CheckName.POLICY_COMPOSE_HASH,
        CheckName.POLICY_AGENT_EVENTS,
    }
)


class ChainCheckNames(NamedTuple):
    """The three checks of one certificate chain (see `attestation.x509chain`)."""

    signatures: CheckName
    root_pinned: CheckName
    validity: CheckName


PCK_CHAIN_CHECKS = ChainCheckNames(
    CheckName.PCK_CHAIN_SIGNATURES, CheckName.PCK_CHAIN_ROOT_PINNED, CheckName.PCK_CHAIN_VALIDITY
)
NITRO_CHAIN_CHECKS = ChainCheckNames(
    CheckName.NITRO_CHAIN_SIGNATURES,
    CheckName.NITRO_CHAIN_ROOT_PINNED,
    CheckName.NITRO_CHAIN_VALIDITY,
)
VCEK_CHAIN_CHECKS = ChainCheckNames(
    CheckName.VCEK_CHAIN_SIGNATURES, CheckName.VCEK_CHAIN_ROOT_PINNED, CheckName.VCEK_CHAIN_VALIDITY
)


class DocumentCheckNames(NamedTuple):
    """The checks of one signed collateral document (see `attestation.collateral_checks`)."""

    present: CheckName
    signature: CheckName
    issuer_chain: ChainCheckNames
    format: CheckName
    validity: CheckName


TCB_INFO_CHECKS = DocumentCheckNames(
    present=CheckName.COLLATERAL_TCB_INFO,
    signature=CheckName.COLLATERAL_TCB_INFO_SIGNATURE,
    issuer_chain=ChainCheckNames(
        CheckName.COLLATERAL_TCB_INFO_ISSUER_CHAIN_SIGNATURES,
        CheckName.COLLATERAL_TCB_INFO_ISSUER_CHAIN_ROOT_PINNED,
        CheckName.COLLATERAL_TCB_INFO_ISSUER_CHAIN_VALIDITY,
    ),
    format=CheckName.COLLATERAL_TCB_INFO_FORMAT,
    validity=CheckName.COLLATERAL_TCB_INFO_VALIDITY,
)
QE_IDENTITY_CHECKS = DocumentCheckNames(
    present=CheckName.COLLATERAL_QE_IDENTITY,
    signature=CheckName.COLLATERAL_QE_IDENTITY_SIGNATURE,
    issuer_chain=ChainCheckNames(
        CheckName.COLLATERAL_QE_IDENTITY_ISSUER_CHAIN_SIGNATURES,
        CheckName.COLLATERAL_QE_IDENTITY_ISSUER_CHAIN_ROOT_PINNED,
        CheckName.COLLATERAL_QE_IDENTITY_ISSUER_CHAIN_VALIDITY,
    ),
    format=CheckName.COLLATERAL_QE_IDENTITY_FORMAT,
    validity=CheckName.COLLATERAL_QE_IDENTITY_VALIDITY,
)
