"""A tiny GPT and a byte table shared by the reference tests and the distributed worker script they launch."""

from __future__ import annotations

import torch

from reference.metric import build_byte_tables
from reference.model import GPT, GPTConfig

# 64 pieces: two controls, then 62 two-letter pieces (every one two bytes, so bpb = loss / (2 ln 2))
TWO_LETTER_TABLES = build_byte_tables([("<pad>", "control"), ("<s>", "control")]
                                      + [(chr(97 + i // 26) + chr(97 + i % 26), "normal") for i in range(62)])


def tiny_gpt(model_dim: int = 32, num_heads: int = 2, num_kv_heads: int = 1, rope_dims: int = 8) -> GPT:
    """A 2-layer GPT over 64 tokens, seeded, with random (not zero) output projections so outputs depend on them."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, num_layers=2, model_dim=model_dim, num_heads=num_heads,
                          num_kv_heads=num_kv_heads, mlp_mult=2.0, rope_dims=rope_dims))
    with torch.no_grad():
        for block in model.blocks:
            block.attn.c_proj.weight.normal_(std=0.05)
            block.mlp.proj.weight.normal_(std=0.05)
    return model
