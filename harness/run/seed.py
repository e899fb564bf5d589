"""One seed of `reproduce`: copy the folder to scratch, build the run's environment, launch it in the sandbox,
stream its output into ``seed_<s>/train.log`` behind the binding header, time it with the harness clock, and return
the row that result.json holds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from harness.check.binding import make_artifact_line
from harness.errors import UserError
from harness.run.clock import SCORE_RE, PhaseClock
from harness.run.outcome import LOG_NAME, Progress, ReproduceOptions
from harness.run.sandbox import SandboxResult, SandboxSpec, base_env, free_port, run_sandboxed
from harness.submission.logs import LogRun, parse_log

PROGRESS_EVERY_S = 2.0
PACE_AFTER_S = 5.0  # seconds of training before progress estimates the steps the budget allows


def parse_env(items: tuple[str, ...]) -> dict[str, str]:
    """--env KEY=VALUE items as a dict; anything else is a UserError."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UserError(f"--env {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _copy_submission(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", ".git"))


def _launch_argv(opts: ReproduceOptions, port: int) -> list[str]:
    if opts.launcher == "python":
        return [sys.executable, "train_gpt.py"]
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={opts.nproc}",
            "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "train_gpt.py"]


def declared_env(sub_dir: Path) -> dict[str, str]:
    """The environment the submission says its runs used: submission.json "run_env" (string values only).

    Applied under the challenge's own variables and --env, so a submission can name its configuration (a preset,
    feature flags, as record re-runs pass on the command line) but never the data, seed or budget.
    """
    try:
        raw = json.loads((sub_dir / "submission.json").read_text(encoding="utf-8")).get("run_env")
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items()
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k)) and isinstance(v, (str, int, float))}


def _run_env(opts: ReproduceOptions, seed: int, run_id: str, data: Path, tokenizer: Path | None,
             vocab: int | None, port: int, declared: dict[str, str] | None = None,
             work: Path | None = None) -> dict[str, str]:
    """The run's environment: the sandbox's allow-list of the harness's own (no tokens, no cloud or CI variables;
    HOME is the work folder), then the submission's declared configuration, then the challenge's variables."""
    env = base_env(os.environ, home=work)
    env.update(declared or {})
    # MAX_WALLCLOCK_SECONDS is left to the script (the challenge's command does not set it either): the budget is
    # enforced from outside, and overriding a script's own shorter cap would change what it does.
    env.update(DATA_PATH=str(data), SEED=str(seed), RUN_ID=run_id)
    if tokenizer is not None:
        env["TOKENIZER_PATH"] = str(tokenizer)
    if vocab is not None:
        env["VOCAB_SIZE"] = str(vocab)
    if opts.launcher == "python":  # what torchrun would set for a single process
        env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
    env.update(parse_env(opts.extra_env))
    return env


def parse_seed_log(text: str, rel_path: str) -> LogRun:
    """The LogRun of a seed's log (harness.submission.logs)."""
    return parse_log(text, rel_path)


def _final_score(run: LogRun, lines: list[str]) -> dict[str, Any] | None:
    final = run.final
    if final is not None:
        return {"tag": final.tag, "val_loss": final.val_loss, "val_bpb": final.val_bpb, "line": final.line}
    for i in range(len(lines) - 1, -1, -1):  # fallback: the last score line that is not an in-training eval
        m = SCORE_RE.match(lines[i].strip())
        if m and not m.group(1).startswith("step:"):
            return {"tag": m.group(1), "val_loss": float(m.group(2)), "val_bpb": float(m.group(3)), "line": i + 1}
    return None


# The line that names an exception: "ValueError: ...", "torch.OutOfMemoryError: ...", "[rank0]: KeyError: 'x'";
# a bare "MemoryError" or "KeyboardInterrupt" line too.
_EXCEPTION_RE = re.compile(r"^(?:\[rank\d+\]:\s*)?((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit))"
                           r"(?::\s*(.*))?$")
# The launcher's own wrapper of a child failure: never the cause.
_LAUNCHER_EXCEPTIONS = ("ChildFailedError", "SignalException")


def failure_cause(lines: list[str]) -> tuple[str, int] | None:
    """The last exception the script itself raised, as "Name: message", and its 1-based line in LINES; None when
    no line names one. torchrun's summary of a failed child ("ChildFailedError", "To enable traceback ...") is
    skipped, so the cause is the child's own exception."""
    for i in range(len(lines) - 1, -1, -1):
        m = _EXCEPTION_RE.match(lines[i].strip())
        if m and not m.group(1).endswith(_LAUNCHER_EXCEPTIONS):
            text = m.group(1) + (f": {m.group(2)}" if m.group(2) else "")
            return text[:300], i + 1
    return None


def _sandbox_spec(sub_dir: Path, seed: int, work: Path, opts: ReproduceOptions, data: Path,
                  tokenizer: Path | None, vocab: int | None) -> SandboxSpec:
    """The sandboxed launch of one seed in its scratch copy WORK: argv, environment, read-only paths, port."""
    port = free_port()
    run_id = f"pgolf_seed{seed}"
    env = _run_env(opts, seed, run_id, data, tokenizer, vocab, port, declared_env(sub_dir), work)
    read_only = [sub_dir, data] + ([tokenizer] if tokenizer else [])
    return SandboxSpec(argv=_launch_argv(opts, port), cwd=work, env=env,
                       memory_bytes=int(opts.memory_gb * 2**30) if opts.memory_gb else None,
                       read_only=read_only, allowed_ports=(port,))


def _new_artifacts(work: Path, before: set[Path]) -> list[Path]:
    """Files the run created in WORK, less its logs and caches (dot-folders: HOME is WORK, so ~/.cache and
    ~/.triton land there): what the artifact line of train.log binds."""
    return [work / p for p in {p.relative_to(work) for p in work.rglob("*")} - before
            if (work / p).is_file() and p.parts[0] not in ("logs", "__pycache__") and not p.parts[0].startswith(".")
            and (work / p).suffix not in (".txt", ".log", ".pyc")]


def run_seed(sub_dir: Path, seed: int, seed_dir: Path, opts: ReproduceOptions, data: Path,
             tokenizer: Path | None, vocab: int | None, header: str, progress: Progress) -> dict[str, Any]:
    """One seed, start to finish; returns what result.json holds."""
    if seed_dir.exists():
        shutil.rmtree(seed_dir)  # an interrupted attempt of ours: start the seed again
    work = seed_dir / "work"
    seed_dir.mkdir(parents=True)
    _copy_submission(sub_dir, work)
    before = {p.relative_to(work) for p in work.rglob("*")}
    spec = _sandbox_spec(sub_dir, seed, work, opts, data, tokenizer, vocab)
    lines: list[str] = []
    clock = PhaseClock(time.monotonic(), opts.train_budget, opts.eval_budget, opts.setup_allowance)
    last_progress = [0.0]
    log_fh = open(seed_dir / LOG_NAME, "w", encoding="utf-8")
    log_fh.write(header + "\n")

    def on_line(t: float, line: str) -> None:
        lines.append(line)
        log_fh.write(line + "\n")
        clock.feed(t, line)
        if t - last_progress[0] >= PROGRESS_EVERY_S:
            last_progress[0] = t
            progress(_progress_line(seed, clock, t, opts))

    clock.started = time.monotonic()
    try:
        result = run_sandboxed(spec, on_line, clock.deadline)
    finally:
        log_fh.flush()
    clock.started = result.started
    new_files = _new_artifacts(work, before)
    log_fh.write(make_artifact_line(new_files, work) + "\n")
    log_fh.close()
    script_logs = sorted((work / "logs").glob("*.txt")) if (work / "logs").is_dir() else []
    if script_logs:
        shutil.copyfile(script_logs[-1], seed_dir / "script_log.txt")
    return _seed_row(seed, work, new_files, lines, clock, result, progress)


def _seed_row(seed: int, work: Path, new_files: list[Path], lines: list[str], clock: PhaseClock,
              result: SandboxResult, progress: Progress) -> dict[str, Any]:
    """The result.json row of a finished seed: status, score, timing, caps, network attempts, artifacts."""
    run = parse_seed_log("\n".join(lines), f"seed_{seed}/{LOG_NAME}")
    final = _final_score(run, lines)
    if final is not None:
        final["line"] = final["line"] + 1  # the binding header is line 1 of train.log
    timing = clock.figures(result.ended)
    status = "killed" if result.killed_reason else ("complete" if result.returncode == 0 and final else "failed")
    out = {"seed": seed, "status": status, "returncode": result.returncode, "killed_reason": result.killed_reason,
           "cap_s": clock.cap_s, "kill_latency_s": result.kill_latency_s, "leftover_pids": result.leftover_pids,
           "timing": timing, "final": final, "curve": clock.curve[-400:],
           "script_eval_s": run.eval_time_s, "network_attempts": result.network_attempts,
           "isolation": result.isolation, "artifacts": [p.relative_to(work).as_posix() for p in sorted(new_files)],
           "total_size_bytes": run.total_size_bytes, "tail": lines[-5:], "cap_hits": result.cap_hits}
    if status == "failed":
        cause = failure_cause(lines)
        if cause is not None:
            out["cause"], out["cause_line"] = cause[0], cause[1] + 1  # the binding header is line 1 of train.log
        elif result.cap_hits.get("memory"):
            out["cause"] = "killed by the harness's memory cap (out of memory in the run's cgroup)"
    progress(f"seed {seed}: {status}" + (f" ({result.killed_reason})" if result.killed_reason else "")
             + (f", val_bpb {final['val_bpb']}" if final else "") + f", {timing['total_s']:.1f} s")
    return out


def _progress_line(seed: int, clock: PhaseClock, now: float, opts: ReproduceOptions) -> str:
    """"seed 42: train 12/600 s, step 40 of 150": the phase, elapsed / cap, and the script's own step count, with
    what the budget allows at this pace when the script's iteration count is only a cap it will not reach."""
    phase = clock.phase()
    if phase == "train" and clock.train_start is not None:
        elapsed = now - clock.train_start
        step = ""
        if clock.step:
            done, total = clock.step
            step = f", step {done} of {total}"
            pace = done / elapsed if elapsed >= PACE_AFTER_S else None  # the first steps say little about it
            if pace is not None and pace * opts.train_budget < total:
                step = f", step {done} (about {pace * opts.train_budget:.0f} by the budget at this pace; " \
                       f"the script's cap is {total})"
        return f"seed {seed}: train {elapsed:.0f}/{opts.train_budget:g} s{step}"
    if phase == "eval" and clock.train_end is not None:
        return f"seed {seed}: eval {now - clock.train_end:.0f}/{opts.eval_budget:g} s"
    return f"seed {seed}: setup {now - clock.started:.0f}/{opts.setup_allowance:g} s"

