"""Fixtures for the reproduce, sandbox, binding and ci tests: tiny fake submissions printing baseline-dialect lines."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness.run import sandbox

# A fake train_gpt.py: baseline-dialect log lines; BEHAVIOUR (env) adds misbehaviour after training starts.
FAKE_SCRIPT = textwrap.dedent('''
    import os, subprocess, sys, time
    seed = int(os.environ["SEED"])
    print(f"seed:{seed}", flush=True)
    behaviour = os.environ.get("BEHAVIOUR", "")
    t0 = time.time()
    for s in range(1, 6):
        time.sleep(0.02)
        print(f"step:{s}/5 train_loss:{4 - 0.1 * s:.4f} train_time:{(time.time() - t0) * 1000:.0f}ms "
              f"step_avg:20.0ms", flush=True)
        if s == 2 and behaviour == "hang":
            subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                              "signal.SIG_IGN); time.sleep(300)  # " + os.environ["TOKEN"]])
            time.sleep(300)
        if s == 2 and behaviour == "connect":
            import socket
            try:
                socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), timeout=2).close()
                print("connected", flush=True)
            except OSError as exc:
                print(f"connect failed: {exc}", flush=True)
        if s == 2 and behaviour == "bash-connect":
            subprocess.run(["bash", "-c", "echo hi > /dev/tcp/127.0.0.1/" + os.environ["PORT"]])
        if s == 2 and behaviour == "write-self":
            with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md"), "w") as fh:
                fh.write("overwritten")
        if s == 2 and behaviour == "write-original":
            try:
                with open(os.path.join(os.environ["ORIGINAL"], "README.md"), "w") as fh:
                    fh.write("overwritten")
            except OSError as exc:
                print(f"write refused: {exc}", flush=True)
    print(f"stopping_early: wallclock_cap train_time:{(time.time() - t0) * 1000:.0f}ms step:5/5", flush=True)
    print("peak memory allocated: 10 MiB reserved: 10 MiB")
    with open("final_model.int8.ptz", "wb") as fh:
        fh.write(bytes([seed % 251]) * 1000)
    print("Serialized model int8+zlib: 1000 bytes")
    print("Total submission size int8+zlib: 2000 bytes")
    bpb = 1.25 + (seed % 5) * 0.001
    print(f"final_int8_zlib_roundtrip val_loss:2.1000 val_bpb:{bpb:.4f} eval_time:10ms")
    print(f"final_int8_zlib_roundtrip_exact val_loss:2.10000000 val_bpb:{bpb:.8f}")
''')

# What the fake script prints for seed 42, shipped as its log so that the folder passes the static check.
FAKE_LOG = "\n".join([
    "seed:42", *(f"step:{s}/5 train_loss:{4 - 0.1 * s:.4f} train_time:{20 * s}ms step_avg:20.0ms" for s in range(1, 6)),
    "stopping_early: wallclock_cap train_time:100ms step:5/5", "Serialized model int8+zlib: 1000 bytes",
    "Total submission size int8+zlib: 2000 bytes",
    "final_int8_zlib_roundtrip val_loss:2.1000 val_bpb:{bpb:.4f} eval_time:10ms",
    "final_int8_zlib_roundtrip_exact val_loss:2.10000000 val_bpb:{bpb:.8f}", ""])

LEVELS = ["best", "process-group"]


@pytest.fixture
def make_submission(tmp_path: Path):
    """Write a fake submission folder (train_gpt.py, submission.json, README.md) and return its path."""

    def make(name: str = "sub", claimed: float = 1.252, script: str = FAKE_SCRIPT) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "train_gpt.py").write_text(script)
        (folder / "submission.json").write_text(json.dumps({"val_bpb": claimed, "val_loss": 2.1}))
        (folder / "README.md").write_text("fake submission\n")
        (folder / "train_seed42.log").write_text(FAKE_LOG.format(bpb=claimed))
        return folder

    return make


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    """A dataset folder with one (fake) validation shard and a tokenizer file: enough for path resolution."""
    data = tmp_path / "data" / "fineweb10B_sp1024"
    data.mkdir(parents=True)
    (data / "fineweb_val_000000.bin").write_bytes(b"\0" * 2048)
    tok = tmp_path / "data" / "fineweb_1024_bpe.model"
    tok.write_bytes(b"not a real model")
    return data, tok


@pytest.fixture(params=LEVELS)
def isolation_level(request, monkeypatch) -> str:
    """Run the test under the best isolation this machine offers and under the process-group fallback."""
    if request.param == "process-group":
        monkeypatch.setenv(sandbox.FORCE_ENV, "process-group")
    else:
        monkeypatch.delenv(sandbox.FORCE_ENV, raising=False)
    sandbox.detect_isolation.cache_clear()
    yield sandbox.detect_isolation().level
    sandbox.detect_isolation.cache_clear()


@pytest.fixture
def options(dataset, tmp_path):
    """ReproduceOptions factory with small budgets and the fast single-process launcher."""
    from harness.run.outcome import ReproduceOptions

    data, tok = dataset

    def make(path: Path, **kw) -> ReproduceOptions:
        base = dict(path=path, seeds="42", train_budget=3.0, eval_budget=3.0, setup_allowance=3.0,
                    data_path=data, tokenizer=tok, results=tmp_path / "results", launcher="python")
        base.update(kw)
        return ReproduceOptions(**base)

    return make


def _git(repo: Path, *args: str) -> str:
    import subprocess

    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "HOME": str(repo), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def _write_files(repo: Path, files: dict[str, str | None]) -> None:
    """Write (or delete, with None) files relative to REPO."""
    for rel, text in files.items():
        path = repo / rel
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


@pytest.fixture
def challenge_repo(tmp_path: Path):
    """A git repository with a base commit (one old record) and a helper to make a pull-request commit."""
    repo = tmp_path / "challenge"
    old = repo / "records" / "track_10min_16mb" / "2026-01-01_Old"
    old.mkdir(parents=True)
    (old / "train_gpt.py").write_text("print('old')\n")
    (old / "README.md").write_text("old\n")
    (repo / "README.md").write_text("challenge\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")

    def pr_commit(files: dict[str, str | None]) -> str:
        """Write (or delete, with None) files relative to the repo on a branch `pr`, commit, return its sha."""
        if _git(repo, "branch", "--list", "pr") == "":
            _git(repo, "checkout", "-q", "-b", "pr")
        _write_files(repo, files)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "pr")
        return _git(repo, "rev-parse", "HEAD")

    return repo, pr_commit


@pytest.fixture
def pull_request_heads(challenge_repo):
    """The challenge repository and a helper that opens pull request N from main as refs/pull/N/head."""
    repo, _pr = challenge_repo

    def open_pr(number: int, files: dict[str, str | None]) -> str:
        _git(repo, "checkout", "-q", "-B", f"pr{number}", "main")
        _write_files(repo, files)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "--allow-empty", "-m", f"pr {number}")
        sha = _git(repo, "rev-parse", "HEAD")
        _git(repo, "update-ref", f"refs/pull/{number}/head", sha)
        _git(repo, "checkout", "-q", "main")
        return sha

    return repo, open_pr
