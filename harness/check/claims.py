"""Claims against logs: does the claimed score equal what the logs print, for the mean and for each seed?

Comparison is at the claim's printed precision, rounded or truncated (authors do both). When the claim is not the
mean of all logs, the checker looks for the explanation a reviewer would find (challenge-facts §12): a subset of the
logs (same folder, same file-name pattern, the listed seeds), the mean of pre-rounded values, the mean of a
non-final tag, or a single log. Every SIGNIFICANCE finding here is a warning, as the rulebook rates the rule (claims
that do not equal the logged values are a reason to reject a record, not a breach of the rules): one the logs explain
says how; one nothing explains says so ("claim 1.15015 equals no log; logs mean 1.16661") and marks the comparison
`unbacked`, so that budget findings of logs that are not the claimed run are not charged to it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import PurePosixPath

from harness.submission.logs import LogRun, MetricLine, with_twin_eval_time
from harness.submission.manifest import Claims
from harness.verdict import Report
from rules.finding import Evidence, Finding

MAX_SUBSET_LOGS = 8  # enumerate arbitrary subsets only for small folders (2^8 = 256 means)


@dataclass
class Comparison:
    """How a claimed number relates to the logs: kind is all | subset | pre_rounded | non_final | single |
    mismatch | no_claim | no_logs."""

    kind: str
    detail: str = ""
    logs_used: list[str] = field(default_factory=list)
    logs_mean: Decimal | None = None
    lines: tuple[str, ...] = ()  # the run-output lines the claim was read from, one per log used, as printed
    # log path -> the metric line the claim was read from, where that is not the log's final score line: the
    # scored pass of that run (budgets time this pass, not a later diagnostic one).
    scored: dict[str, MetricLine] = field(default_factory=dict)
    unbacked: bool = False  # logs are shipped, and nothing in them explains the claim


def _dec(text: str | float | None) -> Decimal | None:
    if text is None:
        return None
    try:
        d = Decimal(str(text))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def decimals_of(text: str) -> int:
    mantissa = text.lower().split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def equal_at(claim_text: str, value: Decimal, value_decimals: int | None = None) -> bool:
    """True when `value` printed at the claim's precision (rounded either way, or truncated) equals the claim."""
    claim = _dec(claim_text)
    if claim is None or value is None:
        return False
    places = decimals_of(claim_text)
    if value_decimals is not None and value_decimals < places:
        # The log printed fewer decimals than the claim: compare at the log's precision.
        places = value_decimals
        claim = claim.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    q = Decimal(1).scaleb(-places)
    return any(value.quantize(q, rounding=r) == claim for r in (ROUND_HALF_UP, ROUND_HALF_EVEN, ROUND_DOWN))


def _mean(values: list[Decimal]) -> Decimal:
    return sum(values, Decimal(0)) / len(values)


def distinct_runs(logs: list[LogRun]) -> tuple[list[LogRun], dict[str, str]]:
    """Run logs with a final score, duplicates (same seed and same printed numbers) folded into the first."""
    seen: dict[tuple, LogRun] = {}
    duplicates: dict[str, str] = {}
    for run in logs:
        if run.final is None or _dec(run.final.val_bpb_text) is None:
            continue
        key = (run.seed, run.final.tag, run.final.val_bpb_text, run.final.val_loss_text, run.total_size_bytes)
        if key in seen:
            duplicates[run.path] = seen[key].path
        else:
            seen[key] = run
    return list(seen.values()), duplicates


def _value(m: MetricLine, attr: str) -> tuple[Decimal | None, int]:
    text = m.val_bpb_text if attr == "val_bpb" else m.val_loss_text
    return _dec(text), decimals_of(text or "")


def _named_groups(runs: list[LogRun], claims: Claims) -> list[tuple[str, list[LogRun]]]:
    groups: dict[str, list[LogRun]] = {}
    for run in runs:
        p = PurePosixPath(run.path)
        groups.setdefault(f"folder {p.parent.as_posix() or '.'}", []).append(run)
        groups.setdefault(f"files like {re.sub(r'[0-9]+', '#', p.stem)}", []).append(run)
        words = re.split(r"[_\-.]", p.stem)
        for word in words:
            if word and not word.isdigit() and not re.fullmatch(r"(seed|s|train|log)\d*", word):
                groups.setdefault(f"files with '{word}'", []).append(run)
        for k in range(1, len(words) + 1):
            groups.setdefault(f"files starting {'_'.join(words[:k])}", []).append(run)
    listed = set(claims.seed_ids)
    if listed:
        groups["the listed seeds"] = [r for r in runs if r.seed in listed]
    return [(name, g) for name, g in groups.items() if 0 < len(g) < len(runs)]


def compare(claim_text: str | None, runs: list[LogRun], claims: Claims, attr: str = "val_bpb") -> Comparison:
    """Explain a claimed mean (`attr` is val_bpb or val_loss) in terms of the distinct run logs."""
    if claim_text is None or _dec(claim_text) is None:
        return Comparison("no_claim")
    if not runs:
        return Comparison("no_logs")
    finals = [(r, *_value(r.final, attr)) for r in runs]
    finals = [(r, v, d) for r, v, d in finals if v is not None]
    if not finals:
        return _unread_figure(claim_text, runs, attr, Decimal(0), claims) or Comparison("no_logs")
    values = [v for _, v, _ in finals]
    low_dec = min(d for _, _, d in finals)
    everyone = _mean(values)
    paths = [r.path for r, _, _ in finals]
    if equal_at(claim_text, everyone, low_dec if len(finals) == 1 else None):
        return Comparison("all", f"mean of all {len(finals)} logs", paths, everyone,
                          _texts(r.final for r, _, _ in finals))
    places = decimals_of(claim_text)
    pre_rounded = _mean([v.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP) for v in values])
    if len(finals) > 1 and equal_at(claim_text, pre_rounded):
        return Comparison("pre_rounded", f"mean of the {len(finals)} values rounded to {places} decimals first",
                          paths, everyone, _texts(r.final for r, _, _ in finals))
    for name, group in _named_groups([r for r, _, _ in finals], claims):
        group_values = [_value(r.final, attr)[0] for r in group]
        if len(group) > 1 and equal_at(claim_text, _mean(group_values)):
            return Comparison("subset", f"mean of {len(group)} of {len(finals)} logs ({name})",
                              [r.path for r in group], everyone, _texts(r.final for r in group))
    if 2 < len(finals) <= MAX_SUBSET_LOGS:
        for size in range(len(finals) - 1, 1, -1):
            for combo in itertools.combinations(finals, size):
                if equal_at(claim_text, _mean([v for _, v, _ in combo])):
                    used = [r.path for r, _, _ in combo]
                    return Comparison("subset", f"mean of {size} of {len(finals)} logs ({', '.join(used)})",
                                      used, everyone, _texts(r.final for r, _, _ in combo))
    for run, value, dec in finals:
        if equal_at(claim_text, value, dec):
            who = f"seed {run.seed}'s" if run.seed else "one log's"
            return Comparison("single", f"{who} value in {run.path}, not the {len(finals)}-log mean"
                              if len(finals) > 1 else f"the value in {run.path}", [run.path], everyone,
                              _texts([run.final]))
    hit = _non_final(claim_text, runs, attr)
    if hit is not None:
        hit.logs_mean = everyone
        return hit
    unread = _unread_figure(claim_text, runs, attr, everyone, claims)
    if unread is not None:
        return unread
    return Comparison("mismatch", f"claim {claim_text} equals no log; logs mean {_fmt(everyone, places)}"
                      + (f" (range {_fmt(min(values), places)}-{_fmt(max(values), places)})"
                         if len(values) > 1 else ""), paths, everyone)


def _unread_figure(claim_text: str, runs: list[LogRun], attr: str, everyone: Decimal,
                   claims: Claims | None = None) -> Comparison | None:
    """A bpb figure equal to the claim on a line the metric grammar does not read (an unknown tag, `val_bpb=`), or
    a claim that is the mean of per-seed values each printed in its own seed's log on such lines."""
    if attr != "val_bpb":
        return None
    seeded = _seed_figures(claim_text, runs, claims)
    if seeded is not None:
        return Comparison("unparsed", seeded, [r.path for r in runs if r.seed in (claims.seeds if claims else {})],
                          everyone)
    last: dict[str, list[str]] = {}  # key -> each run's last figure under that key (a per-seed final line)
    for run in runs:
        per_run = {key: number for _line, key, number in run.bpb_figures}
        for key, number in per_run.items():
            last.setdefault(key, []).append(number)
    for key, numbers in last.items():
        if len(runs) > 1 and len(numbers) == len(runs):
            mean = _mean([Decimal(n) for n in numbers])
            if equal_at(claim_text, mean):
                return Comparison("unparsed", f"mean of the last `{key}` figure of each of the {len(runs)} logs "
                                  "(a line the log grammar does not read as a final score)",
                                  [r.path for r in runs], everyone)
    for run in runs:
        for line, key, number in reversed(run.bpb_figures):
            if equal_at(claim_text, Decimal(number), decimals_of(number)):
                return Comparison("unparsed", f"`{key}:{number}` figure at line {line} of {run.path} (a line the "
                                  "log grammar does not read as a final score)", [run.path], everyone)
    return None


def _texts(metrics) -> tuple[str, ...]:
    """The printed text of each metric line (those that carry one)."""
    return tuple(m.text for m in metrics if m is not None and m.text)


def _non_final(claim_text: str, runs: list[LogRun], attr: str) -> Comparison | None:
    """The mean over logs of another tag (every log carries it), else any single metric line."""
    by_tag: dict[str, list[MetricLine]] = {}
    for run in runs:
        last: dict[str, MetricLine] = {}
        for m in run.metrics:
            if m.kind != "step":
                last[m.tag] = m
        for tag, m in last.items():
            by_tag.setdefault(tag, []).append(m)
    for tag, lines in by_tag.items():
        if len(lines) == len(runs) and any(r.final is None or r.final.tag != tag for r in runs):
            vals = [_value(m, attr) for m in lines]
            if all(v is not None for v, _ in vals):
                mean = _mean([v for v, _ in vals])
                if equal_at(claim_text, mean, min(d for _, d in vals) if len(vals) == 1 else None):
                    return Comparison("non_final", f"mean of the non-final tag {tag!r} over {len(lines)} logs",
                                      [r.path for r in runs], lines=_texts(lines),
                                      scored={r.path: with_twin_eval_time(r.metrics, m)
                                              for r, m in zip(runs, lines)})
    for run in runs:
        for m in reversed(run.metrics):
            v, d = _value(m, attr)
            if v is not None and m is not run.final and equal_at(claim_text, v, d):
                if m.kind == "step":
                    # A training-time eval is a pre-quantization number: it is not the score of the artifact.
                    final = f"{run.final.val_bpb_text} ({run.final.tag})" if run.final else "none"
                    return Comparison("pre_quant_step", f"claim {claim_text} equals only the pre-quantization "
                                      f"step {m.step} eval (line {m.line} of {run.path}); final score {final}",
                                      [run.path], lines=_texts([m]))
                return Comparison("non_final", f"{m.tag!r} line {m.line} of {run.path}, not its final score",
                                  [run.path], lines=_texts([m]), scored={run.path: with_twin_eval_time(run.metrics, m)})
    return None


def _fmt(value: Decimal, places: int) -> str:
    return f"{value:.{max(places, 5)}f}"


def _seed_table(logs: list[LogRun], duplicates: dict[str, str]) -> list[dict]:
    rows = []
    for run in logs:
        if not run.is_run_log:
            continue
        f = run.final
        rows.append({
            "seed": run.seed, "log": run.path, "final_tag": f.tag if f else None,
            "val_loss": f.val_loss_text if f else None, "val_bpb": f.val_bpb_text if f else None,
            "bytes_total": run.total_size_bytes,
            "train_time_s": round(run.train_time_ms / 1000.0, 3) if run.train_time_ms is not None else None,
            "eval_time_s": run.eval_time_s, "duplicate_of": duplicates.get(run.path)})
    return rows


def check_claims(claims: Claims, logs: list[LogRun], report: Report) -> dict[str, Comparison]:
    """Compare claimed score, loss and bytes with the logs; add SIGNIFICANCE findings; fill facts['seeds']."""
    runs, duplicates = distinct_runs(logs)
    report.facts["seeds"] = _seed_table(logs, duplicates)
    result = {"val_bpb": compare(claims.val_bpb_text, runs, claims, "val_bpb")}
    file = claims.path
    bpb = result["val_bpb"]
    if bpb.kind == "no_logs" and claims.val_bpb_text is not None:
        bpb = result["val_bpb"] = _unread_figure(claims.val_bpb_text, logs, "val_bpb", Decimal(0), claims) or bpb
    if bpb.kind == "no_logs":
        # With logs shipped, a claim that no final score and no bpb figure in them equals is unsupported (a
        # placeholder, a hand-written summary, a run cut short); with none, SUBMISSION-FORMAT reports the missing log.
        shipped = list(logs)
        bpb.unbacked = bool(shipped)
        report.add(Finding("SIGNIFICANCE", "warning",
                           f"claimed val_bpb {claims.val_bpb_text} has no log with a final score behind it"
                           + (f": no final score and no bpb figure equal to it in {len(shipped)} log(s)"
                              if shipped else ""), file=file, source="log",
                           evidence=tuple(Evidence(r.path, None, f"{r.n_lines} lines") for r in shipped[:5])))
    elif bpb.kind in ("mismatch", "pre_quant_step"):
        excuse = _final_under_other_key(claims, runs) or (
            _mismatch_excuse(claims, runs, logs) if bpb.kind == "mismatch" else None)
        bpb.unbacked = not excuse
        report.add(Finding("SIGNIFICANCE", "warning",
                           f"val_bpb: {bpb.detail}" + (f"; {excuse}" if excuse else ""), file=file, source="log",
                           evidence=_evidence(runs), data={"claim": claims.val_bpb_text,
                                                           "logs_mean": str(bpb.logs_mean)}))
    elif bpb.kind in ("subset", "single", "non_final", "pre_rounded", "unparsed"):
        severity = "info" if bpb.kind == "pre_rounded" else "warning"
        report.add(Finding("SIGNIFICANCE", severity,
                           f"claimed val_bpb {claims.val_bpb_text} is the {bpb.detail}"
                           + (f"; all-log mean is {_fmt(bpb.logs_mean, decimals_of(claims.val_bpb_text))}"
                              if bpb.logs_mean else "; no log has a final score the grammar reads"),
                           file=file, source="log",
                           evidence=_evidence([r for r in runs if r.path in bpb.logs_used]),
                           data={"claim": claims.val_bpb_text, "kind": bpb.kind}))
    if claims.val_loss_text is not None and runs:
        result["val_loss"] = loss = compare(claims.val_loss_text, runs, claims, "val_loss")
        if loss.kind == "mismatch":
            as_bpb = compare(claims.val_loss_text, runs, claims, "val_bpb")
            why = (f"; it equals the bpb ({as_bpb.detail}): the val_loss key holds a bpb value"
                   if as_bpb.kind not in ("mismatch", "no_logs") else "")
            report.add(Finding("SIGNIFICANCE", "warning", f"val_loss: {loss.detail}{why}", file=file,
                               source="log", data={"claim": claims.val_loss_text}))
    _check_seeds(claims, runs, report, headline_backed=bpb.kind not in ("mismatch", "pre_quant_step", "no_logs"))
    _check_bytes(claims, runs, report)
    report.facts["claims_vs_logs"] = {k: {"kind": c.kind, "detail": c.detail} for k, c in result.items()}
    if bpb.kind not in ("no_claim", "no_logs"):
        report.mark_checked("SIGNIFICANCE")  # the claims-equal-logs part of the rule
    return result


SLIP_BPB = Decimal("0.0002")  # a claim this close to the logs' mean is a rounding or arithmetic slip (0.005 nats
# is about 0.002 bpb: a slip a tenth of that cannot decide a record)
_NUMBER = re.compile(r"(?<![\d.])\d+\.\d{4,}(?![\d.])")


def _final_under_other_key(claims: Claims, runs: list[LogRun]) -> str | None:
    """Where submission.json states the logs' final score under another key (`int6_zstd_val_bpb`) while the
    headline key holds another figure: a mislabelled field, not a claim without logs. The value decides (at least
    four decimals, equal to a run's final score or to the mean of them), not the key's name."""
    finals = [(r, _dec(r.final.val_bpb_text)) for r in runs if r.final is not None and r.final.val_bpb_text]
    values = [v for _, v in finals if v is not None]
    targets = values + ([_mean(values)] if len(values) > 1 else [])
    for key, raw in (claims.raw or {}).items():
        text = str(raw) if isinstance(raw, (int, float, str)) and not isinstance(raw, bool) else ""
        if key == claims.bpb_key or decimals_of(text) < 4 or _dec(text) is None:
            continue
        if any(equal_at(text, target, None) for target in targets):
            return f"submission.json gives the logs' final score under `{key}` ({text}): the headline key is mislabelled"
    return None


def _mismatch_excuse(claims: Claims, runs: list[LogRun], logs: list[LogRun]) -> str | None:
    """Why a headline val_bpb that equals no final score still has the logs behind it, or None: the number is printed
    on some output line (under a key the grammar does not read), every per-seed claim equals its seed's log, or the
    claim is within SLIP_BPB of the logs' mean of one tag (rounding, a mean taken by hand)."""
    claim = _dec(claims.val_bpb_text)
    places = decimals_of(claims.val_bpb_text or "")
    if claim is None:
        return None
    if places >= 4:
        for run in logs:
            for n, line in enumerate(run.output_lines):
                if any(equal_at(claims.val_bpb_text, Decimal(m), decimals_of(m)) for m in _NUMBER.findall(line)):
                    return f"the number is printed in {run.path} (`{line.strip()[:80]}`)"
    seeds = [(seed, c.val_bpb_text) for seed, c in claims.seeds.items() if c.val_bpb_text is not None]
    by_seed = {r.seed: r for r in runs if r.seed is not None}
    if len(seeds) >= 2 and all(seed in by_seed and equal_at(text, _dec(by_seed[seed].final.val_bpb_text),
                                                           decimals_of(by_seed[seed].final.val_bpb_text))
                               for seed, text in seeds):
        return "every per-seed claim equals its seed's log: the headline mean is an arithmetic slip"
    # The mean over every log of each tag they all print (the final score's among them).
    per_tag: dict[str, list[Decimal]] = {}
    for run in runs:
        last = {m.tag: _dec(m.val_bpb_text) for m in run.metrics if m.kind != "step" and m.val_bpb_text}
        for tag, value in last.items():
            if value is not None:
                per_tag.setdefault(tag, []).append(value)
    finals = [v for v in (_dec(r.final.val_bpb_text) for r in runs) if v is not None]
    candidates = [_mean(v) for v in per_tag.values() if len(v) == len(runs)] + ([_mean(finals)] if finals else [])
    near = min(candidates, key=lambda v: abs(v - claim), default=None)
    if near is not None and abs(near - claim) <= SLIP_BPB:
        return (f"it is {abs(near - claim):.5f} from the logs' mean {near:.5f}: a rounding or arithmetic slip")
    return None


def _seed_figures(claim_text: str, runs: list[LogRun], claims: Claims | None) -> str | None:
    """Every per-seed val_bpb of submission.json (two or more) printed as a figure in a log of that seed, and the
    claim their mean: the description, else None."""
    texts = {seed: c.val_bpb_text for seed, c in (claims.seeds if claims else {}).items() if c.val_bpb_text}
    if len(texts) < 2:
        return None
    for seed, text in texts.items():
        logs = [r for r in runs if r.seed == seed]
        if not any(equal_at(text, Decimal(n), decimals_of(n)) and decimals_of(n) >= decimals_of(text) - 1
                   for r in logs for _line, _key, n in r.bpb_figures):
            return None
    mean = _mean([Decimal(t) for t in texts.values()])
    if not equal_at(claim_text, mean):
        return None
    return (f"mean of the {len(texts)} per-seed values of {claims.path or 'submission.json'}, each printed in its "
            "seed's log on a line the log grammar does not read as a final score")


def _evidence(runs: list[LogRun]) -> tuple[Evidence, ...]:
    return tuple(Evidence(r.path, r.final.line, f"{r.final.tag} val_bpb {r.final.val_bpb_text}")
                 for r in runs[:10] if r.final is not None)


def _check_seeds(claims: Claims, runs: list[LogRun], report: Report, headline_backed: bool) -> None:
    """Per-seed claims against the logs of those seeds: a per-seed value its seed's log does not show is a warning
    naming both values (and saying whether the headline val_bpb is backed by the logs)."""
    by_seed: dict[str, list[LogRun]] = {}
    for run in runs:
        if run.seed is not None:
            by_seed.setdefault(run.seed, []).append(run)
    for seed, claim in claims.seeds.items():
        if claim.val_bpb_text is None:
            continue
        candidates = by_seed.get(seed, [])
        if not candidates:
            if runs:
                report.add(Finding("SIGNIFICANCE", "warning",
                                   f"seed {seed} claims val_bpb {claim.val_bpb_text} but no log shows seed {seed}",
                                   file=claims.path, seed=seed, source="log"))
            continue
        if any(equal_at(claim.val_bpb_text, _dec(r.final.val_bpb_text), decimals_of(r.final.val_bpb_text))
               for r in candidates):
            continue
        elsewhere = [r for r in runs if equal_at(claim.val_bpb_text, _dec(r.final.val_bpb_text),
                                                 decimals_of(r.final.val_bpb_text))]
        hint = f"; it equals {elsewhere[0].path} (seed {elsewhere[0].seed})" if elsewhere else ""
        # The claim may be another score line of the same run (e.g. the sliding-window score printed before a
        # diverged TTT pass, 04-04_SP4096): the log supports it, only the choice of line is questionable.
        same_log = next((m for r in candidates for m in r.metrics
                         if m.val_bpb_text and equal_at(claim.val_bpb_text, _dec(m.val_bpb_text),
                                                        decimals_of(m.val_bpb_text))), None)
        if same_log is not None and not hint:
            hint = f"; it equals the {same_log.tag!r} line {same_log.line} of the same log"
        run = candidates[0]
        report.add(Finding("SIGNIFICANCE", "warning",
                           f"seed {seed} claims val_bpb {claim.val_bpb_text} but {run.path} reports "
                           f"{run.final.val_bpb_text} ({run.final.tag}){hint}"
                           + ("; the headline val_bpb is backed by the logs" if headline_backed and not hint else ""),
                           file=run.path, line=run.final.line, seed=seed, source="log",
                           data={"claim": claim.val_bpb_text, "log": run.final.val_bpb_text}))


def _check_bytes(claims: Claims, runs: list[LogRun], report: Report) -> None:
    logged = [r.total_size_bytes for r in runs if r.total_size_bytes is not None]
    if claims.bytes_total is None or not logged:
        return
    candidates = {"max": max(logged), "mean": round(sum(logged) / len(logged)), "min": min(logged)}
    if claims.bytes_total in logged or claims.bytes_total in candidates.values():
        return
    if any(abs(claims.bytes_total - v) <= 1 for v in candidates.values()):
        return
    report.add(Finding("SIGNIFICANCE", "warning",
                       f"claimed {claims.bytes_key or 'bytes_total'} {claims.bytes_total:,} equals no logged total "
                       f"(logs: {min(logged):,}-{max(logged):,})", file=claims.path, source="log",
                       data={"claim": claims.bytes_total, "logged": logged}))
