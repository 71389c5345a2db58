"""Shared by tests/test_ddpm_quality.py and bench/bench_ddpm.py: train the reference DDPM in fast mode
and rate its samples with a small digit classifier trained on the real digits.

The judge is a small CNN trained on the real training digits with *outlier exposure* (Hendrycks et al.,
2019): noise and heavily corrupted digits are trained towards the uniform distribution, so it is not
confidently wrong on junk. A sample counts as a recognisable digit when the judge gives it a class
probability ≥ CONFIDENCE. Everything is seeded and runs on one CPU thread.
"""
from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

import dgm
from dgm import ddpm

# The fast-mode budget of the reference DDPM (measured on 2 shared CPU cores; see bench/bench_ddpm.py).
FAST = dict(T=100, channels=16, patch=1, batch_size=32, steps=600, lr=3e-3, ema=0.99)
CONFIDENCE = 0.7  # real held-out digits: ~0.95 pass, pure noise: 0


def train_fast(seed: int = 0, **overrides):
    """The reference DDPM on the offline digits with the FAST budget; returns (ema_model, sched, seconds)."""
    cfg = {**FAST, **overrides}
    x, _ = dgm.data.load("digits", "train")
    x0 = 2 * x - 1                                                      # [0, 1] → [−1, 1]
    T = cfg["T"]
    sched = ddpm.make_schedule(T, beta_1=1e-4 * 1000 / T, beta_T=min(0.02 * 1000 / T, 0.5))
    dgm.seed_everything(seed)
    model = ddpm.UNet(channels=cfg["channels"], patch=cfg["patch"])
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    lr_sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg["lr"], total_steps=cfg["steps"], pct_start=0.1)

    def step_fn(xb, step):
        opt.zero_grad(set_to_none=True)
        loss = ddpm.ddpm_loss(model, xb, sched)                         # Algorithm 1
        loss.backward()
        opt.step()
        lr_sched.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - cfg["ema"])                            # exponential moving average
        return loss

    start = time.perf_counter()
    dgm.train.fit(model, x0, step_fn=step_fn, optimizer=opt, steps=cfg["steps"], batch_size=cfg["batch_size"],
                  device="cpu", progress=False, seed=seed)
    return ema.eval(), sched, time.perf_counter() - start


class Judge(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 16, 5, 2, 2), nn.ReLU(), nn.Conv2d(16, 32, 5, 2, 2), nn.ReLU(),
                                 nn.Flatten(), nn.Linear(32 * 49, 10))

    def forward(self, x):                                               # x in [0, 1], (B, 1, 28, 28)
        return self.net(x)


def train_judge(steps: int = 300, seed: int = 0):
    """The digit classifier; returns (judge, held-out accuracy on the real test digits)."""
    x, y = dgm.data.load("digits", "train")
    x_test, y_test = dgm.data.load("digits", "test")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    judge = Judge()
    opt = torch.optim.Adam(judge.parameters(), lr=2e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,), generator=g)
        k = 16
        noise = torch.rand(k, 1, 28, 28, generator=g)                  # junk: uniform noise …
        xi = x[torch.randint(0, len(x), (3 * k,), generator=g)]
        lam = 0.3 + 0.6 * torch.rand(3 * k, 1, 1, 1, generator=g)       # … and digits buried in noise
        noisy = (lam * 0.5 * torch.randn(xi.shape, generator=g) + (1 - lam) * xi).clamp(0, 1)
        junk = torch.cat([noise, noisy])
        loss = F.cross_entropy(judge(x[idx]), y[idx]) \
            + 0.5 * (-F.log_softmax(judge(junk), dim=1).mean(1)).mean()  # junk → uniform (outlier exposure)
        opt.zero_grad()
        loss.backward()
        opt.step()
    judge.eval()
    with torch.no_grad():
        acc = (judge(x_test).argmax(1) == y_test).float().mean().item()
    return judge, acc


@torch.no_grad()
def rate(judge, images: torch.Tensor) -> dict:
    """images in [0, 1]: fraction classified with confidence ≥ CONFIDENCE, and how many classes those cover."""
    p = F.softmax(judge(images.float().cpu()), dim=1)
    conf, cls = p.max(1)
    sure = conf >= CONFIDENCE
    return {"confident": sure.float().mean().item(), "classes": len(set(cls[sure].tolist()))}


def sample_and_rate(judge, model, sched, n: int = 100, seed: int = 1, **kw):
    """Draw n samples with dgm.ddpm.sample(**kw); returns (rating, seconds)."""
    start = time.perf_counter()
    x = ddpm.sample(model, (n, 1, 28, 28), sched, generator=torch.Generator().manual_seed(seed), progress=False, **kw)
    seconds = time.perf_counter() - start
    return rate(judge, ddpm.to_unit(x)), seconds
