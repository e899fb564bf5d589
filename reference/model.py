"""A small GPT in the spirit of the Parameter Golf leaderboard stack; modules only, no I/O.

Kept from the stack because they pay off at small scale: grouped-query attention, partial RoPE (rotary on part of
each head, the rest position-free), LeakyReLU(0.5)^2 MLP, tied embeddings, a tanh logit softcap, the baseline's
U-Net skips and residual mix with the input embedding, per-head query gain and QK RMSNorm, and a hashed
embedding of the (previous, current) token pair added to the token embedding (BigramHash), off unless configured.
References: the challenge's root train_gpt.py (baseline architecture) and karpathy/nanoGPT (layout).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

try:  # flash-attn on GPU when installed; PyTorch SDPA otherwise
    from flash_attn import flash_attn_func
except ImportError:
    flash_attn_func = None


@dataclass
class GPTConfig:
    """Model shape and the few architectural switches that distinguish the presets."""

    vocab_size: int = 1024  # the sp1024 tokenizer; small vocabularies leave bytes for layers
    num_layers: int = 11
    model_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int = 4  # GQA: half the KV heads halves K/V parameters at little loss
    mlp_mult: float = 3.0  # 3x pays off once int6 makes MLP weights cheap (baseline: 2)
    rope_dims: int = 16  # partial RoPE: rotate 16 of 64 head dims (0 = all, the baseline)
    rope_base: float = 10000.0
    activation: str = "leaky_relu2"  # "relu2" is the baseline's
    logit_softcap: float = 30.0  # 30*tanh(z/30) keeps early logits from exploding
    qk_gain_init: float = 1.5
    tied_embed_init_std: float = 0.005
    bigram_buckets: int = 0  # hashed (previous, current) token-pair embeddings; 0: none
    bigram_dim: int = 128  # their width, projected up to model_dim
    bigram_sparse: bool = False  # sparse gradients for the pair table: a step touches at most its tokens' rows
    bos_id: int = 1  # the challenge's tokenizers start every document with id 1 (reference/data.py writes the same)


class BigramHash(nn.Module):
    """An embedding of the hashed (previous, current) input-token pair, projected to the model width.

    Uses only input tokens up to the current position, so it is as causal as the token embedding, and no pair spans
    two documents: a document's BOS is paired with nothing, like a row's first token. The projection starts at zero:
    at initialisation the model is the plain token-embedding model."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.buckets, self.bos_id = cfg.bigram_buckets, cfg.bos_id
        self.emb = nn.Embedding(cfg.bigram_buckets, cfg.bigram_dim, sparse=cfg.bigram_sparse)
        nn.init.normal_(self.emb.weight, std=cfg.tied_embed_init_std)
        self.proj = nn.Linear(cfg.bigram_dim, cfg.model_dim, bias=False)
        nn.init.zeros_(self.proj.weight)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        prev = F.pad(idx[:, :-1], (1, 0), value=-1)  # no previous token at a row's first position
        prev = prev.masked_fill(idx == self.bos_id, -1)  # nor at a document's first (its BOS)
        pair = (prev * 1_000_003 + idx) % (self.buckets - 1)  # buckets - 1 reserved for the row start
        return self.proj(self.emb(torch.where(prev < 0, self.buckets - 1, pair)))


class RMSNorm(nn.Module):
    """Weightless RMSNorm (the baseline has no norm gains)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),))


def rotary(x: torch.Tensor, dims: int, base: float) -> torch.Tensor:
    """Half-split RoPE on the first `dims` channels of (B, H, T, D); the rest pass through."""
    d = x.size(-1) if dims <= 0 else dims
    t = x.size(-2)
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d))
    angles = torch.outer(torch.arange(t, device=x.device, dtype=torch.float32), inv_freq)  # (T, d/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    rot, rest = x[..., :d], x[..., d:]
    a, b = rot[..., : d // 2], rot[..., d // 2:]
    return torch.cat((a * cos + b * sin, b * cos - a * sin, rest), dim=-1)


class CausalSelfAttention(nn.Module):
    """GQA attention with QK RMSNorm, per-head query gain and a zero-initialised output projection."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        assert cfg.model_dim % cfg.num_heads == 0 and cfg.num_heads % cfg.num_kv_heads == 0
        self.h, self.kv, self.hd = cfg.num_heads, cfg.num_kv_heads, cfg.model_dim // cfg.num_heads
        self.rope_dims, self.rope_base = cfg.rope_dims, cfg.rope_base
        self.c_q = nn.Linear(cfg.model_dim, self.h * self.hd, bias=False)
        self.c_k = nn.Linear(cfg.model_dim, self.kv * self.hd, bias=False)
        self.c_v = nn.Linear(cfg.model_dim, self.kv * self.hd, bias=False)
        self.c_proj = nn.Linear(self.h * self.hd, cfg.model_dim, bias=False)
        nn.init.zeros_(self.c_proj.weight)
        self.q_gain = nn.Parameter(torch.full((self.h,), cfg.qk_gain_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # batch, time, channels
        q = self.c_q(x).view(B, T, self.h, self.hd).transpose(1, 2)  # (B, H, T, hd)
        k = self.c_k(x).view(B, T, self.kv, self.hd).transpose(1, 2)  # (B, KV, T, hd)
        v = self.c_v(x).view(B, T, self.kv, self.hd).transpose(1, 2)
        q, k = F.rms_norm(q, (self.hd,)), F.rms_norm(k, (self.hd,))
        q = rotary(q, self.rope_dims, self.rope_base) * self.q_gain.to(q.dtype)[None, :, None, None]
        k = rotary(k, self.rope_dims, self.rope_base)
        if flash_attn_func is not None and x.is_cuda:
            # flash-attn takes half types only, and autocast may hand the normed q, k back in fp32
            half = v.dtype if v.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
            y = flash_attn_func(*(t.transpose(1, 2).to(half) for t in (q, k, v)), causal=True).transpose(1, 2)
            y = y.to(x.dtype)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.kv != self.h)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    """fc -> activation -> proj, with `relu(x)^2` (baseline) or `leaky_relu(x, 0.5)^2`."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        hidden = int(cfg.mlp_mult * cfg.model_dim)
        self.fc = nn.Linear(cfg.model_dim, hidden, bias=False)
        self.proj = nn.Linear(hidden, cfg.model_dim, bias=False)
        nn.init.zeros_(self.proj.weight)
        self.leaky = cfg.activation == "leaky_relu2"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        h = F.leaky_relu(h, 0.5) if self.leaky else F.relu(h)
        return self.proj(h * h)


class Block(nn.Module):
    """Pre-norm block with a learned mix of the residual and the input embedding, and per-channel scales."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(), RMSNorm()
        self.attn, self.mlp = CausalSelfAttention(cfg), MLP(cfg)
        self.attn_scale = nn.Parameter(torch.ones(cfg.model_dim))
        self.mlp_scale = nn.Parameter(torch.ones(cfg.model_dim))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(cfg.model_dim), torch.zeros(cfg.model_dim))))

    def forward(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(self.norm1(x))
        return x + self.mlp_scale.to(x.dtype) * self.mlp(self.norm2(x))


class GPT(nn.Module):
    """Tied-embedding GPT with U-Net skips: the first half's outputs are added back into the second half."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        nn.init.normal_(self.tok_emb.weight, std=cfg.tied_embed_init_std)
        self.bigram = BigramHash(cfg) if cfg.bigram_buckets > 0 else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.num_encoder = cfg.num_layers // 2
        self.skip_weights = nn.Parameter(torch.ones(cfg.num_layers - self.num_encoder, cfg.model_dim))
        self.norm = RMSNorm()

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final normalised hidden states (B, T, C) for token ids (B, T)."""
        x = self.tok_emb(idx)
        if self.bigram is not None:
            x = x + self.bigram(idx)
        x = x0 = F.rms_norm(x, (self.cfg.model_dim,))
        skips = []
        for i, block in enumerate(self.blocks):
            if i >= self.num_encoder and skips:
                x = x + self.skip_weights[i - self.num_encoder].to(x.dtype) * skips.pop()
            x = block(x, x0)
            if i < self.num_encoder:
                skips.append(x)
        return self.norm(x)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Soft-capped logits (B, T, V) in fp32."""
        z = F.linear(self.hidden(idx), self.tok_emb.weight.to(self.tok_emb.weight.dtype)).float()
        cap = self.cfg.logit_softcap
        return cap * torch.tanh(z / cap) if cap > 0 else z

    def token_losses(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-token cross-entropy in nats, (B, T), fp32."""
        logits = self.logits(idx)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over all targets."""
        return self.token_losses(idx, targets).mean()


def attention_kernel(device: torch.device) -> str:
    """Which attention implementation runs on `device`: flash_attn (installed, CUDA) or sdpa."""
    return "flash_attn" if flash_attn_func is not None and device.type == "cuda" else "sdpa"


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())

