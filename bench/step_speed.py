"""Time per training step of presets and variants relative to the naive baseline, measured so load cannot decide.

  python bench/step_speed.py [--rounds 15] [--variants 'mlp2:mlp_mult=2.0' ...]

Every model is built in one process and they step in turn (A B C ... A B C ...) on random batches, so a
burst of machine load slows all of them alike; the median of each one's step times (the first two rounds dropped)
is printed with its ratio to the naive baseline's median of the same run. Without --variants: the cpu-smoke preset,
the naive baseline, and the levers round 5 of docs/reference-sweep.md compares.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference.model import GPT
from reference.train_gpt import build_optimizers, load_hyperparameters, model_config

DEFAULT_VARIANTS = ("mlp3:mlp_mult=3.0", "mlp2:mlp_mult=2.0", "relu2:activation=relu2",
                    "b65k:bigram_buckets=65536", "nobigram:bigram_buckets=0")


def build(preset: str, overrides: list[str]):
    """(model, optimizers) for PRESET with `key=value` OVERRIDES, seeded alike."""
    args = load_hyperparameters({"PRESET": preset}, [f"--{o}" for o in overrides])
    torch.manual_seed(0)
    model = GPT(model_config(args))
    return model, build_optimizers(model, args), args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--variants", nargs="*", default=list(DEFAULT_VARIANTS),
                        help="NAME:key=value,key=value over the cpu-smoke preset")
    opts = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    models = {"cpu-smoke": build("cpu-smoke", []), "naive-baseline": build("naive-baseline", [])}
    for text in opts.variants:
        name, _, rest = text.partition(":")
        models[name] = build("cpu-smoke", [p for p in rest.split(",") if p])
    batches = {}
    for name, (_model, _optimizers, args) in models.items():  # one batch of each model's own shape
        g = torch.Generator().manual_seed(0)
        shape = (args.train_batch_tokens // args.train_seq_len, args.train_seq_len)
        batches[name] = [torch.randint(0, args.vocab_size, shape, generator=g) for _ in range(2)]
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(opts.rounds):
        for name, (model, optimizers, _args) in models.items():
            x, y = batches[name]
            t0 = time.perf_counter()
            model(x, y).backward()
            for opt in optimizers:
                opt.step()
                opt.zero_grad(set_to_none=True)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["naive-baseline"][2:])
    for name, ts in times.items():
        med = statistics.median(ts[2:])
        print(f"{name:15s} step_ms:{med * 1000:.1f} ratio_to_baseline:{med / base:.3f}")


if __name__ == "__main__":
    main()
