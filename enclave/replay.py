"""Replay a receipt's decision: recompute it from its recorded inputs with the same model.

An auditor holding a receipt (with the decision and inputs it commits to), the measured
config and the model file can check that the model, run greedily with the config's settings,
gives exactly the decision the enclave signed: same bytes, same hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from attestation.jsontext import loads_bounded
from attestation.receipt import Receipt
from enclave.config import EnclaveConfig
from enclave.llm_policy import TIMEOUT_REASON, LlamaPolicy, sha256_file
from enclave.policy import Decision, MarketView


class ReplayError(Exception):
    """The receipt file cannot be replayed: malformed, or inconsistent with itself."""


@dataclass(frozen=True)
class RecordedDecision:
    receipt: Receipt
    decision_json: str
    input_json: str


@dataclass(frozen=True)
class ReplayResult:
    matches: bool
    recorded: str
    replayed: str
    detail: str


def load_recorded_decision(path: Path) -> RecordedDecision:
    """Read a receipt file: the receipt's fields plus `decision_json` and `input_json`.

    Raises:
        ReplayError: unreadable, not a receipt, or its JSON does not hash to what it signs.
    """
    try:
        data = loads_bounded(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReplayError(f"cannot read receipt file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ReplayError(f"{path}: expected a JSON object (one receipt)")
    decision_json, input_json = data.pop("decision_json", None), data.pop("input_json", None)
    if not isinstance(decision_json, str) or not isinstance(input_json, str):
        raise ReplayError(f"{path}: the receipt must carry decision_json and input_json")
    from attestation.errors import ReceiptFormatError

    try:
        receipt = Receipt.from_json_dict(data)
    except ReceiptFormatError as exc:
        raise ReplayError(f"{path}: {exc}") from None
    if hashlib.sha256(input_json.encode()).digest() != receipt.input_digest:
        raise ReplayError("input_json does not hash to the receipt's inputDigest")
    if hashlib.sha256(decision_json.encode()).digest() != receipt.decision_hash:
        raise ReplayError("decision_json does not hash to the receipt's decisionHash")
    return RecordedDecision(receipt, decision_json, input_json)


def replay_decision(
    recorded: RecordedDecision, config: EnclaveConfig, model_path: Path
) -> ReplayResult:
    """Run the LLM policy on the recorded inputs and compare with the recorded decision.

    Raises:
        ReplayError: the config or model is not the one the receipt names.
    """
    receipt = recorded.receipt
    if config.config_hash() != receipt.config_hash:
        raise ReplayError(
            f"the config hashes to {config.config_hash().hex()}, the receipt names "
            f"{receipt.config_hash.hex()}"
        )
    if config.policy.llm is None:
        raise ReplayError("the config has no [policy.llm]: only LLM decisions replay")
    if sha256_file(model_path) != receipt.model_hash:
        raise ReplayError(
            f"{model_path} hashes to {sha256_file(model_path).hex()}, the receipt names "
            f"{receipt.model_hash.hex()}"
        )
    try:
        view = MarketView.model_validate_json(recorded.input_json)
    except ValidationError:
        raise ReplayError(
            "input_json is not a market view (was this a decision receipt?)"
        ) from None
    policy = LlamaPolicy(
        config.policy.llm,
        model_path,
        config.policy.rule,
    )
    replayed = policy.decide(view).canonical_json()
    recorded_decision = Decision.model_validate_json(recorded.decision_json)
    if replayed == recorded.decision_json:
        return ReplayResult(
            True, recorded.decision_json, replayed, "the same decision, byte for byte"
        )
    if recorded_decision.rationale == TIMEOUT_REASON:
        detail = "the enclave timed out on this decision; a timeout depends on load, not inputs"
    else:
        detail = "the model gives another decision for these inputs"
    return ReplayResult(False, recorded.decision_json, replayed, detail)
