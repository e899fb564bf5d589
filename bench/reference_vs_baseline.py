"""Reference (cpu-smoke) vs the naive baseline, interleaved so that machine load cannot decide the result.

  python bench/reference_vs_baseline.py [--seeds 42,7] [--repeats 3] [--steps 150] [--clock 110] [--mode both]

Runs A B A B ... strictly one at a time (2 seeds x 3 repeats by default), in two comparisons:
- equal steps: both train exactly `--steps` steps with the LR schedule by steps (machine-independent);
- equal wall clock: both train for `--clock` seconds with the schedule by clock. A pair whose step counts differ
  by more than 15 % beyond the two trainers' own speed ratio is not a fair clock comparison: the report refuses it
  ("machine loaded") instead of printing a gain.
Each artifact is scored by both evaluations (sliding windows, stride 64, and non-overlapping rows), so the gain is
shown under the same evaluation as well as under each preset's headline one (reference: sliding; baseline: rows).
Statistics by scipy: mean +- sd per preset, and Welch's t-test of the two samples. Target: reference >= 8 % lower.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.reference_sweep import DATA, run_one

PRESETS = ("cpu-smoke", "naive-baseline")
HEADLINE = {"cpu-smoke": "sliding64", "naive-baseline": "rows"}
STEP_SPREAD = 0.15  # paired step counts may differ by this much beyond the median speed ratio


def comparison(rows: list[dict], mode: str) -> list[str]:
    """The printed lines of one comparison: per preset figures, gains under same and headline evaluations."""
    by = {p: [r for r in rows if r["preset"] == p] for p in PRESETS}
    out = [f"## {mode}"]
    for p, rs in by.items():
        def ms(key, rs=rs):
            vals = [r[key] for r in rs]
            return f"{statistics.mean(vals):.5f} +- {statistics.stdev(vals) if len(vals) > 1 else 0:.5f}"
        out.append(f"{p:15s} n:{len(rs)} steps:{[r['steps'] for r in rs]} tokens_per_s:"
                   f"{statistics.mean(r['tokens_per_s'] for r in rs):.0f} sliding64:{ms('sliding64')} rows:{ms('rows')}")
    if mode == "equal wall clock":
        ratios = [a["steps"] / b["steps"] for a, b in zip(by[PRESETS[0]], by[PRESETS[1]])]
        mid = statistics.median(ratios)
        bad = [r for r in ratios if abs(r / mid - 1) > STEP_SPREAD]
        if bad:
            out.append(f"REFUSED: paired step ratios {[round(r, 3) for r in ratios]} vary more than "
                       f"{STEP_SPREAD:.0%} around {mid:.3f}: the machine was loaded; re-run on a quiet machine")
            return out
    pairs = [("same evaluation (sliding64)", "sliding64", "sliding64"), ("same evaluation (rows)", "rows", "rows"),
             ("headline evaluations", HEADLINE[PRESETS[0]], HEADLINE[PRESETS[1]])]
    for label, ka, kb in pairs:
        a = [r[ka] for r in by[PRESETS[0]]]
        b = [r[kb] for r in by[PRESETS[1]]]
        gain = 1 - statistics.mean(a) / statistics.mean(b)
        test = stats.ttest_ind(a, b, equal_var=False)
        out.append(f"{label}: reference {statistics.mean(a):.5f} vs baseline {statistics.mean(b):.5f} "
                   f"gain:{100 * gain:.2f}% welch_t:{test.statistic:.2f} p:{test.pvalue:.2g} "
                   f"target>=8%: {'met' if gain >= 0.08 else 'NOT met'}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42,7")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--clock", type=float, default=110.0, help="seconds of training in the wall-clock mode")
    parser.add_argument("--mode", choices=("steps", "clock", "both"), default="both")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=None, help="append every run as a JSON line")
    opts = parser.parse_args()
    seeds = [int(s) for s in opts.seeds.split(",")]
    modes = {"steps": ["equal steps"], "clock": ["equal wall clock"], "both": ["equal steps", "equal wall clock"]}
    for mode in modes[opts.mode]:
        clock = {"ITERATIONS": "100000", "MAX_WALLCLOCK_SECONDS": str(opts.clock), "SCHEDULE_BY_CLOCK": "1"}
        overrides = {} if mode == "equal steps" else clock
        rows = []
        for repeat in range(opts.repeats):
            for seed in seeds:
                for preset in PRESETS:  # A B A B: both see the same machine state, in turn
                    row = run_one(preset, preset, overrides, seed, opts.steps, os.cpu_count() or 2, opts.data)
                    if "error" in row:
                        raise SystemExit(f"{preset} seed {seed}: {row['error']}")
                    row.update(preset=preset, repeat=repeat, mode=mode)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if opts.out:
                        with opts.out.open("a", encoding="utf-8") as f:
                            f.write(json.dumps(row) + "\n")
        print("\n".join(comparison(rows, mode)), flush=True)


if __name__ == "__main__":
    main()
