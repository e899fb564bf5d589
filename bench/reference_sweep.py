"""Sweep reference-trainer levers at a fixed step count on the local data; one JSON line per run.

  python bench/reference_sweep.py --variants 'base:' 'lr2:MATRIX_LR=0.05,TIED_EMBED_LR=0.07' --seeds 42 \
      --steps 150 --out sweep.jsonl [--preset cpu-smoke] [--jobs 2]

Each variant is `NAME:KEY=VALUE,...` (Hyperparameters fields as env vars) over `--preset`. Every run trains for
exactly `--steps` steps (the LR schedule by steps, the wall-clock cap off), so its val_bpb does not depend on the
machine's load and runs may share the cores (`--jobs`, each with cores/jobs threads). The artifact is scored by both
evaluations the presets use: sliding windows (stride 64) and the baseline's non-overlapping rows, with TTT off.
Prints one row per variant: mean val_bpb of each evaluation over the seeds, and the difference to the first variant.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCRIPT = ROOT / "reference" / "train_gpt.py"
DATA = ROOT / "data" / "datasets" / "local_kjv_sp1024"


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """('name', {KEY: value}) from `name:KEY=V,KEY=V`."""
    name, _, rest = text.partition(":")
    pairs = [p for p in rest.split(",") if p.strip()]
    return name, dict(p.strip().split("=", 1) for p in pairs)


def score_both(artifact: Path, data: Path) -> dict[str, float]:
    """val_bpb of the artifact under sliding windows (stride 64) and non-overlapping rows, in a fresh process."""
    code = (
        "import json, sys, numpy as np, torch\n"
        "from reference.train_gpt import load_artifact, find_tokenizer, Hyperparameters\n"
        "from reference.metric import load_byte_tables\n"
        "from reference.evaluate import sliding_eval, truncate_for_rows\n"
        "from reference.shards import load_tokens\n"
        "art, data = sys.argv[1], sys.argv[2]\n"
        "model, meta = load_artifact(art, torch.device('cpu'))\n"
        "seq = meta['eval']['eval_seq_len']\n"
        "tables = load_byte_tables(find_tokenizer(Hyperparameters(data_path=data)), model.cfg.vocab_size)\n"
        "val = torch.from_numpy(load_tokens(data + '/fineweb_val_*.bin').astype(np.int64))\n"
        "with torch.no_grad():\n"
        "    s = sliding_eval(model, val, tables, seq, 64, 64)[1]\n"
        "    r = sliding_eval(model, truncate_for_rows(val, seq), tables, seq, seq, 64)[1]\n"
        "print(json.dumps({'sliding64': s, 'rows': r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(artifact), str(data)], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_one(preset: str, name: str, overrides: dict, seed: int, steps: int, threads: int, data: Path) -> dict:
    """Train one variant for `steps` steps and return its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PRESET=preset, DATA_PATH=str(data), SEED=str(seed), ITERATIONS=str(steps),
                   MAX_WALLCLOCK_SECONDS="0", SCHEDULE_BY_CLOCK="0", TTT_ENABLED="0", RUN_ID="sweep",
                   LOG_PATH=f"{tmp}/log.txt", ARTIFACT_PATH=f"{tmp}/model.ptz", OMP_NUM_THREADS=str(threads),
                   PYTHONPATH=str(ROOT))
        env.update(overrides)  # a wall-clock run overrides ITERATIONS, MAX_WALLCLOCK_SECONDS, SCHEDULE_BY_CLOCK
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp, env=env, capture_output=True, text=True,
                              check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"name": name, "seed": seed, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1]}
        lines = Path(f"{tmp}/log.txt").read_text(encoding="utf-8").splitlines()
        done = next(ln for ln in lines if ln.startswith("train_time:"))  # train_time:Nms steps:S train_tokens:T
        train_ms, steps = int(done.split("train_time:")[1].split("ms")[0]), int(done.split("steps:")[1].split()[0])
        size = next(int(ln.split(":")[1].split()[0]) for ln in lines if ln.startswith("Total submission size"))
        scores = score_both(Path(f"{tmp}/model.ptz"), data)
    tokens_per_s = steps * int(env.get("TRAIN_BATCH_TOKENS", 4096)) / max(train_ms / 1000, 1e-9)
    return {"name": name, "seed": seed, "steps": steps, "overrides": overrides, "train_ms": train_ms,
            "tokens_per_s": round(tokens_per_s),
            "wall_s": round(wall, 1), "bytes_total": size, **scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--preset", default="cpu-smoke")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, required=True)
    opts = parser.parse_args()
    variants = [parse_variant(v) for v in opts.variants]
    seeds = [int(s) for s in opts.seeds.split(",")]
    threads = max(1, (os.cpu_count() or 2) // opts.jobs)
    tasks = [(name, ov, seed) for seed in seeds for name, ov in variants]
    results: dict[str, list[dict]] = {name: [] for name, _ in variants}
    with ThreadPoolExecutor(opts.jobs) as pool, opts.out.open("a", encoding="utf-8") as sink:
        futures = [pool.submit(run_one, opts.preset, n, ov, s, opts.steps, threads, opts.data) for n, ov, s in tasks]
        for fut in futures:
            row = fut.result()
            row["preset"] = opts.preset
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            print(json.dumps(row), flush=True)
            results[row["name"]].append(row)
    base = None
    print(f"{'variant':28s} {'n':>2s} {'sliding64':>10s} {'rows':>8s} {'d_sliding':>10s} {'train_s':>8s}")
    for name, rows in results.items():
        ok = [r for r in rows if "error" not in r]
        if not ok:
            print(f"{name:28s} failed: {rows[0]['error']}")
            continue
        s = statistics.mean(r["sliding64"] for r in ok)
        r_ = statistics.mean(r["rows"] for r in ok)
        base = s if base is None else base
        t = statistics.mean(r["train_ms"] for r in ok) / 1000
        print(f"{name:28s} {len(ok):2d} {s:10.5f} {r_:8.5f} {s - base:+10.5f} {t:8.1f}")


if __name__ == "__main__":
    main()
