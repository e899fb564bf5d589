"""Tests for reference/throughput.py: the figures behind the MFU line."""

from __future__ import annotations

import pytest
import torch

from reference.throughput import flops_per_token, lookup_peak_tflops, throughput_line


class TestThroughput:
    """The figures behind the MFU line."""

    def test_flops_per_token_follows_palm(self):
        """6 N plus 12 L d T: 1,000 parameters, 2 layers of width 8 at length 16."""
        assert flops_per_token(2, 8, 1000, 16) == 6000 + 12 * 2 * 8 * 16

    @pytest.mark.parametrize("name,peak", [("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H200", 989.4),
                                           ("NVIDIA GH200 480GB", 989.4), ("NVIDIA A100-SXM4-80GB", 312.0),
                                           ("NVIDIA L4", 121.0), ("Tesla T4", 0.0)])
    def test_peak_is_looked_up_from_the_device_name(self, name, peak):
        """Known data-centre parts map to their dense bf16 peak; an unknown part gives 0 (no MFU printed)."""
        assert lookup_peak_tflops(name) == peak

    def test_cpu_line_has_tokens_and_resident_memory_but_no_mfu(self):
        """On CPU with no peak set the line gives tokens/s and peak RSS and leaves MFU out."""
        line = throughput_line(6e6, 1000.0, 1, torch.device("cpu"), 0.0)
        assert line.startswith("throughput train_tokens_per_s:1000 model_tflops_per_s:0.006")
        assert "peak_rss_mib:" in line and "mfu:" not in line

    def test_mfu_divides_by_every_device(self):
        """A set peak of 1 TFLOP/s per device on two devices and 1 TFLOP/s achieved is an MFU of 0.5."""
        assert "mfu:0.5000 peak_tflops_per_device:1.0" in throughput_line(1e9, 1000.0, 2, torch.device("cpu"), 1.0)
