r"""Lab 4's training recipe around Algorithm 1: the EMA of the weights (:class:`dgm.train.EMA`), the learning-rate schedule, the
recipe's numbers, and saving the final samples (re-exported by :mod:`dgm.ddpm`).

An exponential moving average (EMA) of the weights, θ_EMA ← d·θ_EMA + (1 − d)·θ, is the network we sample
from: every Adam step jitters θ, and a reverse chain of many steps accumulates that jitter; the average
cancels most of it (Ho et al. use d = 0.9999 over 800k steps; a short CPU run needs a shorter memory).
"""
from __future__ import annotations

import math

import torch

from .train import EMA  # noqa: F401  (re-exported: dgm.ddpm.EMA)

__all__ = ["EMA", "lr_at", "LAB_RECIPE"]

# The CPU recipe of lab 4's notebook (measured with bench/bench_ddpm_recipe.py; the notebook states the time and
# the sample metrics). The network is class-conditional (dgm.ddpm_cfg: each label dropped to ∅ with probability
# p_uncond) and samples with classifier-free guidance of scale `guidance`: at 1500 steps the unconditional U-Net
# drew 23 % confident digits, the conditional one 34 % (w = 0) and 61 % (w = 2); at w = 2, 2000 steps gave 72 %,
# 2500 steps 79 % (the notebook's Run All: 239 s) and 3000 steps 87 % (too slow for the CPU budget).
# Self-attention at the 7×7 level (attn) helped; patch=2 (wider, batch 64), batch 64 at 1000 steps and the cosine
# schedule were worse (bench/bench_ddpm_recipe.py's table).
LAB_RECIPE = dict(T=100, schedule="linear", channels=16, patch=1, attn=True, batch_size=32, steps=2500, lr=2e-3,
                  warmup=100, ema=0.995, sample_steps=25, p_uncond=0.1, guidance=2.0)


def lr_at(step: int, steps: int, lr: float, warmup: int = 100) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to 0 at ``steps`` (a pure function of the
    step, so a resumed checkpoint continues on the same curve)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min((step - warmup) / max(steps - warmup, 1), 1.0)
    return lr * 0.5 * (1 + math.cos(math.pi * progress))
