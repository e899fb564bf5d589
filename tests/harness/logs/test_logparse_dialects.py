"""parse_log over the log dialects of the records: final tags, sizes, timings, run facts."""

from __future__ import annotations

import pytest

from harness.submission.logs import load_logs, parse_log


def test_baseline_dialect_facts(kit):
    """The baseline log yields the exact final line, the round-trip eval time, sizes, tokens, seed and GPUs."""
    run = parse_log(kit.baseline_log(), "train.log")
    assert run.final.tag == "final_int8_zlib_roundtrip_exact"
    assert run.final.val_bpb_text == "1.22436570"
    assert run.final.eval_time_ms == 1401
    assert (run.val_tokens, run.train_shards, run.world_size, run.seed) == (62_021_632, 80, 8, "1337")
    assert run.total_size_bytes == 15_863_489 and run.total_size_raw_bytes == 67_272_625
    assert run.model_bytes == 15_815_847 and run.raw_model_bytes == 67_224_983
    assert run.code_size_bytes == 47_642 and run.code_size_compressed_bytes is None
    assert run.train_time_ms == 600_038 and run.stopped_early and run.last_step == 13_780
    assert run.gpu_names == ["NVIDIA H100 80GB HBM3"] * 8
    assert run.eval_time_s == pytest.approx(1.401)


def test_source_dump_is_captured_and_not_parsed(kit):
    """A metric-looking line inside the source dump is neither a metric nor the final score."""
    run = parse_log(kit.baseline_log(), "train.log")
    assert run.embedded_source.startswith("import os")
    assert all(m.val_bpb != 9.0 for m in run.metrics)
    assert run.embedded_source_line == 1


@pytest.mark.parametrize("prefix", ["", "1776142360.710 "])
def test_modern_dialect_facts(kit, prefix):
    """Hyperparameter dump, `Source code:` section, Unix-time prefixes, GPTQ and TTT lines are all read."""
    run = parse_log(kit.modern_log(prefix=prefix), "train_seed42.log")
    assert run.hyperparameters["seed"] == "42" and run.seed == "42" and run.seed_source == "hyperparameters"
    assert run.embedded_source == "import torch\ndef main():\n    pass\n"
    assert run.final.tag == "quantized_ttt_phased" and run.final.val_bpb_text == "1.05989450"
    assert run.total_eval_time_s == 508.8 and run.eval_time_s == 508.8
    assert run.hessian_time_s == 4.7 and run.gptq_reserve_s == 0.5
    assert run.train_time_ms == 599_592 and run.stopped_early
    assert (run.code_size_bytes, run.code_size_compressed_bytes) == (157_868, 31_999)
    assert run.total_size_bytes == 15_897_259 and run.train_shards == 80 and run.val_tokens == 47_851_520
    assert "ttt_phased" in run.tags and run.world_size == 8


def test_step_lines_without_prefix_are_steps(kit):
    """`4945/20000 val_loss: ... val_bpb: ...` is an in-training eval, never the final score."""
    run = parse_log(kit.modern_log(), "x.log")
    steps = [m for m in run.metrics if m.kind == "step"]
    assert steps and steps[0].step == 4945
    diag = [m for m in run.metrics if m.kind == "diagnostic"]
    assert {m.tag for m in diag} == {"diagnostic pre-quantization post-ema", "diagnostic quantized"}


@pytest.mark.parametrize("lines, tag, bpb", [
    (["final_int6_sliding_window val_loss:1.9 val_bpb:1.1283 stride:64 eval_time:70000ms",
      "final_int6_sliding_window_exact val_loss:1.90 val_bpb:1.12835808"], "final_int6_sliding_window_exact",
     "1.12835808"),
    (["legal_ttt val_loss:1.8 val_bpb:1.1192 eval_time:410000ms",
      "legal_ttt_exact val_loss:1.89 val_bpb:1.11922988"], "legal_ttt_exact", "1.11922988"),
    (["final_sliding_window_eval_exact stride:64 val_loss:1.96 val_bpb:1.16301431"],
     "final_sliding_window_eval_exact", "1.16301431"),
    (["ttt_sliding:done val_loss=1.9 val_bpb=1.1200 elapsed=400s",
      "quantized_ttt val_loss:1.9 val_bpb:1.08103103 eval_time:368074ms"], "quantized_ttt", "1.08103103"),
    (["final_sliding val_loss:2.9 val_bpb:1.1239 (stride=64, T=1024) time:5ms"], "final_sliding", "1.1239"),
    (["final_INT7_zlib_roundtrip val_loss:2.1 val_bpb:1.2353"], "final_INT7_zlib_roundtrip", "1.2353"),
    (["final_xnor_roundtrip val_loss:2.6 val_bpb:1.6344"], "final_xnor_roundtrip", "1.6344"),
    (["quantized_ttt_lora val_loss:2.7 val_bpb:1.07258208 eval_time:338190ms"], "quantized_ttt_lora",
     "1.07258208"),
    (["final_int8_ttt_lora val_loss:2.0 val_bpb:1.1929 eval_time:60000ms"], "final_int8_ttt_lora", "1.1929"),
    (["quantized_sliding_window val_loss:2.8 val_bpb:1.08553523 eval_time:83990ms",
      "diagnostic quantized val_loss:2.0 val_bpb:1.0"], "quantized_sliding_window", "1.08553523"),
])
def test_final_tag_table(lines, tag, bpb):
    """Each final-tag dialect is recognised and the last score line (exact twin preferred) wins."""
    run = parse_log("\n".join(lines) + "\n", "train.log")
    assert (run.final.tag, run.final.val_bpb_text) == (tag, bpb)


def test_exact_twin_borrows_eval_time():
    """An `_exact` final without eval_time takes it from its rounded twin just before."""
    run = parse_log("final_int6_sliding_window val_loss:1.9 val_bpb:1.1283 eval_time:70000ms\n"
                    "final_int6_sliding_window_exact val_loss:1.90 val_bpb:1.12835808\n", "t.log")
    assert run.final.eval_time_ms == 70000


def test_diverged_last_line_is_flagged():
    """A last score far worse than an earlier one stays final but is recorded as an anomaly (04-04_SP4096)."""
    run = parse_log("final_int6_sliding_window val_loss:2.5 val_bpb:1.08938974 eval_time:76000ms\n"
                    "final_int6_ttt val_loss:3.1 val_bpb:1.33603200 eval_time:405410ms\n", "train_seed42.log")
    assert run.final.tag == "final_int6_ttt"
    assert "diverged" in run.anomalies[0]


def test_pip_freeze_is_not_a_run_log():
    """A requirements listing has no metrics and is marked as not a run log."""
    run = parse_log("torch==2.5.1\nnumpy==2.0\nsentencepiece==0.2.0\n", "pip_freeze.txt")
    assert not run.is_run_log and run.final is None


@pytest.mark.parametrize("name, seed", [("train_seed314.log", "314"), ("ternary_log_42.txt", "42"),
                                        ("4096_hybrid448_s1337.txt", "1337"), ("train.log", None)])
def test_seed_from_file_name(name, seed):
    """Without a seed line the seed comes from the file name."""
    run = parse_log("final_sliding val_loss:2.0 val_bpb:1.2\n", name)
    assert run.seed == seed


def test_seed_name_disagreement_is_an_anomaly():
    """A file named for one seed whose log prints another seed is recorded."""
    run = parse_log("seed:1337\nfinal_sliding val_loss:2.0 val_bpb:1.2\n", "train_seed42.log")
    assert run.seed == "1337" and "seed 42" in run.anomalies[0]


def test_local_dataset_declaration():
    """Our reference trainer's `dataset:<name> fineweb:0` line is read."""
    run = parse_log("dataset:tinyshakespeare fineweb:0\nfinal_int8_zlib_roundtrip_exact val_loss:4.1 "
                    "val_bpb:4.10560049\n", "train.log")
    assert (run.dataset_name, run.dataset_is_fineweb) == ("tinyshakespeare", False)


def test_prequant_ttt_time():
    """`prequant_ttt:done total_time=523s` is read as pre-quantization TTT time."""
    run = parse_log("prequant_ttt:done total_time=523s\nquantized_ttt val_loss:2.7 val_bpb:1.05 "
                    "eval_time:100000ms\n", "t.log")
    assert run.prequant_ttt_s == 523 and "prequant_ttt" in run.tags


def test_load_logs_replaces_bad_bytes(submission, tmp_path):
    """Non-UTF-8 bytes are replaced while reading; the log still parses."""
    sub = submission({"train.log": "x"})
    (tmp_path / "train.log").write_bytes(b"\xff\xfeseed:7\nfinal_sliding val_loss:2.0 val_bpb:1.2\n")
    (run,) = load_logs(sub)
    assert run.final.val_bpb == 1.2 and run.path == "train.log"


@pytest.mark.parametrize("line, expected", [
    # a format template dumped into the log (its fields hold names and format specs, not readings): no metric
    ("final_int8_zlib_roundtrip val_loss:{q_val_loss:.4f} val_bpb:{q_val_bpb:.4f}", None),
    ("    log0(f'final val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f}')", None),
    # the printed line of that template, and the `=` dialect: read
    ("final_int8_zlib_roundtrip val_loss:2.0731 val_bpb:1.2244", "1.2244"),
    ("eval val_loss=2.0731 val_bpb=1.2244", "1.2244"),
])
def test_template_fields_are_not_readings(line, expected):
    """A line whose val_bpb is a format field (`{val_bpb:.4f}`) gives no score; a printed value does."""
    run = parse_log(f"step:1/1 train_loss:2.5 train_time:10ms\n{line}\n", "train.log")
    assert (run.metrics[0].val_bpb_text if run.metrics else None) == expected


@pytest.mark.parametrize("line, tagged", [
    ("ttt_lora:start chunks:1024", True),  # the phase printing its own key
    ("ttt_lora rank:8 lr:0.01", True),
    ('"ttt_lora_lr": 0.01,', False),  # near-miss: a config echo naming a longer key
    ("config.eval.ttt_lora_rank,", False),  # near-miss: a source-dump fragment
    ("ttt_lora: disabled", False),  # the line says it is off
])
def test_feature_marker_is_a_whole_key(line, tagged):
    """A feature marker tags a run only as a whole key of an output line, not as the prefix of another key."""
    run = parse_log(f"step:1/10 train_loss:3.0\n{line}\n", "train.log")
    assert ("ttt_lora" in run.tags) == tagged
