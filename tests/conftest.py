"""Shared fixtures: factories for fake submission folders, and the CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

BASELINE_LOG = """\
val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path=./data/tokenizers/fineweb_1024_bpe.model
train_loader:dataset:fineweb10B_sp1024 train_shards:25
val_loader:shards pattern=./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin tokens:62021632
world_size:8 grad_accum_steps:1
seed:{seed}
step:13780/20000 val_loss:2.0606 val_bpb:1.2172 train_time:600038ms step_avg:43.54ms
stopping_early: wallclock_cap train_time:600038ms step:13780/20000
Serialized model int8+zlib: 15815847 bytes (payload:17178912 raw_torch:17224025 payload_ratio:3.91x)
Code size: {code_bytes} bytes
Total submission size int8+zlib: {total} bytes
final_int8_zlib_roundtrip val_loss:{loss:.4f} val_bpb:{bpb:.4f} eval_time:1401ms
final_int8_zlib_roundtrip_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}
"""

LEGAL_SCRIPT = '''\
import glob
import torch


def load_validation_tokens(pattern):
    return torch.cat([torch.load(f) for f in sorted(glob.glob(pattern))])


def eval_val(model, val_tokens):
    loss_sum = 0.0
    with torch.inference_mode():
        for i in range(0, val_tokens.numel() - 1, 1024):
            x = val_tokens[i:i + 1024]
            loss_sum += float(model(x[:-1], x[1:]))
    return loss_sum


def main():
    model = torch.nn.Linear(4, 4)
    val_tokens = load_validation_tokens("./data/fineweb_val_*.bin")
    print("final_int8_zlib_roundtrip_exact", eval_val(model, val_tokens))


if __name__ == "__main__":
    main()
'''


@pytest.fixture
def make_submission(tmp_path):
    """Return a factory that writes a submission folder from a dict of relative path -> text or bytes."""

    def _make(files: dict[str, str | bytes] | None = None, name: str = "2026-03-17_Example") -> Path:
        root = tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        for rel, content in (files or {}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        return root

    return _make


@pytest.fixture
def legal_submission(make_submission):
    """A small, complete, honest submission in the baseline dialect with three seeds."""
    script = LEGAL_SCRIPT
    code_bytes = len(script.encode())
    model_bytes = 15815847
    seeds = {"1337": (2.07269931, 1.22436570), "42": (2.07301234, 1.22455012), "7": (2.07250001, 1.22424711)}
    files = {"train_gpt.py": script, "README.md": "# Example\n\nA legal example.\n"}
    for seed, (loss, bpb) in seeds.items():
        files[f"train_seed{seed}.log"] = BASELINE_LOG.format(
            seed=seed, code_bytes=code_bytes, total=model_bytes + code_bytes, loss=loss, bpb=bpb)
    mean_bpb = sum(b for _, b in seeds.values()) / 3
    mean_loss = sum(l for l, _ in seeds.values()) / 3
    files["submission.json"] = json.dumps({
        "name": "Example", "author": "tester", "github_id": "tester", "date": "2026-03-17",
        "track": "10min_16mb", "val_bpb": round(mean_bpb, 8), "val_loss": round(mean_loss, 8),
        "bytes_total": model_bytes + code_bytes,
        "seeds": {s: {"val_bpb": b, "val_loss": l} for s, (l, b) in seeds.items()},
    }, indent=2)
    return make_submission(files)
