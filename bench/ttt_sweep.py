"""Legal score-first TTT settings on one artifact: bpb of each against plain sliding evaluation of the same artifact.

  python bench/ttt_sweep.py [ARTIFACT] [--data DIR] [--grid lr=0.003,0.01,0.03 epochs=1,2 chunk=2048,4096]

Every setting restarts from the artifact's weights and runs the shipped evaluator with its self-check on; the table
is sorted by bpb. Used to choose the cpu-smoke preset's TTT defaults (reference/presets.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from reference.evaluate import sliding_eval, ttt_eval  # noqa: E402
from reference.metric import load_byte_tables  # noqa: E402
from reference.runner import resolve_data  # noqa: E402
from reference.shards import load_tokens  # noqa: E402
from reference.train_gpt import Hyperparameters, find_tokenizer, load_artifact, ttt_config  # noqa: E402

KEYS = {"lr": ("lr", float), "epochs": ("epochs", int), "chunk": ("chunk_tokens", int),
        "momentum": ("momentum", float), "freeze": ("freeze_blocks", int), "batch": ("batch_seqs", int)}


def parse_grid(items: list[str]) -> dict[str, list]:
    """`lr=0.01,0.03` items -> {"lr": [0.01, 0.03]} with each key's type."""
    grid = {}
    for item in items:
        key, _, values = item.partition("=")
        if key not in KEYS or not values:
            raise SystemExit(f"error: grid items are key=v1,v2 with key in {', '.join(KEYS)}")
        field, kind = KEYS[key]
        grid[field] = [kind(v) for v in values.split(",")]
    return grid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", nargs="?", default="submissions/my_run/final_model_seed42.ptz")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--grid", nargs="*", default=["lr=0.003,0.01,0.03", "epochs=1,2"])
    opts = parser.parse_args()
    grid = parse_grid(opts.grid)
    dataset = resolve_data(opts.data)
    model, meta = load_artifact(opts.artifact, torch.device("cpu"))
    settings, vocab = meta["eval"], meta["config"]["vocab_size"]
    tables = load_byte_tables(find_tokenizer(Hyperparameters(data_path=str(dataset), vocab_size=vocab)), vocab)
    tokens = torch.from_numpy(load_tokens(str(dataset / "fineweb_val_*.bin")).astype("int64"))
    seq, stride, batch = settings["eval_seq_len"], settings["eval_stride"], settings["eval_batch"]
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    _, base = sliding_eval(model, tokens, tables, seq, stride, batch)
    print(f"sliding val_bpb:{base:.6f} (artifact {opts.artifact}, {len(tokens) - 1} targets)")
    rows = []
    for values in itertools.product(*grid.values()):
        cfg = dataclasses.replace(ttt_config(settings), **dict(zip(grid, values)))
        model.load_state_dict(weights)
        t0 = time.perf_counter()
        _, bpb = ttt_eval(model, tokens, tables, seq, stride, cfg, batch)
        rows.append((bpb, cfg, time.perf_counter() - t0))
        print(f"  {dict(zip(grid, values))} val_bpb:{bpb:.6f} ({100 * (base - bpb) / base:+.2f} %) "
              f"{rows[-1][2]:.0f}s", flush=True)
    print("\n| setting | val_bpb | vs sliding | seconds |\n|---|---|---|---|")
    for bpb, cfg, seconds in sorted(rows, key=lambda r: r[0]):
        shown = {k: getattr(cfg, k) for k in grid}
        print(f"| {shown} | {bpb:.6f} | {100 * (base - bpb) / base:+.2f} % | {seconds:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
