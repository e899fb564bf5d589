"""FlashAttention stand-ins of the CPU compatibility layer, built on scaled_dot_product_attention.

Serves ``flash_attn``, ``flash_attn.flash_attn_interface`` and ``flash_attn_interface`` (FlashAttention 2/3) through
a finder at the end of ``sys.meta_path``, so only when the real modules cannot be imported: ``(B, T, H, D)`` layout,
GQA by repeating KV heads, bottom-right causal alignment, sliding windows, softcap, variable-length batches, and FA3's
output that also unpacks as ``(out, softmax_lse)``. Imported as a top-level module (the inject/ folder is on the
probed process's sys.path); torch is imported lazily and nothing here imports harness/.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import types

from cpu_compat_usage import used

STANDIN_MODULES = ("flash_attn", "flash_attn.flash_attn_interface", "flash_attn_interface")


def _attend(q, k, v, causal: bool = False, softmax_scale=None, window_size=(-1, -1), softcap: float = 0.0):
    """Attention over (B, Tq, Hq, D) queries and (B, Tk, Hk, D) keys/values, FlashAttention's conventions."""
    import torch
    import torch.nn.functional as F

    hq, hk = q.shape[-2], k.shape[-2]
    if hq != hk:  # grouped-query attention: each KV head serves hq // hk query heads
        k = k.repeat_interleave(hq // hk, dim=-2)
        v = v.repeat_interleave(hq // hk, dim=-2)
    qt, kt, vt = q.transpose(1, 2), k.to(q.dtype).transpose(1, 2), v.to(q.dtype).transpose(1, 2)
    tq, tk = q.shape[1], k.shape[1]
    left, right = (window_size if window_size is not None else (-1, -1))
    left, right = int(left), int(right)
    windowed = left >= 0 or (right >= 0 and not causal)
    scale = softmax_scale if softmax_scale is not None else q.shape[-1] ** -0.5
    if not windowed and not softcap and (not causal or tq == tk):
        out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=bool(causal and tq > 1), scale=scale)
        return out.transpose(1, 2).contiguous()
    # Queries sit at the end of the keys (bottom-right alignment), as FlashAttention does when tq != tk.
    i = torch.arange(tq).unsqueeze(1) + (tk - tq)
    j = torch.arange(tk).unsqueeze(0)
    allowed = torch.ones(tq, tk, dtype=torch.bool)
    if causal:
        allowed &= j <= i
    if left >= 0:
        allowed &= j >= i - left
    if right >= 0 and not causal:
        allowed &= j <= i + right
    scores = torch.matmul(qt.float(), kt.float().transpose(-1, -2)) * scale
    if softcap:
        scores = softcap * torch.tanh(scores / softcap)
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return torch.matmul(probs, vt.float()).to(q.dtype).transpose(1, 2).contiguous()


def flash_attn_func(q, k, v, dropout_p: float = 0.0, softmax_scale=None, causal: bool = False, window_size=(-1, -1),
                    softcap: float = 0.0, *args, return_attn_probs: bool = False, **kwargs):
    """FlashAttention's flash_attn_func on the CPU: (B, T, H, D) in, (B, T, H, D) out (dropout ignored)."""
    used("flash_attn_standin")
    out = _attend(q, k, v, causal=causal, softmax_scale=softmax_scale, window_size=window_size, softcap=softcap)
    return (out, None, None) if return_attn_probs else out


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None,
                           dropout_p: float = 0.0, softmax_scale=None, causal: bool = False, window_size=(-1, -1),
                           softcap: float = 0.0, *args, return_attn_probs: bool = False, **kwargs):
    """Variable-length batches: (total, H, D) tensors cut into sequences by the cumulative lengths."""
    import torch

    used("flash_attn_standin")
    cq = [int(x) for x in (cu_seqlens_q.tolist() if hasattr(cu_seqlens_q, "tolist") else cu_seqlens_q)]
    ck = [int(x) for x in (cu_seqlens_k.tolist() if hasattr(cu_seqlens_k, "tolist") else cu_seqlens_k)]
    parts = []
    for (a, b), (c, d) in zip(zip(cq[:-1], cq[1:]), zip(ck[:-1], ck[1:])):
        if b <= a:
            continue
        parts.append(_attend(q[None, a:b], k[None, c:d], v[None, c:d], causal=causal, softmax_scale=softmax_scale,
                             window_size=window_size, softcap=softcap)[0])
    out = torch.cat(parts, dim=0) if parts else q.new_zeros(q.shape)
    if out.shape[0] < q.shape[0]:  # padding past the last sequence
        out = torch.cat([out, q.new_zeros((q.shape[0] - out.shape[0],) + tuple(q.shape[1:]))], dim=0)
    return (out, None, None) if return_attn_probs else out


def flash_attn_qkvpacked_func(qkv, dropout_p: float = 0.0, softmax_scale=None, causal: bool = False, *args, **kwargs):
    """(B, T, 3, H, D) packed input."""
    return flash_attn_func(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], dropout_p, softmax_scale, causal,
                           *args, **kwargs)


def flash_attn_kvpacked_func(q, kv, dropout_p: float = 0.0, softmax_scale=None, causal: bool = False, *args,
                             **kwargs):
    """(B, T, 2, H, D) packed keys and values."""
    return flash_attn_func(q, kv[:, :, 0], kv[:, :, 1], dropout_p, softmax_scale, causal, *args, **kwargs)


_FA3_OUTPUT = None


def _fa3_output_class():
    """A tensor that unpacks as (out, softmax_lse): FA3's flash_attn_func returned that pair in its early releases
    and returns the output alone since, and records use both (`y = f(...)` and `y, _ = f(...)`). Any operation on
    it gives plain tensors, so nothing downstream inherits the unpacking."""
    global _FA3_OUTPUT
    if _FA3_OUTPUT is None:
        import torch

        class FA3Output(torch.Tensor):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                with torch._C.DisableTorchFunctionSubclass():
                    return func(*args, **(kwargs or {}))

            def __iter__(self):
                used("flash_attn_pair_unpacked")
                plain = self.as_subclass(torch.Tensor)
                return iter((plain, getattr(self, "_lse_fn", lambda: None)()))

        _FA3_OUTPUT = FA3Output
    return _FA3_OUTPUT


def _lse(q, k, causal: bool, softmax_scale=None):
    """FA3's softmax_lse, (B, H, Tq), in fp32."""
    import torch

    hq, hk = q.shape[-2], k.shape[-2]
    if hq != hk:
        k = k.repeat_interleave(hq // hk, dim=-2)
    scale = softmax_scale if softmax_scale is not None else q.shape[-1] ** -0.5
    scores = torch.einsum("bqhd,bkhd->bhqk", q.detach().float(), k.detach().float()) * scale
    if causal:
        tq, tk = q.shape[1], k.shape[1]
        i = torch.arange(tq).unsqueeze(1) + (tk - tq)
        scores = scores.masked_fill(torch.arange(tk).unsqueeze(0) > i, float("-inf"))
    return torch.logsumexp(scores, dim=-1)


def _fa3_func(q, k, v, softmax_scale=None, causal: bool = False, *args, window_size=(-1, -1), softcap: float = 0.0,
              **kwargs):
    """FlashAttention 3's flash_attn_func (no dropout argument): the output, which also unpacks as (out, lse)."""
    used("flash_attn_standin")
    out = _attend(q, k, v, causal=causal, softmax_scale=softmax_scale, window_size=window_size, softcap=softcap)
    wrapped = out.as_subclass(_fa3_output_class())
    wrapped._lse_fn = lambda: _lse(q, k, causal, softmax_scale)
    return wrapped


def _fa3_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None, softmax_scale=None,
                causal: bool = False, *args, window_size=(-1, -1), softcap: float = 0.0, **kwargs):
    """FlashAttention 3's flash_attn_varlen_func (no dropout argument)."""
    return flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, 0.0,
                                  softmax_scale, causal, window_size, softcap)


def _standin_module(name: str) -> types.ModuleType:
    mod = types.ModuleType(name, f"CPU stand-in for {name} (pgolf probe compatibility layer)")
    mod.__cpu_compat_standin__ = True
    if name == "flash_attn_interface":
        mod.flash_attn_func, mod.flash_attn_varlen_func = _fa3_func, _fa3_varlen
    else:
        mod.flash_attn_func, mod.flash_attn_varlen_func = flash_attn_func, flash_attn_varlen_func
        mod.flash_attn_qkvpacked_func, mod.flash_attn_kvpacked_func = flash_attn_qkvpacked_func, \
            flash_attn_kvpacked_func
    if name == "flash_attn":
        mod.__version__ = "2.0.0+cpu-standin"
        mod.__path__ = []  # a package, so flash_attn.flash_attn_interface resolves
    return mod


class _StandinLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return _standin_module(spec.name)

    def exec_module(self, module) -> None:
        used("flash_attn_module")


class StandinFinder(importlib.abc.MetaPathFinder):
    """Last on sys.meta_path: serves the FlashAttention stand-ins only when no real module was found first."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in STANDIN_MODULES:
            return importlib.machinery.ModuleSpec(fullname, _StandinLoader(), is_package=fullname == "flash_attn")
        return None
