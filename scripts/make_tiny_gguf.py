"""Write a tiny llama-architecture GGUF model with random weights, for fast tests.

    python scripts/make_tiny_gguf.py OUT.gguf [--seed N]

The model knows nothing (its weights are random) but is a real GGUF file that llama.cpp
loads in milliseconds: a SentencePiece-style vocabulary of the 256 byte tokens (which
llama.cpp's tokenizer needs to encode any text) plus <unk>, <s> and </s>, two layers, and a
ChatML chat template so prompts are built exactly as for a real instruction model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, TokenType

N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 4
N_FF = 128
N_LAYER = 2
N_CTX = 8192

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def vocabulary() -> tuple[list[bytes], list[float], list[int]]:
    tokens = [b"<unk>", b"<s>", b"</s>"]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL]
    for value in range(256):
        tokens.append(f"<0x{value:02X}>".encode())
        types.append(TokenType.BYTE)
    return tokens, [0.0] * len(tokens), [int(kind) for kind in types]


def write_tiny_gguf(path: Path, seed: int = 0) -> Path:
    """Write the model to `path` and return it."""
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()
    n_vocab = len(tokens)
    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tee-agent tiny test model (random weights)")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(0)  # all tensors F32
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHATML_TEMPLATE)

    def tensor(name: str, *shape: int, scale: float = 0.02) -> None:
        data = (rng.standard_normal(shape) * scale).astype(np.float32)
        writer.add_tensor(name, data)

    tensor("token_embd.weight", n_vocab, N_EMBD)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    tensor("output.weight", n_vocab, N_EMBD)
    for layer in range(N_LAYER):
        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        tensor(f"{prefix}.attn_q.weight", N_EMBD, N_EMBD)
        tensor(f"{prefix}.attn_k.weight", N_EMBD, N_EMBD)
        tensor(f"{prefix}.attn_v.weight", N_EMBD, N_EMBD)
        tensor(f"{prefix}.attn_output.weight", N_EMBD, N_EMBD)
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        tensor(f"{prefix}.ffn_gate.weight", N_FF, N_EMBD)
        tensor(f"{prefix}.ffn_up.weight", N_FF, N_EMBD)
        tensor(f"{prefix}.ffn_down.weight", N_EMBD, N_FF)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="where to write the .gguf file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = parser.parse_args()
    write_tiny_gguf(args.out, args.seed)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
