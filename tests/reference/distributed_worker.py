"""Run by test_distributed.py: the three evaluators on a fixed tiny model and stream, one process or under torchrun.

Usage: python distributed_worker.py OUT.json  (rank 0 writes {"sliding": [loss, bpb], "ttt": ..., "dynamic": ...}).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
from tiny import TWO_LETTER_TABLES as TABLES  # the script's folder is on sys.path
from tiny import tiny_gpt

from reference.evaluate import TTTConfig, dynamic_eval, sliding_eval, ttt_eval
from reference.train_gpt import teardown_distributed


def main(out: str) -> None:
    """Evaluate three ways and let rank 0 write the figures."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        dist.init_process_group("gloo")
    torch.set_num_threads(1)
    # 1,001 targets: windows and TTT batches do not split evenly over two ranks
    tokens = torch.from_numpy(np.random.default_rng(5).integers(2, 64, 1002)).long()
    cfg = TTTConfig(chunk_tokens=128, lr=0.05, momentum=0.9, epochs=2, batch_seqs=3, grad_clip=1.0)
    results = {"sliding": sliding_eval(tiny_gpt(), tokens, TABLES, 32, 8, batch=5),
               "ttt": ttt_eval(tiny_gpt(), tokens, TABLES, 32, 8, cfg, batch=5),
               "dynamic": dynamic_eval(tiny_gpt(), tokens, TABLES, 32, 16, lr=0.05, batch=3)}
    if int(os.environ.get("RANK", 0)) == 0:
        with open(out, "w") as fh:
            json.dump({"world": world, **results}, fh)
    if world > 1:
        teardown_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
