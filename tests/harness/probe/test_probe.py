"""Runtime legality probes: legal evaluators pass, one illegal example per class fails with its rule ID."""

import numpy as np
import pytest

from harness.run import probe, probe_data, probe_trace
from harness.verdict import EXIT_COULD_NOT_CHECK, EXIT_FINDINGS, EXIT_PASS


@pytest.mark.parametrize("name", ["legal_plain", "legal_ttt", "legal_ttt_one_forward", "reference/train_gpt.py"])
def test_legal_evaluators_pass_every_probe(probed, name):
    """A legal evaluator (plain, score-first TTT, the reference with its TTT) passes and every probe ran."""
    report = probed(name)
    assert report.exit_code == EXIT_PASS, [f.message for f in report.findings] + report.could_not_check
    assert all(p["ran"] for p in report.facts["probes"].values()), report.facts["probes"]


@pytest.mark.parametrize("name, rule", [
    ("illegal_preeval_ttt", "TTT-PREEVAL-VAL"),
    ("illegal_ttt_lookahead", "TTT-PREEVAL-VAL"),
    ("illegal_ttt_grad_second_epoch", "TTT-PREEVAL-VAL"),
    ("illegal_multipass", "TTT-MULTIPASS-SCORE"),
    ("illegal_multipass_one_forward", "TTT-MULTIPASS-SCORE"),
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
    ("cuda_assuming", "flash_attn_interface"),
])
def test_scripts_that_cannot_run_are_could_not_probe(probed, name, fragment):
    """Without the CPU compatibility layer a CUDA-assuming script is exit 2 with the reason, never a pass."""
    report = probed(name, cpu_compat=False)
    assert report.exit_code == EXIT_COULD_NOT_CHECK
    assert any(fragment in reason for reason in report.could_not_check)
    assert not report.checked


def test_script_that_runs_under_the_layer_but_scores_nothing_is_could_not_probe(probed):
    """A script that runs with the FA3 stand-in but scores nothing through cross_entropy is exit 2, not a pass."""
    report = probed("needs_fa3")
    assert report.exit_code == EXIT_COULD_NOT_CHECK
    assert any("no validation scoring" in reason for reason in report.could_not_check)


def test_cuda_assuming_script_probes_cleanly_under_the_layer(probed):
    """The CUDA + FlashAttention 3 fixture runs on the CPU under the layer, passes, and every probe ran."""
    report = probed("cuda_assuming")
    assert report.exit_code == EXIT_PASS, [f.message for f in report.findings] + report.could_not_check
    assert all(p["ran"] for p in report.facts["probes"].values()), report.facts["probes"]


def test_probes_say_which_stand_ins_the_run_used(probed):
    """Every probe entry records that the layer was on and which stand-ins the script reached."""
    report = probed("cuda_assuming")
    for entry in report.facts["probes"].values():
        assert entry["cpu_compat"]["enabled"] is True
        assert {"cuda_available", "cuda_device", "cuda_synchronize", "flash_attn_standin", "nvidia_smi",
                "autocast_cuda_to_cpu", "compile_identity"} <= set(entry["cpu_compat"]["used"])


def test_plain_cpu_script_reports_the_layer_unused(probed):
    """A script that never touches CUDA runs with the layer on but no stand-in used."""
    report = probed("legal_plain")
    assert all(p["cpu_compat"] == {"enabled": True, "used": []} for p in report.facts["probes"].values())


def test_cuda_assuming_illegal_script_fails_and_says_it_ran_shimmed(probed):
    """Pre-eval TTT written for CUDA fails with TTT-PREEVAL-VAL; the finding's data names the stand-ins used."""
    report = probed("cuda_assuming_preeval")
    assert report.exit_code == EXIT_FINDINGS
    finding = next(f for f in report.errors if f.rule == "TTT-PREEVAL-VAL")
    assert finding.source == "runtime"
    assert "flash_attn_standin" in finding.data["cpu_compat"]


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
    stream = np.random.default_rng(1).integers(0, probe_data.VOCAB, 4097)
    index = probe_data.StreamIndex(stream)
    row = stream[start:start + length]
    other = np.random.default_rng(2).integers(0, probe_data.VOCAB, 40)
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
    assert probe_trace._reported(lines) == expected


def test_probe_rules_name_catalogue_ids():
    """Every rule a probe claims to judge is a rulebook ID."""
    from rules.catalogue import RULES

    assert all(rule in RULES for rules in probe.PROBE_RULES.values() for rule in rules)


def _write_trace(path, calls):
    """A trace .npz as the tracer writes it, with one no-grad cross_entropy event per array of targets."""
    import json

    targets = np.concatenate(calls)
    events = [["ce", i, {"grad": False, "n": int(len(c))}] for i, c in enumerate(calls)]
    np.savez(path, ce_targets=targets, ce_nll=np.ones(len(targets)), ce_lse=np.ones(len(targets)),
             fwd_ids=np.zeros(0, np.int64), fwd_sizes=np.zeros(0, np.int64), events=np.array(json.dumps(events)))


def test_evaluations_done_in_one_call_each_are_separate_passes(tmp_path):
    """Two evaluations that each score the whole stream in a single call are read as two passes."""
    stream = np.random.default_rng(3).integers(0, probe_data.VOCAB, 4097)
    index = probe_data.StreamIndex(stream)
    _write_trace(tmp_path / "t.npz", [stream[1:], stream[1:]])
    trace = probe_trace.read_trace(tmp_path / "t.npz", tmp_path / "none.log", 0, index, index)
    assert [len(p.first) for p in trace.passes] == [4096, 4096]


def test_overlapping_sliding_windows_stay_one_pass(tmp_path):
    """Windows of 32 that advance by 8 re-score positions near the frontier and remain one pass."""
    stream = np.random.default_rng(4).integers(0, probe_data.VOCAB, 4097)
    index = probe_data.StreamIndex(stream)
    _write_trace(tmp_path / "t.npz", [stream[s:s + 32] for s in range(1, 4097 - 32, 8)])
    trace = probe_trace.read_trace(tmp_path / "t.npz", tmp_path / "none.log", 0, index, index)
    assert len(trace.passes) == 1
