"""A logged code size that differs from the shipped script: small edits warn, other code fails."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.check.consistency import check_log_code
from harness.submission.logs import parse_log
from harness.verdict import Report


@pytest.mark.parametrize(("logged", "severity"), [(47_686, None), (47_703, "warning"), (98_302, "error")])
def test_code_size_difference_severity(logged, severity):
    """Equal sizes pass, a 17-byte edit is a warning, twice the size is an error."""
    text = "x = 1\n" * (47_686 // 6) + "#" * (47_686 % 6)
    code = SimpleNamespace(units=[SimpleNamespace(path="train_gpt.py", text=text, origin="shipped")],
                           shipped_bytes=47_686, counted_files={"train_gpt.py": 47_686})
    run = parse_log(f"Code size: {logged} bytes\nfinal_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2\n",
                    "train.log")
    report = Report("x")
    check_log_code(code, [run], report)
    assert [f.severity for f in report.findings if f.rule == "LOG-CODE-CONSISTENCY"] == ([severity] if severity else [])


ENTRY = "import os\n\n\ndef main():\n    print(os.sep)\n\n\nif __name__ == '__main__':\n    main()\n"
OTHER = "import sys\n\n\ndef main():\n    print(sys.argv, 'hybrid')\n\n\nif __name__ == '__main__':\n    main()\n"
GARBLED = OTHER[:30] + "step:1/10 train_loss:6.93\n" + OTHER[30:]  # console output cut into the dump


def judge_dump(dump: str, logged_size: int, others: dict[str, str]) -> list[tuple[str, str]]:
    """(severity, message) of the consistency findings for a log that dumps `dump` and logs `logged_size`."""
    code = SimpleNamespace(units=[SimpleNamespace(path="train_gpt.py", text=ENTRY, origin="shipped")],
                           shipped_bytes=len(ENTRY), counted_files={"train_gpt.py": len(ENTRY)})
    run = parse_log(dump + "=" * 100 + f"\nCode size: {logged_size} bytes\n"
                    "final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2\n", "train.log")
    report = Report("x")
    check_log_code(code, [run], report, others)
    return [(f.severity, f.message) for f in report.findings if f.rule == "LOG-CODE-CONSISTENCY"]


@pytest.mark.parametrize(("dump", "size", "others", "severities", "fragment"), [
    (OTHER, len(OTHER), {"train_gpt_hybrid.py": OTHER}, ["warning", "warning"], "produced by train_gpt_hybrid.py"),
    (OTHER, len(OTHER), {}, ["error", "error"], "differs from the shipped train_gpt.py"),
    (GARBLED, len(OTHER), {"train_gpt_hybrid.py": OTHER}, ["warning", "warning"], "does not compile"),
    (OTHER.replace("hybrid", "hybrid2"), len(OTHER), {"train_gpt_hybrid.py": OTHER}, ["error", "warning"],
     "not run by the entry script) train_gpt_hybrid.py"),
])
def test_logs_of_another_shipped_script(dump, size, others, severities, fragment):
    """A log from another shipped script warns and names it; other code is an error naming the closest file."""
    findings = judge_dump(dump, size, others)
    assert sorted(s for s, _ in findings) == sorted(severities)
    assert any(fragment in m for _, m in findings), findings


LONG = "".join(f"# helper {i}: adds one\ndef helper_{i}(value):\n    return value + {i}\n\n\n" for i in range(12)) \
    + "if __name__ == '__main__':\n    print(helper_0(1))\n"


def judge_long_dump(dump: str) -> list[tuple[str, str]]:
    code = SimpleNamespace(units=[SimpleNamespace(path="train_gpt.py", text=LONG, origin="shipped")],
                           shipped_bytes=len(LONG), counted_files={"train_gpt.py": len(LONG)})
    run = parse_log(dump + "=" * 100 + "\nfinal_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2\n", "train.log")
    report = Report("x")
    check_log_code(code, [run], report)
    return [(f.severity, f.message) for f in report.findings if f.rule == "LOG-CODE-CONSISTENCY"]


@pytest.mark.parametrize("dump, severity, fragment", [
    # VALID: the comments were reworded after the run; the code is the same
    (LONG.replace("adds one", "returns value plus i"), "warning", "only comments and blank lines differ"),
    # VALID: console output overwrote the first lines of the dump, and a comment was reworded
    ("[rank0] launching\nwandb: syncing\n" + LONG.split("\n", 6)[6].replace("adds one", "plus"), "warning",
     "which console output overwrote"),
    # INVALID near-miss: the first lines hold other code (an extra import), not console output
    ("import socket\nimport json\n" + LONG.split("\n", 6)[6], "error", "differs from the shipped"),
    # INVALID near-miss: one constant changed besides the comments
    (LONG.replace("adds one", "plus").replace("value + 7", "value + 8"), "error", "differs from the shipped"),
])
def test_a_dump_that_differs_only_in_comments_is_a_warning(dump, severity, fragment):
    """Comment-only differences (also after an overwritten head) warn; a changed code token is an error."""
    ((found, message),) = judge_long_dump(dump)
    assert found == severity and fragment in message, message


LONGER = "".join(f"def helper_{i}(value):\n    return value + {i}\n\n\n" for i in range(80)) \
    + "LEARNING_RATE = float('0.02')\n"


@pytest.mark.parametrize("edit, printed, severity", [
    # VALID: one default rewritten after the run, and the log prints the value the run used: a warning
    (lambda code: code.replace("float('0.02')", "float('0.04')"), "learning_rate:0.04 warmup:0\n", "warning"),
    # INVALID near-miss: the same edit, and nothing says what the run used: the shipped code trains another run
    (lambda code: code.replace("float('0.02')", "float('0.04')"), "", "error"),
    # VALID: the literal is rewritten, the value is the same
    (lambda code: code.replace("float('0.02')", "float(0.02)"), "", "warning"),
    # INVALID: eight helpers return something else: other code, an error
    (lambda code: code.replace("value + 1\n", "value * 1\n").replace("value + 2\n", "value * 2\n")
     .replace("value + 3\n", "value * 3\n").replace("value + 4\n", "value * 4\n")
     .replace("value + 5\n", "value * 5\n").replace("value + 6\n", "value * 6\n")
     .replace("value + 7\n", "value * 7\n").replace("value + 8\n", "value * 8\n"), "", "error"),
])
def test_a_small_edit_of_a_long_script_is_a_warning(edit, printed, severity):
    """A dump a few lines off the shipped code warns when its changed values are accounted for; else it fails."""
    code = SimpleNamespace(units=[SimpleNamespace(path="train_gpt.py", text=LONGER, origin="shipped")],
                           shipped_bytes=len(LONGER), counted_files={"train_gpt.py": len(LONGER)})
    run = parse_log(edit(LONGER) + "=" * 100 + f"\n{printed}final_int8_zlib_roundtrip_exact val_loss:2.0 "
                    "val_bpb:1.2\n", "train.log")
    report = Report("x")
    check_log_code(code, [run], report)
    ((found, message),) = [(f.severity, f.message) for f in report.findings if f.rule == "LOG-CODE-CONSISTENCY"]
    assert found == severity, message


SETTINGS = "import os\n\n\nclass Hyperparameters:\n" + "".join(
    f"    knob_{i} = float(os.environ.get('KNOB_{i}', '0.{i + 1}'))\n" for i in range(12)) + "\n\n" + "".join(
    f"def step_{i}(value, h):\n    return value * h.knob_{i % 12} + {i}\n\n\n" for i in range(60))


# The run's configuration line, as scripts print it: every knob with the value it ran with.
PRINTED = " ".join(f"knob_{i}:0.{i + 5}" for i in range(12)) + "\n"


def judge_settings_dump(dump: str, printed: str = PRINTED, run_env: dict[str, str] | None = None) -> str:
    code = SimpleNamespace(units=[SimpleNamespace(path="train_gpt.py", text=SETTINGS, origin="shipped")],
                           shipped_bytes=len(SETTINGS), counted_files={"train_gpt.py": len(SETTINGS)})
    run = parse_log(dump + "=" * 100 + f"\n{printed}final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2\n",
                    "train.log")
    report = Report("x")
    check_log_code(code, [run], report, run_env=run_env)
    ((found, message),) = [(f.severity, f.message) for f in report.findings if f.rule == "LOG-CODE-CONSISTENCY"]
    return found, message


def _defaults_rewritten(code: str) -> str:
    for i in range(12):
        code = code.replace(f"'KNOB_{i}', '0.{i + 1}'", f"'KNOB_{i}', '0.{i + 5}'")
    return code


@pytest.mark.parametrize("edit, severity", [
    # VALID: every default of the settings class rewritten (the values the run was launched with): a warning
    (_defaults_rewritten, "warning"),
    # INVALID near-miss: three settings read from somewhere else (a name, not a value, changed) besides the defaults
    (lambda code: _defaults_rewritten(code).replace("'KNOB_1', '0.6'", "'KNOB_1', BASE").replace(
        "'KNOB_2', '0.7'", "'KNOB_2', BASE").replace("'KNOB_3', '0.8'", "'KNOB_3', BASE"), "error"),
    # VALID: the defaults and a run id assigned at module level
    (lambda code: _defaults_rewritten(code.replace("import os\n", "import os\nRUN_ID = 'a'\n")).replace(
        "RUN_ID = 'a'", "RUN_ID = 'b'"), "warning"),
    # INVALID near-miss: a constant inside the code of six functions changed: other code
    (lambda code: code.replace("+ 3\n", "+ 30\n").replace("+ 4\n", "+ 40\n").replace("+ 5\n", "+ 50\n")
     .replace("+ 6\n", "+ 60\n").replace("+ 7\n", "+ 70\n").replace("+ 8\n", "+ 80\n"), "error"),
    # INVALID: the defaults and eight lines of logic changed
    (lambda code: _defaults_rewritten(code).replace("value * h.knob_1 +", "value / h.knob_1 +").replace(
        "value * h.knob_2 +", "value - h.knob_2 +"), "error"),
])
def test_a_dump_differing_in_setting_values_only_is_a_warning(edit, severity):
    """Changed defaults, paths and run ids leave the same program (a warning); changed code stays an error."""
    found, message = judge_settings_dump(edit(SETTINGS))
    assert found == severity, message


ALL_ENV = {f"KNOB_{i}": f"0.{i + 5}" for i in range(12)}


@pytest.mark.parametrize("printed, run_env, severity", [
    (PRINTED, None, "warning"),  # VALID: the log prints every knob's value
    (" ".join(f"KNOB_{i}={0.5 + i / 10:g}" for i in range(12)) + "\n", None, "warning"),  # VALID: the env names
    ("", ALL_ENV, "warning"),  # VALID: nothing printed, the documented run command sets every knob
    ("", None, "error"),  # INVALID: defaults changed, nothing prints or sets them: the shipped code runs otherwise
    # INVALID near-miss: the command sets all knobs but one
    ("", {k: v for k, v in ALL_ENV.items() if k != "KNOB_7"}, "error"),
    # INVALID near-miss: one knob is printed on a line of its own, the others nowhere
    ("knob_0: 0.5\n", None, "error"),
])
def test_changed_defaults_need_a_log_line_or_a_run_command(printed, run_env, severity):
    """A dump differing only in defaults warns when the logs or the run command say each value; else it fails."""
    found, message = judge_settings_dump(_defaults_rewritten(SETTINGS), printed, run_env)
    assert found == severity, message
    assert ("no log line prints" in message) == (severity == "error"), message


@pytest.mark.parametrize("uncompressed, severity", [
    (len(LONGER), None),  # VALID: the uncompressed size is the shipped source's, the wrapper size beside it
    (len(LONGER) + 40, "warning"),  # VALID: a few bytes off (an edit after the run), the wrapper size beside it
    (int(len(LONGER) * 0.85), "error"),  # INVALID: 15 % smaller: other code, which a wrapper line does not excuse
])
def test_a_wrapper_line_does_not_excuse_an_uncompressed_size_far_off(uncompressed, severity):
    """With a compressed size logged beside it, the uncompressed Code size must still be near the source's."""
    code = SimpleNamespace(units=[SimpleNamespace(path="train_gpt.py", text=LONGER, origin="shipped")],
                           shipped_bytes=len(LONGER), counted_files={"train_gpt.py": len(LONGER)})
    run = parse_log(f"Code size (uncompressed): {uncompressed} bytes\nCode size (compressed): 900 bytes\n"
                    "final_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.2\n", "train.log")
    report = Report("x")
    check_log_code(code, [run], report)
    found = [f.severity for f in report.findings if f.rule == "LOG-CODE-CONSISTENCY"]
    assert found == ([severity] if severity else []), [f.message for f in report.findings]


@pytest.mark.parametrize("printed, severity", [
    # VALID: the one printed knob shows the shipped default: the run set the shipped settings through the environment
    ("knob_0:0.1 warmup:0\n", "warning"),
    # INVALID near-miss: the printed knob shows the dump's default: the unprinted ones are the dump's too
    ("knob_0:0.5 warmup:0\n", "error"),
    # INVALID near-miss: a source line that reached the output prints no value
    ("knob_0=h.knob_0 warmup=h.warmup\n", "error"),
])
def test_printed_shipped_values_explain_the_unprinted_defaults(printed, severity):
    """Printed changed settings equal to the shipped defaults show a run of the shipped settings; else it fails."""
    found, message = judge_settings_dump(_defaults_rewritten(SETTINGS), printed)
    assert found == severity, message


WRAPPED = LONG.replace("    return value + 3\n", "    return (\n        value\n        + 3\n    )\n").replace(
    "    print(helper_0(1))\n", "    print(\n        helper_0(1),\n    )\n")


@pytest.mark.parametrize("dump, severity", [
    # VALID: the shipped file is the dump run through a formatter (wrapped lines, parentheses, a trailing comma)
    (WRAPPED, "warning"),
    # INVALID near-miss: the same reformatting and one operator changed
    (WRAPPED.replace("+ 3\n", "- 3\n"), "error"),
])
def test_a_reformatted_dump_is_the_same_program(dump, severity):
    """A dump whose syntax tree equals the shipped code's is a warning; one changed token is other code."""
    ((found, message),) = judge_long_dump(dump)
    assert found == severity, message
