"""Entry point of the probe subprocess: `python launch.py PLAN.json`.

Imports torch once, then runs the submission's script once per variant of the plan in a forked child (so the
variants share the import cost and nothing else): each child gets the variant's environment and working folder,
fixed seeds, the tracer, and runs the script as `__main__`; its trace goes to the variant's .npz and its output to the
variant's log. With the plan's `cpu_compat` set, the child also installs cpu_compat.py (CUDA-assuming scripts run on
the CPU). The parent writes `results.json` with each child's exit status. Nothing here imports harness/.
"""

from __future__ import annotations

import json
import os
import random
import runpy
import signal
import sys
import time


def _run_child(plan: dict, variant: dict) -> None:
    """In the forked child: set up, run the script, dump the trace, exit with the script's status."""
    import cpu_compat
    import numpy as np
    import torch
    import tracer

    log_fd = os.open(variant["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.environ.update(variant["env"])
    os.chdir(variant["cwd"])
    sys.path[:] = plan["sys_path"] + [p for p in sys.path if p != plan["inject_dir"]]
    sys.argv = [plan["script"], *plan.get("argv", [])]
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    signal.alarm(max(1, int(plan["variant_timeout_s"])))
    code = 0
    tracer.install()
    if plan.get("cpu_compat"):  # after the tracer: its torch.compile stand-in is replaced by one that reports use
        cpu_compat.install(notify=lambda name: tracer._record("compat", {"name": name}))
    try:
        runpy.run_path(plan["script"], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code not in (None, 0) and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - the traceback goes to the variant's log for the harness to quote
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            tracer.dump(variant["trace"])
        except BaseException:  # noqa: BLE001
            code = code or 3
    os._exit(code)


def _warm_up(torch) -> None:
    """Pay torch's first-call costs (kernels, optimizers, autograd) once in the parent, not in every child."""
    F = torch.nn.functional
    emb, lin = torch.nn.Embedding(8, 8), torch.nn.Linear(8, 8)
    params = list(emb.parameters()) + list(lin.parameters())
    for opt in (torch.optim.Adam(params), torch.optim.AdamW(params), torch.optim.SGD(params, lr=0.1, momentum=0.9)):
        x = torch.randint(0, 8, (2, 4))
        loss = F.cross_entropy(lin(torch.tanh(emb(x))).flatten(0, 1), x.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        F.cross_entropy(torch.randn(4, 8), torch.arange(4), reduction="none").double().sum()
        torch.logsumexp(torch.randn(4, 8), dim=-1)
        F.scaled_dot_product_attention(torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8),
                                       is_causal=True)


def main(plan_path: str) -> int:
    with open(plan_path, encoding="utf-8") as fh:
        plan = json.load(fh)
    import torch

    torch.set_num_threads(1)  # determinism between variants, and the machine is shared
    try:
        _warm_up(torch)
    except Exception:  # noqa: BLE001 - only a speed-up
        pass
    results = {}
    for variant in plan["variants"]:
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                _run_child(plan, variant)
            except BaseException:  # noqa: BLE001 - set-up failed before the script ran: say why in its log
                import traceback

                traceback.print_exc()
            finally:
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        results[variant["name"]] = {
            "exit": os.waitstatus_to_exitcode(status), "seconds": round(time.monotonic() - started, 3)}
        with open(plan["results"], "w", encoding="utf-8") as fh:
            json.dump(results, fh)
        if variant.get("stop_on_failure") and results[variant["name"]]["exit"] != 0:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
