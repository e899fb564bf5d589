"""Render what a reviewer sees and screenshot it: the reproduce HTML report and the `ci` PR comment.

    python bench/report_screenshots.py [--out /tmp/shots] [--results RESULTS_DIR] [--no-screenshots]

Writes, under --out: reproduce_pass.html and reproduce_fail.html (from made-up ReproduceResults: three seeds that
reproduce their claim against a reference; a run with a failed seed and a claim it misses), or reproduce.html from
a `reproduce` results folder when --results is given (its submission folder must still exist); pr_comment_1 and
pr_comment_30 (.md, and .html through a small Markdown converter; pr_comment_1_open.html with the collapsed
report opened) from the real `check` of the example folders
under submissions/ posing as the records folders of one pull request, then of thirty. Each .html is screenshot
with headless Chromium (1200x1600) into a .png beside it; without Chromium the pages are still written. Needs the
harness installed (`pip install -e .`).
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

from harness.check.pipeline import CheckOptions, check_path
from harness.report.ci import summary_markdown
from harness.report.html import render_html
from harness.run.outcome import BpbSummary, Equivalence, ReproduceFacts, ReproduceOptions, ReproduceResult, SeedFigures
from harness.verdict import Report
from rules.finding import Finding

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
TRACK = "records/track_10min_16mb"


# --- made-up reproduce results ---------------------------------------------------------------------------------------

def _row(seed: int, bpb: float | None, steps: int = 2000) -> dict:
    """One seed's result.json row; a seed without a score was stopped at the training cap after 900 steps."""
    scale = 1 + 0.015 * (seed % 5)
    last = steps if bpb else 900
    curve = [(s, round(6.9 * scale * (s + 40) ** -0.16 + 0.03 * math.sin(s / 97 + seed), 4))
             for s in range(0, last + 1, 25)]
    final = None if bpb is None else {"tag": "final_int6_sliding_window_exact", "val_loss": bpb * 1.6849,
                                      "val_bpb": bpb, "line": 1800}
    timing = {"setup_s": 21.4, "train_s": 598.7 if bpb else 601.9, "script_train_ms": 597_900 if bpb else None,
              "eval_s": 87.2 if bpb else None, "total_s": 707.3 if bpb else 623.3}
    return {"seed": seed, "status": "complete" if bpb else "killed", "final": final, "timing": timing,
            "curve": curve}


def sample_result(passing: bool) -> ReproduceResult:
    """A ReproduceResult as `reproduce` would return it: passing (three seeds within the claim, a reference) or
    failing (one seed stopped at the training cap, the other two missing the claim)."""
    bpbs = {42: 1.11921, 7: 1.12004, 2024: 1.11963} if passing else {42: 1.1262, 7: None, 2024: 1.1279}
    rows = [_row(s, b) for s, b in bpbs.items()]
    scored = [b for b in bpbs.values() if b is not None]
    mean, claim = sum(scored) / len(scored), 1.1194
    report = Report(target=f"/work/{TRACK}/2026-05-01_SampleRecord")
    report.mark_checked("NETWORK-AT-EVAL", "TRAIN-TIME-600", "EVAL-TIME-600")
    if not passing:
        report.add(Finding("TRAIN-TIME-600", "error", "seed 7: stopped by the harness: training passed the 600 s "
                           "cap (601.9 s)", file="seed_7/train.log", seed="7", source="runtime"))
        report.add(Finding("LOG-CODE-CONSISTENCY", "warning", f"the re-run mean val_bpb {mean:.5f} differs from the "
                           f"claimed {claim:.5f} by {mean - claim:+.5f} (tolerance 0.002): the claim was not "
                           "reproduced", file="submission.json", source="runtime"))
        report.skip("SIGNIFICANCE", "no reference given (--against)")
    eq = Equivalence(claimed_val_bpb=claim, rerun_mean=mean, delta=mean - claim, tolerance=0.002,
                     test="|mean(re-run) - claimed| <= tolerance", equivalent=abs(mean - claim) <= 0.002,
                     per_seed_delta={})
    reason = ("3 of 3 seeds reproduced the claim within 0.002 bpb" if passing else
              f"seed 7 was stopped at the 600 s training cap; the 2 scored seeds miss the claim by {mean - claim:+.5f}"
              " bpb")
    sd = (sum((b - mean) ** 2 for b in scored) / (len(scored) - 1)) ** 0.5
    facts = ReproduceFacts(submission_unchanged=True, seeds=[SeedFigures.from_row(r) for r in rows],
                           isolation={"level": "namespaces", "memory_cap": "96 GiB"},
                           summary=BpbSummary(n=len(scored), mean_bpb=mean, sd_bpb=sd), equivalence=eq,
                           reason=reason, reference_val_bpb=1.1228 if passing else None)
    return ReproduceResult(report=report, options=ReproduceOptions(seeds="42,7,2024", nproc=8),
                           results_dir=Path("/tmp"), facts=facts, seeds=rows)


def result_from_folder(results: Path) -> ReproduceResult:
    """A results folder written by `reproduce` read back: its rows aggregated again as `reproduce` does."""
    from harness.run.reproduce import aggregate

    config = json.loads((results / "config.json").read_text(encoding="utf-8"))["config"]
    rows = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(results.glob("seed_*/result.json"))]
    opts = ReproduceOptions(nproc=config["nproc"], train_budget=config["train_budget"],
                            eval_budget=config["eval_budget"], setup_allowance=config["setup_allowance"])
    sub = Path(config["submission"])
    report = Report(target=str(sub))
    facts = aggregate(sub, results, rows, opts, report, True)
    return ReproduceResult(report=report, options=opts, results_dir=results, facts=facts, seeds=rows)


# --- the PR comment --------------------------------------------------------------------------------------------------

def example_reports(count: int) -> dict[str, Report]:
    """COUNT records folders of one pull request: the example submissions (a failing one first), checked for real,
    under records names; with several folders, the pull request's own warning that a submission is one folder."""
    examples = ROOT / "submissions" / "examples"
    folders = [examples / "illegal_preeval_ttt", ROOT / "submissions" / "my_run",
               *sorted(p for p in examples.iterdir() if p.is_dir() and p.name != "illegal_preeval_ttt")]
    checked = {p: check_path(p, CheckOptions()) for p in folders[:count]}
    reports: dict[str, Report] = {}
    if count > 1:
        layout = Report(target="pull request")
        layout.add(Finding("SUBMISSION-FORMAT", "warning", f"the pull request touches {count} submission folders; "
                           "a submission is one folder", source="artifact"))
        reports[""] = layout
    for i in range(count):
        path = folders[i % len(folders)]
        name = f"{TRACK}/2026-05-{i % 28 + 1:02d}_{path.name.title().replace('_', '')}{'' if i < len(folders) else i}"
        reports[name] = copy.deepcopy(checked.get(path) or check_path(path, CheckOptions()))
        reports[name].target = name
    return reports


def _inline(text: str) -> str:
    """Code spans and bold; the rest is left as GitHub leaves it (its HTML escapes and tags pass through)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = [f"<code>{html.escape(p[1:-1])}</code>" if p.startswith("`") and p.endswith("`") and len(p) > 1
           else re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", p) for p in parts]
    return "".join(out)


def _cells(line: str) -> list[str]:
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def markdown_to_html(md: str) -> str:
    """Enough GitHub Markdown for our comments: headings, tables, lists, paragraphs, <details>, code and bold."""
    out, lines, i = [], md.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(block[0]))
            body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(r)) + "</tr>" for r in block[2:])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            continue
        heading = re.match(r"(#{1,6}) (.*)", line)
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif re.match(r"\s*- ", line):
            depth = (len(line) - len(line.lstrip())) // 2
            out.append(f'<div class="li" style="margin-left:{1 + 1.5 * depth}em">• {_inline(line.strip()[2:])}</div>')
        elif line.startswith(("<details", "</details", "<summary", "<!--")):
            out.append(line)
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    style = ("body{font-family:system-ui,sans-serif;font-size:14px;max-width:1100px;margin:1em auto;color:#1f2328}"
             "table{border-collapse:collapse;margin:.5em 0;display:block;overflow-x:auto}th,td{border:1px solid #d0d7de;padding:4px 10px;"
             "text-align:left;vertical-align:top}th{background:#f6f8fa}code{background:#eff1f3;padding:0 3px;"
             "border-radius:3px;font-size:12px}details{margin:.3em 0}summary{cursor:pointer}p{margin:.5em 0}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style></head><body>"
            f"<div style='border:1px solid #d0d7de;border-radius:6px;padding:0 16px'>{''.join(out)}</div>"
            "</body></html>\n")


# --- screenshots -----------------------------------------------------------------------------------------------------

def screenshot(page: Path) -> Path | None:
    """PAGE as a PNG beside it through headless Chromium; None when no Chromium is installed."""
    browser = next((shutil.which(b) for b in CHROMIUM if shutil.which(b)), None)
    if browser is None:
        return None
    png = page.with_suffix(".png")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={png}", "--window-size=1200,1600", page.resolve().as_uri()],
                   check=False, capture_output=True, timeout=120)
    return png if png.is_file() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/shots"), help="Folder for the pages and PNGs.")
    parser.add_argument("--results", type=Path, default=None, help="A `reproduce` results folder to render.")
    parser.add_argument("--no-screenshots", action="store_true", help="Write the pages only.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pages = []
    if args.results is not None:
        pages.append((args.out / "reproduce.html", render_html(result_from_folder(args.results))))
    else:
        pages += [(args.out / f"reproduce_{name}.html", render_html(sample_result(name == "pass")))
                  for name in ("pass", "fail")]
    for count in (1, 30):
        md = summary_markdown(example_reports(count), "9f3c2e1d4b5a69788796a5b4c3d2e1f0a9b8c7d6", "HEAD")
        (args.out / f"pr_comment_{count}.md").write_text(md, encoding="utf-8")
        pages.append((args.out / f"pr_comment_{count}.html", markdown_to_html(md)))
        if count == 1:  # the collapsed report opened, to look at it too
            pages.append((args.out / "pr_comment_1_open.html", markdown_to_html(md).replace("<details>", "<details open>")))
        print(f"pr_comment_{count}.md: {len(md):,} characters, {md.count(chr(10)):,} lines")
    for page, text in pages:
        page.write_text(text, encoding="utf-8")
        shot = None if args.no_screenshots else screenshot(page)
        print(f"{page}" + (f" -> {shot}" if shot else " (no screenshot)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
