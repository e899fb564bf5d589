"""`reproduce`: re-run a submission once per seed under harness-owned budgets, then compare with its claims.

Per seed: copy the folder to a scratch directory (the original is never written; a tree hash before and after proves
it), run ``train_gpt.py`` through torchrun in the sandbox (harness.run.sandbox) with the challenge's environment, stream
its output into ``<results>/seed_<s>/train.log`` behind a binding header (harness.check.binding), and time the phases from
outside: training starts at the first step line and ends at ``stopping_early`` / the last step / the first
serialization line; evaluation starts after the last serialization line. Hard caps kill the whole tree. A per-seed
``result.json`` (written atomically) makes an interrupted run resumable. The aggregate (per-seed table, mean and sd,
equivalence with the claims, significance against a reference with the same statistics as `check`) goes into a
Report rendered as Markdown and a self-contained HTML page.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.challenge import EVAL_BUDGET_S, TRAIN_BUDGET_S
from harness.errors import UserError
from harness.verdict import Report
from rules.finding import Evidence, Finding

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SUBMISSION = PROJECT_ROOT / "submissions" / "my_run"
CONFIG_NAME, RESULT_NAME, LOG_NAME = "config.json", "result.json", "train.log"
# Equivalence of the re-run mean with the claimed val_bpb: |delta| <= this (bpb). About 3x the seed sd of recent
# records (0.0005-0.001), so an honest claim re-run on the same hardware passes and a mis-reported one does not.
EQUIVALENCE_TOL_BPB = 0.002
# The script's own train_time vs the harness clock: disagreements beyond max(abs, rel * budget) are flagged.
CLOCK_TOL_S, CLOCK_TOL_REL = 2.0, 0.02
PROGRESS_EVERY_S = 2.0

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReproduceOptions:
    path: Path | None = None
    seeds: str = "42,7,2024"
    fresh_seeds: int = 0
    nproc: int = 1
    train_budget: float = TRAIN_BUDGET_S
    eval_budget: float = EVAL_BUDGET_S
    setup_allowance: float = 120.0
    memory_gb: float | None = None
    data_path: Path | None = None
    tokenizer: Path | None = None
    results: Path | None = None
    against: str | None = None
    policy: str = "readme"
    extra_env: tuple[str, ...] = ()
    probe: bool = False
    overwrite: bool = False
    launcher: str = "torchrun"  # "torchrun" (the challenge's) or "python" (one process, torchrun's env; faster)


@dataclass
class ReproduceResult:
    text: str
    exit_code: int
    report: Report
    results_dir: Path | None = None
    seeds: list[dict[str, Any]] = field(default_factory=list)


# --- inputs --------------------------------------------------------------------------------------------------------

def parse_seeds(text: str) -> list[int]:
    """'42,7,2024' -> [42, 7, 2024]; duplicates and non-integers are a UserError."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {text!r}: expected comma-separated integers") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r}: a seed is repeated")
    if any(s < 0 or s >= 2**32 for s in seeds):
        raise UserError(f"--seeds {text!r}: seeds must be in 0 .. 2^32-1")
    return seeds


def parse_env(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UserError(f"--env {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def resolve_submission(path: Path | None) -> Path:
    target = Path(path) if path is not None else DEFAULT_SUBMISSION
    if not target.is_dir():
        hint = " (train it first: python cli.py train --out submissions/my_run)" if path is None else ""
        raise UserError(f"{target}: no such submission folder{hint}")
    if not (target / "train_gpt.py").is_file():
        raise UserError(f"{target}: no train_gpt.py to run")
    return target.resolve()


def _find_dataset(root: Path) -> Path | None:
    """The first dataset folder under data/datasets/ that has validation shards."""
    base = root / "data" / "datasets"
    if not base.is_dir():
        return None
    found = sorted(d for d in base.iterdir() if d.is_dir() and any(d.glob("fineweb_val_*.bin")))
    return found[0] if found else None


def _find_tokenizer(root: Path, dataset: Path) -> Path | None:
    folder = root / "data" / "tokenizers"
    models = sorted(folder.glob("*.model")) if folder.is_dir() else []
    vocab = _vocab_from_name(dataset.name)
    matching = [m for m in models if vocab is not None and str(vocab) in m.stem]
    return (matching or models or [None])[0]


def _vocab_from_name(name: str) -> int | None:
    m = re.search(r"sp(\d+)", name)
    return int(m.group(1)) if m else None


def resolve_data(opts: ReproduceOptions, progress: Progress) -> tuple[Path, Path | None, int | None]:
    """(dataset folder, tokenizer, vocab size): given, else the local dataset, built with `cli.py data` if absent."""
    if opts.data_path is not None:
        data = Path(opts.data_path)
        if not data.is_dir() or not any(data.glob("fineweb_val_*.bin")):
            raise UserError(f"--data {data}: not a folder with fineweb_val_*.bin shards")
    else:
        data = _find_dataset(PROJECT_ROOT)
        if data is None:
            progress("no local dataset: building it with `python cli.py data` ...")
            proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), "data"], cwd=PROJECT_ROOT,
                                  capture_output=True, text=True)
            data = _find_dataset(PROJECT_ROOT)
            if data is None:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                raise UserError(f"no dataset: `python cli.py data` did not build one ({tail[0]}); pass --data")
    tokenizer = Path(opts.tokenizer) if opts.tokenizer is not None else _find_tokenizer(PROJECT_ROOT, data)
    if opts.tokenizer is not None and not tokenizer.is_file():
        raise UserError(f"--tokenizer {tokenizer}: no such file")
    vocab = _vocab_from_name(data.name) or (_vocab_from_name(tokenizer.name) if tokenizer else None)
    return data.resolve(), tokenizer.resolve() if tokenizer else None, vocab


def tree_hash(root: Path) -> str:
    """sha256 over every file's relative path and bytes (symlinks by target): proves a folder was not changed."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            h.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_file():
            h.update(f"F {rel}\n".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader (or a resumed run) never sees half a file."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)


# --- the harness clock ---------------------------------------------------------------------------------------------

STEP_RE = re.compile(r"(?:^|\s)step:(\d+)/(\d+)|^(\d+)/(\d+)\s+(?:train_loss|val_loss)")
TRAIN_TIME_RE = re.compile(r"train_time:\s*([0-9.]+)(ms|s|m)")
TRAIN_END_RE = re.compile(r"stopping_early|peak memory allocated|^Serialized model|^Total submission size|"
                          r"ema:applying|GPTQ:collected")
SERIALIZE_RE = re.compile(r"^Serialized model|^Total submission size|serialize_wallclock|^Code size")
EVAL_TIMER_RE = re.compile(r"beginning \w* ?eval timer", re.I)
SCORE_RE = re.compile(r"^(\S+)\s+val_loss:\s*([0-9.]+)\s+val_bpb:\s*([0-9.]+)")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


class PhaseClock:
    """Harness-owned per-phase timing from the monotonic arrival time of log lines, and the caps that follow.

    Caps: setup (before the first step line) <= allowance; training <= train budget + the unused allowance;
    everything after training (serialization + evaluation) <= eval budget + the unused allowance. The allowance is
    one pool for all untimed work, so a script cannot take it twice.
    """

    def __init__(self, started: float, train_budget: float, eval_budget: float, allowance: float) -> None:
        self.started, self.train_budget = started, train_budget
        self.eval_budget, self.allowance = eval_budget, allowance
        self.train_start: float | None = None
        self.train_end: float | None = None
        self.eval_start: float | None = None
        self.eval_frozen = False
        self.last_line: float = started
        self.step: tuple[int, int] | None = None
        self.script_train_ms: float | None = None
        self.curve: list[tuple[int, float]] = []  # (step, train_loss)
        self.cap_s: float | None = None  # the limit (seconds from spawn) that fired

    def feed(self, t: float, line: str) -> None:
        self.last_line = t
        text = line.strip()
        m = None if text.startswith("stopping_early") else STEP_RE.search(text)
        if m and "warmup" not in text.split(":")[0] and self.train_end is None:
            step, total = int(m.group(1) or m.group(3)), int(m.group(2) or m.group(4))
            self.train_start = self.train_start if self.train_start is not None else t
            self.step = (step, total)
            if (tm := TRAIN_TIME_RE.search(text)) is not None:
                self.script_train_ms = _ms(*tm.groups())
            if (loss := re.search(r"train_loss:\s*([0-9.]+)", text)) is not None:
                self.curve.append((step, float(loss.group(1))))
            if step >= total > 0:
                self.train_end = t
            return
        if self.train_start is not None and self.train_end is None and TRAIN_END_RE.search(text):
            self.train_end = t
            if (tm := TRAIN_TIME_RE.search(text)) is not None:
                self.script_train_ms = _ms(*tm.groups())
        if self.train_end is None or self.eval_frozen:
            return
        if EVAL_TIMER_RE.search(text):
            self.eval_start, self.eval_frozen = t, True
        elif SERIALIZE_RE.search(text):
            self.eval_start = t
        elif SCORE_RE.match(text):
            self.eval_start = self.eval_start if self.eval_start is not None else self.train_end
            self.eval_frozen = True

    def _setup_used(self, now: float) -> float:
        used = (self.train_start if self.train_start is not None else now) - self.started
        if self.train_end is not None:
            used += max(0.0, (self.eval_start or self.train_end) - self.train_end)
        return used

    def deadline(self, now: float) -> str | None:
        spare = max(0.0, self.allowance - self._setup_used(now))
        if self.train_start is None:
            limit, reason = self.started + self.allowance, f"setup exceeded the {self.allowance:g} s allowance"
        elif self.train_end is None:
            limit = self.train_start + self.train_budget + spare
            reason = f"training ran past the {self.train_budget:g} s budget (+{spare:.1f} s unused allowance)"
        else:
            limit = self.train_end + self.eval_budget + spare
            reason = f"evaluation ran past the {self.eval_budget:g} s budget (+{spare:.1f} s unused allowance)"
        if now >= limit:
            self.cap_s = round(limit - self.started, 3)
            return reason
        return None

    def phase(self) -> str:
        return "setup" if self.train_start is None else ("train" if self.train_end is None else "eval")

    def figures(self, ended: float) -> dict[str, Any]:
        def span(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round(b - a, 3)

        eval_start = self.eval_start if self.eval_start is not None else self.train_end
        return {"setup_s": span(self.started, self.train_start),
                "train_s": span(self.train_start, self.train_end if self.train_end is not None else ended),
                "serialize_s": span(self.train_end, eval_start),
                "eval_s": span(eval_start, ended) if self.train_end is not None else None,
                "total_s": round(ended - self.started, 3), "script_train_ms": self.script_train_ms,
                "last_step": list(self.step) if self.step else None}


# --- one seed ------------------------------------------------------------------------------------------------------

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
             vocab: int | None, port: int, declared: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGOLF_")}
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


def parse_seed_log(text: str, rel_path: str) -> Any:
    """The LogRun of a seed's log (harness.submission.logs), or None when the parser is unavailable."""
    try:
        from harness.submission.logs import parse_log
    except ImportError:
        return None
    return parse_log(text, rel_path)


def _final_score(run: Any, lines: list[str]) -> dict[str, Any] | None:
    final = getattr(run, "final", None)
    if final is not None:
        return {"tag": final.tag, "val_loss": final.val_loss, "val_bpb": final.val_bpb, "line": final.line}
    for i in range(len(lines) - 1, -1, -1):  # fallback: the last score line that is not an in-training eval
        m = SCORE_RE.match(lines[i].strip())
        if m and not m.group(1).startswith("step:"):
            return {"tag": m.group(1), "val_loss": float(m.group(2)), "val_bpb": float(m.group(3)), "line": i + 1}
    return None


def run_seed(sub_dir: Path, seed: int, seed_dir: Path, opts: ReproduceOptions, data: Path,
             tokenizer: Path | None, vocab: int | None, header: str, progress: Progress) -> dict[str, Any]:
    """One seed, start to finish; returns what result.json holds."""
    from harness.check.binding import make_artifact_line
    from harness.run.sandbox import SandboxSpec, free_port, run_sandboxed

    if seed_dir.exists():
        shutil.rmtree(seed_dir)  # an interrupted attempt of ours: start the seed again
    work = seed_dir / "work"
    seed_dir.mkdir(parents=True)
    _copy_submission(sub_dir, work)
    before = {p.relative_to(work) for p in work.rglob("*")}
    port = free_port()
    run_id = f"pgolf_seed{seed}"
    env = _run_env(opts, seed, run_id, data, tokenizer, vocab, port, declared_env(sub_dir))
    read_only = [sub_dir, data] + ([tokenizer] if tokenizer else [])
    spec = SandboxSpec(argv=_launch_argv(opts, port), cwd=work, env=env,
                       memory_bytes=int(opts.memory_gb * 2**30) if opts.memory_gb else None,
                       read_only=read_only, allowed_ports=(port,))
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
    new_files = [work / p for p in {p.relative_to(work) for p in work.rglob("*")} - before
                 if (work / p).is_file() and not p.parts[0] in ("logs", "__pycache__")
                 and (work / p).suffix not in (".txt", ".log", ".pyc")]
    log_fh.write(make_artifact_line(new_files, work) + "\n")
    log_fh.close()
    script_logs = sorted((work / "logs").glob("*.txt")) if (work / "logs").is_dir() else []
    if script_logs:
        shutil.copyfile(script_logs[-1], seed_dir / "script_log.txt")
    run = parse_seed_log("\n".join(lines), f"seed_{seed}/{LOG_NAME}")
    final = _final_score(run, lines)
    if final is not None:
        final["line"] = final["line"] + 1  # the binding header is line 1 of train.log
    timing = clock.figures(result.ended)
    status = "killed" if result.killed_reason else ("complete" if result.returncode == 0 and final else "failed")
    out = {"seed": seed, "status": status, "returncode": result.returncode, "killed_reason": result.killed_reason,
           "cap_s": clock.cap_s, "kill_latency_s": result.kill_latency_s, "leftover_pids": result.leftover_pids,
           "timing": timing, "final": final, "curve": clock.curve[-400:],
           "script_eval_s": getattr(run, "eval_time_s", None), "network_attempts": result.network_attempts,
           "isolation": result.isolation, "artifacts": [p.relative_to(work).as_posix() for p in sorted(new_files)],
           "total_size_bytes": getattr(run, "total_size_bytes", None), "tail": lines[-5:]}
    progress(f"seed {seed}: {status}" + (f" ({result.killed_reason})" if result.killed_reason else "")
             + (f", val_bpb {final['val_bpb']}" if final else "") + f", {timing['total_s']:.1f} s")
    return out


def _progress_line(seed: int, clock: PhaseClock, now: float, opts: ReproduceOptions) -> str:
    phase = clock.phase()
    if phase == "train" and clock.train_start is not None:
        step = f"step {clock.step[0]}/{clock.step[1]} " if clock.step else ""
        return f"seed {seed}: train {step}{now - clock.train_start:.0f}s/{opts.train_budget:g}s"
    if phase == "eval" and clock.train_end is not None:
        return f"seed {seed}: eval {now - clock.train_end:.0f}s/{opts.eval_budget:g}s"
    return f"seed {seed}: setup {now - clock.started:.0f}s/{opts.setup_allowance:g}s"


# --- results folder, resume ----------------------------------------------------------------------------------------

def _config(opts: ReproduceOptions, sub_dir: Path, data: Path, tokenizer: Path | None) -> dict[str, Any]:
    """What makes two runs comparable; seeds are not part of it (more seeds may be added to a results folder)."""
    from harness.check.binding import sha256_file

    return {"submission": str(sub_dir), "script_sha256": sha256_file(sub_dir / "train_gpt.py"),
            "nproc": opts.nproc, "train_budget": opts.train_budget, "eval_budget": opts.eval_budget,
            "setup_allowance": opts.setup_allowance, "memory_gb": opts.memory_gb, "data": str(data),
            "tokenizer": str(tokenizer) if tokenizer else None, "env": sorted(opts.extra_env),
            "declared_env": declared_env(sub_dir),
            "launcher": opts.launcher}


def prepare_results(results: Path, config: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """Create or reuse the results folder; refuse to mix configurations without --overwrite. Returns stored state."""
    cfg_path = results / CONFIG_NAME
    if results.exists() and any(results.iterdir()):
        if not cfg_path.is_file():
            raise UserError(f"{results}: exists and was not written by `reproduce`; choose another --results")
        try:
            stored = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            stored = {}
        if overwrite:
            shutil.rmtree(results)
        elif stored.get("config") == config:
            return stored
        else:
            raise UserError(f"{results}: holds a run with a different configuration; "
                            "pass --overwrite to replace it or --results to keep both")
    results.mkdir(parents=True, exist_ok=True)
    return {"config": config, "fresh_seeds": []}


def _choose_seeds(opts: ReproduceOptions, state: dict[str, Any]) -> list[int]:
    given = parse_seeds(opts.seeds)
    fresh = [s for s in state.get("fresh_seeds", []) if s not in given][:opts.fresh_seeds]
    while len(fresh) < opts.fresh_seeds:  # harness-chosen: unpredictable to the author, kept for a resume
        s = secrets.randbelow(2**31)
        if s not in given and s not in fresh:
            fresh.append(s)
    state["fresh_seeds"] = fresh
    return given + fresh


# --- findings and aggregate ---------------------------------------------------------------------------------------

def _seed_findings(r: dict[str, Any], opts: ReproduceOptions, report: Report) -> None:
    seed, log = str(r["seed"]), f"seed_{r['seed']}/{LOG_NAME}"
    timing = r["timing"]
    blocked = [a for a in r["network_attempts"] if not a.get("allowed")]
    if blocked:
        targets = sorted({str(a.get("target")) for a in blocked})
        report.add(Finding("NETWORK-AT-EVAL", "error",
                           f"seed {seed}: the run tried to reach the network ({', '.join(targets[:5])}); "
                           "the harness refused it", file=log, seed=seed, source="runtime",
                           data={"attempts": blocked[:20]}))
    reason = r.get("killed_reason") or ""
    if reason.startswith("evaluation"):
        report.add(Finding("EVAL-TIME-600", "error", f"seed {seed}: stopped by the harness: {reason}", file=log,
                           seed=seed, source="runtime", data={"cap_s": r.get("cap_s"), **timing}))
    elif reason:
        report.add(Finding("TRAIN-TIME-600", "error", f"seed {seed}: stopped by the harness: {reason}", file=log,
                           seed=seed, source="runtime", data={"cap_s": r.get("cap_s"), **timing}))
    script_ms, train_s = timing.get("script_train_ms"), timing.get("train_s")
    if script_ms is not None and script_ms > opts.train_budget * 1000 + 1000 * CLOCK_TOL_S:
        report.add(Finding("TRAIN-TIME-600", "error", f"seed {seed}: the script's own train_time "
                           f"{script_ms / 1000:.1f} s exceeds the {opts.train_budget:g} s budget", file=log,
                           seed=seed, source="runtime", data=timing))
    if script_ms is not None and train_s is not None and not reason:
        tol = max(CLOCK_TOL_S, CLOCK_TOL_REL * opts.train_budget)
        if train_s - script_ms / 1000 > tol and train_s > opts.train_budget:
            report.add(Finding("TRAIN-TIME-600", "warning",
                               f"seed {seed}: clocks disagree: the harness measured {train_s:.1f} s of training "
                               f"(first step line to end of training), the script reports {script_ms / 1000:.1f} s; "
                               f"tolerance {tol:.1f} s (in-loop validation pauses the script's clock)",
                               file=log, seed=seed, source="runtime", data=timing))
    eval_s = timing.get("eval_s")
    if eval_s is not None and not reason and eval_s > opts.eval_budget:
        report.add(Finding("EVAL-TIME-600", "warning", f"seed {seed}: the harness measured {eval_s:.1f} s from the "
                           f"end of serialization to exit, over the {opts.eval_budget:g} s budget (includes "
                           "artifact loading, which maintainers have excluded)", file=log, seed=seed,
                           source="runtime", data=timing))
    if r.get("leftover_pids"):
        report.could_not_check.append(f"seed {seed}: processes {r['leftover_pids']} survived teardown")
    if r["status"] == "failed":
        tail = " | ".join(r.get("tail") or [])[-300:]
        report.could_not_check.append(f"seed {seed}: the run ended (exit {r['returncode']}) without a final "
                                      f"val_bpb; last lines: {tail}")


def _claims(sub_dir: Path) -> Any:
    try:
        from harness.submission.folder import load_submission
        from harness.submission.manifest import load_claims
    except ImportError:
        return None
    return load_claims(load_submission(sub_dir), Report(target=str(sub_dir)))


def _equivalence(rows: list[dict[str, Any]], claims: Any, report: Report) -> dict[str, Any] | None:
    """|mean(re-run) - claimed| <= EQUIVALENCE_TOL_BPB; per-seed deltas where the claims list the same seeds."""
    claimed = getattr(claims, "val_bpb", None)
    bpbs = [r["final"]["val_bpb"] for r in rows if r["final"]]
    if claimed is None or not bpbs:
        return None
    mean = sum(bpbs) / len(bpbs)
    delta = mean - float(claimed)
    per_seed = {}
    for r in rows:
        c = (getattr(claims, "seeds", None) or {}).get(str(r["seed"]))
        if c is not None and c.val_bpb is not None and r["final"]:
            per_seed[str(r["seed"])] = round(r["final"]["val_bpb"] - c.val_bpb, 8)
    out = {"claimed_val_bpb": claimed, "rerun_mean": mean, "delta": delta, "tolerance": EQUIVALENCE_TOL_BPB,
           "test": "|mean(re-run) - claimed| <= tolerance", "equivalent": abs(delta) <= EQUIVALENCE_TOL_BPB,
           "per_seed_delta": per_seed}
    if not out["equivalent"]:
        report.add(Finding("LOG-CODE-CONSISTENCY", "warning",
                           f"the re-run mean val_bpb {mean:.5f} differs from the claimed {float(claimed):.5f} by "
                           f"{delta:+.5f} (tolerance {EQUIVALENCE_TOL_BPB}): the claim was not reproduced",
                           file="submission.json", source="runtime", data=out))
    return out


def aggregate(sub_dir: Path, results: Path, rows: list[dict[str, Any]], opts: ReproduceOptions,
              report: Report) -> None:
    """Findings per seed, the table, statistics, equivalence with the claims and significance."""
    for r in rows:
        _seed_findings(r, opts, report)
    report.mark_checked("NETWORK-AT-EVAL", "TRAIN-TIME-600", "EVAL-TIME-600")
    report.facts["reproduce_seeds"] = [
        {"seed": r["seed"], "status": r["status"], "val_loss": (r["final"] or {}).get("val_loss"),
         "val_bpb": (r["final"] or {}).get("val_bpb"), "setup_s": r["timing"]["setup_s"],
         "train_s": r["timing"]["train_s"],
         "script_train_s": None if r["timing"]["script_train_ms"] is None else r["timing"]["script_train_ms"] / 1000,
         "eval_s": r["timing"]["eval_s"], "total_s": r["timing"]["total_s"]} for r in rows]
    bpbs = [r["final"]["val_bpb"] for r in rows if r["final"]]
    if bpbs:
        from harness.check import stats

        s = stats.summarize(bpbs)
        report.facts["reproduce_summary"] = {"n": s.n, "mean_bpb": s.mean, "sd_bpb": s.sd}
    report.facts["isolation"] = rows[0]["isolation"] if rows else None
    claims = _claims(sub_dir)
    eq = _equivalence(rows, claims, report)
    if eq is not None:
        report.facts["equivalence"] = eq
    if opts.against:
        from harness.check.significance import check_significance

        runs = []
        for r in rows:
            if r["final"]:
                run = parse_seed_log((results / f"seed_{r['seed']}" / LOG_NAME).read_text(encoding="utf-8",
                                                                                            errors="replace"),
                                     f"seed_{r['seed']}/{LOG_NAME}")
                if run is not None:
                    run.seed = str(r["seed"])
                    runs.append(run)
        check_significance(None, runs, opts.against, opts.policy, report)
    else:
        report.skip("SIGNIFICANCE", "no reference given (--against)")


# --- entry point ---------------------------------------------------------------------------------------------------

def reproduce(opts: ReproduceOptions, progress: Progress = lambda _m: None) -> ReproduceResult:
    """Run every seed (resuming finished ones), aggregate, write report.md / report.html / summary.json."""
    from harness.check.binding import make_header
    from harness.run.sandbox import detect_isolation
    from harness.submission.folder import load_submission

    if opts.nproc < 1 or 8 % opts.nproc:
        raise UserError(f"--nproc {opts.nproc}: must divide 8 (1, 2, 4 or 8)")
    if min(opts.train_budget, opts.eval_budget) <= 0 or opts.setup_allowance < 0:
        raise UserError("budgets must be positive and the setup allowance non-negative")
    if opts.launcher == "python" and opts.nproc != 1:
        raise UserError("the python launcher runs one process; use torchrun for --nproc > 1")
    parse_env(opts.extra_env)
    sub_dir = resolve_submission(opts.path)
    data, tokenizer, vocab = resolve_data(opts, progress)
    results = Path(opts.results) if opts.results else PROJECT_ROOT / "results" / sub_dir.name
    results = results.resolve()
    if results == sub_dir or sub_dir in results.parents:
        raise UserError(f"--results {results}: must not lie inside the submission folder")
    config = _config(opts, sub_dir, data, tokenizer)
    state = prepare_results(results, config, opts.overwrite)
    seeds = _choose_seeds(opts, state)
    write_json_atomic(results / CONFIG_NAME, state)
    sub = load_submission(sub_dir)
    hash_before = tree_hash(sub_dir)
    iso = detect_isolation()
    progress(f"reproducing {sub_dir.name}: seeds {', '.join(map(str, seeds))}; isolation {iso.level}; "
             f"results in {results}")
    rows = []
    for seed in seeds:
        seed_dir = results / f"seed_{seed}"
        done = seed_dir / RESULT_NAME
        if done.is_file():
            try:
                rows.append(json.loads(done.read_text(encoding="utf-8")))
                progress(f"seed {seed}: already done, resumed from {done}")
                continue
            except (OSError, json.JSONDecodeError):
                pass
        header = make_header(sub, extra={"seed": seed, "isolation": iso.level, "nproc": opts.nproc,
                                         "train_budget_s": opts.train_budget, "eval_budget_s": opts.eval_budget})
        row = run_seed(sub_dir, seed, seed_dir, opts, data, tokenizer, vocab, header, progress)
        write_json_atomic(done, row)
        rows.append(row)
    report = Report(target=str(sub_dir))
    unchanged = tree_hash(sub_dir) == hash_before
    report.facts["submission_unchanged"] = unchanged
    if not unchanged:
        report.could_not_check.append("the submission folder changed during the re-run (by something outside "
                                      "the sandbox); the results may not belong to the shipped code")
    aggregate(sub_dir, results, rows, opts, report)
    if opts.probe:
        from harness.run.probe import ProbeOptions, probe_path

        progress("running the runtime legality probes (tiny configuration, synthetic data)")
        report.merge(probe_path(sub_dir, ProbeOptions()), "probe")
    text = write_reports(report, results, rows, opts)
    return ReproduceResult(text=text, exit_code=report.exit_code, report=report, results_dir=results, seeds=rows)


def write_reports(report: Report, results: Path, rows: list[dict[str, Any]], opts: ReproduceOptions) -> str:
    """report.md, report.html and summary.json into the results folder; returns the Markdown."""
    from harness.report.html import render_html

    md = render_markdown(report, rows, opts)
    (results / "report.md").write_text(md, encoding="utf-8")
    (results / "report.html").write_text(render_html(report, rows, opts), encoding="utf-8")
    write_json_atomic(results / "summary.json", {**report.to_dict(), "seeds": rows})
    return md + f"\nresults: {results} (report.md, report.html, summary.json)"


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec) if spec else str(value)


def render_markdown(report: Report, rows: list[dict[str, Any]], opts: ReproduceOptions) -> str:
    """The reproduce report as Markdown: verdict, isolation, per-seed table, statistics, findings."""
    iso = report.facts.get("isolation") or {}
    out = [f"## pgolf reproduce: {Path(report.target).name}: **{report.verdict}**", "",
           f"Budgets: train {opts.train_budget:g} s, eval {opts.eval_budget:g} s, untimed allowance "
           f"{opts.setup_allowance:g} s; nproc {opts.nproc}; isolation `{iso.get('level', '?')}` "
           f"(memory cap: {iso.get('memory_cap', '?')}); submission folder unchanged: "
           f"{report.facts.get('submission_unchanged')}", "",
           "| seed | status | val_loss | val_bpb | setup s | train s (harness) | train s (script) | eval s | total s |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in report.facts.get("reproduce_seeds", []):
        out.append(f"| {r['seed']} | {r['status']} | {_fmt(r['val_loss'])} | {_fmt(r['val_bpb'])} | "
                   f"{_fmt(r['setup_s'])} | {_fmt(r['train_s'])} | {_fmt(r['script_train_s'])} | "
                   f"{_fmt(r['eval_s'])} | {_fmt(r['total_s'])} |")
    summ = report.facts.get("reproduce_summary")
    if summ:
        sd = "n/a (one seed)" if summ["sd_bpb"] is None else f"{summ['sd_bpb']:.6f}"
        out += ["", f"Mean val_bpb {summ['mean_bpb']:.6f}, sd {sd}, n = {summ['n']}."]
    eq = report.facts.get("equivalence")
    if eq:
        out.append(f"Claimed {eq['claimed_val_bpb']}: delta {eq['delta']:+.6f} bpb; equivalent within "
                   f"{eq['tolerance']} bpb: **{eq['equivalent']}** ({eq['test']}).")
    sig = report.facts.get("significance")
    if sig:
        pol = sig["policies"][sig["policy"]]
        needed = (pol.get("seeds_needed") or {}).get("power")
        out.append(f"Significance ({pol['label']}): method {pol['method']}, p = {_fmt(pol['p'], '.4g')}, "
                   f"passes: **{pol['passes']}**; seeds per side for 80 % power: {_fmt(needed)}.")
    out += ["", "### Findings", ""]
    for f in report.sorted_findings():
        out.append(f"- **{f.severity}** `{f.rule}` {f.file or ''}: {f.message}")
    if not report.findings:
        out.append("- none")
    for reason in report.could_not_check:
        out.append(f"- **could not check**: {reason}")
    return "\n".join(out) + "\n"


def evidence_for(row: dict[str, Any]) -> tuple[Evidence, ...]:
    """Where a seed's score is in its log (for renderers that want evidence)."""
    final = row.get("final") or {}
    return (Evidence(f"seed_{row['seed']}/{LOG_NAME}", final.get("line"), f"val_bpb {final.get('val_bpb')}"),)
