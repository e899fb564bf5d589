"""Harness overhead of `reproduce` against running the same command bare.

Builds a tiny fake submission (prints baseline-dialect lines over about WORK_S seconds), runs it bare with
subprocess (same interpreter, same environment) and through `reproduce` (sandbox, harness clock, binding header,
reports), and prints the ratio per seed. Target: harness time <= bare * 1.02 + 2 s per seed.

    python bench/reproduce_overhead.py [--seeds 3] [--work 3.0] [--launcher python|torchrun]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.report.reproduce import write_reproduce_reports  # noqa: E402
from harness.run.outcome import ReproduceOptions  # noqa: E402
from harness.run.reproduce import reproduce  # noqa: E402
from harness.run.sandbox import detect_isolation  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--work", type=float, default=3.0, help="seconds of spinning per run")
    ap.add_argument("--launcher", choices=["python", "torchrun"], default="python")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pgolf-bench-") as tmp:
        root = Path(tmp)
        sub, data = root / "sub", root / "data"
        sub.mkdir()
        data.mkdir()
        (sub / "train_gpt.py").write_text(SCRIPT)
        (data / "fineweb_val_000000.bin").write_bytes(b"\0" * 1024)
        env = {"WORK_S": str(args.work)}
        bare = []
        for seed in range(args.seeds):
            work = root / f"bare{seed}"
            work.mkdir()
            (work / "train_gpt.py").write_text(SCRIPT)
            cmd = [sys.executable, "train_gpt.py"] if args.launcher == "python" else [
                sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "train_gpt.py"]
            t = time.monotonic()
            subprocess.run(cmd, cwd=work, env={**__import__("os").environ, **env, "SEED": str(seed)},
                           stdout=subprocess.DEVNULL, check=True)
            bare.append(time.monotonic() - t)
        t = time.monotonic()
        write_reproduce_reports(reproduce(ReproduceOptions(
            path=sub, seeds=",".join(str(s) for s in range(args.seeds)), data_path=data, results=root / "results",
            launcher=args.launcher, extra_env=tuple(f"{k}={v}" for k, v in env.items()))))
        harness_total = time.monotonic() - t
    bare_total = sum(bare)
    per_seed_over = (harness_total - bare_total) / args.seeds
    budget = bare_total * 0.02 / args.seeds + 2.0
    print(f"isolation: {detect_isolation().level}; launcher {args.launcher}; {args.seeds} seeds x {args.work:g} s")
    print(f"bare {bare_total:.2f} s, harness {harness_total:.2f} s, ratio {harness_total / bare_total:.3f}; "
          f"overhead {per_seed_over:.2f} s per seed (target <= {budget:.2f} s): "
          f"{'OK' if per_seed_over <= budget else 'OVER'}")


if __name__ == "__main__":
    main()
