"""Hostile scripts (tests/harness/repro/hostile/) against each sandbox level: what each level stops, with evidence.

A case a level cannot stop is a strict xfail whose reason names the level, so a level that starts stopping it (or a
test that stops checking) turns the suite red. docs/sandbox.md has the table these tests measure.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from pathlib import Path

import pytest

from harness.run import bwrap, sandbox

CHECKOUT = Path(__file__).resolve().parents[3]
MIB = 2**20
OPEN_FILES = "the host's files stay visible, and writable to a root run"
NO_NETNS = "no network namespace: only the audit hook stops Python's own sockets"

# (case, level) -> why that level cannot stop the case.
GAPS = {
    **{(case, level): OPEN_FILES for case in ("write_checkout", "read_checkout", "write_outside", "read_home",
                                              "tamper_results", "unix_socket") for level in ("namespaces",
                                                                                            "process-group")},
    ("remount_inputs", "namespaces"): "root keeps CAP_SYS_ADMIN and remounts the read-only bind writable",
    ("remount_inputs", "process-group"): "no read-only binds",
    ("fill_tmp", "namespaces"): "/tmp is the host's (RLIMIT_FSIZE caps each file, not their number)",
    ("fill_tmp", "process-group"): "/tmp is the host's (RLIMIT_FSIZE caps each file, not their number)",
    ("fill_shm", "namespaces"): "/dev/shm is the host's (RLIMIT_FSIZE caps each file, not their number)",
    ("fill_shm", "process-group"): "/dev/shm is the host's (RLIMIT_FSIZE caps each file, not their number)",
    ("read_env", "process-group"): "/proc shows the harness's own environment as it started",
    ("fork_bomb", "process-group"): "no cgroups at the forced fallback, and RLIMIT_NPROC does not bind root",
    **{(case, "process-group"): NO_NETNS for case in ("ipv4", "ipv6", "abstract_socket", "dns")},
}


@pytest.fixture
def gaps(hostile, request):
    """Apply the strict xfail of GAPS for this test's case at this level."""
    case = request.node.callspec.params.get("case", request.node.originalname.removeprefix("test_"))
    hostile.gap(GAPS.get((case, hostile.level)))
    return case


def test_write_checkout(hostile, gaps):
    """A run cannot create a file in the harness checkout."""
    planted = CHECKOUT / f".pgolf-hostile-{hostile.token}"
    hostile.host_paths.append(planted)
    run = hostile.run("write_checkout.py", {"checkout": str(CHECKOUT)})
    assert "refused:" in run.text
    assert not planted.exists() and run.leaks() == []


def test_read_checkout(hostile, gaps):
    """A run sees neither the checkout's names nor its files."""
    run = hostile.run("read_checkout.py", {"checkout": str(CHECKOUT)})
    first_line = (CHECKOUT / "pyproject.toml").read_text().splitlines()[0]
    listed = [json.loads(line.split(" ", 2)[2]) for line in run.leaks() if line.startswith("LEAK listing")]
    assert first_line not in run.text
    assert not set(os.listdir(CHECKOUT)) & set(*listed or [[]])


def test_write_outside(hostile, gaps):
    """A run cannot create files in /, /etc, /root, the checkout's parent or /var/tmp."""
    outside = ["/", "/etc", str(Path.home()), str(CHECKOUT.parent), "/var/tmp"]
    planted = [Path(d, f".pgolf-hostile-{hostile.token}") for d in outside]
    hostile.host_paths += planted
    run = hostile.run("write_outside.py", {"outside": outside})
    # A checkout under /tmp has its parent inside the run's private /tmp: a write there succeeds, stays private and
    # is judged by the host file alone.
    private = tuple(f"LEAK wrote {p}" for p in planted if os.path.realpath(p.parent).startswith(("/tmp", "/dev/shm")))
    assert [p for p in planted if p.exists()] == []
    assert [leak for leak in run.leaks() if not (hostile.level == "bubblewrap" and leak.startswith(private))] == []


def test_read_home(hostile, gaps):
    """A run lists none of the home directory but the Python environment's folders, and reads no file outside its
    folders."""
    home = Path(os.path.realpath(Path.home()))
    needed = {p.relative_to(home).parts[0] for p in bwrap.python_paths() if home in p.parents}
    run = hostile.run("read_home.py", {"home_dir": str(home), "secret_file": str(hostile.secret_file)})
    listed = [json.loads(line.split(" ", 2)[2]) for line in run.leaks() if line.startswith("LEAK home")]
    assert hostile.token not in run.text
    assert set(*listed or [[]]) <= needed


def test_read_env(hostile, gaps):
    """Secrets in the harness's environment reach neither the run's environment nor any /proc/*/environ it reads."""
    secret = f"s3cr3t-{hostile.token}"
    names = ("GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "PGOLF_TEST_API_KEY", "TORCH_HUB_TOKEN")
    run = hostile.run_from_harness("read_env.py", dict.fromkeys(names, secret))
    assert run.lines[-1] == "done" and secret not in run.text


def test_tamper_results(hostile, gaps):
    """A run cannot overwrite its own seed's log, another seed's log or the results' report."""
    run = hostile.run("tamper_results.py", {"results_files": [str(p) for p in hostile.results_files]})
    assert "wrote" in run.text or "refused:" in run.text
    assert {p: p.read_text() for p in hostile.results_files} == hostile.results_files


def test_remount_inputs(hostile, gaps):
    """A run cannot remount its read-only submission writable and change it."""
    run = hostile.run("remount_inputs.py", {"submission": str(hostile.submission)})
    assert (hostile.submission / "README.md").read_text() == "fake submission\n"
    assert run.leaks() == []


def test_fork_bomb(hostile, gaps):
    """The process cap refuses forks past max_procs, and the cgroup counts the refusals."""
    run = hostile.run("fork_bomb.py", {"limit": 300}, max_procs=64)
    forked = int(run.text.split("forked ", 1)[1].split()[0])
    assert run.leaks() == [] and forked < 64
    assert run.result.cap_hits.get("procs", 0) > 0
    assert run.result.isolation["caps"]["procs"]["limit"] == 64
    assert run.result.isolation["level"].startswith(hostile.level)


def test_fork_bomb_leaves_no_process(hostile):
    """Teardown after a fork bomb leaves no process of the tree, capped or not."""
    from tests.harness.repro.test_reproduce import _processes_with

    run = hostile.run("fork_bomb.py", {"limit": 300}, max_procs=64)
    assert "forked" in run.text
    assert run.result.leftover_pids == [] and _processes_with(hostile.token) == []


def test_memory_bomb(hostile, gaps):
    """The memory cap stops a run that allocates past memory_bytes (cgroup OOM kill, or MemoryError)."""
    run = hostile.run("memory_bomb.py", {"limit_mb": 1024}, memory_bytes=256 * MIB)
    steps = [int(line.split()[1]) for line in run.lines if line.startswith("allocated ")]
    assert run.leaks() == [] and max(steps, default=0) <= 256 and run.result.returncode != 0
    if run.result.isolation["caps"]["memory"]["by"] == "rlimit-as":
        assert "MemoryError" in run.text
    else:
        assert run.result.cap_hits["memory"] >= 1


@pytest.mark.parametrize("case, folder", [("fill_tmp", "/tmp"), ("fill_shm", "/dev/shm")])
def test_fill_private_tmp(hostile, gaps, case, folder):
    """/tmp and /dev/shm are private tmpfs mounts of tmp_bytes: a fill stops there with ENOSPC."""
    fill_dir = Path(folder, hostile.token)
    hostile.host_paths.append(fill_dir)
    run = hostile.run("fill_disk.py", {"fill_dir": str(fill_dir), "stop_mb": 256, "file_mb": 32},
                      tmp_bytes=64 * MIB, disk_bytes=64 * MIB)
    written = int(run.text.split("written ", 1)[1].split()[0])
    assert run.leaks() == [] and f"errno {errno.ENOSPC}" in run.text and written <= 64 * MIB
    assert not fill_dir.exists()


def test_fill_work_folder(hostile, gaps):
    """No file grows past disk_bytes (EFBIG, RLIMIT_FSIZE) and the work folder's growth past it kills the run."""
    run = hostile.run("fill_disk.py", {"fill_dir": "fill", "sparse_at": 64 * MIB, "stop_mb": 512, "file_mb": 32,
                                       "wait_s": 60}, disk_bytes=64 * MIB)
    assert f"sparse write at {64 * MIB} refused: errno {errno.EFBIG}" in run.text
    assert run.result.killed_reason is not None and run.result.killed_reason.startswith("disk cap")
    assert "wrote everything" not in run.text
    assert run.result.isolation["caps"]["disk"]["limit"] == 64 * MIB


def _net(kind: str, listeners) -> list:
    """The targets of one network case."""
    if kind in ("ipv4", "udp"):
        port = listeners.port("ipv4" if kind == "ipv4" else "udp")
        return [["127.0.0.1", port]] + ([[listeners.host_ip, port]] if listeners.host_ip else [])
    if kind == "ipv6":
        if "ipv6" not in listeners.socks:
            pytest.skip("no IPv6 on this host")
        return [["::1", listeners.port("ipv6")]]
    if kind == "unix":
        return [listeners.socks["unix"].getsockname()]
    return ["@" + listeners.socks["abstract"].getsockname()[1:].decode()]


@pytest.mark.parametrize("case, kind", [("ipv4", "ipv4"), ("ipv6", "ipv6"), ("unix_socket", "unix"),
                                        ("abstract_socket", "abstract")])
def test_connect_to_the_host(hostile, gaps, listeners, case, kind):
    """Neither Python's sockets nor a child without the audit hook reach a host listener; Python's IP attempts are
    recorded as refused."""
    targets = _net(kind, listeners)
    run = hostile.run("connect.py", {"net": [[kind, targets]]})
    assert "bypass:" in run.text and not listeners.reached(kind) and run.leaks() == []
    if kind in ("ipv4", "ipv6"):
        recorded = {(a["target"], a["allowed"]) for a in run.result.network_attempts}
        assert all((f"{host}:{port}", False) in recorded for host, port in targets)


def test_dns(hostile, gaps, listeners):
    """A name lookup is refused and recorded; a raw DNS query to a host UDP port never arrives."""
    name = f"{hostile.token}.example.com"
    run = hostile.run("connect.py", {"net": [["dns", [name]], ["udp", _net("udp", listeners)]]})
    assert run.leaks() == [] and not listeners.reached("udp")
    assert {"kind": "socket.getaddrinfo", "target": name, "allowed": False}.items() <= \
        next((a for a in run.result.network_attempts if a["target"] == name), {}).items()


@pytest.mark.parametrize(("name", "kept"), [
    ("PATH", True), ("LANG", True), ("LC_ALL", True), ("OMP_NUM_THREADS", True), ("CUDA_VISIBLE_DEVICES", True),
    ("NCCL_DEBUG", True), ("TORCH_LOGS", True), ("PYTORCH_CUDA_ALLOC_CONF", True), ("TRITON_CACHE_DIR", True),
    ("GITHUB_TOKEN", False), ("AWS_SECRET_ACCESS_KEY", False), ("HF_TOKEN", False), ("TORCH_HUB_TOKEN", False),
    ("NCCL_API_KEY", False), ("CI", False), ("GITHUB_ACTIONS", False), ("SSH_AUTH_SOCK", False),
    ("PYTHONPATH", False), ("PGOLF_SANDBOX", False), ("HOME", False), ("TMPDIR", False),
])
def test_base_env_keeps_only_the_allow_list(name, kept):
    """base_env keeps locale, thread, device and torch/NCCL/Triton configuration, and drops everything else."""
    assert (name in sandbox.base_env({name: "x"})) is kept


def test_base_env_sets_home_and_the_interpreter_first_on_path(tmp_path):
    """HOME is the given folder, and the running interpreter's folder leads PATH."""
    env = sandbox.base_env({"PATH": "/usr/bin:/bin", "HOME": "/root"}, home=tmp_path)
    assert env["HOME"] == str(tmp_path)
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)


def test_python_paths_never_cover_hidden_or_private_folders(monkeypatch):
    """A sys.path entry that is the checkout, inside it, the home directory, / or /tmp is not bound."""
    for entry in (str(CHECKOUT), str(CHECKOUT / "tests"), str(Path.home()), "/", "/tmp"):
        monkeypatch.syspath_prepend(entry)
    paths = bwrap.python_paths()
    assert Path(os.path.realpath(sys.prefix)) in paths
    home, covered = Path(os.path.realpath(Path.home())), [CHECKOUT, CHECKOUT / "tests", Path("/"), Path("/tmp")]
    assert not [p for p in paths if p in covered or p == home]


def test_stale_run_cgroups_of_dead_harnesses_are_swept(tmp_path):
    """An empty run folder whose harness process is gone is removed; a live harness's folder is kept."""
    from harness.run.cgroups import sweep_stale

    dead, live = tmp_path / "pgolf-999999999-deadbeef", tmp_path / f"pgolf-{os.getpid()}-cafe"
    dead.mkdir()
    live.mkdir()
    sweep_stale(tmp_path)
    assert not dead.exists() and live.exists()


TORCHRUN_SCRIPT = """
import torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.ones(1) * (dist.get_rank() + 1)
dist.all_reduce(t)
print(f"rank {dist.get_rank()} sum {t.item():g}", flush=True)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_torchrun_gloo_all_reduce_inside_bubblewrap(tmp_path, monkeypatch):
    """Two torchrun ranks rendezvous on loopback and all-reduce over Gloo inside the bubblewrap level."""
    monkeypatch.setenv(sandbox.FORCE_ENV, "bubblewrap")
    sandbox.detect_isolation.cache_clear()
    if not sandbox.detect_isolation().bubblewrap:
        pytest.skip("bubblewrap does not work on this machine")
    (tmp_path / "ar.py").write_text(TORCHRUN_SCRIPT)
    port = sandbox.free_port()
    argv = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
            "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "ar.py"]
    lines: list[str] = []
    spec = sandbox.SandboxSpec(argv, tmp_path, sandbox.base_env(home=tmp_path), allowed_ports=(port,))
    result = sandbox.run_sandboxed(spec, lambda _t, line: lines.append(line), lambda _now: None)
    sandbox.detect_isolation.cache_clear()
    assert result.returncode == 0, lines[-10:]
    # Both ranks share one stdout pipe, so their lines can interleave within one read: match the records, not lines.
    assert sorted(re.findall(r"rank (\d) sum (\d+)", "".join(lines))) == [("0", "3"), ("1", "3")]
    assert result.isolation["level"] == "bubblewrap"
