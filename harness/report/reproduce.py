"""The `reproduce` report: its Markdown (verdict and its one-line reason, isolation, per-seed table, statistics,
findings) and the writing of report.md, report.html and summary.json into the results folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.check.significance import Significance
from harness.report.html import STATUS_WORDS, render_html, verdict_reason
from harness.run.outcome import ReproduceResult, write_json_atomic


def write_reproduce_reports(result: ReproduceResult) -> str:
    """report.md, report.html and summary.json into the results folder; returns the text `reproduce` prints."""
    results, report = result.results_dir, result.report
    md = render_markdown(result)
    (results / "report.md").write_text(md, encoding="utf-8")
    (results / "report.html").write_text(render_html(result), encoding="utf-8")
    write_json_atomic(results / "summary.json", {**report.to_dict(), "seeds": result.seeds})
    return md + f"\nresults: {results} (report.md, report.html, summary.json)"


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec) if spec else str(value)


def _header(result: ReproduceResult) -> list[str]:
    """The verdict with its one-line reason, then the line of budgets, isolation and whether the submission folder
    stayed unchanged."""
    opts, facts = result.options, result.facts
    iso = facts.isolation or {}
    budgets = (f"Budgets: train {opts.train_budget:g} s, eval {opts.eval_budget:g} s, untimed allowance "
               f"{opts.setup_allowance:g} s; nproc {opts.nproc}; isolation `{iso.get('level', '?')}` "
               f"(memory cap: {iso.get('memory_cap', '?')}); submission folder unchanged: "
               f"{facts.submission_unchanged}")
    return [f"## pgolf reproduce: {Path(result.report.target).name}: **{STATUS_WORDS[result.report.verdict]}**", "",
            " ".join(verdict_reason(result).split()), "", budgets, ""]


def _seed_table(result: ReproduceResult) -> list[str]:
    out = ["| seed | status | val_loss | val_bpb | setup s | train s (harness) | train s (script) | eval s | total s |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in result.facts.seeds:
        out.append(f"| {r.seed} | {r.status} | {_fmt(r.val_loss)} | {_fmt(r.val_bpb)} | "
                   f"{_fmt(r.setup_s)} | {_fmt(r.train_s)} | {_fmt(r.script_train_s)} | "
                   f"{_fmt(r.eval_s)} | {_fmt(r.total_s)} |")
    return out


def _statistics(result: ReproduceResult) -> list[str]:
    """Mean and sd of the re-run, equivalence with the claim, and the selected significance policy's result."""
    out = []
    summ, eq = result.facts.summary, result.facts.equivalence
    if summ:
        sd = "n/a (one seed)" if summ.sd_bpb is None else f"{summ.sd_bpb:.6f}"
        out += ["", f"Mean val_bpb {summ.mean_bpb:.6f}, sd {sd}, n = {summ.n}."]
    if eq:
        out.append(f"Claimed {eq.claimed_val_bpb}: delta {eq.delta:+.6f} bpb; equivalent within "
                   f"{eq.tolerance} bpb: **{eq.equivalent}** ({eq.test}).")
    sig = result.report.facts.get("significance")
    pol = sig.selected if isinstance(sig, Significance) else None
    if pol is not None:
        needed = (pol.seeds_needed or {}).get("power")
        out.append(f"Significance ({pol.label}): method {pol.method}, p = {_fmt(pol.p, '.4g')}, "
                   f"passes: **{pol.passes}**; seeds per side for 80 % power: {_fmt(needed)}.")
    return out


def render_markdown(result: ReproduceResult) -> str:
    """The reproduce report as Markdown: verdict, isolation, per-seed table, statistics, findings."""
    report = result.report
    out = _header(result) + _seed_table(result) + _statistics(result) + ["", "### Findings", ""]
    for f in report.sorted_findings():
        out.append(f"- **{f.severity}** `{f.rule}` {f.file or ''}: {f.message}")
    if not report.findings:
        out.append("- none")
    for reason in report.could_not_check:
        out.append(f"- **could not check**: {reason}")
    return "\n".join(out) + "\n"
