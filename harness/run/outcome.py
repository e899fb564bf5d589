"""What `reproduce` is asked (ReproduceOptions) and what it hands back (ReproduceResult with its ReproduceFacts).

The renderers in harness/report/ read these types; ``ReproduceFacts.to_facts`` is how the same figures appear in the
Report's JSON (and so in summary.json). Also the results folder's file names and its atomic JSON writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.challenge import EVAL_BUDGET_S, TRAIN_BUDGET_S
from harness.verdict import Report

CONFIG_NAME, RESULT_NAME, LOG_NAME = "config.json", "result.json", "train.log"

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


@dataclass(frozen=True)
class SeedFigures:
    """One row of the per-seed table: the score and the harness-measured phase times of one seed."""

    seed: int
    status: str
    val_loss: float | None
    val_bpb: float | None
    setup_s: float | None
    train_s: float | None
    script_train_s: float | None
    eval_s: float | None
    total_s: float | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SeedFigures:
        """The figures of a seed's result.json row."""
        final, timing = row["final"] or {}, row["timing"]
        script_ms = timing["script_train_ms"]
        return cls(seed=row["seed"], status=row["status"], val_loss=final.get("val_loss"),
                   val_bpb=final.get("val_bpb"), setup_s=timing["setup_s"], train_s=timing["train_s"],
                   script_train_s=None if script_ms is None else script_ms / 1000, eval_s=timing["eval_s"],
                   total_s=timing["total_s"])


@dataclass(frozen=True)
class BpbSummary:
    """Mean and sample sd of the re-run val_bpb over the seeds that produced one (sd None for a single seed)."""

    n: int
    mean_bpb: float
    sd_bpb: float | None


@dataclass(frozen=True)
class Equivalence:
    """The re-run mean against the claimed val_bpb, and per-seed deltas where the claims list the same seeds."""

    claimed_val_bpb: Any
    rerun_mean: float
    delta: float
    tolerance: float
    test: str
    equivalent: bool
    per_seed_delta: dict[str, float]


@dataclass(frozen=True)
class ReproduceFacts:
    """The figures `reproduce` adds to its Report, typed for the renderers."""

    submission_unchanged: bool
    seeds: list[SeedFigures]
    isolation: dict[str, Any] | None
    summary: BpbSummary | None = None
    equivalence: Equivalence | None = None
    # One line that says why the verdict is what it is ("3 of 3 seeds reproduced the claim within 0.002 bpb",
    # "seed 7 failed: ModuleNotFoundError: ..."); the reports lead with it.
    reason: str = ""
    # The mean val_bpb of the --against reference, where one was given (drawn beside the claim in the HTML plot).
    reference_val_bpb: float | None = None

    def to_facts(self) -> dict[str, Any]:
        """The Report facts these figures are published as (the keys of summary.json's "facts")."""
        out: dict[str, Any] = {"submission_unchanged": self.submission_unchanged,
                               "reproduce_seeds": [asdict(s) for s in self.seeds]}
        if self.summary is not None:
            out["reproduce_summary"] = asdict(self.summary)
        out["isolation"] = self.isolation
        if self.equivalence is not None:
            out["equivalence"] = asdict(self.equivalence)
        out["reproduce_reason"] = self.reason
        if self.reference_val_bpb is not None:
            out["reference_val_bpb"] = self.reference_val_bpb
        return out


@dataclass
class ReproduceResult:
    """A finished `reproduce`: its Report, the per-seed result.json rows, the options and the results folder."""

    report: Report
    options: ReproduceOptions
    results_dir: Path
    facts: ReproduceFacts
    seeds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader (or a resumed run) never sees half a file."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)
