"""`reproduce`: re-run a submission once per seed under harness-owned budgets, then compare with its claims.

Per seed (harness.run.seed): copy the folder to a scratch directory (the original is never written; a tree hash
before and after proves it), run ``train_gpt.py`` through torchrun in the sandbox (harness.run.sandbox) with the
challenge's environment, stream its output into ``<results>/seed_<s>/train.log`` behind a binding header
(harness.check.binding), and time the phases from outside (harness.run.clock). Hard caps kill the whole tree. A
per-seed ``result.json`` (written atomically) makes an interrupted run resumable. This module owns the inputs, the
results folder and its resume, the findings and the aggregate (per-seed table, mean and sd, equivalence with the
claims, significance against a reference with the same statistics as `check`), returned as a ReproduceResult;
harness.report.reproduce writes it as Markdown, a self-contained HTML page and summary.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from harness.check import stats
from harness.check.binding import make_header, sha256_file
from harness.check.significance import Significance, check_significance
from harness.errors import UserError
from harness.run.outcome import (
    CONFIG_NAME,
    LOG_NAME,
    RESULT_NAME,
    BpbSummary,
    Equivalence,
    Progress,
    ReproduceFacts,
    ReproduceOptions,
    ReproduceResult,
    SeedFigures,
    write_json_atomic,
)
from harness.run.sandbox import detect_isolation
from harness.run.seed import declared_env, parse_env, parse_seed_log, run_seed
from harness.submission.folder import load_submission
from harness.submission.manifest import Claims, load_claims
from harness.verdict import Report
from rules.finding import Finding

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SUBMISSION = PROJECT_ROOT / "submissions" / "my_run"
# Equivalence of the re-run mean with the claimed val_bpb: |delta| <= this (bpb). About 3x the seed sd of recent
# records (0.0005-0.001), so an honest claim re-run on the same hardware passes and a mis-reported one does not.
EQUIVALENCE_TOL_BPB = 0.002
# The script's own train_time vs the harness clock: disagreements beyond max(abs, rel * budget) are flagged.
CLOCK_TOL_S, CLOCK_TOL_REL = 2.0, 0.02


# --- inputs --------------------------------------------------------------------------------------------------------

def parse_seeds(text: str, fresh: int = 0) -> list[int]:
    """'42,7,2024' -> [42, 7, 2024]; an empty entry, a repeat, a non-integer or no seed at all (with no fresh seeds
    asked for) is a UserError."""
    entries = [s.strip() for s in text.split(",")] if text.strip() else []
    if not entries and fresh <= 0:
        raise UserError("--seeds is empty: name at least one seed (e.g. --seeds 42,7,2024) or pass --fresh-seeds N")
    if any(not e for e in entries):
        raise UserError(f"--seeds {text!r}: an entry is empty (two commas or a trailing comma)")
    try:
        seeds = [int(s) for s in entries]
    except ValueError:
        raise UserError(f"--seeds {text!r}: expected comma-separated integers") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r}: a seed is repeated")
    if any(s < 0 or s >= 2**32 for s in seeds):
        raise UserError(f"--seeds {text!r}: seeds must be in 0 .. 2^32-1")
    return seeds


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


# --- results folder, resume ----------------------------------------------------------------------------------------

def _config(opts: ReproduceOptions, sub_dir: Path, data: Path, tokenizer: Path | None) -> dict[str, Any]:
    """What makes two runs comparable; seeds are not part of it (more seeds may be added to a results folder)."""
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
    given = parse_seeds(opts.seeds, opts.fresh_seeds)
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
    if reason:
        rule = ("EVAL-TIME-600" if reason.startswith("evaluation") else
                "TRAIN-TIME-600" if reason.startswith(("training", "setup")) else "SUBMISSION-FORMAT")
        report.add(Finding(rule, "error", f"seed {seed}: stopped by the harness: {reason}", file=log,
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
        cause = r.get("cause") or "last lines: " + " | ".join(r.get("tail") or [])[-300:]
        line = r.get("cause_line")
        report.add(Finding("SUBMISSION-FORMAT", "error", f"seed {seed}: the script did not run to a final score "
                           f"(exit {r['returncode']}): {cause}", file=log, line=line, seed=seed, source="runtime",
                           data={"returncode": r["returncode"], "tail": r.get("tail")}))


def _claims(sub_dir: Path) -> Claims:
    return load_claims(load_submission(sub_dir), Report(target=str(sub_dir)))


def _equivalence(rows: list[dict[str, Any]], claims: Claims, report: Report) -> Equivalence | None:
    """|mean(re-run) - claimed| <= EQUIVALENCE_TOL_BPB; per-seed deltas where the claims list the same seeds."""
    claimed = claims.val_bpb
    bpbs = [r["final"]["val_bpb"] for r in rows if r["final"]]
    if claimed is None:
        report.could_not_check.append("nothing to compare the re-run with: the folder claims no val_bpb "
                                      "(submission.json)")
        return None
    if not bpbs:
        return None
    mean = sum(bpbs) / len(bpbs)
    delta = mean - float(claimed)
    per_seed = {}
    for r in rows:
        c = (claims.seeds or {}).get(str(r["seed"]))
        if c is not None and c.val_bpb is not None and r["final"]:
            per_seed[str(r["seed"])] = round(r["final"]["val_bpb"] - c.val_bpb, 8)
    eq = Equivalence(claimed_val_bpb=claimed, rerun_mean=mean, delta=delta, tolerance=EQUIVALENCE_TOL_BPB,
                     test="|mean(re-run) - claimed| <= tolerance", equivalent=abs(delta) <= EQUIVALENCE_TOL_BPB,
                     per_seed_delta=per_seed)
    if not eq.equivalent:
        report.add(Finding("LOG-CODE-CONSISTENCY", "error",
                           f"the re-run mean val_bpb {mean:.5f} differs from the claimed {float(claimed):.5f} by "
                           f"{delta:+.5f} (tolerance {EQUIVALENCE_TOL_BPB}): the claim was not reproduced",
                           file="submission.json", source="runtime", data=asdict(eq)))
    return eq


def _significance(results: Path, rows: list[dict[str, Any]], opts: ReproduceOptions, report: Report) -> None:
    """SIGNIFICANCE of the re-run seeds (their train.log) against --against, with the statistics of `check`."""
    if not opts.against:
        report.skip("SIGNIFICANCE", "no reference given (--against)")
        return
    runs = []
    for r in rows:
        if r["final"]:
            log = f"seed_{r['seed']}/{LOG_NAME}"
            run = parse_seed_log((results / log).read_text(encoding="utf-8", errors="replace"), log)
            run.seed = str(r["seed"])
            runs.append(run)
    check_significance(None, runs, opts.against, opts.policy, report)


def aggregate(sub_dir: Path, results: Path, rows: list[dict[str, Any]], opts: ReproduceOptions,
              report: Report, unchanged: bool) -> ReproduceFacts:
    """Findings per seed, the table, statistics, equivalence with the claims and significance."""
    for r in rows:
        _seed_findings(r, opts, report)
    report.mark_checked("NETWORK-AT-EVAL", "TRAIN-TIME-600", "EVAL-TIME-600")
    bpbs = [r["final"]["val_bpb"] for r in rows if r["final"]]
    summary = None
    if bpbs:
        s = stats.summarize(bpbs)
        summary = BpbSummary(n=s.n, mean_bpb=s.mean, sd_bpb=s.sd)
    seeds = [SeedFigures.from_row(r) for r in rows]
    isolation = rows[0]["isolation"] if rows else None
    equivalence = _equivalence(rows, _claims(sub_dir), report)
    facts = ReproduceFacts(submission_unchanged=unchanged, seeds=seeds, isolation=isolation, summary=summary,
                           equivalence=equivalence)
    report.facts.update(facts.to_facts())
    _significance(results, rows, opts, report)
    return facts


# --- entry point ---------------------------------------------------------------------------------------------------

def _validate(opts: ReproduceOptions) -> None:
    """Option errors that need no file system: one-line UserErrors before anything runs."""
    if opts.nproc < 1 or 8 % opts.nproc:
        raise UserError(f"--nproc {opts.nproc}: must divide 8 (1, 2, 4 or 8)")
    if min(opts.train_budget, opts.eval_budget) <= 0 or opts.setup_allowance < 0:
        raise UserError("budgets must be positive and the setup allowance non-negative")
    if opts.launcher == "python" and opts.nproc != 1:
        raise UserError("the python launcher runs one process; use torchrun for --nproc > 1")
    parse_env(opts.extra_env)
    if opts.fresh_seeds < 0:
        raise UserError(f"--fresh-seeds {opts.fresh_seeds}: must not be negative")
    parse_seeds(opts.seeds, opts.fresh_seeds)


def _results_dir(opts: ReproduceOptions, sub_dir: Path) -> Path:
    results = Path(opts.results) if opts.results else PROJECT_ROOT / "results" / sub_dir.name
    results = results.resolve()
    if results == sub_dir or sub_dir in results.parents:
        raise UserError(f"--results {results}: must not lie inside the submission folder")
    return results


def _run_seeds(sub_dir: Path, results: Path, seeds: list[int], opts: ReproduceOptions, data: Path,
               tokenizer: Path | None, vocab: int | None, progress: Progress) -> list[dict[str, Any]]:
    """Every seed's result.json row: read back where a finished one exists, else run (and stored atomically)."""
    sub = load_submission(sub_dir)
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
    return rows


def static_verdict(sub_dir: Path, opts: ReproduceOptions, progress: Progress) -> Report:
    """The folder's `check` verdict, run before anything executes: a reproduction of a folder that fails it fails."""
    from harness.check.pipeline import CheckOptions, check_path

    report = check_path(sub_dir, CheckOptions(against=opts.against, policy=opts.policy))
    counts = f"{len(report.errors)} error(s)"
    progress(f"static check: {report.verdict} ({counts})" + (
        "; the reproduction fails whatever the re-run gives" if report.errors else ""))
    return report


def verdict_reason(report: Report, facts: ReproduceFacts, n_seeds: int) -> str:
    """One line saying why the reproduction passes, fails or could not be judged: what the reports lead with."""
    errors = report.sorted_findings()
    errors = [f for f in errors if f.severity == "error"]
    if errors:
        first = errors[0]
        more = f" (+{len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        where = "static check" if first.source not in ("runtime", "probe") else "re-run"
        return f"{where}: {first.rule}: {first.message}{more}"
    if report.could_not_check:
        return f"could not judge: {report.could_not_check[0]}"
    eq, done = facts.equivalence, sum(1 for s in facts.seeds if s.status == "complete")
    if eq is None:
        return f"{done} of {n_seeds} seed(s) ran; no claim to compare with"
    outcome, within = ("reproduced", "within") if eq.equivalent else ("did not reproduce", "outside")
    return (f"{done} of {n_seeds} seed(s) {outcome} the claim: the re-run mean val_bpb {eq.rerun_mean:.5f} is "
            f"{within} {eq.tolerance:g} bpb of the claimed {eq.claimed_val_bpb} (delta {eq.delta:+.5f})")


def reproduce(opts: ReproduceOptions, progress: Progress = lambda _m: None) -> ReproduceResult:
    """Check the folder, run every seed (resuming finished ones) and aggregate; harness.report.reproduce writes the
    reports."""
    _validate(opts)
    sub_dir = resolve_submission(opts.path)
    static = static_verdict(sub_dir, opts, progress)
    data, tokenizer, vocab = resolve_data(opts, progress)
    results = _results_dir(opts, sub_dir)
    config = _config(opts, sub_dir, data, tokenizer)
    state = prepare_results(results, config, opts.overwrite)
    seeds = _choose_seeds(opts, state)
    write_json_atomic(results / CONFIG_NAME, state)
    hash_before = tree_hash(sub_dir)
    rows = _run_seeds(sub_dir, results, seeds, opts, data, tokenizer, vocab, progress)
    report = Report(target=str(sub_dir))
    report.merge(static, "check")
    unchanged = tree_hash(sub_dir) == hash_before
    if not unchanged:
        report.could_not_check.append("the submission folder changed during the re-run (by something outside "
                                      "the sandbox); the results may not belong to the shipped code")
    facts = aggregate(sub_dir, results, rows, opts, report, unchanged)
    if opts.probe:
        from harness.run.probe import ProbeOptions, probe_path

        progress("running the runtime legality probes (tiny configuration, synthetic data)")
        report.merge(probe_path(sub_dir, ProbeOptions()), "probe")
    sig = report.facts.get("significance")
    reference = sig.summary_bpb.reference.mean if isinstance(sig, Significance) else None
    facts = replace(facts, reason=verdict_reason(report, facts, len(seeds)), reference_val_bpb=reference)
    report.facts["reproduce_reason"] = facts.reason
    return ReproduceResult(report=report, options=opts, results_dir=results, facts=facts, seeds=rows)
