"""Shapes found in merged records that once gave false errors, and one that was missed."""

from __future__ import annotations

from harness.check.pipeline import check_path

SCRIPT = "import os\n\n\ndef main():\n    print('hello')\n\n\nif __name__ == '__main__':\n    main()\n" + "# pad\n" * 20
SEP = "=" * 100


def _errors(folder, rule):
    return [f for f in check_path(folder).findings if f.rule == rule and f.severity == "error"]


def test_log_of_several_runs_is_judged_by_its_last_dump(make_submission):
    """A log holding an older run and then the shipped one compares the last source dump."""
    older = SCRIPT.replace("hello", "older")
    log = (f"{older}{SEP}\nRunning PyTorch 2.9\n{SEP}\nfinal_int8_zlib_roundtrip_exact val_loss:2.2 val_bpb:1.30\n"
           f"{SCRIPT}{SEP}\nRunning PyTorch 2.9\n{SEP}\nfinal_int8_zlib_roundtrip_exact val_loss:2.1 val_bpb:1.25\n")
    folder = make_submission({"train_gpt.py": SCRIPT, "train.log": log})
    assert _errors(folder, "LOG-CODE-CONSISTENCY") == []


def test_whitespace_only_difference_is_a_warning(make_submission):
    """A dump that differs from the script in indentation only is not other code."""
    log = SCRIPT.replace("    print", "     print") + SEP + "\nfinal_int8_zlib_roundtrip_exact val_loss:2.1 val_bpb:1.25\n"
    folder = make_submission({"train_gpt.py": SCRIPT, "train.log": log})
    findings = [f for f in check_path(folder).findings if f.rule == "LOG-CODE-CONSISTENCY"]
    assert [f.severity for f in findings] == ["warning"]


def test_code_size_is_compared_with_the_file_a_loader_runs(make_submission):
    """Behind an exec(open(...)) loader the logged code size is compared with the loaded file."""
    loader = 'exec(open(__file__.replace("train_gpt.py", "impl.py")).read())\n'
    log = f"Code size: {len(SCRIPT) - 10} bytes\nfinal_int8_zlib_roundtrip_exact val_loss:2.1 val_bpb:1.25\n"
    folder = make_submission({"train_gpt.py": loader, "impl.py": SCRIPT, "train.log": log})
    assert _errors(folder, "LOG-CODE-CONSISTENCY") == []


def test_per_seed_claim_found_on_another_line_of_the_same_log_is_a_warning(make_submission):
    """A seed's claim equal to an earlier score line of its own log is questioned, not called false."""
    log = ("seed:42\nfinal_int6_sliding_window val_loss:1.84 val_bpb:1.0894\n"
           "final_int6_ttt val_loss:2.25 val_bpb:1.3360\n")
    folder = make_submission({"train_gpt.py": SCRIPT, "train_seed42.log": log,
                              "submission.json": '{"val_bpb": 1.0894, "seeds": {"42": {"val_bpb": 1.0894}}}'})
    assert _errors(folder, "SIGNIFICANCE") == []
    assert any(f.rule == "SIGNIFICANCE" for f in check_path(folder).findings)


def test_logged_total_over_cap_counts_without_a_script(make_submission):
    """A folder without train_gpt.py whose log reports a total over the cap still fails the cap."""
    log = "seed:1337\nTotal submission size int6+zstd: 16186500 bytes\nfinal_int6_roundtrip_exact val_loss:2.0 val_bpb:1.2\n"
    folder = make_submission({"train.log": log})
    assert len(_errors(folder, "ARTIFACT-CAP-16MB")) == 1
