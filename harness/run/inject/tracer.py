"""Instrumentation installed in the probed process: what was scored, what was trained on, what was opened, when.

Every event takes a tick of one global clock, so the harness can order them afterwards:

* ``ce``: a call of ``torch.nn.functional.cross_entropy`` with integer targets. Recorded: the flattened targets
  (ignored entries as -1), the per-element NLL and log-partition (``lse``) recomputed from the logits, and whether the
  result carries a graph (grad enabled and logits requiring grad: a training use).
* ``update``: a ``backward()`` / ``autograd.grad`` (the moment targets become gradients) and every optimizer step
  (all ``torch.optim.Optimizer`` subclasses, through the global step hook), with whether the stepped tensors are
  module ``nn.Parameter`` s or free tensors created at eval time (the SLOT shape).
* ``fwd``: a module forward on integer inputs while the script has its own forward hooks registered in that module
  tree (how GPTQ collects Hessians): the input ids, to locate calibration rows in the data.
* ``open``: files whose name starts with ``fineweb_`` (audit hook), and ``log``: each line the script prints.

The harness locates target and input rows in its own synthetic token streams, so no tensor is ever tagged here.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np

_CLOCK = itertools.count()
EVENTS: list[tuple] = []  # (kind, tick, payload)
ARRAYS: dict[str, list[np.ndarray]] = {"ce_targets": [], "ce_nll": [], "ce_lse": [], "fwd_ids": []}


def tick() -> int:
    return next(_CLOCK)


def _record(kind: str, payload) -> int:
    t = tick()
    EVENTS.append((kind, t, payload))
    return t


def _per_element(logits, target, ignore_index: int):
    """(targets, nll, lse) as flat numpy arrays; logits (N, C) or (N, C, d1, ...) as cross_entropy takes them."""
    import torch

    with torch.no_grad():
        x = logits.detach().float()
        if x.dim() > 2:
            x = x.movedim(1, -1)
        x = x.reshape(-1, x.shape[-1])
        y = target.detach().reshape(-1).long()
        valid = y != ignore_index
        safe = torch.where(valid, y, torch.zeros_like(y))
        lse = torch.logsumexp(x, dim=-1)
        nll = lse - x.gather(1, safe[:, None])[:, 0]
        y = torch.where(valid, y, torch.full_like(y, -1))
    return y.cpu().numpy().astype(np.int64), nll.cpu().numpy().astype(np.float64), lse.cpu().numpy().astype(np.float64)


def _wrap_cross_entropy(torch) -> None:
    F = torch.nn.functional
    original = F.cross_entropy

    def cross_entropy(input, target, *args, **kwargs):
        out = original(input, target, *args, **kwargs)
        try:
            if isinstance(target, torch.Tensor) and not target.is_floating_point() and input.dim() >= 2:
                ignore = kwargs.get("ignore_index", args[2] if len(args) > 2 else -100)
                y, nll, lse = _per_element(input, target, int(ignore))
                grad = bool(torch.is_grad_enabled() and input.requires_grad)
                ARRAYS["ce_targets"].append(y)
                ARRAYS["ce_nll"].append(nll)
                ARRAYS["ce_lse"].append(lse)
                _record("ce", {"grad": grad, "n": int(y.size)})
        except Exception as exc:  # noqa: BLE001 - instrumentation must never change the script's behaviour
            _record("note", {"text": f"cross_entropy record failed: {type(exc).__name__}: {exc}"})
        return out

    F.cross_entropy = cross_entropy
    torch.nn.modules.loss.F.cross_entropy = cross_entropy  # nn.CrossEntropyLoss looks it up there


def _wrap_updates(torch) -> None:
    autograd = torch.autograd
    backward, grad = autograd.backward, autograd.grad

    def traced_backward(*args, **kwargs):
        _record("update", {"kind": "backward"})
        return backward(*args, **kwargs)

    def traced_grad(outputs, inputs, *args, **kwargs):
        items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        free = not all(isinstance(p, torch.nn.Parameter) for p in items)
        _record("update", {"kind": "grad", "free": free})
        return grad(outputs, inputs, *args, **kwargs)

    autograd.backward = traced_backward
    autograd.grad = traced_grad

    def step_hook(optimizer, args, kwargs):
        params = [p for g in optimizer.param_groups for p in g["params"]]
        free = bool(params) and not all(isinstance(p, torch.nn.Parameter) for p in params)
        _record("update", {"kind": "step", "free": free, "optimizer": type(optimizer).__name__})

    from torch.optim.optimizer import register_optimizer_step_pre_hook

    register_optimizer_step_pre_hook(step_hook)


def _script_hooks_in(module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def _wrap_forwards(torch) -> None:
    """Record outermost integer-input forwards of module trees that carry the script's own forward hooks
    (how calibration collects statistics); nested module calls are skipped through a depth counter."""
    depth = [0]

    def pre_hook(module, args):
        depth[0] += 1
        if depth[0] != 1:
            return
        try:
            first = args[0] if args else None
            if (isinstance(first, torch.Tensor) and not first.is_floating_point() and first.dim() >= 1
                    and first.numel() >= 8 and _script_hooks_in(module)):
                ARRAYS["fwd_ids"].append(first.detach().reshape(-1).cpu().numpy().astype(np.int64))
                _record("fwd", {"module": type(module).__name__})
        except Exception:  # noqa: BLE001
            pass

    def post_hook(module, args, output):
        depth[0] = max(0, depth[0] - 1)

    torch.nn.modules.module.register_module_forward_pre_hook(pre_hook)
    torch.nn.modules.module.register_module_forward_hook(post_hook, always_call=True)


def _audit(event: str, args) -> None:
    if event != "open" or not args:
        return
    path = args[0]
    if isinstance(path, bytes):
        path = path.decode("utf-8", "replace")
    if not isinstance(path, str):
        return
    name = path.rsplit("/", 1)[-1]
    if name.startswith("fineweb_"):
        mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
        _record("open", {"path": path, "mode": mode})


class LineRecorder:
    """Wraps sys.stdout/stderr: passes text through and records each complete line as a `log` event."""

    def __init__(self, stream) -> None:
        self._stream, self._partial = stream, ""

    def write(self, text: str) -> int:
        self._partial += text
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            _record("log", {"line": line[:2000]})
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def install() -> None:
    """Install every wrapper; torch.compile becomes the identity (no C++ toolchain at probe scale, same maths)."""
    import torch

    _wrap_cross_entropy(torch)
    _wrap_updates(torch)
    _wrap_forwards(torch)
    torch.compile = lambda model=None, *a, **k: model if model is not None else (lambda fn: fn)
    sys.addaudithook(_audit)
    sys.stdout = LineRecorder(sys.stdout)
    sys.stderr = LineRecorder(sys.stderr)


def dump(path: str) -> None:
    """Write the trace as one .npz: concatenated arrays plus the event table as JSON text."""
    import json

    def cat(key: str, dtype) -> np.ndarray:
        parts = ARRAYS[key]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    if isinstance(sys.stdout, LineRecorder) and sys.stdout._partial:
        _record("log", {"line": sys.stdout._partial[:2000]})
    np.savez(path, ce_targets=cat("ce_targets", np.int64), ce_nll=cat("ce_nll", np.float64),
             ce_lse=cat("ce_lse", np.float64), fwd_ids=cat("fwd_ids", np.int64),
             fwd_sizes=np.array([a.size for a in ARRAYS["fwd_ids"]], dtype=np.int64),
             events=np.array(json.dumps(EVENTS)))
