r"""Fixed stand-ins used by :mod:`dgm.checks.ddpm`: a small schedule, and networks ε_θ with known outputs."""
from __future__ import annotations

import torch
from torch import nn

from .. import ddpm as ref
from ._core import Mistake


def small_schedule(T: int = 10, dtype=torch.float64) -> ref.DiffusionSchedule:
    return ref.DiffusionSchedule(torch.linspace(0.02, 0.3, T, dtype=torch.float64)).to(dtype)


def per_image(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))  # (B,) → (B, 1, 1, 1)


class EpsNet(nn.Module):
    """A fixed, differentiable stand-in for ε_θ(x_t, t) that depends on both arguments."""

    def __init__(self, dtype=torch.float32, record: bool = False):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.8, dtype=dtype))
        self.record, self.calls = record, []

    def forward(self, xt, t):
        if not isinstance(t, torch.Tensor) or t.dim() != 1 or len(t) != xt.shape[0]:
            raise Mistake("the network must be called as model(x_t, t) with t a (B,) tensor holding each image's "
                          f"step (got {type(t).__name__} {tuple(getattr(t, 'shape', ()))}). "
                          "Use torch.full((B,), t) for one shared step.")
        if self.record:
            self.calls.append((xt.detach().clone(), t.detach().clone()))
        return self.w * torch.tanh(xt) + 0.03 * per_image(t.to(xt.dtype), xt)  # (B, C, H, W)


class Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.ts = []

    def forward(self, xt, t):
        if not isinstance(t, torch.Tensor) or t.dim() != 1 or len(t) != xt.shape[0]:
            raise Mistake("the network must be called as model(x_t, t) with t a (B,) tensor "
                          "(your p_sample should build it with torch.full((B,), t)).")
        self.ts.append(int(t[0]))
        return torch.zeros_like(xt)  # ε_θ = 0: the chain only rescales and adds noise
