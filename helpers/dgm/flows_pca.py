r"""Lab 5's digit flow: a RealNVP that works in a PCA basis of the logit-space pixels (re-exported recipe).

    y ∈ [0,1]^784 --logit--> v --rotate--> u = (v − m) U --ActNorm--> --tail couplings--> --head couplings--> z

* :class:`PCARotation`: u = (v − m) U with U orthogonal (the principal axes of the training digits, in order of
  decreasing variance), so log|det ∂u/∂v| = log|det U| = 0. It is fitted once, before training, and then fixed:
  an invertible layer whose parameters came from the data, like ActNorm's first-batch initialisation.
* ``ActNorm(784)`` gives every coordinate its own learned scale: alone, it makes the 752 low-variance "tail"
  coordinates a diagonal Gaussian — a probabilistic PCA.
* Tail couplings keep the first k = 32 coordinates (the digit's global shape) and scale/shift the tail given
  them: the fine detail of the strokes, conditioned on the shape.
* :class:`Head`: a stack of couplings with alternating masks that act on the first k coordinates only; the rest
  pass unchanged (log-det 0 for them). Modelling 32 numbers well is within reach of a few CPU minutes.

Measured with bench/bench_flow_recipe.py (one thread, mnist5k, 1,000 samples at T = 1): 3200 steps in 96 s,
test 2.03 bits/dim, 39 % confident samples, 10/10 classes, FID 61 (the 28×28 RealNVP of earlier versions of the
lab: 3.04 bits/dim and 0.4 %). Three things did it: the tail conditioned on the head (8 % → 18–28 % confident),
random ±1 pixel shifts of the training digits against overfitting 4,000 images (test bits/dim 4.98 → 3.84), and
a logit α of 0.001 instead of 0.05 (the background saturates, 34–43 %).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .flows import ActNorm, AffineCoupling, Flow, LogitTransform, alternating_mask, bpd_loss, dequantize, mlp_net

__all__ = ["PCARotation", "Head", "pca_realnvp", "random_shift", "shifted_bpd_loss", "LAB_RECIPE"]

LAB_RECIPE = dict(k=32, n_head=8, n_tail=2, hidden=256, alpha=0.001, max_shift=1, steps=3200, batch_size=64,
                  lr=1e-3)


class PCARotation(nn.Module):
    r"""(B, C, H, W) → (B, D): u = (flatten(x) − m) U, U orthogonal, log|det| = 0; :meth:`fit` sets m and U."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)
        d = math.prod(self.shape)
        self.register_buffer("m", torch.zeros(d))
        self.register_buffer("U", torch.eye(d))

    @torch.no_grad()
    def fit(self, v: torch.Tensor) -> "PCARotation":
        """m = mean of v (N, C, H, W); U = eigenvectors of its covariance, largest variance first."""
        v = v.flatten(1).double()                                         # (N, D)
        m = v.mean(0)
        _, U = torch.linalg.eigh((v - m).T @ (v - m) / len(v))            # ascending eigenvalues
        self.m.copy_(m.to(self.m.dtype))
        self.U.copy_(U.flip(1).to(self.U.dtype))                          # descending variance
        return self

    def forward(self, x):
        return (x.flatten(1) - self.m) @ self.U, x.new_zeros(x.shape[0])  # (B, D), log|det U| = 0

    def inverse(self, u):
        return (u @ self.U.T + self.m).view(-1, *self.shape)              # U^{-1} = U^T


class Head(nn.Module):
    r"""Applies the invertible ``layers`` to the first ``k`` coordinates of (B, D); the other D − k pass unchanged."""

    def __init__(self, k: int, layers):
        super().__init__()
        self.k = k
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        h, rest = x[:, :self.k], x[:, self.k:]                            # (B, k), (B, D − k)
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            h, ld = layer(h)
            log_det = log_det + ld
        return torch.cat([h, rest], 1), log_det

    def inverse(self, z):
        h, rest = z[:, :self.k], z[:, self.k:]
        for layer in reversed(self.layers):
            h = layer.inverse(h)
        return torch.cat([h, rest], 1)


def pca_realnvp(x_train: torch.Tensor, k: int = 32, n_head: int = 8, n_tail: int = 2, hidden: int = 256,
                alpha: float = 0.001) -> Flow:
    """The flow of the module docstring for images like ``x_train`` (N, C, H, W) in [0, 1]; the PCA is fitted
    on one dequantized copy of ``x_train`` in logit space. z has shape (D,)."""
    shape = tuple(x_train.shape[1:])
    d = math.prod(shape)
    if not 2 <= k < d:
        raise ValueError(f"k must be between 2 and D − 1 = {d - 1}, got {k}")
    logit = LogitTransform(alpha)
    rotation = PCARotation(shape).fit(logit(dequantize(x_train))[0])
    tail_mask = (torch.arange(d) < k).float()                             # 1 = kept: the first k coordinates
    layers = [logit, rotation, ActNorm(d, image=False)]
    layers += [AffineCoupling(tail_mask, mlp_net(d, hidden)) for _ in range(n_tail)]
    head = []
    for i in range(n_head):
        head += [ActNorm(k, image=False), AffineCoupling(alternating_mask(k, i % 2), mlp_net(k, hidden))]
    return Flow(layers + [Head(k, head)], (d,))


def random_shift(x: torch.Tensor, max_shift: int = 1) -> torch.Tensor:
    """Each image of (B, C, H, W) moved by its own random (dy, dx) ∈ {−max_shift, …, max_shift}² (the digits'
    border is empty, so rolling does not wrap strokes around)."""
    shifts = torch.randint(-max_shift, max_shift + 1, (len(x), 2))       # (B, 2)
    out = torch.empty_like(x)
    for dy, dx in shifts.unique(dim=0).tolist():
        sel = ((shifts[:, 0] == dy) & (shifts[:, 1] == dx)).to(x.device)
        out[sel] = torch.roll(x[sel], (dy, dx), dims=(-2, -1))
    return out


def shifted_bpd_loss(model: Flow, x: torch.Tensor, max_shift: int = LAB_RECIPE["max_shift"]) -> torch.Tensor:
    """:func:`dgm.flows.bpd_loss` of randomly shifted training digits (the lab's loss for :func:`dgm.train.fit`)."""
    return bpd_loss(model, random_shift(x, max_shift))
