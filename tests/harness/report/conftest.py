"""Fixtures for the statistics, significance and report-renderer tests: per-seed numbers restated from real
record logs, tiny record folders in the baseline log dialect, stand-in log runs, and a Report with every kind of
content."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.verdict import Report
from rules.finding import Evidence, Finding

# Per-seed (seed, val_loss, val_bpb), restated from the final exact lines of the record logs.
PR473_LEGAL_TTT = [("1337", 1.89181098, 1.12043999), ("42", 1.89385339, 1.12164962),
                   ("2025", 1.89458859, 1.12208505)]  # PR #473, legal_ttt_exact
PR374_TIGHT_SWA = [("1337", 1.89886818, 1.12461967)]  # PR #374, one seed, final_int6_sliding_window_exact
PR1019_VALCALIB = [("314", 1.88276292, 1.11508120), ("42", 1.88156874, 1.11437394),
                   ("999", 1.88220393, 1.11475014)]  # 2026-03-25_ValCalib_GPTQ_XSA_BigramHash3072
PR549_LEAKYRELU = [("1337", 1.88976776, 1.11922988), ("2025", 1.88919190, 1.11888882),
                   ("42", 1.89110239, 1.12002032)]  # 2026-03-23_LeakyReLU_LegalTTT_ParallelMuon, legal_ttt_exact


@dataclass(frozen=True)
class StandInMetric:
    """The part of logparse.MetricLine that significance reads."""

    val_loss: float | None
    val_bpb: float | None
    line: int | None = 1


@dataclass(frozen=True)
class StandInRun:
    """The part of logparse.LogRun that significance reads."""

    path: str
    seed: str | None
    final: StandInMetric | None


@dataclass(frozen=True)
class StandInSeedClaim:
    val_bpb: float | None
    val_loss: float | None = None
    bytes_total: int | None = None


@dataclass(frozen=True)
class StandInClaims:
    """The part of submission_json.Claims that significance reads."""

    val_bpb: float | None = None
    val_loss: float | None = None
    seeds: dict | None = None


def _runs_from(rows: list[tuple[str, float | None, float]], line: int = 79) -> list[StandInRun]:
    return [StandInRun(f"train_seed{s}.log", s, StandInMetric(loss, bpb, line)) for s, loss, bpb in rows]


def _write_record(folder: Path, rows: list[tuple[str, float, float]]) -> Path:
    """A tiny record folder: one baseline-dialect log per seed and a submission.json with the mean."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, loss, bpb in rows:
        (folder / f"train_seed{seed}.log").write_text(
            f"seed:{seed}\nstep:100/100 val_loss:{loss + 0.01:.4f} val_bpb:{bpb + 0.01:.4f} train_time:1000ms\n"
            f"final_int8_zlib_roundtrip val_loss:{loss:.4f} val_bpb:{bpb:.4f} eval_time:1000ms\n"
            f"final_int8_zlib_roundtrip_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}\n", encoding="utf-8")
    mean_bpb = sum(r[2] for r in rows) / len(rows)
    (folder / "submission.json").write_text(f'{{"val_bpb": {mean_bpb:.8f}, "bytes_total": 15000000}}\n',
                                            encoding="utf-8")
    (folder / "train_gpt.py").write_text("print('hello')\n", encoding="utf-8")
    (folder / "README.md").write_text("# record\n", encoding="utf-8")
    return folder


@pytest.fixture
def records() -> dict[str, list[tuple[str, float, float]]]:
    """Per-seed (seed, val_loss, val_bpb) of the real records the acceptance tests use, by PR number."""
    return {"473": PR473_LEGAL_TTT, "374": PR374_TIGHT_SWA, "1019": PR1019_VALCALIB, "549": PR549_LEAKYRELU}


@pytest.fixture
def runs_from():
    """Factory: stand-in LogRuns, one per (seed, val_loss, val_bpb) row."""
    return _runs_from


@pytest.fixture
def claims_from():
    """Factory: stand-in Claims with per-seed values from (seed, val_loss, val_bpb) rows."""
    return lambda rows: StandInClaims(seeds={s: StandInSeedClaim(bpb, loss) for s, loss, bpb in rows})


@pytest.fixture
def write_record(tmp_path):
    """Factory: a tiny record folder under tmp_path with baseline-dialect logs for the given rows."""
    return lambda name, rows: _write_record(tmp_path / name, rows)


@pytest.fixture
def rich_report() -> Report:
    """A failing report with findings of every severity, evidence, a fileless finding, facts and skips."""
    report = Report(target="records/track_10min_16mb/2026-01-01_Example")
    report.add(Finding("ARTIFACT-CAP-16MB", "error", "artifact is 16,000,123 bytes | over the cap", file="train.log",
                       line=12, evidence=(Evidence("train.log", 12, "Total submission size: 16000123 bytes"),
                                          Evidence(None, None, "cap is decimal 16,000,000")), seed="42",
                       data={"bytes": 16_000_123}, source="log"))
    report.add(Finding("TTT-PREEVAL-VAL", "error", "adapts on validation tokens before scoring them",
                       file="train_gpt.py", line=301, evidence=(Evidence("train_gpt.py", 288, "val_tokens loaded"),)))
    report.add(Finding("CODE-COUNTING", "warning", "code outside train_gpt.py runs", file="lib/helper.py"))
    report.add(Finding("HARDWARE", "info", "GPU names not logged"))
    report.mark_checked("ARTIFACT-CAP-16MB", "TTT-PREEVAL-VAL", "CODE-COUNTING", "HARDWARE")
    report.skip("SIGNIFICANCE", "no reference given (--against)")
    report.skip("EVAL-TIME-600", "no eval time | in logs")
    report.could_not_check.append("one log could not be decoded")
    report.facts["per_seed"] = [{"seed": "42", "val_bpb": 1.2, "bytes_total": 16_000_123},
                                {"seed": "7", "val_bpb": 1.21, "bytes_total": 15_999_000}]
    report.facts["sizes"] = {"code_bytes": 47_686, "model_bytes": 15_952_437}
    return report
