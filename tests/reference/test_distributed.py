"""Tests for the reference's multi-process path: evaluators and training under torchrun with gloo on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("distributed_worker.py")


def run_worker(out: Path, nproc: int) -> dict:
    """The three evaluators' figures from distributed_worker.py in `nproc` processes."""
    launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                     f"--nproc_per_node={nproc}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*launcher, str(WORKER), str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def one_and_two_processes(tmp_path_factory):
    """The worker's figures in one process and in two."""
    tmp = tmp_path_factory.mktemp("dist")
    return run_worker(tmp / "one.json", 1), run_worker(tmp / "two.json", 2)


@pytest.mark.parametrize("evaluator,rel", [("sliding", 1e-12), ("ttt", 1e-7), ("dynamic", 1e-7)])
def test_two_ranks_give_the_one_process_score(one_and_two_processes, evaluator, rel):
    """Sharding windows and TTT batches over two ranks (uneven splits) leaves loss and bpb unchanged, self-check on."""
    one, two = one_and_two_processes
    assert (one["world"], two["world"]) == (1, 2)
    assert two[evaluator] == pytest.approx(one[evaluator], rel=rel)
