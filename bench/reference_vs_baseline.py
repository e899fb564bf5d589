"""Reference (cpu-smoke) vs the naive baseline at equal wall clock on the local data, and legal TTT vs sliding.

  python bench/reference_vs_baseline.py [--data data/datasets/local_kjv_sp1024] [--seed 42]

Both presets train for the same wall-clock budget (presets.CPU_SCALE) on the same shards, one after the other, and
are scored by their own headline evaluation of the round-tripped artifact: sliding windows (reference) and
non-overlapping rows (baseline). Prints val_bpb, the relative gain (target: at least 3 % lower), training tokens per
second, and the legal score-first TTT bpb against plain sliding evaluation of the same artifact.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference.runner import TrainOptions, read_log_figures, train_submission  # noqa: E402


def run(preset: str, seed: int, data: Path | None, work: Path) -> dict:
    """Train one preset into a scratch folder and return the figures of its log."""
    out = work / preset
    result = train_submission(TrainOptions(preset=preset, seed=seed, out=out, data_path=data, ttt=True))
    if result.exit_code != 0:
        raise SystemExit(f"{preset}: {result.text}")
    return read_log_figures((out / f"train_seed{seed}.log").read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=42)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ref = run("cpu-smoke", opts.seed, opts.data, Path(tmp))
        base = run("naive-baseline", opts.seed, opts.data, Path(tmp))
    ref_bpb = ref["metrics"]["final_sliding_window_exact"]["val_bpb"]
    base_tag = next(t for t in base["metrics"] if t.endswith("_roundtrip_exact"))
    base_bpb = base["metrics"][base_tag]["val_bpb"]
    ttt_bpb = ref["metrics"]["legal_ttt_exact"]["val_bpb"]
    for name, fig in (("reference", ref), ("baseline", base)):
        tps = fig["train_tokens"] / (fig["train_time_ms"] / 1000)
        print(f"{name:9s} steps:{fig['steps']} train_time:{fig['train_time_ms']}ms tokens_per_s:{tps:.0f} "
              f"bytes_total:{fig['bytes_total']}")
    gain = 1 - ref_bpb / base_bpb
    print(f"val_bpb reference:{ref_bpb:.6f} baseline:{base_bpb:.6f} ({base_tag}) "
          f"gain:{100 * gain:.2f}% target>=3%: {'met' if gain >= 0.03 else 'NOT met'}")
    ttt_gain = 1 - ttt_bpb / ref_bpb
    print(f"legal_ttt val_bpb:{ttt_bpb:.6f} vs sliding:{ref_bpb:.6f} gain:{100 * ttt_gain:.2f}% "
          f"self_check:passed {'lower' if ttt_bpb < ref_bpb else 'NOT lower'}")


if __name__ == "__main__":
    main()
