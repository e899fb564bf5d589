"""Muon: momentum SGD whose update for each 2-D matrix is orthogonalised by a Newton-Schulz iteration.

What it does: keeps a momentum buffer per matrix, takes the Nesterov direction, replaces it by an approximation of
U V^T from its SVD (5 quintic Newton-Schulz steps in bf16), scales by sqrt(max(1, rows/cols)) and steps.
Some warnings: only for 2-D hidden matrices; embeddings, the tied head, vectors and scalars belong to Adam. Under
DDP each rank orthogonalises every world_size-th matrix and an all-reduce gathers the updates, as in the baseline.
Arguments: params (2-D tensors), lr, momentum, backend_steps (Newton-Schulz iterations), nesterov.
Reference: Keller Jordan's Muon as used by modded-nanogpt and the challenge's baseline (challenge-facts 4.3).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def zeropower_via_newtonschulz5(g: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Approximate orthogonalisation of `g`. The quintic's coefficients favour speed over exact convergence: the
    singular values land near, not at, 1, which does not hurt training."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.bfloat16()
    x = x / (x.norm() + eps)
    transposed = g.size(0) > g.size(1)
    if transposed:
        x = x.T
    for _ in range(steps):
        m = x @ x.T
        x = a * x + (b * m + c * m @ m) @ x
    return x.T if transposed else x


class Muon(torch.optim.Optimizer):
    """Orthogonalised momentum for 2-D matrices (see the module docstring)."""

    def __init__(self, params, lr: float = 0.04, momentum: float = 0.95, backend_steps: int = 5,
                 nesterov: bool = True):
        super().__init__(params, dict(lr=lr, momentum=momentum, backend_steps=backend_steps, nesterov=nesterov))

    @torch.no_grad()
    def step(self, closure=None):
        distributed = dist.is_available() and dist.is_initialized()
        world, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            flat = torch.zeros(sum(p.numel() for p in params), device=params[0].device, dtype=torch.bfloat16)
            offset = 0
            for i, p in enumerate(params):
                if i % world == rank:  # this rank's share of the matrices
                    state = self.state[p]
                    buf = state.setdefault("momentum_buffer", torch.zeros_like(p.grad))
                    buf.mul_(group["momentum"]).add_(p.grad)
                    g = p.grad.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
                    update = zeropower_via_newtonschulz5(g, group["backend_steps"])
                    update *= max(1.0, p.size(0) / p.size(1)) ** 0.5
                    flat[offset:offset + p.numel()] = update.flatten()
                offset += p.numel()
            if world > 1:
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)  # acts as a gather: every slot has one writer
            offset = 0
            for p in params:
                p.add_(flat[offset:offset + p.numel()].view_as(p).to(p.dtype), alpha=-group["lr"])
                offset += p.numel()
        return None
