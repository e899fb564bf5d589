"""Small synthetic logs and submissions for the log, claims, budget, metric and consistency tests."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

SEP = "=" * 100
CANON_BYTES = 151_077_000


def metric_pair(loss: float, tokens: int, bytes_total: int = CANON_BYTES) -> tuple[float, float]:
    """(val_loss, val_bpb) whose implied denominator is `bytes_total`."""
    return loss, loss / math.log(2) * tokens / bytes_total


def baseline_log(seed: int = 1337, bpb: float = 1.2243657, loss: float = 2.07269931, tokens: int = 62_021_632,
                 train_ms: int = 600_038, gpu: str = "NVIDIA H100 80GB HBM3", world: int = 8,
                 source: str = "import os\nprint('final_int8_zlib_roundtrip_exact val_loss:9.0 val_bpb:9.0')\n",
                 code_size: int = 47_642, extra: str = "") -> str:
    """A log in the 2026-03-17 baseline dialect: source dump, nvidia-smi, step lines, sizes, final lines."""
    gpus = "\n".join(f"|   {i}  {gpu}          On  |   00000000:18:00.0 Off |                    0 |"
                     for i in range(world))
    return f"""{source}{SEP}
Running Python 3.12.3
{gpus}
{SEP}
val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path=./data/tokenizers/fineweb_1024_bpe.model
train_loader:dataset:fineweb10B_sp1024 train_shards:80
val_loader:shards pattern=./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin tokens:{tokens}
world_size:{world} grad_accum_steps:1
train_batch_tokens:524288 train_seq_len:1024 iterations:20000 warmup_steps:20 max_wallclock_seconds:600.000
seed:{seed}
step:0/20000 val_loss:6.9357 val_bpb:4.1077 train_time:0ms step_avg:0.02ms
step:1/20000 train_loss:6.9370 train_time:28ms step_avg:28.34ms
step:13780/20000 val_loss:2.0606 val_bpb:1.2172 train_time:{train_ms}ms step_avg:43.54ms
stopping_early: wallclock_cap train_time:{train_ms}ms step:13780/20000
Serialized model: 67224983 bytes
Code size: {code_size} bytes
Total submission size: 67272625 bytes
Serialized model int8+zlib: 15815847 bytes (payload:17178912 raw_torch:17224025 payload_ratio:3.91x)
Total submission size int8+zlib: 15863489 bytes
{extra}final_int8_zlib_roundtrip val_loss:{loss:.4f} val_bpb:{bpb:.4f} eval_time:1401ms
final_int8_zlib_roundtrip_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}
"""


def modern_log(seed: int = 42, bpb: float = 1.0598945, loss: float = 2.3194421, tokens: int = 47_851_520,
               train_ms: float = 599_592, hessian_s: float = 4.7, eval_s: float = 508.8, shards: int = 80,
               datasets_dir: str = "./data/datasets/fineweb10B_sp8192_caseops", prefix: str = "",
               source: str = "import torch\ndef main():\n    pass\n", extra_hyper: str = "") -> str:
    """A log in the 2026-04 dialect: hyperparameter dump, `Source code:` section, unprefixed steps, TTT lines."""
    p = prefix
    lines = [SEP, "Hyperparameters:", f"  seed: {seed}", "  world_size: 8", "  max_wallclock_seconds: 600.0",
             "  gptq_reserve_seconds: 0.5", f"  datasets_dir: {datasets_dir}", "  train_seq_len: 2048",
             *([extra_hyper] if extra_hyper else []), SEP, "Source code:", SEP, *source.rstrip("\n").split("\n"),
             SEP, "Running Python 3.12", SEP, f"train_shards: {shards}", f"val_tokens: {tokens}",
             "gptq:reserving 0.5s, effective=599500ms",
             "1000/20000 train_loss: 2.9 train_time: 2.0m tok/s: 8000000",
             "4945/20000 val_loss: 2.3000 val_bpb: 1.0700",
             f"stopping_early: wallclock_cap train_time: {train_ms}ms step: 4945/20000",
             "GPTQ:collecting Hessians from calibration data...",
             f"GPTQ:collected 67 Hessians in {hessian_s}s",
             "Code size (uncompressed): 157868 bytes", "Code size (compressed): 31999 bytes",
             "Serialized model quantized+brotli: 15865260 bytes",
             "Total submission size quantized+brotli: 15897259 bytes",
             "diagnostic pre-quantization post-ema val_loss:2.28 val_bpb:1.04 eval_time:7000ms",
             "diagnostic quantized val_loss:2.30 val_bpb:1.06 eval_time:9000ms",
             "ttt_phased: total_docs:50000 prefix_docs:2000 suffix_docs:48000 num_phases:3",
             f"quantized_ttt_phased val_loss:{loss:.8f} val_bpb:{bpb:.8f} eval_time:{eval_s * 1000:.0f}ms",
             f"total_eval_time:{eval_s}s"]
    return "\n".join(p + line for line in lines) + "\n"


def write_submission(root: Path, files: dict[str, str]) -> SimpleNamespace:
    """Write files into root and return a Submission-like object (the loader's fields this module reads)."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    logs = sorted(Path(r) for r in files if r.endswith((".log", ".txt")))
    js = next((Path(r) for r in files if r.startswith("submission") and r.endswith(".json")), None)
    return SimpleNamespace(root=root, logs=logs, submission_json=js, single_script=False,
                           abs=lambda rel: root / rel, display=lambda rel: Path(rel).as_posix())


@pytest.fixture
def submission(tmp_path):
    """Factory: submission(files) -> a Submission-like object over tmp_path."""
    return lambda files: write_submission(tmp_path, files)


def code_bundle(text: str, shipped: bytes | None = None, origin: str = "shipped", counted: dict | None = None):
    """A stand-in for harness.submission.code.CodeBundle with one unit."""
    data = shipped if shipped is not None else text.encode()
    unit = SimpleNamespace(path="train_gpt.py", text=text, origin=origin, shipped_bytes=data)
    return SimpleNamespace(units=[unit], shipped_bytes=data, counted_files=counted or {"train_gpt.py": data})


def claims_json(**data) -> str:
    return json.dumps(data)


@pytest.fixture
def kit() -> SimpleNamespace:
    """The log and code builders of this module, for tests."""
    return SimpleNamespace(baseline_log=baseline_log, modern_log=modern_log, metric_pair=metric_pair,
                           code_bundle=code_bundle, claims_json=claims_json, SEP=SEP)
