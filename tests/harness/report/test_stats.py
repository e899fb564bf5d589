"""Tests for harness.check.stats: summaries, the margin test, seeds needed and unit conversion."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sp

from harness.check import stats


def _col(rows, i):
    return [r[i] for r in rows]


class TestSummaries:
    """Mean, sample sd and their preconditions."""

    @pytest.mark.parametrize("values, mean, sd", [([1.0, 2.0, 3.0], 2.0, 1.0), ([0.5, 0.5], 0.5, 0.0),
                                                  ([1.0, 1.5], 1.25, math.sqrt(0.125))])
    def test_known_values(self, values, mean, sd):
        """Mean and n-1 standard deviation match hand-computed values."""
        assert stats.mean(values) == pytest.approx(mean)
        assert stats.std(values) == pytest.approx(sd)

    @pytest.mark.parametrize("fn, values", [(stats.mean, []), (stats.std, [1.0]), (stats.std, [])])
    def test_preconditions(self, fn, values):
        """Too few values raise ValueError instead of returning a number."""
        with pytest.raises(ValueError):
            fn(values)

    def test_single_value_has_unknown_sd(self):
        """A one-seed sample summarises with sd None, not 0."""
        assert stats.summarize([1.1]) == stats.Summary(1, 1.1, None)


class TestMarginTest:
    """The one-sided test of 'candidate beats reference by delta'."""

    @pytest.mark.parametrize("column, delta, t, p", [
        (1, 0.005, -4.2888, 0.009550),  # challenge-facts §10: t = 4.29, p = 0.0096 (passes)
        (1, 0.0, -11.8338, 4.034e-4),  # the same without the margin
    ])
    def test_worked_example_1019_vs_549(self, records, column, delta, t, p):
        """#1019 vs #549 on val_loss reproduces the worked Welch t and p of challenge-facts §10."""
        res = stats.margin_test(_col(records["1019"], column), _col(records["549"], column), delta)
        assert res.method == "welch"
        assert res.t == pytest.approx(t, abs=1e-3) and res.df == pytest.approx(3.306, abs=1e-3)
        assert res.p == pytest.approx(p, rel=1e-3)
        assert res.passes(0.01) is True

    def test_margin_in_bpb_gives_the_same_p(self, records):
        """The nats margin converted through the candidate's bpb/nat ratio gives the same test on val_bpb."""
        ratio = stats.bpb_per_nat([(loss, bpb) for _, loss, bpb in records["1019"]])
        res = stats.margin_test(_col(records["1019"], 2), _col(records["549"], 2), 0.005 * ratio)
        assert res.p == pytest.approx(0.009549, rel=1e-3)

    def test_matches_scipy_welch(self):
        """The shifted Welch test equals scipy's ttest_ind on the shifted sample."""
        a, b = [1.0, 1.2, 0.9, 1.1], [1.3, 1.25, 1.4]
        ref = sp.ttest_ind([x + 0.05 for x in a], b, equal_var=False, alternative="less")
        res = stats.margin_test(a, b, 0.05)
        assert (res.t, res.df, res.p) == pytest.approx((ref.statistic, ref.df, ref.pvalue))

    def test_single_seed_reference_uses_one_sample(self, records):
        """With one reference seed the test is a one-sample t against ref - delta (PR #473 vs #374)."""
        cand, ref = _col(records["473"], 1), _col(records["374"], 1)
        res = stats.margin_test(cand, ref, 0.005)
        expected = sp.ttest_1samp(cand, ref[0] - 0.005, alternative="less")
        assert res.method == "one-sample" and "ignored" in res.note
        assert res.p == pytest.approx(expected.pvalue) and res.p == pytest.approx(0.3210, abs=1e-4)
        assert res.passes(0.01) is False

    def test_single_seed_candidate_is_untestable(self):
        """With one candidate seed no test is possible, which is neither a pass nor a fail."""
        res = stats.margin_test([1.10], [1.20, 1.21], 0.0)
        assert res.method == "untestable" and res.p is None and res.passes(0.25) is None
        assert "cannot test with one seed" in res.note

    @pytest.mark.parametrize("cand, ref, p", [([1.0, 1.0], [1.1, 1.1], 0.0), ([1.2, 1.2], [1.1], 1.0)])
    def test_zero_variance_is_exact(self, cand, ref, p):
        """Identical values in every sample give p = 0 or 1, never nan."""
        assert stats.margin_test(cand, ref, 0.005).p == p

    @pytest.mark.parametrize("cand, ref, delta", [([], [1.0], 0.0), ([1.0, 1.1], [], 0.0),
                                                  ([1.0, 1.1], [1.2], -0.1), ([1.0, math.nan], [1.2], 0.0)])
    def test_preconditions(self, cand, ref, delta):
        """Empty samples, a negative margin or a non-finite value raise ValueError."""
        with pytest.raises(ValueError):
            stats.margin_test(cand, ref, delta)


class TestSeedsNeeded:
    """The seeds-needed advisor."""

    def test_matches_simulated_power(self):
        """sd 0.0005 both sides, effect 0.001, alpha 0.01: 7 seeds for 80 % (simulated 0.72 at 6, 0.83 at 7)."""
        res = stats.margin_test([1.0, 1.0005, 0.9995], [1.001, 1.0015, 1.0005], 0.0)
        needed = stats.seeds_needed(res, 0.01)
        assert needed["power"] == 7 and needed["observed"] == 5

    def test_no_effect_means_no_answer(self, records):
        """A candidate that does not beat the margin gets None and a reason."""
        res = stats.margin_test(_col(records["549"], 1), _col(records["1019"], 1), 0.005)
        needed = stats.seeds_needed(res, 0.01)
        assert needed["power"] is None and needed["observed"] is None and "no number of seeds" in needed["note"]

    def test_single_seed_reference_borrows_candidate_sd(self, records):
        """With one reference seed the candidate's sd stands in for both sides."""
        res = stats.margin_test(_col(records["473"], 1), _col(records["374"], 1), 0.005)
        needed = stats.seeds_needed(res, 0.01)
        assert needed["observed"] is not None and needed["power"] > needed["observed"] > 3

    def test_unknown_noise(self):
        """Two one-seed samples give no answer."""
        res = stats.margin_test([1.0], [1.1], 0.0)
        assert stats.seeds_needed(res, 0.01)["power"] is None


class TestUnits:
    """Conversion between nats/token and bpb."""

    @pytest.mark.parametrize("loss, bpb, ratio", [(1.89002, 1.11938, 0.5923), (2.7995, 1.08354, 0.3871)])
    def test_ratio_of_records(self, loss, bpb, ratio):
        """sp1024 and sp8192 records give the bpb-per-nat ratios of challenge-facts §10."""
        assert stats.bpb_per_nat([(loss, bpb)]) == pytest.approx(ratio, abs=1e-4)

    def test_margin_round_trip(self):
        """0.005 nats is 0.00296 bpb for sp1024 and converts back."""
        bpb = stats.nats_to_bpb(0.005, 0.5923)
        assert bpb == pytest.approx(0.00296, abs=1e-5)
        assert stats.bpb_to_nats(bpb, 0.5923) == pytest.approx(0.005)

    @pytest.mark.parametrize("a, b, differ", [(0.5923, 0.3871, True), (0.59226, 0.59227, False)])
    def test_ratio_mismatch(self, a, b, differ):
        """Different tokenizers are detected by their ratios; rounding noise is not."""
        assert stats.ratios_differ(a, b) is differ

    @pytest.mark.parametrize("pairs", [[], [(0.0, 1.0)], [(1.0, -1.0)]])
    def test_ratio_preconditions(self, pairs):
        """No pairs or non-positive values raise ValueError."""
        with pytest.raises(ValueError):
            stats.bpb_per_nat(pairs)
