"""Training throughput figures: model FLOPs per token, device peaks, and the `throughput` log line.

MFU follows PaLM (appendix B): 6 N FLOPs per token for the matmuls of every parameter (the tied head included) plus
12 L d T for attention scores and values, divided by the devices' dense bf16 peak.
"""

from __future__ import annotations

import torch

# Dense bf16 peak TFLOP/s per device (vendor datasheets, without sparsity), matched against the CUDA device name.
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "GH200": 989.4, "B200": 2250.0, "A100": 312.0, "L40S": 362.1,
                    "A10G": 70.0, "L4": 121.0}


def flops_per_token(num_layers: int, model_dim: int, n_params: int, seq_len: int) -> float:
    """Training FLOPs per token: 6 N + 12 L d T."""
    return 6.0 * n_params + 12.0 * num_layers * model_dim * seq_len


def lookup_peak_tflops(device_name: str) -> float:
    """The table's peak for a device name such as "NVIDIA H100 80GB HBM3" (longest key first: GH200 before H200),
    0 when unknown."""
    keys = sorted(PEAK_BF16_TFLOPS, key=len, reverse=True)
    return next((PEAK_BF16_TFLOPS[k] for k in keys if k in device_name), 0.0)


def throughput_line(flops: float, tokens_per_s: float, world: int, device: torch.device, peak_setting: float) -> str:
    """`throughput train_tokens_per_s:… model_tflops_per_s:… [mfu:… peak_tflops_per_device:…] peak memory`; the
    peak is the setting when positive, else looked up for a CUDA device; MFU is left out when it is unknown."""
    line = f"throughput train_tokens_per_s:{tokens_per_s:.0f} model_tflops_per_s:{flops * tokens_per_s / 1e12:.4g}"
    peak = peak_setting
    if peak <= 0 and device.type == "cuda":
        peak = lookup_peak_tflops(torch.cuda.get_device_name(device))
    if peak > 0:
        line += f" mfu:{flops * tokens_per_s / (peak * 1e12 * world):.4f} peak_tflops_per_device:{peak}"
    if device.type == "cuda":
        line += f" peak_memory_allocated_mib:{torch.cuda.max_memory_allocated(device) // 2**20}"
        line += f" peak_memory_reserved_mib:{torch.cuda.max_memory_reserved(device) // 2**20}"
    else:
        import resource  # POSIX only; the CPU figure is the process's peak resident set

        line += f" peak_rss_mib:{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}"
    return line
