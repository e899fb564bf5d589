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


# --- hostile scripts (test_sandbox_hostile.py) ----------------------------------------------------------------

HOSTILE_DIR = Path(__file__).resolve().parent / "hostile"
HOSTILE_LEVELS = ["bubblewrap", "namespaces", "process-group"]


@pytest.fixture(params=HOSTILE_LEVELS)
def hostile_level(request, monkeypatch) -> str:
    """Force each sandbox level in turn; skip one this machine cannot provide."""
    monkeypatch.setenv(sandbox.FORCE_ENV, request.param)
    sandbox.detect_isolation.cache_clear()
    iso = sandbox.detect_isolation()
    if request.param == "bubblewrap" and not iso.bubblewrap:
        pytest.skip("bubblewrap does not work on this machine")
    if request.param == "namespaces" and (iso.bubblewrap or not iso.namespaces):
        pytest.skip("no unshare namespaces on this machine")
    yield request.param
    sandbox.detect_isolation.cache_clear()


class HostileRun:
    """One hostile script's run: the sandbox result and its output lines."""

    def __init__(self, result: sandbox.SandboxResult | None, lines: list[str]) -> None:
        self.result, self.lines = result, lines
        self.text = "\n".join(lines)

    def leaks(self) -> list[str]:
        """The lines where the script says it obtained something."""
        return [line for line in self.lines if line.startswith("LEAK")]


class Hostile:
    """A seed's layout (results/seed_1/work is the run's folder), files the run must not reach, and a runner."""

    def __init__(self, root: Path, level: str, request) -> None:
        import uuid

        self.root, self.level, self.request = root, level, request
        self.token = f"pgolf-hostile-{uuid.uuid4().hex[:12]}"
        self.results = root / "results"
        self.work = self.results / "seed_1" / "work"
        self.work.mkdir(parents=True)
        self.results_files = {self.results / "seed_1" / "train.log": "seed 1 log\n",
                              self.results / "seed_2" / "train.log": "seed 2 log\n",
                              self.results / "result.json": "{}\n"}
        self.submission = root / "sub"
        self.home = root / "home"
        self.secret_file = self.home / "secret.txt"
        _write_files(root, {str(p.relative_to(root)): t for p, t in self.results_files.items()}
                     | {"sub/README.md": "fake submission\n", "home/secret.txt": f"secret {self.token}\n"})
        self.host_paths: list[Path] = []  # what a run that was not stopped leaves on the host: removed at teardown

    def run(self, script: str, targets: dict | None = None, **spec_kw) -> HostileRun:
        """Copy hostile/SCRIPT into the work folder and run it there with TARGETS (JSON in $HOSTILE)."""
        import shutil
        import sys

        shutil.copyfile(HOSTILE_DIR / script, self.work / script)
        env = sandbox.base_env(home=self.work) | {"HOSTILE": json.dumps({"token": self.token, **(targets or {})})}
        spec = sandbox.SandboxSpec([sys.executable, script, self.token], self.work, env,
                                   read_only=[self.submission], **spec_kw)
        lines: list[str] = []
        result = sandbox.run_sandboxed(spec, lambda _t, line: lines.append(line), lambda _now: None)
        return HostileRun(result, lines)

    def run_from_harness(self, script: str, environ: dict[str, str]) -> HostileRun:
        """Run hostile/SCRIPT from a fresh harness process whose own environment (from its start) is ENVIRON."""
        import os
        import shutil
        import subprocess
        import sys

        shutil.copyfile(HOSTILE_DIR / script, self.work / script)
        driver = ("import sys; from pathlib import Path; from harness.run import sandbox; w = Path(sys.argv[1]); "
                  "spec = sandbox.SandboxSpec([sys.executable, sys.argv[2]], w, sandbox.base_env(home=w)); "
                  "r = sandbox.run_sandboxed(spec, lambda t, l: print(l, flush=True), lambda n: None)")
        root = Path(__file__).resolve().parents[3]
        env = {**os.environ, **environ, sandbox.FORCE_ENV: self.level, "PYTHONPATH": str(root)}
        proc = subprocess.run([sys.executable, "-c", driver, str(self.work), script], cwd=root, env=env,
                              capture_output=True, text=True, timeout=120, check=True)
        return HostileRun(None, proc.stdout.splitlines())

    def gap(self, reason: str | None) -> None:
        """Mark the test an expected failure at this level (strict): the level cannot stop the case."""
        if reason:
            self.request.applymarker(pytest.mark.xfail(reason=f"{self.level} level: {reason}", strict=True))


@pytest.fixture
def hostile(tmp_path, hostile_level, request):
    """A Hostile layout at one forced level; whatever a run could plant on the host is removed afterwards."""
    import shutil

    h = Hostile(tmp_path, hostile_level, request)
    yield h
    for path in h.host_paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


class Listeners:
    """Host sockets a run must not reach: TCP on 0.0.0.0 and [::], UDP on 0.0.0.0, a Unix socket in a host folder,
    an abstract Unix socket. `reached(kind)` says whether anything arrived (a connection waits in the backlog even
    after its client is gone)."""

    def __init__(self, token: str) -> None:
        import socket
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="pgh-"))  # short: a Unix socket path has 108 bytes at most
        self.socks: dict[str, socket.socket] = {}
        self._listen("ipv4", socket.AF_INET, socket.SOCK_STREAM, ("0.0.0.0", 0))
        self._listen("udp", socket.AF_INET, socket.SOCK_DGRAM, ("0.0.0.0", 0))
        self._listen("unix", socket.AF_UNIX, socket.SOCK_STREAM, str(self.folder / "s.sock"))
        self._listen("abstract", socket.AF_UNIX, socket.SOCK_STREAM, "\0" + token)
        try:
            self._listen("ipv6", socket.AF_INET6, socket.SOCK_STREAM, ("::", 0))
        except OSError:
            pass  # no IPv6 on this host
        self.host_ip = self._host_ip()

    def _listen(self, kind: str, family, type_, address) -> None:
        import socket

        s = socket.socket(family, type_)
        s.bind(address)
        if type_ == socket.SOCK_STREAM:
            s.listen(16)
        s.setblocking(False)
        self.socks[kind] = s

    @staticmethod
    def _host_ip() -> str | None:
        """A non-loopback address of this host (none sent: a UDP connect only picks the route)."""
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect(("192.0.2.1", 9))
                ip = s.getsockname()[0]
            except OSError:
                return None
        return None if ip.startswith("127.") else ip

    def port(self, kind: str) -> int:
        return self.socks[kind].getsockname()[1]

    def reached(self, kind: str) -> bool:
        import socket

        try:
            if self.socks[kind].type == socket.SOCK_DGRAM:
                self.socks[kind].recv(4096)
            else:
                self.socks[kind].accept()[0].close()
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        import shutil

        for s in self.socks.values():
            s.close()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def listeners(hostile):
    """Host sockets a hostile run tries to reach."""
    out = Listeners(hostile.token)
    yield out
    out.close()
