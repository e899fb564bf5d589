"""The cgroups of one sandboxed run: which controllers this machine lets the harness use, and the per-run folders.

Three jobs, each done by whichever hierarchy offers it:

* kill: a cgroup v2 folder with ``cgroup.kill`` takes the whole tree down in one write;
* memory: ``memory.max`` (v2) or ``memory.limit_in_bytes`` (v1);
* processes: ``pids.max`` (v2, where the parent delegates ``pids``; else the v1 ``pids`` hierarchy). This is the
  process-count cap that binds root: RLIMIT_NPROC does not (the kernel exempts uid 0 of the initial user namespace
  from it, with or without capabilities, inside bubblewrap's user namespace too). ``pids.max`` counts threads.

A folder the harness cannot create or write is simply not used; the sandbox reports which mechanism each cap got.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CgroupSupport:
    """Where per-run cgroups can be created, per job; None where this machine offers no such folder."""

    kill_parent: Path | None = None  # a writable cgroup v2 folder whose children have cgroup.kill
    memory: str = "rlimit"  # "cgroup2", "cgroup1" or "rlimit" (no memory cgroup: RLIMIT_AS instead)
    memory_parent: Path | None = None
    pids: str = "none"  # "cgroup2", "cgroup1" or "none"
    pids_parent: Path | None = None


def own_cgroup_dirs() -> dict[str, Path]:
    """The folders this process lives in: "v2" for the unified hierarchy, else one key per v1 controller."""
    mounts: dict[str, Path] = {}
    found: dict[str, Path] = {}
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[2] == "cgroup2":
                mounts.setdefault("v2", Path(parts[1]))
            elif len(parts) >= 4 and parts[2] == "cgroup":
                for controller in ("memory", "pids"):
                    if controller in parts[3].split(","):
                        mounts.setdefault(controller, Path(parts[1]))
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            num, controllers, rel = line.split(":", 2)
            keys = ["v2"] if num == "0" else controllers.split(",")
            for key in keys:
                if key in mounts:
                    found[key] = mounts[key] / rel.lstrip("/")
    except (OSError, ValueError):
        return {}
    return found


def writable_child_ok(parent: Path, must_have: str) -> bool:
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


def detect_cgroups() -> CgroupSupport:
    """Probe the cgroup hierarchies once: kill through v2, memory and pids through v2 or else v1."""
    dirs = own_cgroup_dirs()
    v2 = dirs.get("v2")
    kill = v2 if v2 is not None and writable_child_ok(v2, "cgroup.kill") else None
    delegated = _read(kill / "cgroup.subtree_control").split() if kill is not None else []
    memory, memory_parent = "rlimit", None
    if kill is not None and "memory" in delegated:
        memory, memory_parent = "cgroup2", kill
    elif "memory" in dirs and writable_child_ok(dirs["memory"], "memory.limit_in_bytes"):
        memory, memory_parent = "cgroup1", dirs["memory"]
    pids, pids_parent = "none", None
    if kill is not None and "pids" in delegated:
        pids, pids_parent = "cgroup2", kill
    elif "pids" in dirs and writable_child_ok(dirs["pids"], "pids.max"):
        pids, pids_parent = "cgroup1", dirs["pids"]
    return CgroupSupport(kill, memory, memory_parent, pids, pids_parent)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _counter(text: str, key: str) -> int:
    """The value of "KEY N" in a cgroup events file (0 when absent)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return 0


def sweep_stale(parent: Path) -> None:
    """Remove the empty run folders of harness processes that are gone (a harness killed before its teardown)."""
    try:
        entries = list(parent.glob("pgolf-*-*"))
    except OSError:
        return
    for entry in entries:
        pid = entry.name.split("-")[1]
        if pid.isdigit() and not Path("/proc", pid).exists() and not _read(entry / "cgroup.procs").split():
            try:
                entry.rmdir()
            except OSError:
                pass


class RunCgroups:
    """The per-run cgroups (kill, memory, pids); created before spawn, removed after teardown."""

    def __init__(self, support: CgroupSupport, memory_bytes: int | None, max_procs: int | None) -> None:
        self.dirs: list[Path] = []
        self.kill_dir: Path | None = None
        self.memory: str | None = None  # the mechanism that holds the memory cap of this run, if any
        self.pids: str | None = None
        self._memory_dir: Path | None = None
        self._pids_dir: Path | None = None
        name = f"pgolf-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        for parent in {p for p in (support.kill_parent, support.memory_parent, support.pids_parent) if p}:
            sweep_stale(parent)
        # A cap we could not set up is reported as absent (the sandbox then falls back, e.g. to RLIMIT_AS).
        if support.kill_parent is not None:
            self.kill_dir = self._make(support.kill_parent / name)
        if memory_bytes and support.memory_parent is not None:
            limit = "memory.max" if support.memory == "cgroup2" else "memory.limit_in_bytes"
            self._memory_dir = self._make(support.memory_parent / name, limit, memory_bytes)
            self.memory = support.memory if self._memory_dir is not None else None
        if max_procs and support.pids_parent is not None:
            self._pids_dir = self._make(support.pids_parent / name, "pids.max", max_procs)
            self.pids = support.pids if self._pids_dir is not None else None

    def _make(self, path: Path, limit_file: str | None = None, limit: int = 0) -> Path | None:
        """Create (or reuse) the run's folder PATH and write LIMIT into LIMIT_FILE; None when either fails."""
        try:
            if path not in self.dirs:
                path.mkdir()
                self.dirs.append(path)
            if limit_file is not None:
                (path / limit_file).write_text(str(limit))
        except OSError:
            return None
        return path

    def join(self) -> None:
        """Called in the child before exec: move itself into every run cgroup ("0" = the writing process)."""
        for d in self.dirs:
            with open(d / "cgroup.procs", "w") as fh:
                fh.write("0")

    def pids_alive(self) -> list[int]:
        out: list[int] = []
        for d in self.dirs:
            out += [int(p) for p in _read(d / "cgroup.procs").split()]
        return sorted(set(out))

    def hits(self) -> dict[str, int]:
        """How often a cap bound: forks refused at pids.max ("procs"), OOM kills ("memory")."""
        out: dict[str, int] = {}
        if self._pids_dir is not None:
            out["procs"] = _counter(_read(self._pids_dir / "pids.events"), "max")
        if self._memory_dir is not None:
            events = "memory.events" if self.memory == "cgroup2" else "memory.oom_control"
            out["memory"] = _counter(_read(self._memory_dir / events), "oom_kill")
        return out

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
