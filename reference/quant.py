"""Per-row int6/int8 quantisation of a state_dict and its compressed round trip (challenge-facts section 5).

Large 2-D float tensors are stored as per-row integers with an fp16 scale per row: int6 (levels -31..31, kept in
int8 bytes that zstd squeezes) for block matrices, int8 for the tied embedding, which is more sensitive. The clip
per row is the candidate fraction of max|w| with the smallest squared error. Small tensors and control parameters
pass through (fp32 for control names, fp16 otherwise). The object is `torch.save`d and compressed with zstd-22
(or zlib-9, the baseline's). Does not import the model: it works on any state_dict.
"""

from __future__ import annotations

import io
import json
import zlib

import torch

FORMAT = "pgolf_ref_per_row_v1"
CLIP_FRACTIONS = (1.0, 0.97, 0.93, 0.88, 0.82, 0.75)  # few candidates: cheap, and most of the MSE gain
CONTROL_PATTERNS = ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weights")


def quantize_rows(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, scale) with q in [-(2^(bits-1)-1), +] as int8 and one fp16 scale per row, the clip chosen by MSE."""
    levels = 2 ** (bits - 1) - 1
    w = w.float()
    absmax = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    best_q, best_scale, best_err = None, None, None
    for fraction in CLIP_FRACTIONS:
        scale = (absmax * fraction / levels).half().float().clamp_min(1e-12)  # the scale as it will be stored
        q = torch.clamp(torch.round(w / scale), -levels, levels)
        err = ((q * scale - w) ** 2).sum(dim=1, keepdim=True)
        if best_err is None:
            best_q, best_scale, best_err = q, scale, err
        else:
            better = err < best_err
            best_q = torch.where(better, q, best_q)
            best_scale = torch.where(better, scale, best_scale)
            best_err = torch.minimum(err, best_err)
    return best_q.to(torch.int8), best_scale.squeeze(1).half()


def quantize_state_dict(state: dict, matrix_bits: int = 6, embed_bits: int = 8, keep_float_numel: int = 65536,
                        meta: dict | None = None, bits_by_pattern: dict[str, int] | None = None) -> dict:
    """The storable object for `state`; `meta` (e.g. the model config) rides along. `bits_by_pattern` maps a name
    substring (".mlp.") to the bits of the matrices it matches, in place of `matrix_bits`."""
    obj = {"__quant_format__": FORMAT, "quantized": {}, "scales": {}, "bits": {}, "dtypes": {}, "passthrough": {},
           "meta": dict(meta or {})}
    for name, t in state.items():
        t = t.detach().cpu()
        obj["dtypes"][name] = str(t.dtype).removeprefix("torch.")
        if not t.is_floating_point() or t.ndim != 2 or t.numel() <= keep_float_numel:
            keep_fp32 = any(p in name for p in CONTROL_PATTERNS) or not t.is_floating_point()
            obj["passthrough"][name] = t.clone() if keep_fp32 else t.half()
            continue
        bits = embed_bits if "tok_emb" in name else matrix_bits
        bits = next((b for pattern, b in (bits_by_pattern or {}).items() if pattern in name), bits)
        obj["quantized"][name], obj["scales"][name] = quantize_rows(t, bits)
        obj["bits"][name] = bits
    return obj


def dequantize_state_dict(obj: dict) -> dict:
    """Back to a float state_dict with the original dtypes."""
    if obj.get("__quant_format__") != FORMAT:
        raise ValueError(f"not a {FORMAT} artifact")
    out = {}
    for name, q in obj["quantized"].items():
        out[name] = (q.float() * obj["scales"][name].float()[:, None]).to(getattr(torch, obj["dtypes"][name]))
    for name, t in obj["passthrough"].items():
        out[name] = t.to(getattr(torch, obj["dtypes"][name]))
    return out


def compress(data: bytes, codec: str) -> bytes:
    """zstd level 22 or zlib level 9, with a 4-byte codec tag so the reader knows which."""
    if codec == "zstd":
        import zstandard

        return b"ZSTD" + zstandard.ZstdCompressor(level=22).compress(data)
    if codec == "zlib":
        return b"ZLIB" + zlib.compress(data, 9)
    raise ValueError(f"unknown codec {codec}")


def decompress(blob: bytes) -> bytes:
    """Inverse of `compress`."""
    tag, body = blob[:4], blob[4:]
    if tag == b"ZSTD":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(body)
    if tag == b"ZLIB":
        return zlib.decompress(body)
    raise ValueError("unknown artifact codec tag")


def pack(obj: dict, codec: str) -> bytes:
    """Serialised, compressed artifact bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return compress(buffer.getvalue(), codec)


def unpack(blob: bytes) -> dict:
    """Artifact bytes back to the quantised object (weights_only: an artifact cannot run code)."""
    return torch.load(io.BytesIO(decompress(blob)), map_location="cpu", weights_only=True)


# Fallbacks when code + artifact would pass the cap, mildest first: fewer bits for the MLP matrices (the larger and
# less quantisation-sensitive half of each block), then attention too. Each try is logged with its size.
FIT_LADDER = ({}, {".mlp.": 5}, {".mlp.": 5, ".attn.": 5}, {".mlp.": 4, ".attn.": 5})


def pack_under_cap(state: dict, *, matrix_bits: int, keep_float_numel: int, codec: str, meta: dict, code_bytes: int,
                   cap: int, log) -> bytes:
    """The packed artifact at `matrix_bits`, or the first FIT_LADDER step whose code + artifact fits `cap` (0: no
    cap); when none fits, the smallest, said in a `quant_fit:no_fit` line."""
    blob = b""
    for attempt, overrides in enumerate(FIT_LADDER if cap > 0 else FIT_LADDER[:1]):
        obj = quantize_state_dict(state, matrix_bits=matrix_bits, embed_bits=8, keep_float_numel=keep_float_numel,
                                  meta=meta, bits_by_pattern=overrides)
        blob = pack(obj, codec)
        total = len(blob) + code_bytes
        what = f"attempt:{attempt} bits:{json.dumps(overrides, sort_keys=True)} total_bytes:{total} cap:{cap}"
        if cap <= 0 or total <= cap:
            if attempt:
                log(f"quant_fit:fitted {what}")
            return blob
        log(f"quant_fit:over_cap {what}")
    log(f"quant_fit:no_fit total_bytes:{len(blob) + code_bytes} cap:{cap} (the smallest is written)")
    return blob
