"""Run one untrusted command under harness control: no network, a memory cap, and a teardown that leaves nothing.

Isolation is the strongest this machine allows, detected once and reported with every result:

* ``namespaces``: ``unshare --net --pid --fork --kill-child --mount-proc``. The command is PID 1 of a fresh PID
  namespace, so killing it takes the whole tree down at once; the fresh network namespace has only loopback (brought
  up so torchrun's local rendezvous works); read-only paths are bind-mounted read-only inside the mount namespace.
* ``cgroup``: when a writable cgroup v2 folder with ``cgroup.kill`` exists, the tree also lives in its own cgroup and
  is killed through it; ``memory.max`` (v2) or ``memory.limit_in_bytes`` (v1) caps memory there.
* ``process-group``: the fallback: own session, ``killpg(SIGKILL)``, RLIMIT_AS for memory.

Whatever the level, an audit hook injected through ``sitecustomize.py`` records every socket connect / DNS lookup of
Python code in the tree and refuses those outside the allowed loopback ports, so an attempt is evidence even where no
network namespace exists. ``PGOLF_SANDBOX=process-group`` forces the fallback (tests, benchmarks).
"""

from __future__ import annotations

import json
import os
import queue
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

FORCE_ENV = "PGOLF_SANDBOX"  # "process-group" forces the weakest level
POLL_S = 0.05  # how often the deadline callback runs; bounds the overshoot of a cap

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
    """What this machine lets the harness use; `level` names the strongest teardown in use."""

    namespaces: bool  # PID + network + mount namespaces through unshare
    map_root: bool  # unshare needs --map-root-user (not running as root)
    cgroup_kill_parent: Path | None  # a writable cgroup v2 folder whose children have cgroup.kill
    memory: str  # "cgroup2", "cgroup1", "rlimit"
    memory_parent: Path | None  # where a memory cgroup is created (v1 or v2)

    @property
    def level(self) -> str:
        if self.namespaces:
            return "namespaces" + ("+cgroup" if self.cgroup_kill_parent else "")
        return "cgroup" if self.cgroup_kill_parent else "process-group"

    def describe(self) -> dict[str, object]:
        return {"level": self.level, "network_namespace": self.namespaces, "pid_namespace": self.namespaces,
                "read_only_binds": self.namespaces, "cgroup_kill": self.cgroup_kill_parent is not None,
                "memory_cap": self.memory, "network_audit_hook": True}


def _own_cgroup_dirs() -> tuple[Path | None, Path | None]:
    """(cgroup v2 folder, cgroup v1 memory folder) this process lives in, where mounted."""
    mounts: dict[str, Path] = {}
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[2] == "cgroup2":
                mounts.setdefault("v2", Path(parts[1]))
            elif len(parts) >= 4 and parts[2] == "cgroup" and "memory" in parts[3].split(","):
                mounts.setdefault("memory", Path(parts[1]))
        v2 = mem = None
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            num, controllers, rel = line.split(":", 2)
            if num == "0" and "v2" in mounts:
                v2 = mounts["v2"] / rel.lstrip("/")
            elif "memory" in controllers.split(",") and "memory" in mounts:
                mem = mounts["memory"] / rel.lstrip("/")
        return v2, mem
    except (OSError, ValueError):
        return None, None


def _writable_child_ok(parent: Path, must_have: str) -> bool:
    """Can we create a child cgroup here that has the file `must_have`? (Tries, then removes it.)"""
    probe = parent / f"pgolf-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        return (probe / must_have).exists()
    finally:
        try:
            probe.rmdir()
        except OSError:
            pass


def _namespaces_work(map_root: bool) -> bool:
    if shutil.which("unshare") is None:
        return False
    cmd = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    cmd += ["--map-root-user"] if map_root else []
    cmd += [sys.executable, "-c", _INIT_CODE, "--", "true"]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@lru_cache(maxsize=1)
def detect_isolation() -> Isolation:
    """Probe the machine once: namespaces, cgroup v2 kill, memory controller; fall back step by step."""
    if os.environ.get(FORCE_ENV) == "process-group":
        return Isolation(False, False, None, "rlimit", None)
    map_root = os.geteuid() != 0
    namespaces = _namespaces_work(map_root)
    v2, mem_v1 = _own_cgroup_dirs()
    kill_parent = v2 if v2 is not None and _writable_child_ok(v2, "cgroup.kill") else None
    if kill_parent is not None and "memory" in _read(kill_parent / "cgroup.subtree_control").split():
        return Isolation(namespaces, map_root, kill_parent, "cgroup2", kill_parent)
    if mem_v1 is not None and _writable_child_ok(mem_v1, "memory.limit_in_bytes"):
        return Isolation(namespaces, map_root, kill_parent, "cgroup1", mem_v1)
    return Isolation(namespaces, map_root, kill_parent, "rlimit", None)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@dataclass
class SandboxSpec:
    """One command to run. `read_only` paths are bind-mounted read-only (namespaces level only)."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    memory_bytes: int | None = None
    read_only: list[Path] = field(default_factory=list)
    allowed_ports: tuple[int, ...] = ()  # loopback ports Python code may connect to (the rendezvous)


@dataclass
class SandboxResult:
    returncode: int | None
    killed_reason: str | None  # why the harness stopped it, None when it exited by itself
    started: float  # time.monotonic() at spawn
    ended: float  # time.monotonic() when the tree was gone
    kill_latency_s: float | None  # from the kill decision until nothing of the tree was left
    leftover_pids: list[int]  # processes of the tree still alive after teardown (must be empty)
    network_attempts: list[dict[str, object]]  # records from the audit hook (allowed ones included)
    isolation: dict[str, object]


def free_port() -> int:
    """A loopback port free right now (for the torchrun rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Cgroups:
    """The per-run cgroups (kill and/or memory); created before spawn, removed after teardown."""

    def __init__(self, iso: Isolation, memory_bytes: int | None) -> None:
        self.dirs: list[Path] = []
        self.kill_dir: Path | None = None
        name = f"pgolf-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            if iso.cgroup_kill_parent is not None:
                self.kill_dir = iso.cgroup_kill_parent / name
                self.kill_dir.mkdir()
                self.dirs.append(self.kill_dir)
                if memory_bytes and iso.memory == "cgroup2":
                    (self.kill_dir / "memory.max").write_text(str(memory_bytes))
            if memory_bytes and iso.memory == "cgroup1" and iso.memory_parent is not None:
                mem = iso.memory_parent / name
                mem.mkdir()
                self.dirs.append(mem)
                (mem / "memory.limit_in_bytes").write_text(str(memory_bytes))
        except OSError:
            pass  # a cgroup we could not set up is simply not used; process-group teardown still applies

    def join(self) -> None:
        """Called in the child before exec: move itself into every run cgroup ("0" = the writing process)."""
        for d in self.dirs:
            with open(d / "cgroup.procs", "w") as fh:
                fh.write("0")

    def pids(self) -> list[int]:
        out: list[int] = []
        for d in self.dirs:
            out += [int(p) for p in _read(d / "cgroup.procs").split()]
        return sorted(set(out))

    def kill(self) -> None:
        if self.kill_dir is not None:
            try:
                (self.kill_dir / "cgroup.kill").write_text("1")
            except OSError:
                pass

    def remove(self) -> None:
        for d in reversed(self.dirs):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)  # the kernel frees a cgroup a moment after its last task is reaped


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


def _write_sitecustomize(folder: Path) -> None:
    (folder / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")


def _sandbox_env(spec: SandboxSpec, audit_dir: Path, audit_log: Path) -> dict[str, str]:
    """The command's environment: the spec's, with the network audit hook on the path and unbuffered output."""
    env = dict(spec.env)
    env["PYTHONPATH"] = os.pathsep.join([str(audit_dir)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PGOLF_NET_AUDIT"] = str(audit_log)
    env["PGOLF_NET_ALLOW_PORTS"] = ",".join(str(p) for p in spec.allowed_ports)
    env["PYTHONUNBUFFERED"] = "1"  # lines must arrive as they are printed for the harness clock
    return env


def _sandbox_argv(spec: SandboxSpec, iso: Isolation) -> list[str]:
    """The command line: wrapped in new network, PID and mount namespaces with read-only mounts when available."""
    argv = list(spec.argv)
    if not iso.namespaces:
        return argv
    prefix = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    prefix += ["--map-root-user"] if iso.map_root else []
    ro = [str(Path(p).resolve()) for p in spec.read_only if Path(p).exists()]
    return prefix + [sys.executable, "-c", _INIT_CODE, *ro, "--", *argv]


def run_sandboxed(spec: SandboxSpec, on_line: Callable[[float, str], None],
                  deadline: Callable[[float], str | None]) -> SandboxResult:
    """Run `spec`, streaming each output line as (monotonic time, text) to `on_line`.

    `deadline(now)` is asked every POLL_S seconds; a non-None answer is the reason to stop: the whole tree is then
    killed at once (no grace: a cap is a cap). When the command exits by itself the rest of its tree is killed too,
    so nothing it started outlives the run.
    """
    iso = detect_isolation()
    audit_dir = Path(tempfile.mkdtemp(prefix="pgolf-sandbox-"))
    _write_sitecustomize(audit_dir)
    audit_log = audit_dir / "network.jsonl"
    env = _sandbox_env(spec, audit_dir, audit_log)
    argv = _sandbox_argv(spec, iso)
    cgroups = _Cgroups(iso, spec.memory_bytes)
    use_rlimit = bool(spec.memory_bytes) and not any(
        (d / "memory.max").exists() or (d / "memory.limit_in_bytes").exists() for d in cgroups.dirs)

    def preexec() -> None:
        os.setsid()  # own process group: the fallback teardown and the leftover scan rely on it
        _die_with_parent()
        cgroups.join()
        if use_rlimit and spec.memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (spec.memory_bytes, spec.memory_bytes))
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
        killed_reason, kill_started = _supervise(proc, cgroups, lines, on_line, deadline)
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
    attempts = _read_attempts(audit_log)
    cgroups.remove()
    shutil.rmtree(audit_dir, ignore_errors=True)
    return SandboxResult(returncode=proc.returncode, killed_reason=killed_reason, started=started, ended=ended,
                         kill_latency_s=None if kill_started is None else round(ended - kill_started, 3),
                         leftover_pids=leftovers, network_attempts=attempts, isolation=iso.describe())


def _kill_tree(proc: subprocess.Popen, cgroups: _Cgroups) -> None:
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


def _reap(proc: subprocess.Popen, cgroups: _Cgroups, timeout: float = 5.0) -> list[int]:
    """Wait for the leader, make sure no process of the tree is left, and return any that still are."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
    left: list[int] = []
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        left = sorted(set(_group_pids(proc.pid)) | set(cgroups.pids()))
        if not left:
            break
        _kill_tree(proc, cgroups)
        time.sleep(0.02)
    return left


def _read_attempts(path: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for line in _read(path).splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _supervise(proc: subprocess.Popen, cgroups: "_Cgroups", lines: "queue.Queue[tuple[float, str] | None]",
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
