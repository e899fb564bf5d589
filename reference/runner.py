"""`python cli.py train` and `python cli.py eval`: run the bundled script and write a complete submission folder.

train_submission writes train_gpt.py (a fresh bundle), runs it (one process, or torchrun for --nproc > 1) with the
preset, seed and paths as environment, and from the log it wrote builds submission.json and README.md. Figures in
submission.json are read from the log, never computed separately, so the log stays the evidence.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from reference.bundle import write_bundle
from reference.outcome import CommandResult, InputError
from reference.presets import PRESETS

DEFAULT_DATA = Path("data/datasets/local_kjv_sp1024")
HEADLINE_TAGS = ("legal_ttt_exact", "final_sliding_window_exact", "final_int8_zlib_roundtrip_exact",
                 "final_int6_zstd_roundtrip_exact")
_METRIC = re.compile(r"^(\w+) val_loss:([\d.]+) val_bpb:([\d.]+)(?: eval_time:(\d+)ms)?")


@dataclass(frozen=True)
class TrainOptions:
    """What `python cli.py train` asks for."""

    preset: str = "cpu-smoke"
    seed: int = 42
    out: Path = Path("submissions/my_run")
    data_path: Path | None = None
    nproc: int = 1
    ttt: bool = True


@dataclass(frozen=True)
class EvalOptions:
    """What `python cli.py eval` asks for."""

    artifact: Path
    ttt: bool = False
    data_path: Path | None = None
    stride: int | None = None


def resolve_data(data_path: Path | None) -> Path:
    """The dataset folder, checked for train and val shards."""
    folder = Path(data_path) if data_path is not None else DEFAULT_DATA
    if not list(folder.glob("fineweb_val_*.bin")) or not list(folder.glob("fineweb_train_*.bin")):
        raise InputError(f"{folder}: no fineweb_train_*.bin / fineweb_val_*.bin shards; run `python cli.py data`")
    return folder.resolve()


def resolve_out(out: Path, preset: str, seed: int) -> Path:
    """`--out submissions` (the folder itself) gets a dated child, the challenge's YYYY-MM-DD_description."""
    if out.name == "submissions":
        return out / f"{datetime.date.today().isoformat()}_reference_{preset}_seed{seed}"
    return out


def read_log_figures(text: str) -> dict:
    """The figures submission.json restates, from the log's key:value lines."""
    figures: dict = {"metrics": {}}
    for line in text.splitlines():
        if m := _METRIC.match(line):
            figures["metrics"][m.group(1)] = {"val_loss": float(m.group(2)), "val_bpb": float(m.group(3)),
                                             "eval_time_ms": int(m.group(4)) if m.group(4) else None}
        elif m := re.match(r"^Serialized model \S+: (\d+) bytes", line):
            figures["bytes_model"] = int(m.group(1))
        elif m := re.match(r"^Code size: (\d+) bytes", line):
            figures["bytes_code"] = int(m.group(1))
        elif m := re.match(r"^Total submission size \S+: (\d+) bytes", line):
            figures["bytes_total"] = int(m.group(1))
        elif m := re.match(r"^train_time:(\d+)ms steps:(\d+) train_tokens:(\d+)", line):
            figures["train_time_ms"], figures["steps"] = int(m.group(1)), int(m.group(2))
            figures["train_tokens"] = int(m.group(3))
        elif m := re.match(r"^total_eval_time:([\d.]+)s", line):
            figures["eval_time_s"] = float(m.group(1))
    headline = next((t for t in HEADLINE_TAGS if t in figures["metrics"]), None)
    figures["headline"] = headline
    return figures


def run_script(out: Path, env: dict, nproc: int, progress) -> tuple[int, str]:
    """Run out/train_gpt.py, streaming its console lines to `progress`; returns the exit code and the first line
    that reads as an error (else the last line), so a failure is explained even when no log was written."""
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "train_gpt.py"]
    else:
        cmd = [sys.executable, "train_gpt.py"]
    with subprocess.Popen(cmd, cwd=out, env={**os.environ, **env}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        reason, last = "", ""
        for line in proc.stdout:
            line = line.rstrip()
            if progress is not None:
                progress(line)
            if line.strip():
                last = line.strip()
                if not reason and re.match(r"(\[rank\d+\]:\s*)?(error|\w+Error)\b", last):
                    reason = last
        return proc.wait(), reason or last


def write_submission_json(out: Path, preset: str, seed: int, figures: dict, dataset_name: str) -> dict:
    """Add this seed to out/submission.json (schema_version 1), recomputing the means over seeds."""
    path = out / "submission.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    seeds = data.get("seeds", {}) if data.get("schema_version") == 1 else {}
    metric = figures["metrics"][figures["headline"]]
    seeds[str(seed)] = {"val_bpb": metric["val_bpb"], "val_loss": metric["val_loss"],
                        "bytes_total": figures.get("bytes_total"), "bytes_model": figures.get("bytes_model"),
                        "bytes_code": figures.get("bytes_code"), "steps": figures.get("steps"),
                        "train_time_ms": figures.get("train_time_ms"), "eval_time_s": figures.get("eval_time_s"),
                        "metric_tag": figures["headline"], "log": f"train_seed{seed}.log"}
    values = list(seeds.values())
    data = {"schema_version": 1, "name": f"Reference trainer ({preset})", "author": "pgolf-harness reference",
            "date": datetime.date.today().isoformat(), "track": "non_record_16mb", "dataset": dataset_name,
            "run_env": {"PRESET": preset},  # what `reproduce` must set for the script to pick this configuration
            "val_bpb": round(sum(v["val_bpb"] for v in values) / len(values), 8),
            "val_loss": round(sum(v["val_loss"] for v in values) / len(values), 8),
            "bytes_total": max(v["bytes_total"] or 0 for v in values), "seeds": dict(sorted(seeds.items()))}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data


def write_readme(out: Path, preset: str, data: dict, dataset: Path) -> None:
    """A README that says what ran, how to re-run it and what it scored."""
    rows = "\n".join(f"| {s} | {v['val_bpb']:.6f} | {v['val_loss']:.6f} | {v['bytes_total']} | {v['steps']} |"
                     for s, v in data["seeds"].items())
    seeds = ",".join(data["seeds"])
    (out / "README.md").write_text(f"""# Reference trainer, preset `{preset}`

Generated by `python cli.py train` from the modules in `reference/` (bundled by `reference/bundle.py`).
Dataset: `{dataset.name}` (local, not FineWeb: scores are not comparable with the leaderboard).
Track: non_record_16mb (local data). Headline metric: the legal score-first TTT evaluation of the round-tripped artifact
when it ran (`legal_ttt_exact`), else the sliding-window score.

## Reproduce

```
python cli.py data                      # builds data/datasets/{dataset.name}
for s in {seeds.replace(',', ' ')}; do python cli.py train --preset {preset} --seed $s --out {out.as_posix()}; done
```

## Results

| seed | val_bpb | val_loss | bytes_total | steps |
|---|---|---|---|---|
{rows}

Mean val_bpb {data['val_bpb']:.6f}; largest artifact + code {data['bytes_total']} bytes (cap 16,000,000).
""", encoding="utf-8")


def train_submission(options: TrainOptions, progress=None) -> CommandResult:
    """Write the bundle, run it for one seed, and (re)write submission.json and README.md."""
    if options.preset not in PRESETS:
        raise InputError(f"unknown preset {options.preset!r} (known: {', '.join(PRESETS)})")
    if options.nproc < 1 or 8 % options.nproc:
        raise InputError("--nproc must divide 8")
    dataset = resolve_data(options.data_path)
    out = resolve_out(Path(options.out), options.preset, options.seed)
    out.mkdir(parents=True, exist_ok=True)
    write_bundle(out / "train_gpt.py")
    log_name = f"train_seed{options.seed}.log"
    env = {"PRESET": options.preset, "SEED": str(options.seed), "DATA_PATH": str(dataset),
           "LOG_PATH": log_name, "ARTIFACT_PATH": f"final_model_seed{options.seed}.ptz",
           "RUN_ID": f"seed{options.seed}", "TTT_ENABLED": "1" if options.ttt else "0"}
    code, reason = run_script(out, env, options.nproc, progress)
    log_path = out / log_name
    figures = read_log_figures(log_path.read_text(encoding="utf-8")) if log_path.is_file() else {"headline": None}
    if code != 0 or figures["headline"] is None:
        where = f"see {log_path}" if log_path.is_file() else "no log was written"
        return CommandResult(f"training failed (exit {code}): {reason or 'no output'}; {where}", 2)
    data = write_submission_json(out, options.preset, options.seed, figures, dataset.name)
    write_readme(out, options.preset, data, dataset)
    metric = figures["metrics"][figures["headline"]]
    return CommandResult(f"wrote {out}: seed {options.seed} {figures['headline']} val_bpb:{metric['val_bpb']:.8f} "
                         f"bytes_total:{figures.get('bytes_total')}")


def evaluate_artifact(options: EvalOptions) -> CommandResult:
    """Re-evaluate an artifact of the reference family on the dataset (sliding windows, optionally legal TTT)."""
    import torch

    from reference.evaluate import sliding_eval, truncate_for_rows, ttt_eval
    from reference.metric import load_byte_tables
    from reference.shards import load_tokens
    from reference.train_gpt import Hyperparameters, find_tokenizer, load_artifact, ttt_config

    if not Path(options.artifact).is_file():
        raise InputError(f"{options.artifact}: no such artifact")
    dataset = resolve_data(options.data_path)
    try:
        model, meta = load_artifact(str(options.artifact), torch.device("cpu"))
    except Exception as exc:  # noqa: BLE001 - any unreadable artifact is bad input, reported on one line
        raise InputError(f"{options.artifact}: not an artifact of the reference family ({type(exc).__name__})")
    settings = meta["eval"]
    vocab = meta["config"]["vocab_size"]
    tables = load_byte_tables(find_tokenizer(Hyperparameters(data_path=str(dataset), vocab_size=vocab)), vocab)
    tokens = torch.from_numpy(load_tokens(str(dataset / "fineweb_val_*.bin")).astype("int64"))
    seq = settings["eval_seq_len"]
    stride = options.stride if options.stride is not None else settings["eval_stride"]
    if stride <= 0:
        tokens, stride, tag = truncate_for_rows(tokens, seq), seq, "final_roundtrip_exact"
    else:
        tag = "final_sliding_window_exact"
    lines = []
    if options.ttt and settings["ttt_chunk_tokens"] % stride:
        raise InputError(f"--stride {stride} must divide the artifact's TTT chunk of {settings['ttt_chunk_tokens']}")
    if not 0 < stride <= seq:
        raise InputError(f"--stride must be between 1 and the evaluation length {seq}")
    loss, bpb = sliding_eval(model, tokens, tables, seq, stride, settings["eval_batch"])
    lines.append(f"{tag} val_loss:{loss:.8f} val_bpb:{bpb:.8f} stride:{stride}")
    if options.ttt:
        cfg = ttt_config(settings)
        loss, bpb = ttt_eval(model, tokens, tables, seq, stride, cfg, settings["eval_batch"])
        lines.append(f"legal_ttt_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f} self_check:passed")
    return CommandResult("\n".join(lines))
