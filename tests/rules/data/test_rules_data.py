"""Behaviour of the data-access and scoring rules beyond their own VALID/INVALID examples."""

from __future__ import annotations

import pytest

from rules.ngram_gate_on_target import scan_native
from rules.train_on_val import scan_text


def test_scan_native_finds_gate_on_current_token(native_case):
    """The C scanner reports a hint gated on tokens[i]'s LUT flag and stays silent for the causal #1514 order."""
    path, text, expected = native_case
    lines = [line for line, _ in scan_native(path, text)]
    assert lines == ([expected] if expected else [])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ln -s /d/fineweb_val_000000.bin /v/fineweb_train_000000.bin\n", 1),
        ("intro\ncp data/fineweb_val_000000.bin out/fineweb_train_000000.bin\n", 2),
        ("ln -s /d/fineweb_train_000000.bin /v/fineweb_train_000000.bin\n", None),
    ],
)
def test_scan_text_finds_val_shard_installed_as_train(text, expected):
    """README shell lines that link or copy a validation shard as a training shard are reported with their line."""
    lines = [line for line, _ in scan_text("README.md", text)]
    assert lines == ([expected] if expected else [])


@pytest.mark.parametrize(
    "code, severity",
    [
        ("import requests\n", "warning"),
        (
            "def main(model, opt, loader):\n"
            "    for s in range(3):\n"
            "        model(loader.next_batch()).backward()\n"
            "        opt.step()\n"
            "    requests.get('http://x')\n",
            "error",
        ),
    ],
)
def test_network_severity_depends_on_phase(violations_of, code, severity):
    """A network import alone is a warning; a network call after the training loop is an error."""
    found = violations_of("NETWORK-AT-EVAL", code)
    assert found and found[-1].severity == severity


@pytest.mark.parametrize(
    "code",
    [
        "def f(ctx_hash, y, full, ctx, m, P):\n"
        "    k = (ctx_hash ^ (y * P)) & m\n"
        "    return full[k] / ctx[ctx_hash & m]\n",
    ],
)
def test_ngram_evidence_names_key_and_ratio(violations_of, code):
    """NGRAM-TARGET-IN-KEY evidence points at the key that mixes in the target and at the ratio."""
    (hit,) = violations_of("NGRAM-TARGET-IN-KEY", code)
    assert {e.line for e in hit.evidence} >= {2, 3}


@pytest.mark.parametrize(
    "code, expected",
    [
        ("import os\nclass H:\n    s = int(os.environ.get('PPM_SUBSET_TOKENS', 3))\ndef f(h, x):\n    return x[:h.s]\n"
         "f(H(), read_shard('data/fineweb_val_000000.bin'))\n", 1),
        ("import os\nclass H:\n    s = int(os.environ.get('PPM_SUBSET_TOKENS', 0))\ndef f(h, x):\n    return x[:h.s]\n"
         "f(H(), read_shard('data/fineweb_val_000000.bin'))\n", 0),
    ],
)
def test_eval_subset_depends_on_knob_default(violations_of, code, expected):
    """A setting that cuts validation data is reported only when its default keeps a prefix (non-zero)."""
    assert len(violations_of("EVAL-SUBSET", code)) == expected


def test_train_data_after_loop_is_legal_with_reserve(violations_of):
    """Reading training shards after the loop is accepted once a GPTQ reserve is subtracted from the cap."""
    body = (
        "def main(args, model, opt):\n"
        "    cap = 600000{reserve}\n"
        "    loader = DistributedTokenLoader(args.train_files)\n"
        "    while True:\n"
        "        model(loader.next_batch()).backward()\n"
        "        opt.step()\n"
        "    calib = DistributedTokenLoader(args.train_files)\n"
    )
    assert violations_of("TRAIN-DATA-AT-EVAL", body.format(reserve=""))
    assert not violations_of("TRAIN-DATA-AT-EVAL", body.format(reserve=" - args.gptq_reserve_ms"))
