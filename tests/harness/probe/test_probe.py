"""Runtime legality probes: legal evaluators pass, one illegal example per class fails with its rule ID."""

import numpy as np
import pytest

from harness import probe
from harness.findings import EXIT_COULD_NOT_CHECK, EXIT_FINDINGS, EXIT_PASS


@pytest.mark.parametrize("name", ["legal_plain", "legal_ttt", "reference/train_gpt.py"])
def test_legal_evaluators_pass_every_probe(probed, name):
    """A legal evaluator (plain, score-first TTT, the reference with its TTT) passes and every probe ran."""
    report = probed(name)
    assert report.exit_code == EXIT_PASS, [f.message for f in report.findings] + report.could_not_check
    assert all(p["ran"] for p in report.facts["probes"].values()), report.facts["probes"]


@pytest.mark.parametrize("name, rule", [
    ("illegal_preeval_ttt", "TTT-PREEVAL-VAL"),
    ("illegal_multipass", "TTT-MULTIPASS-SCORE"),
    ("illegal_rescore", "RESCORE-S1"),
    ("illegal_slot", "SLOT-SCORED-TARGETS"),
    ("illegal_ngram", "NGRAM-TARGET-IN-KEY"),
    ("illegal_gptq_val", "GPTQ-CALIB-VAL"),
    ("illegal_train_on_val", "TRAIN-ON-VAL"),
    ("illegal_train_at_eval", "TRAIN-DATA-AT-EVAL"),
])
def test_illegal_examples_fail_with_their_rule(probed, name, rule):
    """Each illegal class is an error finding under its own rule ID, from the runtime source."""
    report = probed(name)
    assert report.exit_code == EXIT_FINDINGS
    rules = {f.rule for f in report.errors}
    assert rule in rules, rules
    assert all(f.source == "runtime" for f in report.findings)


@pytest.mark.parametrize("name, rule", [
    ("illegal_preeval_ttt", "TTT-PREEVAL-VAL"),
    ("illegal_multipass", "TTT-MULTIPASS-SCORE"),
    ("illegal_slot", "SLOT-SCORED-TARGETS"),
])
def test_c1_perturbation_confirms_future_dependence(probed, name, rule):
    """The differential run shows earlier scores moving when later tokens change, and says so in the finding."""
    report = probed(name)
    finding = next(f for f in report.errors if f.rule == rule)
    assert finding.data["c1"]["nll_changed"] > 0


def test_ngram_cache_implied_mass_is_far_from_one(probed):
    """The counterfactual sum over the last target measures the cache's unnormalized mass."""
    report = probed("illegal_ngram")
    assert report.facts["probes"]["c2_normalization"]["implied_mass"] > 1.5


@pytest.mark.parametrize("name, fragment", [
    ("cuda_only", "CUDA"),
    ("needs_fa3", "flash_attn_interface"),
])
def test_scripts_that_cannot_run_are_could_not_probe(probed, name, fragment):
    """A script that cannot run on CPU at tiny scale is exit 2 with the reason, never a pass."""
    report = probed(name)
    assert report.exit_code == EXIT_COULD_NOT_CHECK
    assert any(fragment in reason for reason in report.could_not_check)
    assert not report.checked


def test_folder_without_script_is_could_not_probe(tmp_path):
    """A folder with no train_gpt.py cannot be probed."""
    (tmp_path / "README.md").write_text("no script")
    report = probe.probe_path(tmp_path, probe.ProbeOptions(timeout=30, val_tokens=4097))
    assert report.exit_code == EXIT_COULD_NOT_CHECK


def test_probing_leaves_the_submission_folder_untouched(probed, fixtures_dir):
    """Everything the run writes lands in the probe's work folder, not next to the script."""
    before = sorted((p.name, p.stat().st_mtime_ns) for p in fixtures_dir.iterdir())
    probed("legal_plain")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in fixtures_dir.iterdir()) == before


@pytest.mark.parametrize("start, length", [(1, 32), (100, 9), (4000, 96)])
def test_stream_index_locates_flattened_rows(start, length):
    """Rows cut from the stream are located element by element, short row tails included."""
    stream = np.random.default_rng(1).integers(0, probe.VOCAB, 4097)
    index = probe.StreamIndex(stream)
    row = stream[start:start + length]
    other = np.random.default_rng(2).integers(0, probe.VOCAB, 40)
    found = index.locate(np.concatenate([row, other]))
    assert found[:length].tolist() == list(range(start, start + length))
    assert (found[length:] == -1).all()


@pytest.mark.parametrize("lines, expected", [
    (["step:1/4 val_loss:9.0", "final val_loss:3.25000000 val_bpb:4.6"], (3.25, 8)),
    (["nothing here"], (None, 0)),
    (["a val_loss:2.5000", "b val_loss:2.4000", "done"], (2.4, 4)),
])
def test_reported_loss_is_the_last_printed(lines, expected):
    """The judged score is the last val_loss the script printed, with its printed precision."""
    assert probe._reported(lines) == expected


def test_probe_rules_name_catalogue_ids():
    """Every rule a probe claims to judge is a rulebook ID."""
    from rules.catalogue import RULES

    assert all(rule in RULES for rules in probe.PROBE_RULES.values() for rule in rules)
