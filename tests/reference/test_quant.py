"""Tests for reference/quant.py: per-row quantisation and the compressed round trip."""

from __future__ import annotations

import pytest
import torch

from reference.quant import (
    FIT_LADDER,
    dequantize_state_dict,
    pack,
    pack_under_cap,
    quantize_rows,
    quantize_state_dict,
    unpack,
)


def sample_state() -> dict:
    """A state_dict with a large matrix, an embedding, a small matrix and a control vector."""
    g = torch.Generator().manual_seed(0)
    return {"blocks.0.mlp.fc.weight": torch.randn(64, 96, generator=g) * 0.02,
            "tok_emb.weight": torch.randn(128, 32, generator=g) * 0.01,
            "blocks.0.attn.c_q.weight": torch.randn(8, 8, generator=g),
            "blocks.0.attn_scale": torch.rand(32, generator=g)}


class TestQuantize:
    """Per-row quantisation."""

    @pytest.mark.parametrize("bits", [6, 8])
    def test_levels_and_error_bound(self, bits):
        """Levels stay within +-(2^(b-1)-1) and the error stays within half a step of the unclipped range."""
        w = torch.randn(16, 40)
        q, scale = quantize_rows(w, bits)
        levels = 2 ** (bits - 1) - 1
        assert q.abs().max() <= levels
        recon = q.float() * scale.float()[:, None]
        assert ((recon - w).abs().max(dim=1).values <= w.abs().max(dim=1).values / levels * 1.01 + 1e-6).all()

    @pytest.mark.parametrize("codec", ["zstd", "zlib"])
    def test_round_trip(self, codec):
        """pack/unpack/dequantize returns every tensor with its dtype; small and control tensors exactly."""
        state = sample_state()
        obj = quantize_state_dict(state, matrix_bits=6, keep_float_numel=100, meta={"config": {"a": 1}})
        back = dequantize_state_dict(unpack(pack(obj, codec)))
        assert set(back) == set(state) and all(back[k].dtype == state[k].dtype for k in state)
        assert torch.equal(back["blocks.0.attn_scale"], state["blocks.0.attn_scale"])
        assert (back["blocks.0.mlp.fc.weight"] - state["blocks.0.mlp.fc.weight"]).abs().max() < 0.01
        assert unpack(pack(obj, codec))["meta"] == {"config": {"a": 1}}

    def test_embedding_gets_eight_bits(self):
        """The tied embedding is stored int8 while block matrices are int6."""
        obj = quantize_state_dict(sample_state(), matrix_bits=6, keep_float_numel=100)
        assert obj["bits"] == {"blocks.0.mlp.fc.weight": 6, "tok_emb.weight": 8}

    def test_not_an_artifact(self):
        """Foreign objects are refused."""
        with pytest.raises(ValueError):
            dequantize_state_dict({"__quant_format__": "other"})


class TestFitUnderCap:
    """pack_under_cap: the fallback ladder when code + artifact would pass the cap."""

    @pytest.fixture
    def state(self):
        """Block-shaped matrices of Gaussian weights (incompressible at int6) and a small float tensor."""
        gen = torch.Generator().manual_seed(0)
        return {f"blocks.{i}.{part}.weight": torch.randn(64, 64, generator=gen)
                for i in range(2) for part in ("mlp.fc", "mlp.proj", "attn.c_q")} | {"norm.weight": torch.ones(64)}

    def sizes(self, state):
        """Artifact bytes at each ladder step."""
        return [len(pack(quantize_state_dict(state, keep_float_numel=0, bits_by_pattern=o), "zstd")) for o in FIT_LADDER]

    @pytest.mark.parametrize("step", [0, 1, 2, 3])
    def test_the_first_step_that_fits_is_written(self, state, step):
        """A cap just above ladder step `step` (with 1,000 code bytes) yields exactly that step's artifact."""
        sizes = self.sizes(state)
        assert sizes == sorted(sizes, reverse=True)  # each step is smaller
        lines = []
        blob = pack_under_cap(state, matrix_bits=6, keep_float_numel=0, codec="zstd", meta={}, code_bytes=1000,
                              cap=sizes[step] + 1000, log=lines.append)
        assert len(blob) == sizes[step]
        assert sum("quant_fit:over_cap" in line for line in lines) == step
        assert unpack(blob)["bits"]["blocks.0.mlp.fc.weight"] == (6, 5, 5, 4)[step]

    def test_nothing_fits_writes_the_smallest_and_says_so(self, state):
        """Under an impossible cap the last step is written and a no_fit line is logged."""
        lines = []
        blob = pack_under_cap(state, matrix_bits=6, keep_float_numel=0, codec="zstd", meta={}, code_bytes=0, cap=10,
                              log=lines.append)
        assert len(blob) == self.sizes(state)[-1] and lines[-1].startswith("quant_fit:no_fit")
