"""GPU-path tests (flash-attn, bf16 autocast, compile, a CUDA run): skipped on machines without CUDA."""

from __future__ import annotations

import pytest
import torch
from tiny import TWO_LETTER_TABLES, tiny_gpt  # on sys.path through conftest.py

from reference import model as model_module
from reference.evaluate import sliding_eval

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def small_model():
    """A 2-layer GQA model, 128 wide, with non-zero projections."""
    return tiny_gpt(model_dim=128, num_heads=4, num_kv_heads=2, rope_dims=16)


def test_flash_attn_matches_sdpa(monkeypatch):
    """Under bf16 autocast the flash-attn kernel and SDPA give the same logits to bf16 precision."""
    if model_module.flash_attn_func is None:
        pytest.skip("flash-attn is not installed (the gpu extra)")
    model = small_model().cuda()
    idx = torch.randint(0, 64, (4, 256), device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        flash = model.logits(idx).float()
        monkeypatch.setattr(model_module, "flash_attn_func", None)
        sdpa = model.logits(idx).float()
    assert (flash - sdpa).abs().max().item() < 0.05 * sdpa.abs().max().item()


def test_bf16_sliding_eval_tracks_the_fp32_cpu_score():
    """The CUDA bf16 evaluation of the same weights is within 1 % of the fp32 CPU score."""
    tables = TWO_LETTER_TABLES
    tokens = torch.randint(2, 64, (4097,), generator=torch.Generator().manual_seed(1))
    cpu_loss, cpu_bpb = sliding_eval(small_model(), tokens, tables, 256, 64)
    gpu_loss, gpu_bpb = sliding_eval(small_model().cuda(), tokens.cuda(), tables, 256, 64)
    assert gpu_loss == pytest.approx(cpu_loss, rel=0.01) and gpu_bpb == pytest.approx(cpu_bpb, rel=0.01)


def test_compiled_training_step_runs():
    """torch.compile of the model trains one bf16 step on CUDA and returns a finite loss."""
    model = small_model().cuda()
    compiled = torch.compile(model)
    idx = torch.randint(0, 64, (4, 128), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = compiled(idx[:, :-1], idx[:, 1:])
    loss.backward()
    assert torch.isfinite(loss).item()
