"""The bubblewrap command line of one sandboxed run: a fresh root that shows the run only what it needs.

Visible inside, and nothing else:

* the system, read-only: /usr and the /bin, /sbin, /lib* links or folders; a short list of /etc files (users,
  hosts, name-service and loader configuration; never shadow, ssh, cloud or CI files); the device and bus folders of
  /sys (what CUDA and NCCL read for topology); the NVIDIA device nodes where present;
* the Python environment, read-only: sys.prefix, sys.base_prefix, every existing sys.path entry and LD_LIBRARY_PATH
  folder, never the home directory itself, the harness checkout or a folder holding either;
* the run's read-only inputs and writable folders, at their own paths (and at their resolved paths when those
  differ); a private, size-capped /tmp and /dev/shm; a fresh /dev and /proc.

Everything else of the root is an empty read-only skeleton. Namespaces: all of them (``--unshare-all``, loopback
only), a user namespace that drops every capability and forbids nested user namespaces (without that, root inside
could remount a read-only bind writable), a new session, and death with the harness.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]  # the harness checkout: never shown to a run
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = ("passwd", "group", "hosts", "host.conf", "nsswitch.conf", "gai.conf", "protocols", "services", "localtime",
       "timezone", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "os-release")
OWN_MOUNTS = ("/tmp", "/dev/shm", "/proc", "/sys", "/etc")  # the sandbox's own (or selected) contents there
SYS = ("/sys/block", "/sys/bus", "/sys/class", "/sys/dev", "/sys/devices")
FLAGS = ("--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL", "--die-with-parent",
         "--new-session")


@dataclass(frozen=True)
class _Mount:
    kind: str  # "ro", "rw", "dev", "tmpfs", "symlink", "proc", "devfs"
    dest: str
    src: str = ""
    size: int = 0

    def args(self) -> list[str]:
        if self.kind == "tmpfs":
            return ["--size", str(self.size), "--tmpfs", self.dest]
        if self.kind in ("proc", "devfs"):
            return ["--proc" if self.kind == "proc" else "--dev", self.dest]
        flag = {"ro": "--ro-bind", "rw": "--bind", "dev": "--dev-bind", "symlink": "--symlink"}[self.kind]
        return [flag, self.src, self.dest]


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _shows_hidden(path: Path) -> bool:
    """Would binding PATH show the home directory or the checkout, or cover a folder the sandbox provides itself
    (the host's /tmp over the private one, say, when the harness runs a script from /tmp)?"""
    home = Path(os.path.realpath(Path.home()))
    return any(_is_within(Path(covered), path) for covered in (home, CHECKOUT, *OWN_MOUNTS))


def python_paths(environ: dict[str, str] | None = None) -> list[Path]:
    """The interpreter's folders a run needs read-only (resolved, existing, none that shows a hidden one)."""
    prefixes = [Path(os.path.realpath(p)) for p in (sys.prefix, sys.base_prefix)]
    extra = [*sys.path, *(environ or {}).get("LD_LIBRARY_PATH", "").split(os.pathsep)]
    out = [p for p in prefixes if not _shows_hidden(p)]
    for entry in extra:
        path = Path(os.path.realpath(entry)) if entry else None
        if path is None or not path.exists() or _shows_hidden(path):
            continue
        if _is_within(path, CHECKOUT) and not any(_is_within(path, p) for p in prefixes):
            continue  # the checkout on sys.path (pytest, an editable install): the run does not need it
        out.append(path)
    return list(dict.fromkeys(out))


def _binds(kind: str, paths: list[Path]) -> list[_Mount]:
    """KIND binds of PATHS at their resolved path, and also at the path as given where that differs."""
    out = []
    for given in paths:
        given = Path(os.path.abspath(given))
        if not given.exists():
            continue
        real = Path(os.path.realpath(given))
        out += [_Mount(kind, str(real), str(real))]
        if given != real:
            out.append(_Mount(kind, str(given), str(real)))
    return out


def _system() -> list[_Mount]:
    out = []
    for top in SYSTEM:
        if os.path.islink(top):
            out.append(_Mount("symlink", top, os.readlink(top)))
        elif os.path.isdir(top):
            out.append(_Mount("ro", top, top))
    out += [m for m in _binds("ro", [Path("/etc", name) for name in ETC])]
    out += [m for m in _binds("ro", [Path(p) for p in SYS])]
    out += [_Mount("proc", "/proc"), _Mount("devfs", "/dev")]
    gpu = sorted(p for p in Path("/dev").glob("nvidia*"))
    return out + [_Mount("dev", str(p), str(p)) for p in gpu]


def _program(argv: list[str], environ: dict[str, str]) -> list[Path]:
    """What the command line itself needs read-only: the program, its installation (the folder above its bin/,
    e.g. another interpreter's prefix), and the folder of each absolute file it names (e.g. a launcher script)."""
    found = shutil.which(argv[0], path=environ.get("PATH")) if os.sep not in argv[0] else argv[0]
    out = []
    if found and os.path.isfile(found):
        program = Path(os.path.realpath(found))
        prefix = program.parent.parent
        visible = program.parent.name == "bin" and (prefix / "lib").is_dir() and not _shows_hidden(prefix)
        out.append(prefix if visible else program)
    for arg in argv[1:]:
        if os.path.isabs(arg) and os.path.isfile(arg):
            folder = Path(os.path.realpath(arg)).parent
            out.append(Path(os.path.realpath(arg)) if _shows_hidden(folder) else folder)
    return out


def _ordered(mounts: list[_Mount]) -> list[_Mount]:
    """Parents before children (bubblewrap mounts in order); a read-only bind already visible through a read-only
    bind of a folder above it, with nothing mounted in between, is dropped."""
    kept: list[_Mount] = []
    for m in sorted(mounts, key=lambda m: len(Path(m.dest).parts)):
        if any(k.dest == m.dest and k.kind == m.kind for k in kept):
            continue
        under = [k for k in kept if _is_within(Path(m.dest), Path(k.dest))]
        deepest = max(under, key=lambda k: len(Path(k.dest).parts), default=None)
        if (m.kind == "ro" and m.src == m.dest and deepest is not None and deepest.kind == "ro"
                and deepest.src == deepest.dest):
            continue
        kept.append(m)
    return kept


def bwrap_argv(argv: list[str], cwd: Path, environ: dict[str, str], read_only: list[Path], writable: list[Path],
               tmp_bytes: int) -> list[str]:
    """The bubblewrap command line that runs ARGV in CWD with only the listed folders visible."""
    mounts = _system() + [_Mount("tmpfs", "/tmp", size=tmp_bytes), _Mount("tmpfs", "/dev/shm", size=tmp_bytes)]
    mounts += _binds("ro", [*python_paths(environ), *_program(argv, environ), *read_only])
    mounts += _binds("rw", writable)
    out = ["bwrap", *FLAGS]
    for m in _ordered(mounts):
        out += m.args()
    return out + ["--chdir", str(Path(os.path.abspath(cwd))), "--remount-ro", "/", "--", *argv]


def bwrap_works() -> bool:
    """Does bubblewrap start an interpreter here with every flag the sandbox uses?"""
    if shutil.which("bwrap") is None:
        return False
    cmd = bwrap_argv([sys.executable, "-c", "pass"], Path("/"), dict(os.environ), [], [], 2**20)
    try:
        return subprocess.run(cmd, check=False, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
