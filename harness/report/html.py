"""The `reproduce` report as one self-contained HTML page: inline CSS and SVG, nothing fetched.

The page leads with a verdict banner (pass / fail / could not check, and the one-line reason), then two charts and
the tables. The bpb chart draws each seed's final val_bpb, the claim as a line inside its tolerance band and the
reference mean where one was given; the loss chart draws each seed's training-loss curve against the step. Both
have labelled axes with ticks. The tables (budgets and isolation, per seed, statistics, findings, not checked) are
HTML tables built from the ReproduceResult, not from the Markdown report.
"""

from __future__ import annotations

import html
import math
from typing import Any

from harness.check.significance import Significance
from harness.report.tables import where
from harness.run.outcome import ReproduceResult
from harness.run.reproduce import verdict_reason as reproduce_reason
from harness.verdict import Report

WIDTH, HEIGHT = 900, 340
LEFT, RIGHT, TOP, BOTTOM = 72, 20, 56, 60  # plot margins: title and legend above, ticks and axis label below
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
STATUS_WORDS = {"pass": "PASS", "fail": "FAIL", "error": "COULD NOT CHECK"}
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1000px;margin:1.5em auto;padding:0 1em;
color:#1f2328;line-height:1.45}
h1{font-size:1.35em;margin:.2em 0 .6em}h2{font-size:1.1em;margin:1.6em 0 .5em;border-bottom:1px solid #d0d7de}
.banner{border-radius:6px;padding:.8em 1em;margin:0 0 1em;border:1px solid}
.banner .status{font-weight:700;font-size:1.25em;margin-right:.6em;letter-spacing:.04em}
.pass{background:#dafbe1;border-color:#1a7f37;color:#0f5323}.fail{background:#ffebe9;border-color:#cf222e;color:#82071e}
.error{background:#fff8c5;border-color:#9a6700;color:#633c01}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}.kv th{font-weight:600;white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}
svg{display:block;max-width:100%;height:auto;border:1px solid #d0d7de;border-radius:6px;margin:.5em 0 1em;
background:#fff}
svg text{font-family:system-ui,sans-serif;fill:#1f2328}
.sev-error{color:#cf222e;font-weight:600}.sev-warning{color:#9a6700;font-weight:600}.sev-info{color:#0969da}
code{background:#f6f8fa;padding:0 .25em;border-radius:3px;white-space:nowrap}
""".replace("\n", "")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


# --- axes -----------------------------------------------------------------------------------------------------------

def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [LO, HI]: steps of 1, 2, 2.5 or 5 times a power of ten, at most COUNT + 1 steps;
    the first tick is at or below LO and the last at or above HI."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi - lo <= 0:
        half = abs(lo) * 0.001 or 0.5
        lo, hi = lo - half, hi + half
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if (hi - lo) / (m * mag) <= count)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def tick_label(value: float, ticks: list[float]) -> str:
    """VALUE with as many decimals as the tick step has (0.0025 -> 4), thousands separated when whole."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    digits = f"{step:.12f}".rstrip("0").rstrip(".")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return f"{value:,.{decimals}f}" if abs(value) >= 10_000 else f"{value:.{decimals}f}"


class Plot:
    """One SVG chart: a data box mapped onto the page, its axes, ticks, labels and marks."""

    def __init__(self, title: str, x_range: tuple[float, float], y_ticks: list[float]) -> None:
        self.title, (self.x_lo, self.x_hi), self.y_ticks = title, x_range, y_ticks
        self.parts: list[str] = []

    def x(self, value: float) -> float:
        span = (self.x_hi - self.x_lo) or 1.0
        return LEFT + (value - self.x_lo) / span * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        lo, hi = self.y_ticks[0], self.y_ticks[-1]
        return HEIGHT - BOTTOM - (value - lo) / ((hi - lo) or 1.0) * (HEIGHT - TOP - BOTTOM)

    def axes(self, x_ticks: list[tuple[float, str]], x_label: str, y_label: str) -> None:
        """Grid lines and labels at every tick, the two axis lines, the axis titles and the chart title."""
        left, right, bottom = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM
        p = self.parts
        p.append(f'<text x="{WIDTH / 2:.0f}" y="22" text-anchor="middle" font-weight="600" font-size="14">'
                 f'{_e(self.title)}</text>')
        for v in self.y_ticks:
            y = self.y(v)
            p.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eaeef2"/>'
                     f'<line x1="{left - 5}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#57606a"/>'
                     f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
                     f'{_e(tick_label(v, self.y_ticks))}</text>')
        for v, label in x_ticks:
            x = self.x(v)
            p.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="#57606a"/>')
            for i, part in enumerate(label.split("\n")):  # a second line for a note under the tick
                p.append(f'<text x="{x:.1f}" y="{bottom + 18 + 13 * i}" text-anchor="middle" font-size="11">'
                         f'{_e(part)}</text>')
        p.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#57606a"/>'
                 f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{bottom}" stroke="#57606a"/>'
                 f'<text x="{(left + right) / 2:.0f}" y="{HEIGHT - 10}" text-anchor="middle" font-size="12">'
                 f'{_e(x_label)}</text>'
                 f'<text x="16" y="{(TOP + bottom) / 2:.0f}" text-anchor="middle" font-size="12" '
                 f'transform="rotate(-90 16 {(TOP + bottom) / 2:.0f})">{_e(y_label)}</text>')

    def legend(self, items: list[tuple[str, str, str]]) -> None:
        """(colour, swatch kind 'dot' / 'line' / 'dash' / 'band', text) in one row between the title and the plot,
        so that no entry hides a mark."""
        x, y = LEFT, TOP - 14
        for colour, kind, text in items:
            line = f'<line x1="{x}" y1="{y - 4}" x2="{x + 18}" y2="{y - 4}" stroke="{colour}" stroke-width="2"'
            swatch = {"dot": f'<circle cx="{x + 9}" cy="{y - 4}" r="4" fill="{colour}"/>',
                      "band": f'<rect x="{x}" y="{y - 9}" width="18" height="10" fill="{colour}" opacity="0.3"/>',
                      "dash": line + ' stroke-dasharray="5 3"/>'}.get(kind, line + "/>")
            self.parts.append(swatch + f'<text x="{x + 24}" y="{y}" font-size="11">{_e(text)}</text>')
            x += 24 + int(6.4 * len(text)) + 22

    def svg(self, label: str) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
                f'height="{HEIGHT}" role="img" aria-label="{_e(label)}">{"".join(self.parts)}</svg>')


# --- the two charts ---------------------------------------------------------------------------------------------------

def _seed_colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]


def loss_curves_svg(rows: list[dict[str, Any]]) -> str:
    """Training loss against the step, one line per seed (a lone point as a dot), with ticks on both axes."""
    curves = [(r["seed"], [(float(s), float(v)) for s, v in r.get("curve") or []]) for r in rows]
    points = [p for _, c in curves for p in c]
    if not points:
        return "<p>No training-loss lines were logged.</p>"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks = nice_ticks(min(xs), max(xs))
    plot = Plot("Training loss per seed", (x_ticks[0], x_ticks[-1]), nice_ticks(min(ys), max(ys)))
    plot.axes([(v, tick_label(v, x_ticks)) for v in x_ticks], "training step", "train_loss")
    for i, (_seed, curve) in enumerate(curves):
        colour = _seed_colour(i)
        if len(curve) == 1:
            plot.parts.append(f'<circle cx="{plot.x(curve[0][0]):.1f}" cy="{plot.y(curve[0][1]):.1f}" r="3" '
                              f'fill="{colour}"/>')
        elif curve:
            pts = " ".join(f"{plot.x(x):.1f},{plot.y(y):.1f}" for x, y in curve)
            plot.parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{pts}"/>')
    plot.legend([(_seed_colour(i), "line", f"seed {seed}") for i, (seed, c) in enumerate(curves) if c])
    return plot.svg("training loss against step, one line per seed")


def _bpb_marks(claim: float | None, tol: float | None, reference: float | None
               ) -> tuple[list[float], list[tuple[str, str, str]]]:
    """The values the y axis must cover for the claim, its band and the reference, and their legend entries."""
    values, legend = [], []
    if claim is not None:
        values.append(claim)
        legend.append(("#1a7f37", "line", f"claim {claim:.5f}"))
        if tol:
            values += [claim - tol, claim + tol]
            legend.append(("#1a7f37", "band", f"claim ± {tol:g} bpb: where the re-run mean must fall"))
    if reference is not None:
        values.append(reference)
        legend.append(("#cf222e", "dash", f"reference mean {reference:.5f}"))
    return values, legend


def bpb_svg(rows: list[dict[str, Any]], claim: float | None, tol: float | None, reference: float | None) -> str:
    """Each seed's final val_bpb as a dot over its seed; the claim as a line inside its tolerance band; the re-run
    mean (what the band is for) and the reference mean as dashed lines."""
    seeds = [(str(r["seed"]), (r.get("final") or {}).get("val_bpb")) for r in rows]
    scored = [float(v) for _s, v in seeds if v is not None]
    if not scored:
        return "<p>No seed produced a final val_bpb.</p>"
    marks, legend = _bpb_marks(claim, tol, reference)
    mean = sum(scored) / len(scored)
    legend.append(("#57606a", "dash", f"re-run mean {mean:.5f}"))
    lo, hi = min(scored + marks), max(scored + marks)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.001, 1e-4)
    plot = Plot("Final val_bpb per seed", (0.5, len(seeds) + 0.5), nice_ticks(lo - pad, hi + pad))
    left, right = plot.x(0.5), plot.x(len(seeds) + 0.5)
    if claim is not None and tol:
        top, bottom = plot.y(claim + tol), plot.y(claim - tol)
        plot.parts.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" height="{bottom - top:.1f}" '
                          'fill="#1a7f37" opacity="0.12"/>')
    if claim is not None:
        plot.parts.append(f'<line x1="{left:.1f}" y1="{plot.y(claim):.1f}" x2="{right:.1f}" y2="{plot.y(claim):.1f}" '
                          'stroke="#1a7f37" stroke-width="2"/>')
    if reference is not None:
        y = plot.y(reference)
        plot.parts.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="#cf222e" '
                          'stroke-width="2" stroke-dasharray="6 4"/>')
    y = plot.y(mean)
    plot.parts.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="#57606a" '
                      'stroke-width="1.5" stroke-dasharray="3 3"/>')
    plot.axes([(i + 1, f"seed {s}" if v is not None else f"seed {s}\nno score") for i, (s, v) in enumerate(seeds)],
              "seed", "val_bpb (lower is better)")
    for i, (seed, value) in enumerate(seeds):
        if value is not None:
            cx, cy = plot.x(i + 1), plot.y(float(value))
            plot.parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{_seed_colour(i)}" stroke="#fff">'
                              f'<title>seed {_e(seed)}: {float(value):.8f}</title></circle>'
                              f'<text x="{cx + 9:.1f}" y="{cy + 4:.1f}" font-size="11">{float(value):.5f}</text>')
    plot.legend(legend)
    return plot.svg("final val_bpb per seed against the claim and the reference")


# --- tables ---------------------------------------------------------------------------------------------------------

def _num(value: Any, spec: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def html_table(columns: list[str], rows: list[list[str]], numeric: tuple[int, ...] = ()) -> str:
    """A table of already formatted cells (escaped here); NUMERIC column indices are right-aligned."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kv_table(rows: list[list[str]]) -> str:
    """A two-column table of (name, value) rows, the names as row headers."""
    body = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def _run_table(result: ReproduceResult) -> str:
    opts, iso = result.options, result.facts.isolation or {}
    rows = [["budgets", (f"train {opts.train_budget:g} s, eval {opts.eval_budget:g} s, untimed setup "
                         f"{opts.setup_allowance:g} s")],
            ["processes", str(opts.nproc)],
            ["isolation", f"{iso.get('level', '?')} (memory cap: {iso.get('memory_cap', '?')})"],
            ["submission folder unchanged", "yes" if result.facts.submission_unchanged else "NO"]]
    return kv_table(rows)


def _seed_rows(result: ReproduceResult) -> str:
    eq = result.facts.equivalence
    claim = float(eq.claimed_val_bpb) if eq is not None else None
    rows = []
    for s in result.facts.seeds:
        delta = None if claim is None or s.val_bpb is None else s.val_bpb - claim
        rows.append([str(s.seed), s.status, _num(s.val_loss, ".6f"), _num(s.val_bpb, ".6f"), _num(delta, "+.6f"),
                     _num(s.setup_s, ".1f"), _num(s.train_s, ".1f"), _num(s.script_train_s, ".1f"),
                     _num(s.eval_s, ".1f"), _num(s.total_s, ".1f")])
    return html_table(["seed", "status", "val_loss", "val_bpb", "vs claim", "setup s", "train s (harness)",
                       "train s (script)", "eval s", "total s"], rows, numeric=tuple(range(2, 10)))


def _significance(report: Report) -> Significance | None:
    sig = report.facts.get("significance")
    return sig if isinstance(sig, Significance) else None


def reference_mean(result: ReproduceResult) -> float | None:
    """The reference's mean val_bpb: the one the re-run recorded, else the mean of the significance reference."""
    if result.facts.reference_val_bpb is not None:
        return result.facts.reference_val_bpb
    sig = _significance(result.report)
    values = [float(v.val_bpb) for v in sig.reference.values if v.val_bpb is not None] if sig else []
    return sum(values) / len(values) if values else None


def _statistics_table(result: ReproduceResult) -> str:
    summ, eq, ref = result.facts.summary, result.facts.equivalence, reference_mean(result)
    rows = []
    if summ:
        sd = "n/a (one seed)" if summ.sd_bpb is None else f"{summ.sd_bpb:.6f}"
        rows.append(["re-run val_bpb", f"mean {summ.mean_bpb:.6f}, sd {sd}, n = {summ.n}"])
    if eq:
        rows.append(["claim", (f"{eq.claimed_val_bpb}: delta {eq.delta:+.6f} bpb, tolerance {eq.tolerance} bpb; "
                              f"equivalent: {'yes' if eq.equivalent else 'NO'}")])
    if ref is not None:
        rows.append(["reference mean val_bpb", f"{ref:.6f}"])
    pol = sig.selected if (sig := _significance(result.report)) else None
    if pol is not None:
        needed = (pol.seeds_needed or {}).get("power")
        rows.append([f"significance ({pol.label})", (f"{pol.method}, p = {_num(pol.p, '.4g')}, passes: "
                     f"{'yes' if pol.passes else 'no' if pol.passes is False else 'not testable'}; seeds per side "
                     f"for 80% power: {_num(needed, '')}")])
    return kv_table(rows) if rows else "<p>No seed produced a score.</p>"


def _findings_table(report: Report) -> str:
    findings = report.sorted_findings()
    if not findings:
        return "<p>No findings.</p>"
    body = "".join(f'<tr><td class="sev-{_e(f.severity)}">{_e(f.severity)}</td><td><code>{_e(f.rule)}</code></td>'
                   f"<td>{_e(where(f.file, f.line))}</td><td>{_e(f.message)}</td></tr>" for f in findings)
    return ("<table><thead><tr><th>severity</th><th>rule</th><th>location</th><th>message</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _unchecked(report: Report) -> str:
    items = [f"<li><b>could not check</b>: {_e(r)}</li>" for r in report.could_not_check]
    items += [f"<li><code>{_e(n.rule)}</code> not checked: {_e(n.reason)}</li>" for n in report.not_checked]
    return f"<ul>{''.join(items)}</ul>" if items else "<p>None.</p>"


# --- the page -------------------------------------------------------------------------------------------------------

def verdict_reason(result: ReproduceResult) -> str:
    """The one line that says why the verdict is what it is: the re-run's own reason, else the same line derived
    from the result (a result read back from a results folder, or built by hand)."""
    return result.facts.reason or reproduce_reason(result.report, result.facts, len(result.facts.seeds))


def render_html(result: ReproduceResult) -> str:
    """The whole page: verdict banner, the bpb and loss charts, then the tables. Everything is escaped; nothing is
    fetched."""
    report, eq = result.report, result.facts.equivalence
    name = report.target.rstrip("/").rsplit("/", 1)[-1]
    claim = float(eq.claimed_val_bpb) if eq is not None else None
    charts = (bpb_svg(result.seeds, claim, eq.tolerance if eq else None, reference_mean(result))
              + loss_curves_svg(result.seeds))
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>pgolf reproduce: {_e(name)}: {_e(report.verdict)}</title><style>{CSS}</style></head><body>"
            f"<h1>pgolf reproduce: <code>{_e(name)}</code></h1>"
            f'<div class="banner {_e(report.verdict)}"><span class="status">{STATUS_WORDS[report.verdict]}</span>'
            f'<span class="reason">{_e(verdict_reason(result))}</span></div>'
            f"{_run_table(result)}<h2>Scores</h2>{charts}<h2>Per seed</h2>{_seed_rows(result)}"
            f"<h2>Statistics</h2>{_statistics_table(result)}<h2>Findings</h2>{_findings_table(report)}"
            f"<h2>Not checked</h2>{_unchecked(report)}</body></html>\n")
