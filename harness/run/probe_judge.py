"""Judging the probe's traces: which pass was reported, what C1 changed, which scores came after an update.

Owns the pure judgements the Probe session turns into findings: the reported pass, the C1 comparison of two runs,
the contamination of a pass, the training/evaluation phases and the rule an update-before-score breaks.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.run.probe_trace import Pass, Trace, Update, one_forward_candidates

TOL = 1e-5  # CPU, one thread, same shapes: unchanged positions reproduce bit for bit; this only absorbs printing


def reported_pass(trace: Trace) -> Pass | None:
    """The scoring pass whose mean NLL is the printed final val_loss (the last such pass); failing that, a
    one-forward candidate that matches and covers the validation positions seen at all."""
    if trace.reported_loss is None:
        return None
    tol = 0.6 * 10 ** -trace.reported_decimals + 2e-5
    match = [p for p in trace.passes if p.first and abs(p.mean_nll - trace.reported_loss) <= tol]
    if match:
        return match[-1]
    candidates = one_forward_candidates(trace)
    seen = set().union(*(p.first for p in trace.passes + candidates))
    match = [p for p in candidates if len(p.first) >= 0.9 * len(seen) and abs(p.mean_nll - trace.reported_loss) <= tol]
    return match[0] if match else None  # the earliest observation that explains the score


def c1_changes(base: Trace, other: Trace, t: int) -> list[dict]:
    """Per pass: positions before t whose NLL changed, positions up to t whose log-partition changed."""
    out = []
    extra = base.one_forward is not None  # candidates are compared only when the base run needed them
    pairs = zip(base.passes + (base.one_forward or []), other.passes + (one_forward_candidates(other) if extra else []))
    for a, b in pairs:
        common = [p for p in a.first if p in b.first and p <= t]
        nll = [p for p in common if p < t and abs(a.first[p][0] - b.first[p][0]) > TOL]
        lse = [p for p in common if abs(a.first[p][1] - b.first[p][1]) > TOL]
        out.append({"pass": a.index, "compared": len(common), "nll_changed": len(nll), "lse_changed": len(lse),
                    "first_changed": min(nll + lse) if (nll or lse) else None})
    return out


def contamination(p: Pass, updates: list[Update]) -> list[tuple[int, Update]]:
    """Scored positions of pass `p` whose score came after an update that used them as targets."""
    first_update: dict[int, Update] = {}
    for u in updates:
        for pos in u.val_positions.tolist():
            first_update.setdefault(pos, u)
    out = []
    for pos, (_, _, tick) in p.first.items():
        u = first_update.get(pos)
        if u is not None and u.tick < tick:
            out.append((pos, u))
    return out


@dataclass
class Phases:
    train_start: int | None
    train_end: int | None
    eval_start: int | None


def phases_of(trace: Trace) -> Phases:
    first_pass = trace.passes[0].start_tick if trace.passes else None
    before = [u for u in trace.updates if first_pass is None or u.tick < first_pass]
    train = [u.tick for u in before if u.train_rows > 0]
    if not any(u.train_rows for u in trace.updates):  # never trained on the training stream: what it trained on
        train = [u.tick for u in before]  # before scoring was its training phase
    start, end = (min(train), max(train)) if train else (None, None)
    evals = [p.start_tick for p in trace.passes if end is None or p.start_tick > end]
    return Phases(start, end, min(evals) if evals else None)


def classify(p: Pass, u: Update, trace: Trace, phases: Phases) -> str:
    """Which rule an update-before-score in pass `p` breaks, from where the update sits on the clock."""
    if phases.train_end is not None and u.tick <= phases.train_end:
        return "TRAIN-ON-VAL"
    if u.free:  # tensors made at eval time and stepped on scored targets
        return "SLOT-SCORED-TARGETS"
    if p.start_tick <= u.tick <= p.end_tick:
        return "TTT-PREEVAL-VAL"  # trained on a chunk, then scored it, inside one pass
    adapting = [q for q in trace.passes if q.index < p.index and q.start_tick <= u.tick and
                any(q.start_tick <= v.tick <= q.end_tick and len(v.val_positions) for v in trace.updates)]
    if adapting:  # an earlier score-first pass adapted on these tokens; this pass scores them again
        adapts_inside = any(p.start_tick <= v.tick <= p.end_tick and len(v.val_positions) for v in trace.updates)
        return "TTT-MULTIPASS-SCORE" if adapts_inside else "RESCORE-S1"
    return "TTT-PREEVAL-VAL"


C3_MESSAGES = {
    "TRAIN-ON-VAL": "validation targets were trained on during the training phase, before they were scored",
    "TTT-PREEVAL-VAL": "validation tokens were used as training targets before their score was recorded",
    "SLOT-SCORED-TARGETS": "eval-time tensors were optimised on the very targets that were then scored (SLOT)",
    "TTT-MULTIPASS-SCORE": "the reported pass re-scores tokens an earlier adapting pass already trained on",
    "RESCORE-S1": "the reported score is a second pass over tokens the model already adapted on",
}
