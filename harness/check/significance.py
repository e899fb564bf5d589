"""SIGNIFICANCE: does the candidate beat a reference record by the policy's margin at the policy's p-value?

Two policies are always computed and stored side by side in report.facts["significance"]; the selected one decides
the finding (rulebook SIGNIFICANCE; challenge-facts §10):
  * "readme": beat the reference by 0.005 nats/token, one-sided p < 0.01 (README text);
  * "frontier": one-sided Welch, no margin, p < 0.25 against the previous row (cocohearts, PR #1902, 2026-04-28).
Tests run on val_bpb, the comparable metric across tokenizers; the 0.005-nat margin is converted into bpb through
the candidate's own val_bpb / val_loss ratio. When every run also has val_loss, the same test in nats is reported.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.check import stats
from harness.errors import UserError
from harness.verdict import Report
from rules.finding import Evidence, Finding

RULE = "SIGNIFICANCE"


@dataclass(frozen=True)
class Policy:
    name: str
    delta_nats: float  # margin in nats/token
    alpha: float  # one-sided significance level
    label: str


POLICIES = {
    "readme": Policy("readme", 0.005, 0.01, "README: beat the reference by 0.005 nats at p < 0.01"),
    "frontier": Policy("frontier", 0.0, 0.25, "PR #1902 frontier: one-sided Welch, no margin, p < 0.25"),
}


@dataclass(frozen=True)
class SeedValue:
    """One seed's final score; val_loss is None when only bpb is known."""

    seed: str | None
    val_bpb: float
    val_loss: float | None = None
    file: str | None = None
    line: int | None = None


@dataclass
class Sample:
    """The per-seed values of one side, where they came from, and what was assumed to get them."""

    values: list[SeedValue]
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def bpb(self) -> list[float]:
        return [v.val_bpb for v in self.values]

    @property
    def pairs(self) -> list[tuple[float, float]]:
        return [(v.val_loss, v.val_bpb) for v in self.values if v.val_loss is not None]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "n": len(self.values), "notes": list(self.notes),
                "values": [{"seed": v.seed, "val_loss": v.val_loss, "val_bpb": v.val_bpb} for v in self.values]}


# --- samples ------------------------------------------------------------------------------------------------------

def _rel(path: Any) -> str | None:
    """A log path as findings print it (relative, forward slashes); only the name when it is absolute."""
    if path is None:
        return None
    p = Path(path)
    return p.name if p.is_absolute() else p.as_posix()


def _dedupe(values: list[SeedValue]) -> tuple[list[SeedValue], int]:
    """Drop copies of the same run (train.log next to train_seed1337.log): identical exact scores."""
    kept: list[SeedValue] = []
    for v in values:
        same = [k for k in kept if (k.val_bpb, k.val_loss) == (v.val_bpb, v.val_loss)
                and (k.seed is None or v.seed is None or k.seed == v.seed)]
        if not same:
            kept.append(v)
    return kept, len(values) - len(kept)


def _from_logs(logs: list[Any]) -> list[SeedValue]:
    out = []
    for run in logs or []:
        final = getattr(run, "final", None)
        if final is None or final.val_bpb is None or not math.isfinite(final.val_bpb):
            continue
        seed = getattr(run, "seed", None)
        out.append(SeedValue(None if seed is None else str(seed), float(final.val_bpb),
                             None if final.val_loss is None else float(final.val_loss),
                             _rel(getattr(run, "path", None)), getattr(final, "line", None)))
    return out


def _from_claims(claims: Any) -> tuple[list[SeedValue], str | None]:
    """Per-seed claimed values; failing that the single headline claim; with a note saying which."""
    if claims is None:
        return [], None
    per_seed = [SeedValue(str(seed), float(c.val_bpb), None if c.val_loss is None else float(c.val_loss))
                for seed, c in (getattr(claims, "seeds", None) or {}).items() if c.val_bpb is not None]
    if per_seed:
        return per_seed, "per-seed values taken from submission.json: no log has a final metric line"
    if getattr(claims, "val_bpb", None) is not None:
        loss = getattr(claims, "val_loss", None)
        return ([SeedValue(None, float(claims.val_bpb), None if loss is None else float(loss))],
                "only the headline val_bpb of submission.json is known (no per-seed logs or claims)")
    return [], None


def sample_from(logs: list[Any], claims: Any, source: str) -> Sample:
    """Per-seed final values from the logs, else from the claims (said in the notes)."""
    values, notes, origin = _from_logs(logs), [], f"{source} logs"
    if not values:
        values, note = _from_claims(claims)
        origin = f"{source} submission.json"
        if note:
            notes.append(note)
    values, dropped = _dedupe(values)
    if dropped:
        notes.append(f"{dropped} duplicate log(s) with identical scores counted once")
    return Sample(values, origin, notes)


_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_NUMBER_LIST = re.compile(rf"^\s*{_NUMBER}(?:\s*:\s*{_NUMBER})?(?:\s*,\s*{_NUMBER}(?:\s*:\s*{_NUMBER})?)*\s*$")


def parse_numbers(text: str) -> Sample:
    """'1.12,1.13' (val_bpb) or '1.89:1.12,1.90:1.13' (val_loss:val_bpb) -> a reference sample."""
    if not _NUMBER_LIST.match(text):
        raise UserError(f"--against {text!r}: not a folder and not comma-separated val_bpb or val_loss:val_bpb values")
    values = []
    for item in text.split(","):
        parts = [float(p) for p in item.split(":")]
        if any(p <= 0 or not math.isfinite(p) for p in parts):
            raise UserError(f"--against: {item.strip()!r} is not a positive score")
        values.append(SeedValue(None, parts[-1], parts[0] if len(parts) == 2 else None))
    if len({v.val_loss is None for v in values}) > 1:
        raise UserError("--against: give either all val_bpb values or all val_loss:val_bpb pairs, not a mix")
    return Sample(values, "numbers given with --against")


def load_reference(against: str) -> Sample:
    """The reference sample: a previous record folder (its logs, else its submission.json) or a number list."""
    path = Path(against)
    if not path.exists():
        return parse_numbers(against)
    # Imported here: number references need none of the folder loaders.
    from harness.submission.folder import load_submission
    from harness.submission.logs import load_logs
    from harness.submission.manifest import load_claims

    sub = load_submission(path)
    scratch = Report(target=str(path))  # the reference's own problems are not the candidate's findings
    sample = sample_from(load_logs(sub), load_claims(sub, scratch), f"reference {path.resolve().name}")
    sample.notes.insert(0, f"reference folder: {path.as_posix()}")
    return sample


# --- tests --------------------------------------------------------------------------------------------------------

def _ratio(cand: Sample, typical: float | None) -> tuple[float | None, str]:
    if cand.pairs:
        return stats.bpb_per_nat(cand.pairs), "candidate's own val_bpb / val_loss"
    if typical is not None:
        return typical, "typical ratio of the tokenizer (given by the caller): the candidate's val_loss is unknown"
    return None, "unit conversion unknown: the candidate's val_loss is not known"


@dataclass(frozen=True)
class NatsTest:
    """The same margin test in nats/token (reported; bpb decides), when every run has val_loss."""

    method: str | None
    t: float | None
    df: float | None
    p: float | None
    passes: bool | None
    comparable: bool  # False when the two sides' bpb-per-nat ratios differ (other tokenizer or bytes)


@dataclass(frozen=True)
class PolicyResult:
    """One policy's test: in bpb (decides) with the margin converted through the candidate's ratio."""

    label: str
    alpha: float
    delta_nats: float
    unit: str
    delta_bpb: float | None  # None: the margin cannot be expressed in bpb, so nothing was tested
    method: str | None = None
    t: float | None = None
    df: float | None = None
    p: float | None = None
    passes: bool | None = None
    note: str | None = None
    seeds_needed: dict[str, Any] | None = None  # set when the test ran
    nats_test: NatsTest | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("seeds_needed", "nats_test")}
        if self.seeds_needed is not None:
            out["seeds_needed"] = self.seeds_needed
        if self.nats_test is not None:
            out["nats_test"] = asdict(self.nats_test)
        return out


@dataclass(frozen=True)
class SidePair:
    """One summary per side."""

    candidate: stats.Summary
    reference: stats.Summary

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate.to_dict(), "reference": self.reference.to_dict()}


@dataclass
class Significance:
    """What report.facts["significance"] holds: both samples, the unit conversion, summaries, both policies.

    Renderers read the fields; `to_dict()` is its shape in the JSON contract.
    """

    candidate: Sample
    reference: Sample
    bpb_per_nat: float | None  # the candidate's ratio, used to convert the margin
    reference_bpb_per_nat: float | None
    ratio_source: str
    summary_bpb: SidePair
    summary_nats: SidePair | None
    notes: list[str]
    policies: dict[str, PolicyResult]
    policy: str | None = None  # the selected policy (set by check_significance)

    @property
    def selected(self) -> PolicyResult | None:
        return self.policies.get(self.policy) if self.policy else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "candidate": self.candidate.to_dict(), "reference": self.reference.to_dict(),
            "bpb_per_nat": {"candidate": self.bpb_per_nat, "reference": self.reference_bpb_per_nat,
                            "source": self.ratio_source},
            "summary_bpb": self.summary_bpb.to_dict(), "notes": list(self.notes),
            "policies": {name: res.to_dict() for name, res in self.policies.items()},
        }
        if self.summary_nats is not None:
            out["summary_nats"] = self.summary_nats.to_dict()
        if self.policy is not None:
            out["policy"] = self.policy
        return out


def _policy_result(policy: Policy, cand: Sample, ref: Sample, ratio: float | None, nats_known: bool,
                   comparable_nats: bool) -> PolicyResult:
    """Both tests for one policy: in bpb (decides) and, when every run has val_loss, in nats (reported)."""
    delta_bpb = 0.0 if policy.delta_nats == 0 else (None if ratio is None else stats.nats_to_bpb(policy.delta_nats,
                                                                                               ratio))
    head = {"label": policy.label, "alpha": policy.alpha, "delta_nats": policy.delta_nats, "unit": "bpb",
            "delta_bpb": delta_bpb}
    if delta_bpb is None:
        return PolicyResult(**head, note="unit conversion unknown: the 0.005-nat margin cannot be expressed in bpb")
    test = stats.margin_test(cand.bpb, ref.bpb, delta_bpb)
    nats_test = None
    if nats_known:
        nats = stats.margin_test([v.val_loss for v in cand.values], [v.val_loss for v in ref.values],
                                 policy.delta_nats)
        nats_test = NatsTest(nats.method, nats.t, nats.df, nats.p, nats.passes(policy.alpha), comparable_nats)
    return PolicyResult(**head, method=test.method, t=test.t, df=test.df, p=test.p, passes=test.passes(policy.alpha),
                        note=test.note, seeds_needed=stats.seeds_needed(test, policy.alpha), nats_test=nats_test)


def compare(cand: Sample, ref: Sample, typical_bpb_per_nat: float | None = None) -> Significance:
    """Both samples tested under every policy, in bpb and (when known) in nats."""
    ratio, ratio_source = _ratio(cand, typical_bpb_per_nat)
    ref_ratio = stats.bpb_per_nat(ref.pairs) if ref.pairs else None
    comparable = ratio is None or ref_ratio is None or not stats.ratios_differ(ratio, ref_ratio)
    nats_known = len(cand.pairs) == len(cand.values) and len(ref.pairs) == len(ref.values)  # every run has val_loss
    summary_nats = None
    if nats_known:
        summary_nats = SidePair(stats.summarize([p[0] for p in cand.pairs]), stats.summarize([p[0] for p in ref.pairs]))
    notes = []
    if not comparable:
        notes.append(f"bpb per nat differs (candidate {ratio:.4f}, reference {ref_ratio:.4f}): different "
                     "tokenizer or validation bytes, so nats are not comparable; the bpb test decides")
    return Significance(
        candidate=cand, reference=ref, bpb_per_nat=ratio, reference_bpb_per_nat=ref_ratio, ratio_source=ratio_source,
        summary_bpb=SidePair(stats.summarize(cand.bpb), stats.summarize(ref.bpb)), summary_nats=summary_nats,
        notes=notes,
        policies={name: _policy_result(p, cand, ref, ratio, nats_known, comparable) for name, p in POLICIES.items()})


# --- the check ----------------------------------------------------------------------------------------------------

def _fmt_sd(sd: float | None) -> str:
    return "sd unknown" if sd is None else f"sd {sd:.5f}"


def _failure_message(policy: Policy, sig: Significance) -> str:
    res, ratio = sig.policies[policy.name], sig.bpb_per_nat
    c, r = sig.summary_bpb.candidate, sig.summary_bpb.reference
    margin = "any margin" if policy.delta_nats == 0 else (
        f"{policy.delta_nats:g} nats ({res.delta_bpb:.5f} bpb at {ratio:.4f} bpb/nat)")
    df = "" if res.df is None else f", df = {res.df:.2f}"
    return (f"does not beat the reference by {margin} at p < {policy.alpha:g}: candidate mean {c.mean:.5f} bpb "
            f"(n = {c.n}, {_fmt_sd(c.sd)}) vs reference {r.mean:.5f} bpb (n = {r.n}, {_fmt_sd(r.sd)}); "
            f"{res.method} t = {res.t:.3f}{df}, one-sided p = {res.p:.4g} [{policy.label}]")


def check_significance(claims: Any, logs: list[Any], against: str | None, policy: str, report: Report, *,
                       typical_bpb_per_nat: float | None = None) -> None:
    """SIGNIFICANCE against `against` (a record folder or per-seed numbers) under `policy` ("readme"/"frontier").

    Stores a Significance (both policies) in report.facts["significance"]; an error finding when the selected
    policy fails; "not
    checked" when there is no reference, one candidate seed, or no unit conversion for the margin.
    """
    if policy not in POLICIES:
        raise UserError(f"unknown significance policy {policy!r} (expected one of {', '.join(POLICIES)})")
    if against is None:
        report.skip(RULE, "no reference given (--against)")
        return
    ref = load_reference(against)
    cand = sample_from(logs, claims, "candidate")
    if not ref.values or not cand.values:
        side = "reference" if not ref.values else "candidate"
        report.skip(RULE, f"the {side} has no final val_bpb in its logs or submission.json")
        return
    sig = compare(cand, ref, typical_bpb_per_nat)
    sig.policy = policy
    report.facts["significance"] = sig
    chosen = POLICIES[policy]
    result = sig.policies[policy]
    if result.passes is None:
        report.skip(RULE, f"{policy} policy: {result.note}")
        return
    report.mark_checked(RULE)
    if result.passes:
        return
    evidence = tuple(Evidence(v.file, v.line, f"seed {v.seed or '?'}: val_bpb {v.val_bpb}"
                              + ("" if v.val_loss is None else f", val_loss {v.val_loss}"))
                     for v in cand.values if v.file is not None)
    first = evidence[0] if evidence else Evidence(None, None, "")
    report.add(Finding(RULE, "error", _failure_message(chosen, sig), file=first.file, line=first.line,
                       evidence=evidence, data={"policy": policy, "t": result.t, "df": result.df, "p": result.p},
                       source="log"))
