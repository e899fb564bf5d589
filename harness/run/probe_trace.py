"""Reading one variant's trace: the scoring passes, the updates and the data opens the tracer recorded.

Owns Pass/Update/Trace, read_trace (the tracer's .npz and the variant's log, located in the token streams) and the
one-forward candidate passes tried when no plain pass explains the printed score.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.run.probe_data import StreamIndex


@dataclass
class Pass:
    """One left-to-right scoring pass: the first no-grad observation of each validation position. A pass with
    `one_forward` set is instead one chosen observation, with or without grad, of each position from `start_tick` on
    (see _one_forward_passes): the score of an evaluator that scores and trains from the same forward (PR #77)."""

    index: int
    start_tick: int
    end_tick: int
    first: dict[int, tuple[float, float, int]] = field(default_factory=dict)  # pos -> (nll, lse, tick)
    one_forward: bool = False
    earlier: dict[int, int] = field(default_factory=dict)  # one-forward: pos -> tick of the observation before

    @property
    def mean_nll(self) -> float:
        return float(np.mean([v[0] for v in self.first.values()])) if self.first else float("nan")


@dataclass
class Update:
    tick: int
    val_positions: np.ndarray  # validation targets whose gradients this update used
    train_rows: int  # targets located in the training stream
    free: bool  # the tensors stepped were created at eval time, not module parameters (the SLOT shape)


@dataclass
class Trace:
    exit_code: int | None
    log_lines: list[str]
    passes: list[Pass]
    updates: list[Update]
    opens: list[tuple[int, str]]  # (tick, file name)
    calib_val_rows: int  # calibration-forward inputs located in the validation stream
    reported_loss: float | None
    reported_decimals: int
    notes: list[str]
    compat: list[str] = field(default_factory=list)  # CPU compatibility stand-ins the script reached
    observed: list = field(default_factory=list)  # (tick, grad, positions, nll, lse) of every call on validation
    one_forward: list[Pass] | None = None  # built by one_forward_candidates only when no plain pass matches


def _forward_followed_by_loss(events: list) -> list[bool]:
    """For each `fwd` event: did a cross-entropy call come before the next forward or update?"""
    out: list[bool] = []
    for i, (kind, _, _) in enumerate(events):
        if kind != "fwd":
            continue
        nxt = next((k for k, _, _ in events[i + 1:] if k in ("ce", "fwd", "update")), None)
        out.append(nxt == "ce")
    return out


_LOSS = re.compile(r"val_loss[:=\s]+([0-9]+\.([0-9]+))")


def _reported(lines: list[str]) -> tuple[float | None, int]:
    """The last printed val_loss (the final metric, by the challenge's log dialect) and its decimals."""
    for line in reversed(lines):
        m = _LOSS.search(line)
        if m:
            return float(m.group(1)), len(m.group(2))
    return None, 0


def read_trace(npz: Path, log_path: Path, exit_code: int | None, val_index: StreamIndex,
               train_index: StreamIndex) -> Trace:
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines() if log_path.exists() else []
    if not npz.exists():
        return Trace(exit_code, lines, [], [], [], 0, *_reported(lines), ["no trace written"])
    with np.load(npz, allow_pickle=False) as z:
        targets, nll, lse = z["ce_targets"], z["ce_nll"], z["ce_lse"]
        fwd_ids, fwd_sizes = z["fwd_ids"], z["fwd_sizes"]
        events = json.loads(str(z["events"]))
    passes: list[Pass] = []
    updates: list[Update] = []
    opens: list[tuple[int, str]] = []
    notes: list[str] = []
    compat: list[str] = []
    pending_val: list[np.ndarray] = []
    pending_train = 0
    offset = fwd_offset = 0
    calib_val = 0
    gap = max(256, len(val_index.stream) // 8)  # a drop this far back in position starts a new pass
    running_min = -1
    in_pass = np.zeros(len(val_index.stream) + 1, bool)  # positions the current pass has scored
    frontier = -1  # the furthest position the current pass has scored
    observed: list[tuple[int, bool, np.ndarray, np.ndarray, np.ndarray]] = []  # every call on validation targets
    for kind, tick, payload in events:
        if kind == "ce":
            n = payload["n"]
            y, e_nll, e_lse = targets[offset:offset + n], nll[offset:offset + n], lse[offset:offset + n]
            offset += n
            vpos = val_index.locate(y)
            if (vpos > 0).any():
                keep = vpos > 0
                observed.append((tick, bool(payload["grad"]), vpos[keep], e_nll[keep], e_lse[keep]))
            if payload["grad"]:
                pending_val.append(vpos[vpos > 0])
                pending_train += int((train_index.locate(y) >= 0).sum())
                continue
            located = vpos > 0
            if not located.any():
                continue
            low = int(vpos[located].min())
            # A new pass: the positions jump far back, or most of this call re-scores positions the current pass
            # scored far behind its frontier (an evaluation done in one call per pass never jumps back inside
            # itself; overlapping sliding windows re-score only positions near the frontier).
            where = vpos[located]
            if not passes or low < running_min - gap or (in_pass[where] & (where < frontier - gap)).mean() > 0.5:
                passes.append(Pass(len(passes), tick, tick))
                running_min, frontier = low, -1
                in_pass[:] = False
            in_pass[where] = True
            frontier = max(frontier, int(where.max()))
            running_min = max(running_min, low)
            cur = passes[-1]
            cur.end_tick = tick
            for p, a, b in zip(vpos[located].tolist(), e_nll[located].tolist(), e_lse[located].tolist()):
                cur.first.setdefault(p, (a, b, tick))
        elif kind == "update":
            if payload["kind"] in ("backward", "grad"):
                positions = np.unique(np.concatenate(pending_val)) if pending_val else np.zeros(0, np.int64)
                updates.append(Update(tick, positions, pending_train, bool(payload.get("free", False))))
                pending_val, pending_train = [], 0
            elif payload["kind"] == "step" and updates and payload.get("free"):
                updates[-1].free = True
        elif kind == "open":
            opens.append((tick, Path(payload["path"]).name))
        elif kind == "note":
            notes.append(payload["text"])
        elif kind == "compat":
            compat.append(payload["name"])
    for size, scored in zip(fwd_sizes.tolist(), _forward_followed_by_loss(events)):
        ids = fwd_ids[fwd_offset:fwd_offset + size]
        fwd_offset += size
        if not scored:  # a hooked forward whose output no loss consumed: statistics collection
            calib_val += int((val_index.locate(ids) >= 0).sum())
    loss, decimals = _reported(lines)
    return Trace(exit_code, lines, passes, updates, opens, calib_val, loss, decimals, notes, compat, observed)


ONE_FORWARD_UPDATES = (1, 2, 3)  # the forward before a position's j-th update may be its score
ONE_FORWARD_ORDINALS = (1, 2, 3, 0)  # else its k-th observation; 0: the last one
ONE_FORWARD_SWEEPS = (2, 3, 4)  # else the first observation of the last of E equal sweeps (epochs over the stream)


def _one_forward_passes(observed: list, passes: list[Pass], updates: list[Update]) -> list[Pass]:
    """Candidate passes for evaluators that score from a forward that also trains (PR #77's LoRA TTT), built only
    when no plain pass matches the printed score. From the first grad-enabled validation call after each plain pass
    (and before any), three families, in this order:

    * update-anchored, j = 1, 2, 3: for each position, its last observation before the j-th update that used it (the
      forward whose loss drove that update), or its j-th observation when fewer updates used it (a last chunk that
      is never trained). j = 1 is a one-forward score-first evaluator; j > 1 scores after training on the position
      (an epoch before, or a look-ahead forward), however often it was re-read as context in between;
    * ordinal, k = 1, 2, 3, last: the k-th observation of every position;
    * sweeps, E = 2, 3, 4: the first observation of the last of E equal sweeps, when every sweep re-reads each
      position the same number of times as context (an epoch loop around windowed chunks: PR #568).

    Positions the phase never observes keep their score from the latest plain pass before it. Indexed after the
    plain passes, so base and perturbed runs pair them the same way."""
    ends = sorted({-1} | {p.end_tick for p in passes})
    grad_ticks = [t for t, grad, *_ in observed if grad]
    starts = sorted({next(t for t in grad_ticks if t > end) for end in ends if grad_ticks and grad_ticks[-1] > end})
    out: list[Pass] = []
    for start in starts:
        calls = [o for o in observed if o[0] >= start]
        pos = np.concatenate([o[2] for o in calls])
        ticks = np.concatenate([np.full(len(o[2]), o[0]) for o in calls])
        nll, lse = np.concatenate([o[3] for o in calls]), np.concatenate([o[4] for o in calls])
        order = np.argsort(pos, kind="stable")  # per position, its observations in call order
        sorted_pos, sorted_ticks = pos[order], ticks[order]
        group_start = np.r_[0, np.nonzero(np.diff(sorted_pos))[0] + 1]
        counts = np.diff(np.r_[group_start, len(sorted_pos)])
        group_pos = sorted_pos[group_start]
        later = [u for u in updates if u.tick >= start and len(u.val_positions)]
        upd_pos = np.concatenate([u.val_positions for u in later]) if later else np.zeros(0, np.int64)
        upd_tick = np.concatenate([np.full(len(u.val_positions), u.tick) for u in later]) if later else upd_pos
        u_order = np.lexsort((upd_tick, upd_pos))
        u_pos, u_tick = upd_pos[u_order], upd_tick[u_order]
        u_start = np.r_[0, np.nonzero(np.diff(u_pos))[0] + 1] if len(u_pos) else np.zeros(0, np.int64)
        u_rank = np.arange(len(u_pos)) - np.repeat(u_start, np.diff(np.r_[u_start, len(u_pos)]))
        ranks = []
        never = np.iinfo(np.int64).max
        size = int(max(pos.max(), upd_pos.max() if len(upd_pos) else 0)) + 1
        for j in ONE_FORWARD_UPDATES:
            threshold = np.full(size, never)
            threshold[u_pos[u_rank == j - 1]] = u_tick[u_rank == j - 1]
            before = np.add.reduceat((sorted_ticks < threshold[sorted_pos]).astype(np.int64), group_start)
            anchored = threshold[group_pos] < never
            ranks.append(np.where(anchored & (before > 0), before - 1, np.minimum(j, counts) - 1))
        ranks += [counts - 1 if k == 0 else np.minimum(k, counts) - 1 for k in ONE_FORWARD_ORDINALS]
        ranks += [(e - 1) * counts // e for e in ONE_FORWARD_SWEEPS]
        skipped: dict[int, tuple[float, float, int]] = {}  # positions this phase never observes (short documents
        for earlier_pass in sorted((q for q in passes if q.end_tick < start), key=lambda q: -q.end_tick):
            for q_pos, value in earlier_pass.first.items():  # scored plainly just before): their latest plain score
                skipped.setdefault(q_pos, value)
        for rank in ranks:
            pick = order[group_start + rank]
            cand = Pass(len(passes) + len(out), start, int(ticks.max()), one_forward=True)
            cand.first = {**skipped, **{int(q): (float(a), float(b), int(t))
                                        for q, a, b, t in zip(pos[pick], nll[pick], lse[pick], ticks[pick])}}
            has_before = rank > 0
            cand.earlier = dict(zip(pos[pick][has_before].tolist(),
                                    ticks[order[group_start + rank - 1]][has_before].tolist()))
            out.append(cand)
    return out


def one_forward_candidates(trace: Trace) -> list[Pass]:
    """The trace's one-forward candidate passes, built on first use (they cost a pass over every observation)."""
    if trace.one_forward is None:
        trace.one_forward = _one_forward_passes(trace.observed, trace.passes, trace.updates)
    return trace.one_forward
