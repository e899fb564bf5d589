"""One short run of the `full` reference configuration on the CUDA devices here: the figures docs/gpu.md records.

  python bench/gpu_full.py [--seconds 120] [--nproc N] [--data PATH] [--seed 42] [--keep DIR]

Trains the full-size model (11 x 512, seq 2048, 786,432 tokens per step) under torchrun with NCCL for a capped wall
clock, then exports, round-trips and scores it (sliding windows and legal score-first TTT), exactly as a submission
would. Prints the step time, tokens per second, MFU (bf16 dense peak looked up from the device name), peak memory,
the attention kernel, the artifact size and both scores, and whether `check` passes the folder. Needs CUDA.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference.runner import TrainOptions, read_log_figures, train_submission  # noqa: E402

LINE_KEYS = ("step_avg", "train_tokens_per_s", "model_tflops_per_s", "mfu", "peak_tflops_per_device",
             "peak_memory_allocated_mib", "peak_memory_reserved_mib", "kernel", "autocast", "compile", "steps",
             "world_size", "total_eval_time")


def last_values(log: str) -> dict:
    """The last value of every `key:value` token named in LINE_KEYS, read after the source dump."""
    found: dict = {}
    run_lines = log.split("=" * 100)[-1]
    for key in LINE_KEYS:
        hits = re.findall(rf"(?<![\w.]){key}:([^\s]+)", run_lines)
        if hits:
            found[key] = hits[-1]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="training wall-clock cap (the challenge: 600)")
    parser.add_argument("--nproc", type=int, default=0, help="processes; 0: one per visible CUDA device")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, default=None, help="write the submission folder here")
    opts = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("error: bench/gpu_full.py needs CUDA; see docs/gpu.md", file=sys.stderr)
        return 2
    nproc = opts.nproc or torch.cuda.device_count()
    os.environ["MAX_WALLCLOCK_SECONDS"] = str(opts.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        out = opts.keep or Path(tmp) / "full"
        result = train_submission(TrainOptions(preset="full", seed=opts.seed, out=out, data_path=opts.data,
                                               nproc=nproc), progress=print)
        if result.exit_code != 0:
            print(f"error: {result.text}", file=sys.stderr)
            return 2
        log = (out / f"train_seed{opts.seed}.log").read_text(encoding="utf-8")
        from harness.check.pipeline import check_path

        verdict = check_path(out).verdict
    figures, values = read_log_figures(log), last_values(log)
    print(f"\n| figure | value |\n|---|---|\n| device | {torch.cuda.get_device_name(0)} x {nproc} |")
    print(f"| torch / CUDA | {torch.__version__} / {torch.version.cuda} |")
    for key in LINE_KEYS:
        if key in values:
            print(f"| {key} | {values[key]} |")
    for tag, metric in figures["metrics"].items():
        print(f"| {tag} val_bpb | {metric['val_bpb']:.6f} |")
    print(f"| bytes_total | {figures.get('bytes_total')} |\n| check verdict | {verdict} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
