"""Run one untrusted command under harness control: no network, caps on memory, processes and disk, and a teardown
that leaves nothing. docs/sandbox.md has the table of what each level hides and blocks.

Isolation is the strongest this machine allows, detected once and reported with every result:

* ``bubblewrap``: ``bwrap`` (harness/run/bwrap.py) gives the command a fresh root in which only the system, the
  Python environment, its read-only inputs and its writable folders exist, with a private size-capped /tmp and
  /dev/shm, every namespace unshared (loopback only), every capability dropped and no nested user namespaces.
* ``namespaces``: ``unshare --net --pid --fork --kill-child --mount-proc``. The command is PID 1 of a fresh PID
  namespace, so killing it takes the whole tree down at once; the fresh network namespace has only loopback (brought
  up so torchrun's local rendezvous works); read-only paths are bind-mounted read-only inside the mount namespace.
  The rest of the host's files stay visible and writable to a root command.
* ``cgroup`` / ``process-group``: no namespaces: own session, ``killpg(SIGKILL)``, a kill cgroup where one exists.

At every level, the per-run cgroups (harness/run/cgroups.py) kill the tree and cap memory (``memory.max`` v2 /
``memory.limit_in_bytes`` v1, else RLIMIT_AS) and processes (``pids.max``; RLIMIT_NPROC does not bind root), and
the work folder's growth is capped (RLIMIT_FSIZE per file, plus a du-style poll that kills with "disk cap ...").
An audit hook injected through ``sitecustomize.py`` records every socket connect / DNS lookup of Python code in the
tree and refuses those outside the allowed loopback ports, so an attempt is evidence even where no network namespace
exists.

The command gets ``spec.env`` exactly (plus the audit hook's variables and PYTHONUNBUFFERED): callers build it from
``base_env()``, the allow-list that keeps tokens and cloud/CI variables of the harness's environment out, and add
the run's own variables on top. ``PGOLF_SANDBOX`` (FORCE_ENV) caps the level: ``bubblewrap``, ``namespaces`` or
``process-group`` (tests, benchmarks).
"""

from __future__ import annotations

import json
import os
import queue
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from harness.run.bwrap import bwrap_argv, bwrap_works
from harness.run.cgroups import CgroupSupport, RunCgroups, detect_cgroups

FORCE_ENV = "PGOLF_SANDBOX"  # "bubblewrap", "namespaces" or "process-group": the strongest level detection may pick
LEVELS = ("bubblewrap", "namespaces", "process-group")
POLL_S = 0.05  # how often the deadline callback runs; bounds the overshoot of a cap
DEFAULT_TMP_BYTES = 2 * 2**30  # the private /tmp (and /dev/shm): torch.compile's caches fit, a fill does not
DEFAULT_DISK_BYTES = 16 * 2**30  # growth of the writable folders: checkpoints and logs of a run, not a disk fill
DEFAULT_MAX_PROCS = 4096  # pids.max counts threads: 8 torchrun ranks with compile workers use about a thousand

# Runs inside the namespaces before the command: loopback up, read-only binds, then exec. Self-contained (no harness
# import) because it runs with the sandbox's interpreter and environment.
_INIT_CODE = r"""
import ctypes, fcntl, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
req = struct.pack("16sH14x", b"lo", 0)
flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, req))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))
s.close()
sep = sys.argv.index("--")
for path in sys.argv[1:sep]:
    p = path.encode()
    if libc.mount(p, p, None, 4096 | 16384, None) != 0:
        sys.exit("pgolf sandbox: cannot bind " + path)
    if libc.mount(p, p, None, 4096 | 32 | 1 | 16384, None) != 0:
        sys.exit("pgolf sandbox: cannot remount read-only " + path)
os.execvp(sys.argv[sep + 1], sys.argv[sep + 1:])
"""

# Installed in every Python process of the tree through PYTHONPATH. Records and refuses network use.
_SITECUSTOMIZE = r'''
"""pgolf harness: record and refuse network use (sys.addaudithook)."""
import json as _json, os as _os, socket as _socket, sys as _sys, time as _time
_LOG = _os.environ.get("PGOLF_NET_AUDIT")
_ALLOW = {p for p in _os.environ.get("PGOLF_NET_ALLOW_PORTS", "").split(",") if p}
_LOCAL = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}
def _record(kind, target, allowed):
    try:
        with open(_LOG, "a", encoding="utf-8") as fh:
            fh.write(_json.dumps({"kind": kind, "target": str(target), "allowed": allowed, "pid": _os.getpid(),
                                  "t": _time.time()}) + "\n")
    except Exception:
        pass
def _hook(event, args):
    if event in ("socket.connect", "socket.sendto"):
        sock, addr = args[0], args[1]
        if getattr(sock, "family", None) not in (_socket.AF_INET, _socket.AF_INET6):
            return
        host, port = (addr[0], addr[1]) if isinstance(addr, tuple) and len(addr) >= 2 else (addr, None)
        allowed = host in _LOCAL or str(host).startswith("127.")
        allowed = allowed and str(port) in _ALLOW
        _record(event, "%s:%s" % (host, port), allowed)
        if not allowed:
            raise PermissionError("network access is disabled by the pgolf harness")
    elif event == "socket.getaddrinfo":
        host = args[0]
        host = host.decode() if isinstance(host, bytes) else host
        if host not in _LOCAL and not str(host).startswith("127."):
            _record(event, host, False)
            raise PermissionError("name resolution is disabled by the pgolf harness")
if _LOG:
    _sys.addaudithook(_hook)
'''


@dataclass(frozen=True)
class Isolation:
    """What this machine lets the harness use; `level` names the strongest isolation in use."""

    bubblewrap: bool  # a fresh root through bwrap (harness/run/bwrap.py)
    namespaces: bool  # PID + network + mount namespaces through unshare
    map_root: bool  # unshare needs --map-root-user (not running as root)
    cgroups: CgroupSupport = field(default_factory=CgroupSupport)

    @property
    def level(self) -> str:
        if self.bubblewrap:
            return "bubblewrap"
        if self.namespaces:
            return "namespaces" + ("+cgroup" if self.cgroups.kill_parent else "")
        return "cgroup" if self.cgroups.kill_parent else "process-group"

    def describe(self) -> dict[str, object]:
        ns = self.bubblewrap or self.namespaces
        return {"level": self.level, "network_namespace": ns, "pid_namespace": ns, "read_only_binds": ns,
                "hidden_host": self.bubblewrap, "private_tmp": self.bubblewrap,
                "cgroup_kill": self.cgroups.kill_parent is not None, "memory_cap": self.cgroups.memory,
                "process_cap": self.cgroups.pids, "disk_cap": "rlimit-fsize+poll", "network_audit_hook": True}


def _namespaces_work(map_root: bool) -> bool:
    if shutil.which("unshare") is None:
        return False
    cmd = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    cmd += ["--map-root-user"] if map_root else []
    cmd += [sys.executable, "-c", _INIT_CODE, "--", "true"]
    try:
        return subprocess.run(cmd, check=False, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@lru_cache(maxsize=1)
def detect_isolation() -> Isolation:
    """Probe the machine once: bubblewrap, namespaces, cgroups; fall back step by step (FORCE_ENV caps the level)."""
    forced = os.environ.get(FORCE_ENV, "")
    if forced == "process-group":
        return Isolation(False, False, False, CgroupSupport())
    map_root = os.geteuid() != 0
    bubblewrap = forced != "namespaces" and bwrap_works()
    namespaces = _namespaces_work(map_root)
    return Isolation(bubblewrap, namespaces, map_root, detect_cgroups())


# The environment a run may inherit from the harness: locale, terminal, threads, devices, and the variables that
# configure torch, NCCL, Gloo and Triton. A name that looks secret-bearing is dropped even under these prefixes.
ENV_NAMES = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "USER", "LOGNAME", "PYTHONHASHSEED",
                       "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES"})
ENV_PREFIXES = ("LC_", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "CUDA_", "NCCL_", "GLOO_", "TORCH_", "TORCHINDUCTOR_",
                "TORCHDYNAMO_", "PYTORCH_", "TRITON_")
SECRET_RE = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|PRIVATE|AUTH|COOKIE|(^|_)(API_?)?KEY(_|$)", re.IGNORECASE)


def base_env(environ: Mapping[str, str] = os.environ, home: Path | None = None) -> dict[str, str]:
    """The allow-listed part of ENVIRON for a run (no tokens, no cloud or CI variables), HOME set to HOME when
    given, and the interpreter's folder first on PATH. Callers add the run's own variables on top."""
    env = {k: v for k, v in environ.items()
           if (k in ENV_NAMES or k.startswith(ENV_PREFIXES)) and not SECRET_RE.search(k)}
    bin_dir = os.path.dirname(sys.executable)
    path = env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep)
    env["PATH"] = os.pathsep.join([bin_dir] + [p for p in path if p != bin_dir])
    if home is not None:
        env["HOME"] = str(home)
    return env


@dataclass
class SandboxSpec:
    """One command to run, its environment (passed exactly), and what it may see and use.

    `read_only` paths are bind-mounted read-only (bubblewrap and namespaces levels); at the bubblewrap level they,
    `writable` (default: [cwd]) and the Python environment are all the command sees of the host's files."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    memory_bytes: int | None = None
    read_only: list[Path] = field(default_factory=list)
    allowed_ports: tuple[int, ...] = ()  # loopback ports Python code may connect to (the rendezvous)
    writable: list[Path] | None = None  # None: [cwd]
    tmp_bytes: int = DEFAULT_TMP_BYTES  # size of the private /tmp and /dev/shm (bubblewrap level)
    disk_bytes: int | None = DEFAULT_DISK_BYTES  # how much the writable folders may grow; None: uncapped
    max_procs: int | None = DEFAULT_MAX_PROCS  # tasks (processes and threads) of the tree; None: uncapped

    def __post_init__(self) -> None:
        if self.writable is None:
            self.writable = [self.cwd]


@dataclass
class SandboxResult:
    returncode: int | None
    killed_reason: str | None  # why the harness stopped it, None when it exited by itself
    started: float  # time.monotonic() at spawn
    ended: float  # time.monotonic() when the tree was gone
    kill_latency_s: float | None  # from the kill decision until nothing of the tree was left
    leftover_pids: list[int]  # processes of the tree still alive after teardown (must be empty)
    network_attempts: list[dict[str, object]]  # records from the audit hook (allowed ones included)
    isolation: dict[str, object]  # Isolation.describe() plus "caps": the caps of this run and what enforced each
    cap_hits: dict[str, int] = field(default_factory=dict)  # forks refused at pids.max, OOM kills in the cgroup


def free_port() -> int:
    """A loopback port free right now (for the torchrun rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


class _DiskWatch:
    """Growth of the writable folders, measured du-style (allocated blocks) whenever `check` is due."""

    def __init__(self, folders: list[Path], cap: int | None) -> None:
        self.folders, self.cap = folders, cap
        self.base = self._used() if cap is not None else 0
        self.due = 0.0

    def _used(self) -> int:
        seen: set[tuple[int, int]] = set()
        total, stack = 0, [str(f) for f in self.folders]
        while stack:
            try:
                with os.scandir(stack.pop()) as it:
                    for entry in it:
                        st = entry.stat(follow_symlinks=False)
                        if (st.st_dev, st.st_ino) not in seen:
                            seen.add((st.st_dev, st.st_ino))
                            total += st.st_blocks * 512
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
            except OSError:
                continue  # a file removed mid-walk
        return total

    def check(self, now: float) -> str | None:
        if self.cap is None or now < self.due:
            return None
        t0 = time.monotonic()
        grown = self._used() - self.base
        self.due = now + max(POLL_S, 20 * (time.monotonic() - t0))  # the walk costs at most ~5% of the time
        if grown > self.cap:
            return f"disk cap: the writable folders grew by {grown} bytes (cap {self.cap})"
        return None


def _write_audit(audit_dir: Path) -> tuple[Path, Path]:
    """The audit hook's folder (read-only to the run) and its log's folder (writable); returns both."""
    site, log = audit_dir / "site", audit_dir / "log"
    site.mkdir()
    log.mkdir()
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")
    return site, log


def _sandbox_env(spec: SandboxSpec, audit_dir: Path, audit_log: Path) -> dict[str, str]:
    """The command's environment: the spec's, with the network audit hook on the path and unbuffered output."""
    env = dict(spec.env)
    env["PYTHONPATH"] = os.pathsep.join([str(audit_dir)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PGOLF_NET_AUDIT"] = str(audit_log)
    env["PGOLF_NET_ALLOW_PORTS"] = ",".join(str(p) for p in spec.allowed_ports)
    env["PYTHONUNBUFFERED"] = "1"  # lines must arrive as they are printed for the harness clock
    return env


def _sandbox_argv(spec: SandboxSpec, iso: Isolation, site: Path, log: Path) -> list[str]:
    """The command line: in bubblewrap's fresh root, else in new network, PID and mount namespaces with read-only
    binds, else as it is."""
    argv = list(spec.argv)
    if iso.bubblewrap:
        return bwrap_argv(argv, spec.cwd, spec.env, [*spec.read_only, site], [*(spec.writable or []), log],
                          spec.tmp_bytes)
    if not iso.namespaces:
        return argv
    prefix = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    prefix += ["--map-root-user"] if iso.map_root else []
    ro = [str(Path(p).resolve()) for p in spec.read_only if Path(p).exists()]
    return prefix + [sys.executable, "-c", _INIT_CODE, *ro, "--", *argv]


def _caps(spec: SandboxSpec, iso: Isolation, cgroups: RunCgroups) -> dict[str, dict[str, object]]:
    """The caps of this run and what enforces each (absent: not capped)."""
    out: dict[str, dict[str, object]] = {}
    if spec.memory_bytes:
        out["memory"] = {"by": cgroups.memory or "rlimit-as", "limit": spec.memory_bytes}
    if spec.max_procs and cgroups.pids:
        out["procs"] = {"by": f"pids-{cgroups.pids}", "limit": spec.max_procs}
    if iso.bubblewrap:
        out["tmp"] = {"by": "tmpfs", "limit": spec.tmp_bytes}
    if spec.disk_bytes:
        out["disk"] = {"by": "rlimit-fsize+poll", "limit": spec.disk_bytes}
    return out


def run_sandboxed(spec: SandboxSpec, on_line: Callable[[float, str], None],
                  deadline: Callable[[float], str | None]) -> SandboxResult:
    """Run `spec`, streaming each output line as (monotonic time, text) to `on_line`.

    `deadline(now)` is asked every POLL_S seconds; a non-None answer is the reason to stop: the whole tree is then
    killed at once (no grace: a cap is a cap). The disk cap stops it the same way. When the command exits by itself
    the rest of its tree is killed too, so nothing it started outlives the run.
    """
    iso = detect_isolation()
    audit_dir = Path(tempfile.mkdtemp(prefix="pgolf-sandbox-"))
    site, log = _write_audit(audit_dir)
    audit_log = log / "network.jsonl"
    env = _sandbox_env(spec, site, audit_log)
    argv = _sandbox_argv(spec, iso, site, log)
    cgroups = RunCgroups(iso.cgroups, spec.memory_bytes, spec.max_procs)
    disk = _DiskWatch(list(spec.writable or []), spec.disk_bytes)
    use_rlimit = bool(spec.memory_bytes) and cgroups.memory is None

    def preexec() -> None:
        os.setsid()  # own process group: the fallback teardown and the leftover scan rely on it
        _die_with_parent()
        cgroups.join()
        if use_rlimit and spec.memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (spec.memory_bytes, spec.memory_bytes))
        if spec.disk_bytes:
            resource.setrlimit(resource.RLIMIT_FSIZE, (spec.disk_bytes, spec.disk_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    lines: queue.Queue[tuple[float, str] | None] = queue.Queue()
    started = time.monotonic()
    try:
        proc = subprocess.Popen(argv, cwd=spec.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, preexec_fn=preexec, close_fds=True)
    except OSError as exc:
        cgroups.remove()
        shutil.rmtree(audit_dir, ignore_errors=True)
        raise RuntimeError(f"cannot start {argv[0]}: {exc}") from exc

    def reader() -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            lines.put((time.monotonic(), raw.decode("utf-8", "replace").rstrip("\r\n")))
        lines.put(None)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        killed_reason, kill_started = _supervise(proc, cgroups, lines, on_line,
                                                 lambda now: deadline(now) or disk.check(now))
    except BaseException:  # interrupted (Ctrl-C, a failing callback): the tree must not outlive the harness
        _kill_tree(proc, cgroups)
        _reap(proc, cgroups)
        cgroups.remove()
        shutil.rmtree(audit_dir, ignore_errors=True)
        raise
    leftovers = _reap(proc, cgroups)
    thread.join(timeout=2.0)
    if not thread.is_alive() and proc.stdout is not None:
        proc.stdout.close()
    while not lines.empty():
        item = lines.get_nowait()
        if item is not None:
            on_line(*item)
    ended = time.monotonic()
    attempts, hits = _read_attempts(audit_log), cgroups.hits()
    cgroups.remove()
    shutil.rmtree(audit_dir, ignore_errors=True)
    return SandboxResult(returncode=proc.returncode, killed_reason=killed_reason, started=started, ended=ended,
                         kill_latency_s=None if kill_started is None else round(ended - kill_started, 3),
                         leftover_pids=leftovers, network_attempts=attempts,
                         isolation={**iso.describe(), "caps": _caps(spec, iso, cgroups)}, cap_hits=hits)


def _kill_tree(proc: subprocess.Popen, cgroups: RunCgroups) -> None:
    """SIGKILL everything: the cgroup, the process group, and the leader (whose death ends a PID namespace)."""
    cgroups.kill()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass


def _reap(proc: subprocess.Popen, cgroups: RunCgroups, timeout: float = 5.0) -> list[int]:
    """Wait for the leader, make sure no process of the tree is left, and return any that still are."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
    left: list[int] = []
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        left = sorted(set(_group_pids(proc.pid)) | set(cgroups.pids_alive()))
        if not left:
            break
        _kill_tree(proc, cgroups)
        time.sleep(0.02)
    return left


def _read_attempts(path: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _supervise(proc: subprocess.Popen, cgroups: RunCgroups, lines: queue.Queue[tuple[float, str] | None],
               on_line: Callable[[float, str], None],
               deadline: Callable[[float], str | None]) -> tuple[str | None, float | None]:
    """Pump output lines and ask `deadline` until the command and its output are done; kill at a cap."""
    killed_reason: str | None = None
    kill_started: float | None = None
    eof = False
    while True:
        try:
            item = lines.get(timeout=POLL_S)
            if item is None:
                eof = True
            else:
                on_line(*item)
        except queue.Empty:
            pass
        if killed_reason is None:
            reason = deadline(time.monotonic())
            if reason is not None:
                killed_reason, kill_started = reason, time.monotonic()
                _kill_tree(proc, cgroups)
        if eof and proc.poll() is not None:
            return killed_reason, kill_started
        if proc.poll() is not None and not eof:
            _kill_tree(proc, cgroups)  # the leader is gone: anything still holding the pipe is an orphan


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the harness dies (unshare then takes its namespace down)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
