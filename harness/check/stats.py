"""Pure statistics for "the candidate beats the reference by a margin": summaries, t-tests, seeds needed, units.

No I/O and no knowledge of logs: callers pass lists of per-seed floats (lower is better, as for val_bpb and
val_loss). Every function states its preconditions; violating one raises ValueError, which the caller turns into a
finding or a "not checked" reason.

The test (challenge-facts §10, feature-targets §5): H0 is mu_cand >= mu_ref - delta, H1 is mu_cand < mu_ref - delta.
Shifting the candidate sample by +delta turns it into a plain one-sided two-sample test with alternative 'less'.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


def _sp():
    """scipy.stats, imported on first use: it costs ~0.75 s, more than a whole `check` without --against."""
    from scipy import stats

    return stats


POWER_TARGET = 0.80  # conventional power for the "seeds needed" advisor
MAX_SEEDS = 1000  # the advisor stops searching here: beyond it the answer is "not attainable in practice"
RATIO_MISMATCH = 0.005  # relative gap between two bpb-per-nat ratios that signals different tokenizers/val sets


# --- summaries -----------------------------------------------------------------------------------------------------

def mean(values: list[float]) -> float:
    """Arithmetic mean. Precondition: at least one value."""
    if not values:
        raise ValueError("mean of an empty sample")
    return math.fsum(values) / len(values)


def std(values: list[float]) -> float:
    """Sample standard deviation (n - 1 denominator). Precondition: at least two values."""
    if len(values) < 2:
        raise ValueError("standard deviation needs at least two values")
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


@dataclass(frozen=True)
class Summary:
    """n, mean and sample sd of one sample; sd is None with a single value (seed noise unknown)."""

    n: int
    mean: float
    sd: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(values: list[float]) -> Summary:
    """Summary of a sample. Precondition: at least one value."""
    return Summary(len(values), mean(values), std(values) if len(values) >= 2 else None)


# --- the margin test -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MarginTest:
    """Result of testing "candidate mean < reference mean - delta".

    method: "welch" (both samples have >= 2 values), "one-sample" (the reference has one value: it is treated as
    exact, so its own seed noise is ignored), or "untestable" (the candidate has one value: no test is possible,
    which is not a pass). t is negative when the candidate beats the margin.
    """

    method: str
    candidate: Summary
    reference: Summary
    delta: float
    t: float | None
    df: float | None
    p: float | None
    note: str

    def passes(self, alpha: float) -> bool | None:
        """True/False against the significance level; None when no test was possible."""
        return None if self.p is None else self.p < alpha

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["candidate"], out["reference"] = self.candidate.to_dict(), self.reference.to_dict()
        return out


def margin_test(candidate: list[float], reference: list[float], delta: float) -> MarginTest:
    """One-sided test of H0: mu_cand >= mu_ref - delta (lower is better).

    Preconditions: both samples non-empty, finite values, delta >= 0. With n_ref >= 2 and n_cand >= 2 this is
    Welch's t-test (scipy.stats.ttest_ind, equal_var=False, alternative='less') on the candidate shifted by +delta.
    With n_ref = 1 it is a one-sample t-test of the candidate against ref - delta. With n_cand = 1 nothing can be
    tested. Zero variance in every sample gives an exact answer (p = 0 or 1) instead of scipy's nan.
    """
    if not candidate or not reference:
        raise ValueError("both samples need at least one value")
    if not all(math.isfinite(v) for v in [*candidate, *reference, delta]) or delta < 0:
        raise ValueError("values must be finite and delta >= 0")
    cand, ref = summarize(candidate), summarize(reference)
    if cand.n < 2:
        return MarginTest("untestable", cand, ref, delta, None, None, None,
                          "cannot test with one seed: the candidate's seed noise is unknown")
    shifted = [v + delta for v in candidate]
    if ref.n < 2:
        method = "one-sample"
        note = "the reference has one seed: it is treated as exact, so its own seed noise is ignored"
        noise = cand.sd or 0.0
    else:
        method, note = "welch", ""
        noise = (cand.sd or 0.0) + (ref.sd or 0.0)
    if noise == 0.0:  # every value identical within each sample: the comparison is exact, not statistical
        beats = cand.mean < ref.mean - delta
        return MarginTest(method, cand, ref, delta, -math.inf if beats else math.inf, None, 0.0 if beats else 1.0,
                          "; ".join(filter(None, [note, "zero variance, so the comparison is exact"])))
    if method == "one-sample":
        res = _sp().ttest_1samp(shifted, ref.mean, alternative="less")
    else:
        res = _sp().ttest_ind(shifted, reference, equal_var=False, alternative="less")
    return MarginTest(method, cand, ref, delta, float(res.statistic), float(res.df), float(res.pvalue), note)


# --- seeds needed --------------------------------------------------------------------------------------------------

def _welch_df(n: int, sd_c: float, sd_r: float) -> float:
    """Welch-Satterthwaite df for two samples of n values each (n >= 2)."""
    a, b = sd_c ** 2, sd_r ** 2
    if a + b == 0:
        return float(2 * n - 2)
    return (n - 1) * (a + b) ** 2 / (a ** 2 + b ** 2)


def _effect_and_sds(test: MarginTest) -> tuple[float, float, float] | None:
    """(effect beyond the margin, sd_cand, sd_ref) with an unknown sd borrowed from the other sample, or None."""
    sd_c, sd_r = test.candidate.sd, test.reference.sd
    if sd_c is None and sd_r is None:
        return None
    sd_c = sd_r if sd_c is None else sd_c
    sd_r = sd_c if sd_r is None else sd_r
    return test.reference.mean - test.delta - test.candidate.mean, sd_c, sd_r


def seeds_needed(test: MarginTest, alpha: float, power: float = POWER_TARGET) -> dict[str, Any]:
    """Smallest n seeds per side (same n for candidate and reference in a new run) for the observed effect.

    Method: take the observed effect beyond the margin, e = (mean_ref - delta) - mean_cand, and the observed sds
    (an sd that one seed cannot give is borrowed from the other sample, i.e. both are assumed equally noisy).
    For n = 2 .. MAX_SEEDS, a one-sided Welch test of n vs n seeds has df from Welch-Satterthwaite and standard error
    se = sqrt((sd_c^2 + sd_r^2) / n). Two answers:
      * "power": the smallest n with power >= `power`, i.e. 1 - nct.cdf(t_crit(alpha, df), df, e / se) >= power
        (noncentral t distribution);
      * "observed": the smallest n at which the observed effect itself would give p < alpha, i.e. e / se >
        t_crit(alpha, df) (the optimistic bound: it assumes the next means land exactly where these did).
    Either is None when the effect is not positive (no number of seeds helps) or exceeds MAX_SEEDS.
    """
    basis = _effect_and_sds(test)
    out: dict[str, Any] = {"power": None, "observed": None, "power_target": power, "alpha": alpha,
                           "method": "noncentral t power of a one-sided Welch test, n seeds per side"}
    if basis is None:
        out["note"] = "no sample has two seeds: seed noise unknown"
        return out
    effect, sd_c, sd_r = basis
    out["effect_beyond_margin"] = effect
    if effect <= 0:
        out["note"] = "the observed mean does not beat the reference by the margin: no number of seeds helps"
        return out
    if sd_c == 0 and sd_r == 0:
        out["power"] = out["observed"] = 2
        return out
    for n in range(2, MAX_SEEDS + 1):
        df = _welch_df(n, sd_c, sd_r)
        ncp = effect / math.sqrt((sd_c ** 2 + sd_r ** 2) / n)
        crit = float(_sp().t.ppf(1 - alpha, df))
        if out["observed"] is None and ncp > crit:
            out["observed"] = n
        if out["power"] is None and 1 - float(_sp().nct.cdf(crit, df, ncp)) >= power:
            out["power"] = n
        if out["power"] is not None and out["observed"] is not None:
            break
    return out


# --- units ---------------------------------------------------------------------------------------------------------

def bpb_per_nat(pairs: list[tuple[float, float]]) -> float:
    """Mean ratio val_bpb / val_loss over runs, i.e. bpb per nat/token (challenge-facts §10: about 0.59 for sp1024,
    0.39 for sp8192). Precondition: at least one (val_loss, val_bpb) pair, both positive."""
    if not pairs or any(loss <= 0 or bpb <= 0 for loss, bpb in pairs):
        raise ValueError("need at least one (val_loss, val_bpb) pair with positive values")
    return mean([bpb / loss for loss, bpb in pairs])


def nats_to_bpb(nats: float, ratio: float) -> float:
    """A difference in nats/token expressed in bpb, through a bpb-per-nat ratio from the same tokenizer."""
    return nats * ratio


def bpb_to_nats(bpb: float, ratio: float) -> float:
    """A difference in bpb expressed in nats/token, through a bpb-per-nat ratio. Precondition: ratio > 0."""
    if ratio <= 0:
        raise ValueError("ratio must be positive")
    return bpb / ratio


def ratios_differ(a: float, b: float, tolerance: float = RATIO_MISMATCH) -> bool:
    """True when two bpb-per-nat ratios differ by more than `tolerance` (relative): different tokenizer or val
    set, so differences in nats are not comparable between the two runs."""
    return abs(a - b) > tolerance * max(abs(a), abs(b))
