"""Overhead of the sandbox (and of the whole `reproduce`) against running the same command bare.

Builds a tiny fake submission (prints baseline-dialect lines over about WORK_S seconds of spinning). Each round runs
the command bare (subprocess, same interpreter, same environment) and through `run_sandboxed` at each level asked
for, in an order that rotates every round so that drift of the machine spreads over all of them; then `reproduce`
runs all seeds (static check, sandbox, harness clock, binding header, reports) against the sum of the bare runs.
Prints the ratio and the overhead per run. Target: sandboxed time <= bare * 1.02 + 2 s per seed.

    python bench/reproduce_overhead.py [--rounds 3] [--work 3.0] [--launcher python|torchrun]
                                       [--levels bubblewrap,namespaces,process-group]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.report.reproduce import write_reproduce_reports  # noqa: E402
from harness.run import sandbox  # noqa: E402
from harness.run.outcome import ReproduceOptions  # noqa: E402
from harness.run.reproduce import reproduce  # noqa: E402

SCRIPT = textwrap.dedent('''
    import os, time
    work = float(os.environ.get("WORK_S", "3"))
    t0 = time.time()
    steps = 50
    for s in range(1, steps + 1):
        while time.time() - t0 < work * s / steps:
            pass  # spin: CPU work, as training would be
        print(f"step:{s}/{steps} train_loss:{4 - s / steps:.4f} train_time:{(time.time() - t0) * 1000:.0f}ms "
              f"step_avg:1.0ms", flush=True)
    print("Serialized model int8+zlib: 1000 bytes")
    open("final_model.int8.ptz", "wb").write(b"x" * 1000)
    print("final_int8_zlib_roundtrip_exact val_loss:2.10000000 val_bpb:1.25000000")
''')


def _command(launcher: str, port: int) -> list[str]:
    if launcher == "python":
        return [sys.executable, "train_gpt.py"]
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=1", "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{port}", "train_gpt.py"]


def _level_works(level: str) -> bool:
    os.environ[sandbox.FORCE_ENV] = level
    sandbox.detect_isolation.cache_clear()
    return sandbox.detect_isolation().level.startswith(level)


def _timed_run(kind: str, work: Path, data: Path, env: dict[str, str], launcher: str) -> float:
    """Seconds of one run of the command in WORK: bare, or sandboxed at level KIND (detection done beforehand)."""
    port = sandbox.free_port()
    cmd = _command(launcher, port)
    if kind == "bare":
        t = time.monotonic()
        subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, check=True)
        return time.monotonic() - t
    _level_works(kind)
    spec = sandbox.SandboxSpec(cmd, work, env, read_only=[data], allowed_ports=(port,))
    t = time.monotonic()
    result = sandbox.run_sandboxed(spec, lambda _t, _line: None, lambda _now: None)
    elapsed = time.monotonic() - t
    if result.returncode != 0:
        raise SystemExit(f"{kind}: the command failed with status {result.returncode}")
    return elapsed


def _verdict(bare: float, other: float) -> str:
    budget = bare * 0.02 + 2.0
    return (f"ratio {other / bare:.3f}, overhead {other - bare:+.2f} s per run (target <= {budget:.2f} s): "
            f"{'OK' if other - bare <= budget else 'OVER'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="runs of each kind (and seeds of the reproduce pass)")
    ap.add_argument("--work", type=float, default=3.0, help="seconds of spinning per run")
    ap.add_argument("--launcher", choices=["python", "torchrun"], default="python")
    ap.add_argument("--levels", default=",".join(sandbox.LEVELS), help="comma-separated sandbox levels to time")
    args = ap.parse_args()
    levels = [lv for lv in args.levels.split(",") if lv and _level_works(lv)]
    kinds = ["bare", *levels]
    times: dict[str, list[float]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="pgolf-bench-") as tmp:
        root = Path(tmp)
        sub, data = root / "sub", root / "data"
        sub.mkdir()
        data.mkdir()
        (sub / "train_gpt.py").write_text(SCRIPT)
        (data / "fineweb_val_000000.bin").write_bytes(b"\0" * 1024)
        for r in range(args.rounds):
            for i in range(len(kinds)):
                kind = kinds[(i + r) % len(kinds)]
                work = root / f"{kind}{r}"
                work.mkdir()
                (work / "train_gpt.py").write_text(SCRIPT)
                env = sandbox.base_env(home=work) | {"WORK_S": str(args.work), "SEED": str(r)}
                times[kind].append(_timed_run(kind, work, data, env, args.launcher))
        os.environ.pop(sandbox.FORCE_ENV, None)
        sandbox.detect_isolation.cache_clear()
        t = time.monotonic()
        write_reproduce_reports(reproduce(ReproduceOptions(
            path=sub, seeds=",".join(str(s) for s in range(args.rounds)), data_path=data, results=root / "results",
            launcher=args.launcher, extra_env=(f"WORK_S={args.work}",))))
        harness_total = time.monotonic() - t
    bare = sum(times["bare"]) / args.rounds
    print(f"launcher {args.launcher}; {args.rounds} rounds x {args.work:g} s; bare {bare:.2f} s per run")
    for level in levels:
        mean = sum(times[level]) / args.rounds
        print(f"  {level:>13}: {mean:.2f} s per run; {_verdict(bare, mean)}")
    print(f"  reproduce ({sandbox.detect_isolation().level}, static check and reports included): "
          f"{harness_total / args.rounds:.2f} s per seed; {_verdict(bare, harness_total / args.rounds)}")


if __name__ == "__main__":
    main()
