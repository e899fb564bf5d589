"""check_log_code: the source dump and Code size in the logs against the shipped code."""

from __future__ import annotations

import pytest

from harness.check.consistency import check_log_code, diff_summary
from harness.verdict import Report
from harness.submission.logs import parse_log

SOURCE = "import os\nprint('hello')\n"
# Code that names every setting kit.modern_log's hyperparameter dump prints, in the spellings scripts use.
MODERN_CODE = ("import os\nimport torch\n\n\nclass Hyperparameters:\n    seed = int(os.environ.get('SEED', 1337))\n"
               "    max_wallclock_seconds = float(os.environ.get('MAX_WALLCLOCK_SECONDS', 600))\n"
               "    gptq_reserve_seconds = 0.5\n    datasets_dir = os.environ.get('DATASETS_DIR', './data')\n"
               "    train_seq_len = 2048\n    world_size = int(os.environ.get('WORLD_SIZE', 1))\n")


def findings(report):
    return [(f.severity, f.message, f.line) for f in report.findings if f.rule == "LOG-CODE-CONSISTENCY"]


def test_identical_dump_and_size_pass(kit):
    """A dump equal to the shipped script and a matching Code size give no finding."""
    run = parse_log(kit.baseline_log(source=SOURCE, code_size=len(SOURCE)), "train.log")
    report = Report("x")
    check_log_code(kit.code_bundle(SOURCE), [run], report)
    assert findings(report) == [] and "LOG-CODE-CONSISTENCY" in report.checked


def test_dump_matching_a_decoded_unit_passes(kit):
    """A dump equal to the decoded payload of a shim is consistent."""
    run = parse_log(kit.baseline_log(source=SOURCE, code_size=120), "train.log")
    bundle = kit.code_bundle("exec(payload)\n", shipped=b"x" * 120)
    bundle.units.append(type(bundle.units[0])(path="train_gpt.py", text=SOURCE, origin="decoded",
                                              shipped_bytes=b"x" * 120))
    report = Report("x")
    check_log_code(bundle, [run], report)
    assert findings(report) == []


def test_different_dump_is_an_error_with_the_first_line(kit):
    """A dump that differs gives an error pointing at the first differing line in the log."""
    run = parse_log(kit.baseline_log(source="import os\nprint('other')\n", code_size=len(SOURCE)), "train.log")
    report = Report("x")
    check_log_code(kit.code_bundle(SOURCE), [run], report)
    ((severity, message, line),) = findings(report)
    assert severity == "error" and "first difference at line 2" in message and line == 2


def test_code_size_mismatch_is_an_error(kit):
    """A Code size that is not the shipped size (and no wrapper size) is an error (#945 pattern)."""
    run = parse_log("Code size: 98302 bytes\nfinal_sliding val_loss:2 val_bpb:1.2\n", "train_seed42.log")
    report = Report("x")
    check_log_code(kit.code_bundle(SOURCE, shipped=b"x" * 47_686), [run], report)
    ((severity, message, _),) = findings(report)
    assert severity == "error" and "98,302" in message and "47,686" in message


def test_wrapper_accounting_is_a_warning(kit):
    """A size difference explained by a compressed wrapper size in the same log is a warning."""
    run = parse_log(kit.modern_log(source=MODERN_CODE), "train_seed42.log")
    report = Report("x")
    check_log_code(kit.code_bundle(MODERN_CODE, shipped=b"x" * 158_429), [run], report)
    assert [s for s, _, _ in findings(report)] == ["warning"]


def test_size_of_another_counted_file_is_a_warning(kit):
    """A Code size equal to another counted file (an exec(open) stub's payload) is a warning."""
    run = parse_log("Code size: 80055 bytes\nfinal_sliding val_loss:2 val_bpb:1.2\n", "t.log")
    bundle = kit.code_bundle("exec(open('x').read())\n", shipped=b"x" * 74,
                             counted={"train_gpt.py": b"x" * 74, "train_gpt_decode.py": b"y" * 80_055})
    report = Report("x")
    check_log_code(bundle, [run], report)
    ((severity, message, _),) = findings(report)
    assert severity == "warning" and "train_gpt_decode.py" in message


def test_diff_summary_counts():
    """diff_summary gives the first differing line and how many lines differ."""
    first, changed, _ = diff_summary(["a", "b", "c"], ["a", "x", "c", "d"])
    assert (first, changed) == (2, 2)


def test_no_evidence_is_not_checked(kit):
    """Logs without a dump or Code size leave the rule not checked."""
    report = Report("x")
    check_log_code(kit.code_bundle(SOURCE), [parse_log("final_sliding val_loss:2 val_bpb:1.2\n", "t.log")], report)
    assert report.not_checked[0].rule == "LOG-CODE-CONSISTENCY"


def _python_source(lines: int) -> str:
    """A plausible script of LINES lines, varied enough that it compresses like real code."""
    return "".join(f"def layer_{i}(x, scale={i % 7 + 1}):\n    return x * scale + {i * 31 % 97}  # block {i}\n"
                   for i in range(lines))


def _size_verdict(kit, logged: int, bundle) -> list[str]:
    run = parse_log(f"Code size: {logged} bytes\nfinal_sliding val_loss:2 val_bpb:1.2\n", "train_seed42.log")
    report = Report("x")
    check_log_code(bundle, [run], report)
    return [s for s, _, _ in findings(report)]


def test_logged_size_of_a_wrapper_the_script_builds_is_a_warning(kit):
    """VALID: the log counts the shipped source as an lzma + base85 wrapper (a size the script computes itself)."""
    from harness.check.consistency import wrapper_estimates

    source = _python_source(2000)
    logged = wrapper_estimates(source.encode())["lzma"] + 120  # plus the loader line
    assert _size_verdict(kit, logged, kit.code_bundle(source)) == ["warning"]


def test_logged_size_of_a_shims_decoded_source_is_a_warning(kit):
    """VALID: the shipped file is a compressed shim; the log counts its decoded source, a few bytes apart."""
    source = _python_source(2000)
    bundle = kit.code_bundle("exec(payload)\n", shipped=b"x" * 9_000)
    bundle.units.append(type(bundle.units[0])(path="train_gpt.py", text=source, origin="decoded",
                                              shipped_bytes=b"x" * 9_000))
    assert _size_verdict(kit, len(source) - 91, bundle) == ["warning"]
    assert _size_verdict(kit, len(source), bundle) == []


@pytest.mark.parametrize("factor", [0.5, 0.2, 3.0])
def test_logged_size_far_from_the_code_and_its_wrappers_is_an_error(kit, factor):
    """INVALID: a logged size that is neither the source, its decoded payload nor any wrapper of it: other code."""
    source = _python_source(2000)
    assert _size_verdict(kit, int(len(source) * factor), kit.code_bundle(source)) == ["error"]


LONG = "".join(f"value_{i} = {i} * 2\n" if i != 35 else "import math\n" for i in range(40))


@pytest.mark.parametrize("dump, resumed", [
    # console output written over the first lines; the dump resumes mid-line and the rest is the shipped file's end
    ("step 1 loss 3.2\nstep 2 loss 3.1\n" + "ue_4 = 4 * 2\n" + "".join(LONG.splitlines(True)[5:]), True),
    # near-miss: the surviving part differs in one line
    ("step 1 loss 3.2\n" + "ue_4 = 4 * 2\n" + "".join(LONG.splitlines(True)[5:]).replace("value_30 = 30", "value_30 = 31"),
     False),
    # near-miss: too little survives to say which program it was
    ("step 1 loss 3.2\n" * 25 + "ue_29 = 29 * 2\n" + "".join(LONG.splitlines(True)[30:]), False),
])
def test_overwritten_start_of_the_dump(kit, dump, resumed):
    """A dump whose first lines console output overwrote is judged by what survives: the shipped file's end (an info
    finding); one that differs, or of which too little survives, is compared as a whole as before."""
    run = parse_log(kit.baseline_log(source=dump, code_size=len(LONG)), "train.log")
    report = Report("x")
    check_log_code(kit.code_bundle(LONG), [run], report)
    found = findings(report)
    assert any("were overwritten" in m for _, m, _ in found) == resumed
    assert [s for s, _, _ in found] == ["info"] if resumed else all(s != "info" for s, _, _ in found)


@pytest.mark.parametrize("code, extra, others, severity", [
    (MODERN_CODE, "", {}, None),  # VALID: every dumped setting is named by the code
    (MODERN_CODE.replace("train_seq_len = 2048", "parser.add_argument('--train-seq-len', default=2048)"), "", {},
     None),  # VALID: an argparse flag spelled with dashes
    (MODERN_CODE, "  ttt_hash_embed: True", {}, "warning"),  # near-miss: one setting renamed after the run?
    (MODERN_CODE, "  ttt_hash_embed: True\n  ttt_hash_buckets: 16384", {}, "error"),  # INVALID: other code
    (MODERN_CODE, "  ttt_hash_embed: True\n  ttt_hash_buckets: 16384",
     {"train_hash.py": "TTT_HASH_EMBED = 1\nTTT_HASH_BUCKETS = 16384\n"}, "warning"),  # another script's log
    ("import zlib\nexec(zlib.decompress(BLOB))\n", "", {}, None),  # a payload no unit decodes: names unknown
])
def test_dumped_settings_the_code_never_names(kit, code, extra, others, severity):
    """A hyperparameter dump printing settings no shipped code names came from other code: two or more are an
    error, one a warning, and a warning when another script of the folder names them."""
    run = parse_log(kit.modern_log(extra_hyper=extra, source=code), "train_seed42.log")
    report = Report("x")
    check_log_code(kit.code_bundle(code), [run], report, others)
    found = [sev for sev, message, _ in findings(report) if "never names" in message]
    assert found == ([severity] if severity else [])
