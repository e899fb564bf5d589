"""End-to-end tests of `reproduce` on tiny fake submissions (seconds-long budgets)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.report.reproduce import write_reproduce_reports
from harness.run.reproduce import reproduce, tree_hash


def _processes_with(token: str) -> list[int]:
    """PIDs whose command line contains `token` (the test's own marker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if token in cmd and state != "Z":
                found.append(int(entry.name))
    return found


def test_two_seeds_reproduce_and_match_the_claim(make_submission, options, tmp_path):
    """Two seeds run to a final score, each with a result.json, and the mean matches the claim."""
    sub = make_submission()
    before = tree_hash(sub)
    result = reproduce(options(sub, seeds="42,7"))
    text = write_reproduce_reports(result)
    assert result.exit_code == 0, text
    assert [r["status"] for r in result.seeds] == ["complete", "complete"]
    assert [r["final"]["val_bpb"] for r in result.seeds] == [1.252, 1.252]
    for seed in (42, 7):
        assert (tmp_path / "results" / f"seed_{seed}" / "result.json").is_file()
    assert result.facts.equivalence.equivalent is True
    assert result.report.to_dict()["facts"]["equivalence"]["equivalent"] is True
    assert tree_hash(sub) == before
    assert {"report.md", "report.html", "summary.json"} <= {p.name for p in (tmp_path / "results").iterdir()}


def test_progress_reports_each_seed(make_submission, options):
    """The progress callable hears about every seed's end."""
    heard: list[str] = []
    reproduce(options(make_submission(), seeds="1,2"), progress=heard.append)
    assert any(m.startswith("seed 1: complete") for m in heard)
    assert any(m.startswith("seed 2: complete") for m in heard)


def test_hanging_run_with_term_ignoring_child_is_killed_at_its_cap(make_submission, options, isolation_level):
    """A run that sleeps past its budget is stopped within 2 s of the cap and leaves no process behind."""
    token = f"pgolf-test-{uuid.uuid4().hex}"
    sub = make_submission()
    started = time.monotonic()
    result = reproduce(options(sub, train_budget=1.0, eval_budget=1.0, setup_allowance=1.0,
                               extra_env=("BEHAVIOUR=hang", f"TOKEN={token}")))
    wall = time.monotonic() - started
    row = result.seeds[0]
    assert row["status"] == "killed" and row["killed_reason"].startswith("training")
    assert row["timing"]["total_s"] - row["cap_s"] < 2.0
    assert row["cap_s"] <= 2.0 + 0.01 and wall < 10
    assert row["leftover_pids"] == [] and _processes_with(token) == []
    assert any(f.rule == "TRAIN-TIME-600" and f.severity == "error" for f in result.report.findings)
    assert result.exit_code == 1


class _Server:
    """A TCP server on 127.0.0.1, outside the sandbox, that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()
            except OSError:
                continue

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.close()


def test_network_attempt_never_reaches_the_server_and_is_flagged(make_submission, options, server,
                                                                 isolation_level):
    """A Python connect to a host server is refused (the server sees nothing) and flagged NETWORK-AT-EVAL."""
    result = reproduce(options(make_submission(), extra_env=("BEHAVIOUR=connect", f"PORT={server.port}")))
    time.sleep(0.3)  # let the accept loop see a connection that might have been made
    assert server.accepted == 0
    net = [f for f in result.report.findings if f.rule == "NETWORK-AT-EVAL" and f.source == "runtime"]
    assert net and net[0].severity == "error" and f"127.0.0.1:{server.port}" in net[0].message
    assert result.exit_code == 1


def test_network_namespace_stops_connects_the_audit_hook_cannot_see(make_submission, options, server):
    """A connect from bash (no Python audit hook) cannot leave the fresh network namespace."""
    from harness.run import sandbox

    sandbox.detect_isolation.cache_clear()
    if not sandbox.detect_isolation().namespaces:
        pytest.skip("no network namespace on this machine")
    result = reproduce(options(make_submission(), extra_env=("BEHAVIOUR=bash-connect", f"PORT={server.port}")))
    time.sleep(0.3)
    assert server.accepted == 0
    assert result.seeds[0]["status"] == "complete"


def test_writing_into_its_own_folder_leaves_the_original_unchanged(make_submission, options, isolation_level):
    """The run writes into its (scratch) folder; the submission folder keeps its bytes."""
    sub = make_submission()
    before = tree_hash(sub)
    result = reproduce(options(sub, extra_env=("BEHAVIOUR=write-self",)))
    assert result.seeds[0]["status"] == "complete"
    assert tree_hash(sub) == before and (sub / "README.md").read_text() == "fake submission\n"
    assert result.facts.submission_unchanged is True


def test_original_folder_is_read_only_inside_the_namespace(make_submission, options):
    """Even by absolute path, the original folder cannot be written from inside the mount namespace."""
    from harness.run import sandbox

    sandbox.detect_isolation.cache_clear()
    if not sandbox.detect_isolation().namespaces:
        pytest.skip("no mount namespace on this machine")
    sub = make_submission()
    result = reproduce(options(sub, extra_env=("BEHAVIOUR=write-original", f"ORIGINAL={sub}")))
    assert (sub / "README.md").read_text() == "fake submission\n"
    log = (result.results_dir / "seed_42" / "train.log").read_text()
    assert "write refused" in log and "Read-only file system" in log


def test_interrupted_run_resumes_from_finished_seeds(make_submission, options, tmp_path):
    """A seed with a result.json is not run again; a seed without one is."""
    sub = make_submission()
    reproduce(options(sub, seeds="42,7"))
    (tmp_path / "results" / "seed_7" / "result.json").unlink()
    heard: list[str] = []
    result = reproduce(options(sub, seeds="42,7"), progress=heard.append)
    assert any("seed 42: already done" in m for m in heard)
    assert any(m.startswith("seed 7: complete") for m in heard)
    assert result.exit_code == 0


def test_a_different_configuration_is_refused_without_overwrite(make_submission, options):
    """A second run with other budgets does not overwrite the first unless --overwrite is given."""
    sub = make_submission()
    reproduce(options(sub))
    with pytest.raises(UserError, match="different configuration"):
        reproduce(options(sub, train_budget=4.0))
    assert reproduce(options(sub, train_budget=4.0, overwrite=True)).exit_code == 0


def test_fresh_seeds_are_added_and_kept_for_a_resume(make_submission, options, tmp_path):
    """--fresh-seeds adds harness-chosen seeds, stored so that a resume re-uses them."""
    sub = make_submission()
    first = reproduce(options(sub, fresh_seeds=1))
    second = reproduce(options(sub, fresh_seeds=1))
    seeds_first = [r["seed"] for r in first.seeds]
    assert len(seeds_first) == 2 and seeds_first[0] == 42
    assert [r["seed"] for r in second.seeds] == seeds_first
    stored = json.loads((tmp_path / "results" / "config.json").read_text())
    assert stored["fresh_seeds"] == seeds_first[1:]


def test_significance_against_numbers_uses_the_check_statistics(make_submission, options):
    """--against per-seed numbers produces the same significance facts `check` would."""
    result = reproduce(options(make_submission(), seeds="42,7,3", against="1.30,1.31,1.305", policy="frontier"))
    sig = result.report.to_dict()["facts"]["significance"]
    assert sig["policy"] == "frontier" and sig["policies"]["frontier"]["passes"] is True
    assert "SIGNIFICANCE" in result.report.checked


def test_html_report_is_self_contained(make_submission, options, tmp_path):
    """The HTML page has inline SVG charts and no external reference."""
    write_reproduce_reports(reproduce(options(make_submission(), seeds="42,7", against="1.30,1.31")))
    page = (tmp_path / "results" / "report.html").read_text()
    assert page.count("<svg") == 2 and "<polyline" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert "src=" not in page and "<link" not in page


@pytest.mark.parametrize("kwargs, message", [
    ({"seeds": "42,x"}, "comma-separated integers"),
    ({"seeds": "42,42"}, "repeated"),
    ({"seeds": ""}, "empty"),
    ({"seeds": " , "}, "empty"),
    ({"seeds": "42,,7"}, "entry is empty"),
    ({"seeds": "42,"}, "entry is empty"),
    ({"fresh_seeds": -1}, "negative"),
    ({"nproc": 3}, "must divide 8"),
    ({"extra_env": ("NOEQUALS",)}, "KEY=VALUE"),
    ({"train_budget": 0.0}, "positive"),
])
def test_bad_options_are_one_line_user_errors(make_submission, options, kwargs, message):
    """Bad options raise UserError with a message naming the problem."""
    with pytest.raises(UserError, match=message):
        reproduce(options(make_submission(), **kwargs))


def test_missing_submission_is_a_user_error(options, tmp_path):
    """A path that is not a submission folder is a UserError."""
    with pytest.raises(UserError, match="no such submission folder"):
        reproduce(options(tmp_path / "absent"))


def test_results_inside_the_submission_are_refused(make_submission, options):
    """Writing results into the submission folder would modify it: refused."""
    sub = make_submission()
    with pytest.raises(UserError, match="inside the submission"):
        reproduce(options(sub, results=sub / "results"))


def test_memory_cap_stops_a_run_that_allocates_too_much(make_submission, options, isolation_level):
    """A run that allocates past --memory-gb does not finish (cgroup OOM kill or RLIMIT_AS MemoryError)."""
    hog = "import os\nprint('step:1/2 train_loss:3.0 train_time:1ms', flush=True)\nx = bytearray(600 * 2**20)\n" \
          "x[::4096] = b'1' * len(x[::4096])\nprint('final_int8_zlib_roundtrip_exact val_loss:2.1 val_bpb:1.25')\n"
    result = reproduce(options(make_submission(script=hog), memory_gb=0.25))
    row = result.seeds[0]
    assert row["status"] == "failed" and row["final"] is None
    failed = [f for f in result.report.errors if f.rule == "SUBMISSION-FORMAT" and f.source == "runtime"]
    assert result.exit_code == 1 and failed and "did not run to a final score" in failed[0].message


@pytest.mark.slow
def test_torchrun_with_two_processes(make_submission, options):
    """The challenge launcher (torchrun, c10d rendezvous on a harness-chosen loopback port) works in the sandbox."""
    result = reproduce(options(make_submission(), launcher="torchrun", nproc=2, setup_allowance=30.0))
    assert result.seeds[0]["status"] == "complete" and not [f for f in result.report.findings if f.source == "runtime"]


@pytest.mark.slow
def test_reference_submission_cpu_smoke(tmp_path):
    """Bare `reproduce` re-runs the shipped cpu-smoke reference for 2 seeds under a small budget, folder untouched."""
    from harness.run.outcome import ReproduceOptions
    from harness.run.reproduce import DEFAULT_SUBMISSION

    if not (DEFAULT_SUBMISSION / "train_gpt.py").is_file():
        pytest.skip("submissions/my_run has not been trained yet")
    # A 10-s training cap and no TTT pass keep two seeds to about a minute each on 2 cores.
    result = reproduce(ReproduceOptions(seeds="42,7", results=tmp_path / "results", overwrite=True,
                                        extra_env=("MAX_WALLCLOCK_SECONDS=10", "TTT_ENABLED=0"),
                                        train_budget=60, eval_budget=120))
    assert [row["status"] for row in result.seeds] == ["complete", "complete"], result.seeds[-1]["tail"]
    assert result.facts.submission_unchanged is True


@pytest.mark.parametrize("run_env, extra, expect", [
    ({"BEHAVIOUR": "write-self"}, (), "write-self"),
    ({"BEHAVIOUR": "write-self"}, ("BEHAVIOUR=",), ""),
    ({"SEED": "999"}, (), None),
])
def test_declared_run_env_applies_under_the_challenge_variables(make_submission, run_env, extra, expect):
    """submission.json run_env sets configuration; --env overrides it and it can never override SEED."""
    from harness.run.outcome import ReproduceOptions
    from harness.run.seed import _run_env, declared_env

    sub = make_submission()
    claims = json.loads((sub / "submission.json").read_text())
    (sub / "submission.json").write_text(json.dumps({**claims, "run_env": run_env}))
    env = _run_env(ReproduceOptions(extra_env=extra), 42, "r", sub, None, None, 1, declared_env(sub))
    assert env["SEED"] == "42"
    assert env.get("BEHAVIOUR") == expect


@pytest.mark.parametrize("seeds", ["", "42,,7", "42,42"])
def test_bad_seeds_never_touch_existing_results(make_submission, options, tmp_path, seeds):
    """A usage error in --seeds leaves an earlier results folder exactly as it was, even with overwrite."""
    sub = make_submission()
    reproduce(options(sub))
    before = tree_hash(tmp_path / "results")
    with pytest.raises(UserError):
        reproduce(options(sub, seeds=seeds, overwrite=True))
    assert tree_hash(tmp_path / "results") == before


@pytest.mark.parametrize("claimed, exit_code, rule", [(1.252, 0, None), (1.30, 1, "LOG-CODE-CONSISTENCY"),
                                                      (1.2535, 0, None), (1.2545, 1, "LOG-CODE-CONSISTENCY")])
def test_a_claim_the_rerun_does_not_reproduce_fails(make_submission, options, claimed, exit_code, rule):
    """A re-run mean beyond the tolerance from the claim is an error and exit 1; within it, a pass."""
    sub = make_submission(claimed=claimed)  # its shipped log agrees with the claim; the re-run gives 1.252
    result = reproduce(options(sub))
    assert result.exit_code == exit_code, result.facts.reason
    errors = [f.rule for f in result.report.errors]
    assert errors == ([rule] if rule else [])
    assert (rule or "reproduced the claim") in result.facts.reason


def test_a_folder_with_only_a_script_fails_the_static_check_first(options, tmp_path):
    """A bare script that prints a final score, with no claims, README or logs, fails: the static check runs first."""
    sub = tmp_path / "bare"
    sub.mkdir()
    (sub / "train_gpt.py").write_text("print('final_int8_zlib_roundtrip_exact val_loss:0.5 val_bpb:0.3')\n")
    result = reproduce(options(sub))
    assert result.exit_code == 1
    assert result.facts.reason.startswith("static check: SUBMISSION-FORMAT")
    assert any("claims no val_bpb" in c for c in result.report.could_not_check)


def test_a_dying_run_reports_the_scripts_own_exception(make_submission, options):
    """A run that raises is a SUBMISSION-FORMAT error whose message is the script's exception, at its log line."""
    dies = "print('step:1/2 train_loss:3.0 train_time:1ms', flush=True)\nimport flash_attn_interface_missing\n"
    result = reproduce(options(make_submission(script=dies)))
    failed = [f for f in result.report.errors if f.source == "runtime"]
    assert result.exit_code == 1 and len(failed) == 1
    assert "ModuleNotFoundError: No module named 'flash_attn_interface_missing'" in failed[0].message
    log = (Path(result.results_dir) / "seed_42" / "train.log").read_text().splitlines()
    assert log[failed[0].line - 1].startswith("ModuleNotFoundError")


def test_a_seed_sees_no_secret_of_the_harness_and_its_home_is_the_work_folder(make_submission, options,
                                                                                monkeypatch):
    """The run's environment is the allow-list plus the challenge's variables: a harness token never reaches it."""
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_not_for_the_run")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not_for_the_run")
    probe = ("import os\nprint('leak:' + ','.join(sorted(k for k in os.environ if k in ('GITHUB_TOKEN', 'AWS_SECRET_ACCESS_KEY'))))\n"
             "print('home_is_cwd:' + str(os.path.realpath(os.environ['HOME']) == os.path.realpath(os.getcwd())))\n"
             "print('seed:' + os.environ['SEED'])\n")
    result = reproduce(options(make_submission(script=probe)))
    log = (Path(result.results_dir) / "seed_42" / "train.log").read_text()
    assert "leak:\n" in log and "home_is_cwd:True" in log and "seed:42" in log
