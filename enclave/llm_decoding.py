"""Jump-forward decoding of the LLM policy's answer: the model writes only where it has a choice.

The answer is one JSON object of a fixed shape (`llm_prompt.answer_model`): its keys,
quotes, colons, commas and braces are fixed, and so is the rest of a value the schema
allows one way once it is named (`uy` after `b` in an action; `rue` after `t`). Decoding that text token by token
costs one model evaluation per token for nothing. Here:

- `AnswerShape` is a small deterministic automaton for that shape, read from the JSON schema:
  given the answer so far, it returns the text that every valid answer continues with.
- `Decoder.decode` appends such a forced run in one batched evaluation (together with the
  token the model chose just before it; the answer's forced start goes with the prompt) and
  samples, greedily, only where the model has a real choice.
- The grammar stays the authority: every token, forced or sampled, passes llama.cpp's grammar
  sampler before it is accepted, so the final text always follows the schema. The grammar
  is llama.cpp's JSON-schema grammar with its optional whitespace removed (compact JSON, as
  in the worked examples), so that forced text is forced by the grammar itself.
- Greedy choice: the model's most likely token if the grammar allows it, else the most
  likely token among those the grammar allows (what llama.cpp's grammar-then-greedy sampler
  chain returns, without filtering the whole vocabulary when the favourite is allowed).

Everything is a function of the inputs: the same prompt gives the same forced runs, the same
batches and the same tokens, so decisions stay reproducible byte for byte. They are not the
bytes of token-by-token decoding, though: llama.cpp's CPU kernels round a batch of tokens
differently from a single one (logits differ by up to about 1 on SmolLM2), so a close call
can go the other way. With `jump_forward` off, this decoder gives token-by-token's bytes.
"""

from __future__ import annotations

import ctypes
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt
from llama_cpp import Llama
from llama_cpp.llama_grammar import LlamaGrammar


@dataclass(frozen=True)
class _Literal:
    text: str


@dataclass(frozen=True)
class _Choice:
    options: tuple[str, ...]  # JSON texts, e.g. '"up"' or 'true'; none a prefix of another


@dataclass(frozen=True)
class _Free:
    integer: bool  # an integer (digits and "-"), else a string (quote to unescaped quote)


_Piece = _Literal | _Choice | _Free
_INTEGER = re.compile(r"[-0-9]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)  # a JSON string, escapes and all


class AnswerShape:
    """The answer's fixed layout: literal text, value choices and free value slots, in order."""

    def __init__(self, pieces: Sequence[_Piece]) -> None:
        self._pieces = tuple(pieces)

    @classmethod
    def from_schema(cls, schema: dict[str, Any]) -> AnswerShape:
        """The compact JSON layout of an object schema whose properties are all required.

        Raises:
            ValueError: the schema has a shape this automaton does not know.
        """
        properties: dict[str, dict[str, Any]] = schema["properties"]
        if schema.get("type") != "object" or list(schema.get("required", [])) != list(properties):
            raise ValueError("the answer must be an object whose properties are all required")
        pieces: list[_Piece] = [_Literal("{")]
        for index, (name, spec) in enumerate(properties.items()):
            pieces.append(_Literal(("," if index else "") + _json(name) + ":"))
            pieces.append(_value(name, spec))
        pieces.append(_Literal("}"))
        return cls(pieces)

    def continuation(self, text: str) -> tuple[str, bool]:
        """The text every valid answer that starts with `text` continues with, and whether
        the answer is complete after it (nothing but the end may follow)."""
        pos = 0
        for index, piece in enumerate(self._pieces):
            rest = text[pos:]
            if not rest:
                return self._run("", index)
            if isinstance(piece, _Literal):
                if rest.startswith(piece.text):
                    pos += len(piece.text)
                    continue
                if piece.text.startswith(rest):
                    return self._run(piece.text[len(rest) :], index + 1)
                return "", False  # not a prefix of a valid answer
            if isinstance(piece, _Choice):
                done = [option for option in piece.options if rest.startswith(option)]
                if done:
                    pos += len(done[0])
                    continue
                tails = [option[len(rest) :] for option in piece.options if option.startswith(rest)]
                return self._open_choice(tails, index + 1) if tails else ("", False)
            taken = _free_length(piece, rest)
            if taken is None:
                return "", False  # inside a free value: the model chooses
            pos += taken
        return "", pos == len(text)

    def _open_choice(self, tails: list[str], after: int) -> tuple[str, bool]:
        if len(tails) == 1:
            return self._run(tails[0], after)
        return _common_prefix(tails), False

    def _run(self, head: str, index: int) -> tuple[str, bool]:
        """`head`, then the forced start of the pieces from `index` on."""
        out = head
        for piece in self._pieces[index:]:
            if isinstance(piece, _Literal):
                out += piece.text
            elif isinstance(piece, _Choice):
                if len(piece.options) > 1:
                    return out + _common_prefix(list(piece.options)), False
                out += piece.options[0]
            else:
                return out + ("" if piece.integer else '"'), False
        return out, True


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _value(name: str, spec: dict[str, Any]) -> _Piece:
    if "const" in spec:
        return _Choice((_json(spec["const"]),))
    if "enum" in spec:
        options = tuple(_json(value) for value in spec["enum"])
        if any(a != b and b.startswith(a) for a in options for b in options):
            raise ValueError(f"{name}: an enum option is a prefix of another")
        return _Choice(options)
    kind = spec.get("type")
    if kind == "boolean":
        return _Choice(("true", "false"))
    if kind in ("string", "integer"):
        return _Free(integer=kind == "integer")
    raise ValueError(f"{name}: no forced-text rule for {spec}")


def _free_length(piece: _Free, rest: str) -> int | None:
    """How many characters of `rest` the free value takes, or None when it is still open."""
    if piece.integer:
        digits = _INTEGER.match(rest)
        taken = digits.end() if digits else 0
        return taken if taken < len(rest) else None
    string = _STRING.match(rest)
    return string.end() if string else None


def _common_prefix(texts: list[str]) -> str:
    first, last = min(texts), max(texts)
    size = 0
    while size < len(first) and first[size] == last[size]:
        size += 1
    return first[:size]


def compact_grammar(schema: str) -> LlamaGrammar:
    """llama.cpp's grammar for the JSON schema, without optional whitespace between tokens."""
    gbnf = LlamaGrammar.from_json_schema(schema, verbose=False)._grammar
    lines = gbnf.splitlines()
    spaces = [i for i, line in enumerate(lines) if line.startswith("space ::= ")]
    if len(spaces) != 1:
        raise ValueError("the JSON-schema grammar has no single `space` rule to make compact")
    lines[spaces[0]] = 'space ::= ""'
    return LlamaGrammar.from_string("\n".join(lines), verbose=False)


@dataclass
class DecodeStats:
    """Where one decision's tokens and time went."""

    prompt_tokens: int = 0
    forced_tokens: int = 0
    sampled_tokens: int = 0
    forced_runs: int = 0
    evals: int = 0  # evaluations after the prompt's (which carries the answer's forced start)
    prompt_seconds: float = 0.0  # the prompt's evaluation, with the answer's forced start
    forced_seconds: float = 0.0  # evaluating a sampled token with the forced run after it
    sampled_seconds: float = 0.0  # choosing tokens, and evaluating lone sampled tokens
    total_seconds: float = 0.0
    batches: list[int] = field(default_factory=list)  # tokens in each evaluation after the prompt


@dataclass(frozen=True)
class Answer:
    tokens: list[int]
    text: str
    cut_short: bool
    stats: DecodeStats


_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class GrammarSampler:
    """llama.cpp's grammar sampler for one decision: checks, chooses and accepts tokens."""

    def __init__(self, llm: Llama, grammar: LlamaGrammar) -> None:
        self._sampler = llama_cpp.llama_sampler_init_grammar(
            llm._model.vocab, grammar._grammar.encode(), grammar._root.encode()
        )
        if not self._sampler:
            raise ValueError("llama.cpp rejected the answer grammar")
        self._one = (llama_cpp.llama_token_data * 1)()
        self._all: npt.NDArray[np.void] = np.zeros(llm.n_vocab(), dtype=_TOKEN_DATA)
        self._all["id"] = np.arange(llm.n_vocab(), dtype=np.intc)

    def close(self) -> None:
        llama_cpp.llama_sampler_free(self._sampler)

    def _apply(self, data: Any, size: int) -> None:
        candidates = llama_cpp.llama_token_data_array(
            data=ctypes.cast(data, llama_cpp.llama_token_data_p), size=size, selected=-1,
            sorted=False,
        )  # fmt: skip
        llama_cpp.llama_sampler_apply(self._sampler, ctypes.byref(candidates))

    def allows(self, token: int) -> bool:
        self._one[0] = llama_cpp.llama_token_data(token, 0.0, 0.0)
        self._apply(self._one, 1)
        return bool(np.isfinite(self._one[0].logit))

    def accept(self, token: int) -> None:
        llama_cpp.llama_sampler_accept(self._sampler, token)

    def greedy(self, logits: npt.NDArray[np.single]) -> int:
        """The allowed token with the highest logit (the lowest id among equals), accepted."""
        token = int(np.argmax(logits))
        if not self.allows(token):
            self._all["logit"] = logits
            self._all["p"] = 0.0
            self._apply(self._all.ctypes.data, len(self._all))
            token = int(np.argmax(self._all["logit"]))
        self.accept(token)
        return token


class Decoder:
    """Grammar-constrained greedy decoding of one answer, with jump-forward over forced text."""

    def __init__(
        self, llm: Llama, grammar: LlamaGrammar, shape: AnswerShape, *, jump_forward: bool = True
    ) -> None:
        self._llm = llm
        self._grammar = grammar
        self._shape = shape
        self.jump_forward = jump_forward
        self._eos = llm.token_eos()

    def _forced_tokens(self, text: str) -> list[int]:
        """`text` as tokens; without the space a SentencePiece tokenizer puts in front."""
        data = text.encode()
        tokens = list(self._llm.tokenize(data, add_bos=False, special=False))
        for start in range(len(tokens)):
            if self._llm.detokenize(tokens[start:]) == data:
                return tokens[start:]
        return []

    def _logits(self) -> npt.NDArray[np.single]:
        pointer = llama_cpp.llama_get_logits_ith(self._llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self._llm.n_vocab(),))

    def _forced_run(
        self, grammar: GrammarSampler, written: bytes, room: int
    ) -> tuple[list[int], bool]:
        """The forced tokens after `written` (at most `room`, each accepted by the grammar),
        and whether the answer is complete after them."""
        if not self.jump_forward:
            return [], False
        run, complete = self._shape.continuation(written.decode("utf-8", "replace"))
        whole = self._forced_tokens(run)
        forced: list[int] = []
        for token in whole[:room]:
            if not grammar.allows(token):  # the grammar decides, always
                break
            grammar.accept(token)
            forced.append(token)
        # Only the whole run, appended, may end the answer.
        return forced, complete and len(forced) == len(whole) and bool(whole or not run)

    def decode(self, start: int, prompt: list[int], max_tokens: int, deadline: float) -> Answer:
        """Evaluate `prompt` after the first `start` cached tokens, then write the answer.

        Stops at the answer's end, or cut short at `max_tokens` answer tokens (forced ones
        count) or past `deadline` (time.monotonic()).
        """
        llm, stats = self._llm, DecodeStats(prompt_tokens=len(prompt))
        began = time.perf_counter()
        grammar = GrammarSampler(llm, self._grammar)
        try:
            # The answer's forced start (`{"trend":"`) is evaluated with the prompt.
            produced, _ = self._forced_run(grammar, b"", max_tokens)
            stats.forced_tokens = len(produced)
            stats.forced_runs = int(bool(produced))
            llm.n_tokens = start
            llm.eval(prompt + produced)
            stats.prompt_seconds = time.perf_counter() - began
            written = llm.detokenize(produced)  # detokenizing is concatenating token pieces
            cut_short = len(produced) >= max_tokens or time.monotonic() > deadline
            while not cut_short:
                chosen = time.perf_counter()
                token = grammar.greedy(self._logits())
                stats.sampled_seconds += time.perf_counter() - chosen
                if token == self._eos:
                    break
                stats.sampled_tokens += 1
                produced.append(token)
                written += llm.detokenize([token])
                forced, complete = self._forced_run(grammar, written, max_tokens - len(produced))
                if forced:
                    stats.forced_runs += 1
                    stats.forced_tokens += len(forced)
                    produced += forced
                    written += llm.detokenize(forced)
                if len(produced) >= max_tokens or time.monotonic() > deadline:
                    cut_short = True
                elif not complete:  # the complete answer needs no evaluation after it
                    evaluated = time.perf_counter()
                    llm.eval([token, *forced])
                    elapsed = time.perf_counter() - evaluated
                    if forced:
                        stats.forced_seconds += elapsed
                    else:
                        stats.sampled_seconds += elapsed
                    stats.evals += 1
                    stats.batches.append(1 + len(forced))
                    cut_short = time.monotonic() > deadline
                else:
                    break
        finally:
            grammar.close()
        stats.total_seconds = time.perf_counter() - began
        text = llm.detokenize(produced).decode("utf-8", "replace")
        return Answer(produced, text, cut_short, stats)
