"""The `reproduce` report as one self-contained HTML page: inline SVG charts, inline CSS, no external assets.

Two charts: per-seed training-loss curves, and the per-seed val_bpb of the re-run against the reference (when
`--against` was given) with the margin drawn as a band below the reference mean.
"""

from __future__ import annotations

import html
from typing import Any

from harness.check.significance import Significance
from harness.run.outcome import ReproduceResult
from harness.verdict import Report

WIDTH, HEIGHT, PAD = 640, 280, 48
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _axes(title: str, x_label: str, y_label: str, y_lo: float, y_hi: float) -> list[str]:
    return [f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
            f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - 10}" y2="{HEIGHT - PAD}" stroke="#333"/>',
            f'<line x1="{PAD}" y1="24" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#333"/>',
            f'<text x="{WIDTH / 2}" y="{HEIGHT - 10}" text-anchor="middle">{html.escape(x_label)}</text>',
            f'<text x="12" y="{HEIGHT / 2}" transform="rotate(-90 12 {HEIGHT / 2})" text-anchor="middle">'
            f'{html.escape(y_label)}</text>',
            f'<text x="{PAD - 4}" y="28" text-anchor="end" font-size="10">{y_hi:.4g}</text>',
            f'<text x="{PAD - 4}" y="{HEIGHT - PAD}" text-anchor="end" font-size="10">{y_lo:.4g}</text>']


def loss_curves_svg(rows: list[dict[str, Any]]) -> str:
    """Training loss against step, one polyline per seed."""
    curves = [(r["seed"], [(float(s), float(v)) for s, v in r.get("curve") or []]) for r in rows]
    points = [p for _, c in curves for p in c]
    if not points:
        return "<p>No training-loss lines were logged.</p>"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    sx, sy = _scale(min(xs), max(xs), PAD, WIDTH - 10), _scale(min(ys), max(ys), HEIGHT - PAD, 24)
    parts = _axes("Training loss per seed", "step", "train_loss", min(ys), max(ys))
    for i, (seed, curve) in enumerate(curves):
        colour = COLOURS[i % len(COLOURS)]
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in curve)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>')
        parts.append(f'<text x="{WIDTH - 12}" y="{36 + 14 * i}" text-anchor="end" fill="{colour}" font-size="11">'
                     f'seed {html.escape(str(seed))}</text>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}">{"".join(parts)}</svg>'


def bpb_distribution_svg(rows: list[dict[str, Any]], significance: Significance | None) -> str:
    """Dots for each re-run seed and each reference seed; the reference mean and the margin band below it."""
    cand = [(str(r["seed"]), float(r["final"]["val_bpb"])) for r in rows if r.get("final")]
    ref_vals: list[float] = []
    delta = None
    if significance is not None:
        ref_vals = [float(v.val_bpb) for v in significance.reference.values]
        delta = significance.selected.delta_bpb if significance.selected else None
    if not cand:
        return "<p>No seed produced a final val_bpb.</p>"
    values = [v for _, v in cand] + ref_vals
    ref_mean = sum(ref_vals) / len(ref_vals) if ref_vals else None
    if ref_mean is not None and delta:
        values.append(ref_mean - delta)
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or 0.001
    sy = _scale(lo - pad, hi + pad, HEIGHT - PAD, 24)
    parts = _axes("val_bpb: re-run vs reference", "", "val_bpb", lo - pad, hi + pad)
    if ref_mean is not None:
        if delta:
            top, bottom = sy(ref_mean), sy(ref_mean - delta)
            parts.append(f'<rect x="{PAD}" y="{top:.1f}" width="{WIDTH - PAD - 10}" height="{bottom - top:.1f}" '
                         f'fill="#fdd" opacity="0.7"/>')
            parts.append(f'<text x="{WIDTH - 12}" y="{bottom - 3:.1f}" text-anchor="end" font-size="10">'
                         f'margin {delta:.5f} bpb: beat this line</text>')
        parts.append(f'<line x1="{PAD}" y1="{sy(ref_mean):.1f}" x2="{WIDTH - 10}" y2="{sy(ref_mean):.1f}" '
                     f'stroke="#d62728" stroke-dasharray="4 3"/>')
    col = {"re-run": WIDTH * 0.35, "reference": WIDTH * 0.7}
    for seed, v in cand:
        parts.append(f'<circle cx="{col["re-run"]:.1f}" cy="{sy(v):.1f}" r="4" fill="#1f77b4">'
                     f'<title>seed {html.escape(seed)}: {v}</title></circle>')
    for v in ref_vals:
        parts.append(f'<circle cx="{col["reference"]:.1f}" cy="{sy(v):.1f}" r="4" fill="#d62728">'
                     f'<title>reference: {v}</title></circle>')
    for name, x in col.items():
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle">{name}</text>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}">{"".join(parts)}</svg>'


def _significance(report: Report) -> Significance | None:
    sig = report.facts.get("significance")
    return sig if isinstance(sig, Significance) else None


def render_html(result: ReproduceResult, markdown: str) -> str:
    """The whole page: the charts, then the reproduce report's MARKDOWN. Everything is escaped; nothing is fetched."""
    report, rows = result.report, result.seeds
    md = html.escape(markdown)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>pgolf reproduce</title>"
            "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}pre{white-space:pre-wrap;"
            "background:#f6f6f6;padding:1em}svg{border:1px solid #ddd;margin:.5em 0}</style></head><body>"
            f"<h1>pgolf reproduce: {html.escape(report.target)} — {html.escape(report.verdict)}</h1>"
            f"{loss_curves_svg(rows)}{bpb_distribution_svg(rows, _significance(report))}"
            f"<pre>{md}</pre></body></html>\n")
