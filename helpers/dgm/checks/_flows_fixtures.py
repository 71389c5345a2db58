r"""Fixed conditioners, layers and inputs for the lab-5 checks (all derived from a seed, CPU)."""
from __future__ import annotations

import torch
from torch import nn

from .. import flows as ref
from ._check import VISIBLE
from ._core import fixed_normal, fixed_uniform

BIG_GAIN = 1e4  # a conditioner this loud makes exp(ŝ) overflow unless the log-scale is bounded


class FixedNet(nn.Module):
    r"""A conditioner with fixed weights: (B, C, H, W) → (B, 2C, H, W) by a 3×3 conv, or (B, D) → (B, 2D).

    Output = gain · (W h + bias); linear on purpose, so the checks can tell which inputs it saw.
    """

    def __init__(self, shape: tuple, seed: int, dtype=torch.float64, gain: float = 1.0):
        super().__init__()
        c = shape[0]
        self.lin = nn.Conv2d(c, 2 * c, 3, padding=1) if len(shape) == 3 else nn.Linear(c, 2 * c)
        self.lin = self.lin.to(dtype)
        with torch.no_grad():
            for i, p in enumerate(self.lin.parameters()):
                p.copy_(0.6 * fixed_normal(*p.shape, seed=seed + i, dtype=dtype))
        self.gain = gain

    def forward(self, h):
        return self.gain * self.lin(h)


class FixedAffine(nn.Module):
    r"""An element-wise affine layer h ↦ h ⊙ exp(a) + c with fixed a, c; log|det| = Σ a (per sample)."""

    def __init__(self, shape: tuple, seed: int, dtype=torch.float64):
        super().__init__()
        self.register_buffer("a", 0.4 * fixed_normal(*shape, seed=seed, dtype=dtype))
        self.register_buffer("c", 0.5 * fixed_normal(*shape, seed=seed + 1, dtype=dtype))

    def forward(self, h):
        return h * torch.exp(self.a) + self.c, self.a.sum().expand(h.shape[0])


class FixedCoupling(nn.Module):
    r"""The reference affine coupling with a fixed conditioner: forward(h) → (h_next, log_det)."""

    def __init__(self, mask: torch.Tensor, net: FixedNet):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = net

    def forward(self, h):
        return ref.coupling_forward(h, self.mask, self.net)


def mask_for(shape: tuple, parity: int, kind: str, dtype) -> torch.Tensor:
    if len(shape) == 1:
        return ref.alternating_mask(shape[0], parity, dtype=dtype)
    if kind == "channel" and shape[0] > 1:
        return ref.channel_mask(shape[0], parity, dtype=dtype)
    return ref.checkerboard_mask(shape[1], shape[2], parity, dtype=dtype)


def coupling_case(seed: int, case: str) -> dict:
    r"""x, a mask, a conditioner and its loud twin: visible = vectors (4, 6) in float32; hidden from the seed."""
    if case == VISIBLE:
        b, shape, dtype, kind, parity = 4, (6,), torch.float32, "alternating", 0
    else:
        b = 2 + seed % 4
        dtype = torch.float64 if (seed // 4) % 2 else torch.float32
        kind = ("alternating", "checkerboard", "channel")[(seed // 8) % 3]
        shape = (3 + seed % 5,) if kind == "alternating" else ((1 + (seed // 3) % 2) * 2, 4, 2 + 2 * (seed % 2))
        parity = (seed // 16) % 2
    x = 1.5 * fixed_normal(b, *shape, seed=seed, dtype=dtype)  # (B, ...)
    return {"x": x, "mask": mask_for(shape, parity, kind, dtype),
            "net": FixedNet(shape, seed + 11, dtype), "big_net": FixedNet(shape, seed + 11, dtype, gain=BIG_GAIN)}


def flow_case(seed: int, case: str) -> dict:
    r"""x and a list of fixed layers (couplings that do not commute + an affine layer) for log_likelihood."""
    if case == VISIBLE:
        b, shape, dtype, n = 5, (4,), torch.float32, 3
    else:
        b, n = 2 + seed % 5, 2 + (seed // 5) % 3
        dtype = torch.float64 if (seed // 15) % 2 else torch.float32
        shape = (2 + seed % 6,) if (seed // 30) % 2 else (1 + seed % 2, 4, 4)
    layers = []
    for k in range(n):
        if k == 1:
            layers.append(FixedAffine(shape, seed + 50, dtype))
        layers.append(FixedCoupling(mask_for(shape, k % 2, "checkerboard", dtype), FixedNet(shape, seed + 7 * k, dtype)))
    return {"x": 1.2 * fixed_normal(b, *shape, seed=seed + 3, dtype=dtype), "layers": layers}


def pixels(b: int, shape: tuple, seed: int, dtype) -> torch.Tensor:
    """8-bit images stored as k/255, with some exact 0s and 1s: (B, C, H, W)."""
    k = torch.floor(fixed_uniform(b, *shape, seed=seed, dtype=torch.float64) * 300 - 20).clamp(0, 255)
    return (k / 255).to(dtype)


def image_shape(seed: int, case: str) -> tuple:
    if case == VISIBLE:
        return 4, (1, 6, 6), torch.float32
    c = (1, 3)[seed % 2]  # hidden: colour images too, so the dimension count D = C·H·W matters
    return 2 + (seed // 2) % 4, (c, 2 + 2 * (seed // 8 % 3), 4 + 2 * (seed // 24 % 2)), \
        (torch.float32, torch.float64)[(seed // 48) % 2]


def jacobian(f, x: torch.Tensor) -> torch.Tensor:
    """∂f(x)/∂x of one sample x (its own shape) as a (D, D) matrix, float64."""
    d = x.numel()
    jac = torch.autograd.functional.jacobian(lambda v: f(v.reshape(1, *x.shape)).reshape(d), x.reshape(d))
    return jac.reshape(d, d)
