"""Train a challenge record script at the CPU presets' scale for a fixed step count, next to the reference.

  python bench/record_at_cpu_scale.py RECORD_FOLDER --steps 150 --seeds 42 [--replace 'ema_decay = 0.997' 'ema_decay = 0.95'] \
      [--env KEY=VALUE ...] [--out rows.jsonl]

The record's own train_gpt.py runs unmodified on a copy of its folder, under the probe's CPU compatibility layer
(harness/run/inject/cpu_compat.py: CUDA calls kept on the CPU, flash-attn on SDPA), with autocast off so that it
computes in fp32 like the reference on CPU. Its size knobs are set through its environment variables to the CPU
presets' shape (reference/presets.py CPU_SCALE: 4 layers x 128, 4 heads / 2 KV heads, sequence 128, 4,096 tokens per
step); depth-indexed knobs are scaled to 4 layers (value embeddings on the last two, XSA on the last one of four as
the record's 4 of 11); its step-count warmdown is the same 30 % of the run as cpu-smoke; its wall-clock cap is off.
`--replace OLD NEW` replaces one literal in the copy (for a constant the record hard-codes, such as an EMA decay) and is
printed with the result. The figure reported is the record's own final metric line (its last `*_exact` val_bpb).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "datasets" / "local_kjv_sp1024"
TOKENIZER = ROOT / "data" / "tokenizers" / "local_kjv_1024_bpe.model"
INJECT = ROOT / "harness" / "run" / "inject"

# The record's environment knobs for the CPU presets' shape (reference/presets.py CPU_SCALE).
CPU_SHAPE = dict(
    NUM_LAYERS="4", MODEL_DIM="128", NUM_HEADS="4", NUM_KV_HEADS="2", TRAIN_SEQ_LEN="128", EVAL_SEQ_LEN="128",
    TRAIN_BATCH_TOKENS="4096", VAL_BATCH_SIZE="8192", WARMUP_STEPS="0", MAX_WALLCLOCK_SECONDS="0",
    VAL_LOSS_EVERY="0", TRAIN_LOG_EVERY="25", ROPE_DIMS="8", VE_LAYERS="2,3", XSA_LAST_N="1", TTT_CHUNK_TOKENS="4096",
)

RUNNER = (
    "import contextlib, runpy, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "import torch, cpu_compat\n"
    "cpu_compat.install()\n"
    "off = lambda *a, **k: contextlib.nullcontext()\n"
    "torch.autocast = torch.amp.autocast = off\n"
    "sys.argv = ['train_gpt.py']\n"
    "runpy.run_path('train_gpt.py', run_name='__main__')\n"
)

FINAL = re.compile(r"^(\S+_exact) val_loss:(\S+) val_bpb:(\S+)")


def run_record(folder: Path, steps: int, seed: int, sets: dict[str, str], env_extra: dict[str, str],
               threads: int) -> dict:
    """One training run of the record in a scratch copy; its last `_exact` metric line and its step count."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "run"
        shutil.copytree(folder, work)
        script = work / "train_gpt.py"
        text = script.read_text(encoding="utf-8")
        for old, new in sets.items():
            if text.count(old) != 1:
                raise SystemExit(f"--replace {old!r}: found {text.count(old)} times in train_gpt.py, not once")
            text = text.replace(old, new)
        script.write_text(text, encoding="utf-8")
        env = dict(os.environ, **CPU_SHAPE, DATA_PATH=str(DATA), TOKENIZER_PATH=str(TOKENIZER), VOCAB_SIZE="1024",
                   ITERATIONS=str(steps), WARMDOWN_ITERS=str(round(0.3 * steps)), SEED=str(seed), RUN_ID="cpu",
                   OMP_NUM_THREADS=str(threads))
        env.update(env_extra)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", RUNNER, str(INJECT)], cwd=work, env=env, capture_output=True,
                              text=True, check=False)
        wall = time.perf_counter() - t0
        out = proc.stdout + proc.stderr
        finals = [m.groups() for m in map(FINAL.match, out.splitlines()) if m]
        row = {"record": folder.name, "seed": seed, "steps": steps, "set": sets, "env": env_extra,
               "wall_s": round(wall, 1), "returncode": proc.returncode}
        if proc.returncode != 0 or not finals:
            row["error"] = out.strip().splitlines()[-1] if out.strip() else f"exit {proc.returncode}"
            return row
        tag, loss, bpb = finals[-1]
        row.update(tag=tag, val_loss=float(loss), val_bpb=float(bpb),
                   all_finals={t: float(b) for t, _, b in finals})
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--replace", nargs=2, action="append", default=[], metavar=("OLD", "NEW"),
                        help="replace text that occurs once in the copy's train_gpt.py")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the record's environment")
    parser.add_argument("--out", type=Path)
    opts = parser.parse_args()
    if not (opts.record / "train_gpt.py").is_file():
        raise SystemExit(f"{opts.record}: no train_gpt.py")
    sets = dict(opts.replace)
    env_extra = dict(e.split("=", 1) for e in opts.env)
    for seed in (int(s) for s in opts.seeds.split(",")):
        row = run_record(opts.record, opts.steps, seed, sets, env_extra, os.cpu_count() or 2)
        print(json.dumps(row), flush=True)
        if opts.out:
            with opts.out.open("a", encoding="utf-8") as sink:
                sink.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
