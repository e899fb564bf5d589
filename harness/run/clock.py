"""The harness clock of `reproduce`: per-phase timing from the arrival time of log lines, and the caps it enforces.

Training starts at the first step line and ends at ``stopping_early`` / the last step / the first serialization
line; evaluation starts after the last serialization line (or at an explicit eval timer line).
"""

from __future__ import annotations

import re
from typing import Any

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
        self.step: tuple[int, int] | None = None
        self.script_train_ms: float | None = None
        self.curve: list[tuple[int, float]] = []  # (step, train_loss)
        self.cap_s: float | None = None  # the limit (seconds from spawn) that fired

    def feed(self, t: float, line: str) -> None:
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
