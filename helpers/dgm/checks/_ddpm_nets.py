r"""Fixtures shared by the lab-4 checks: small schedules, a fixed ε_θ, seeded shapes and evidence helpers.

Everything here is pure and deterministic from its arguments (no RNG stream), so the grader can
rebuild exactly what the student's kernel used.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import ddpm as ref
from ._core import Mistake, close, fixed_uniform

OFF_BY_ONE = ("off by one in t: it uses ᾱ_{t−1} where ᾱ_t belongs. In this lab the buffers are indexed by "
              "the slide's t, so ᾱ_t is sched.alpha_bar[t] (index 0 holds ᾱ_0 = 1, the clean image).")


def small_schedule(T: int = 10, dtype=torch.float64, low: float = 0.02, high: float = 0.3) -> ref.DiffusionSchedule:
    return ref.DiffusionSchedule(torch.linspace(low, high, T, dtype=torch.float64)).to(dtype)


def per_image(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))  # (B,) → (B, 1, 1, 1)


def ints(seed: int, n: int, low: int, high: int) -> list[int]:
    """n integers in [low, high] derived from the seed alone (for hidden shapes and steps)."""
    u = fixed_uniform(n, seed=seed % 100_003, dtype=torch.float64)
    return [low + min(int(v * (high - low + 1)), high - low) for v in u.tolist()]


def dtype_of(seed: int) -> torch.dtype:
    return torch.float64 if seed % 2 else torch.float32


class EpsNet(nn.Module):
    """A fixed, differentiable stand-in for ε_θ(x_t, t) that depends on both arguments."""

    def __init__(self, dtype=torch.float32, record: bool = False):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.8, dtype=dtype))
        self.record, self.calls = record, []

    def forward(self, xt, t):
        if not isinstance(xt, torch.Tensor) or not isinstance(t, torch.Tensor) or t.dim() != 1 \
                or len(t) != xt.shape[0]:
            raise Mistake("the network must be called as model(x_t, t) with t a (B,) tensor holding each image's "
                          f"step (got {type(t).__name__} {tuple(getattr(t, 'shape', ()))}). "
                          "Use torch.full((B,), t) for one shared step.", id="model-call")
        if self.record:
            self.calls.append([xt.detach().clone(), t.detach().clone()])
        return self.w * torch.tanh(xt) + 0.03 * per_image(t.to(xt.dtype), xt)  # (B, C, H, W)


# ----------------------------------------------------------------------------- evidence helpers
def as_evidence(out):
    """Kernel side: a tensor as it is (detached), anything else as its type name."""
    if isinstance(out, torch.Tensor):
        return out.detach().clone()
    return {"type": type(out).__name__}


def tensor_of(v, name: str, shape=None, scalar: bool = False, what: str = "") -> torch.Tensor:
    """Judge side: ``v`` must be a finite tensor (of ``shape``); raise a Mistake with a stable id otherwise."""
    if not isinstance(v, torch.Tensor):
        kind = v.get("type") if isinstance(v, dict) and isinstance(v.get("type"), str) else type(v).__name__
        hint = " (a Python float loses the graph — return the tensor)" if kind == "float" else ""
        raise Mistake(f"`{name}` should return a torch.Tensor{what}, got {kind}{hint}.", id="not-a-tensor")
    if scalar and v.dim() != 0:
        raise Mistake(f"`{name}` should return a single number (a 0-dim tensor){what}, got shape "
                      f"{tuple(v.shape)}. Average the squared error over every element.", id="not-scalar")
    if shape is not None and tuple(v.shape) != tuple(shape):
        raise Mistake(f"`{name}` returned shape {tuple(v.shape)}{what}; expected {tuple(shape)}.", id="wrong-shape")
    if v.is_floating_point() and not bool(torch.isfinite(v).all()):
        raise Mistake(f"`{name}` returned NaN or inf values{what}: check for division by zero.", id="non-finite")
    if v.dtype == torch.bool or v.is_complex():
        raise Mistake(f"`{name}` should return real numbers{what}, got {v.dtype}.", id="wrong-dtype")
    return v


def matches_any(out: torch.Tensor, mistakes: dict, rtol: float, atol: float) -> bool:
    """Whether ``out`` equals one of the named mistakes (so a more specific guess can step aside)."""
    for value in mistakes.values():
        value = value() if callable(value) else value
        if value is not None and close(out, value, rtol, atol):
            return True
    return False
