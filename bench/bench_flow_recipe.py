r"""Benchmark (not a test): lab 5's digit flow (dgm.flows_pca.LAB_RECIPE) trained on mnist5k on one thread, timed
next to two calibration figures (bench_autograde's MLP, and the tiny 2-D flow whose steps/s the notebook prints),
with test bits/dim and the dgm.metrics quality of 1,000 samples per temperature.

    .venv/bin/python bench/bench_flow_recipe.py [--steps 3200] [--alpha 0.001] [--n-tail 2] [--png /tmp/flow.png]

Configurations tried for issue 13 (goal: recognisable samples, training ≤ 120 s on one thread; PCA k = 32, 8 head
couplings, MLP hidden 256, batch 64, lr 1e-3; load ≈ 2 from a second job; confident / classes / FID at T = 1):

    config                                          steps  train s  test bpd   T = 1
    28×28 RealNVP, 8 checkerboard MLP couplings       700     34     3.04     0.004 / 4 / 391   (earlier lab)
    PCA head only (tail = ActNorm Gaussian)          1500     26     4.36     0.08 / 10 / 252
    + 1 tail coupling                                1500     33     4.20     0.18 / 10 / 193
    + 2 tail couplings                               3000     87     4.51     0.28 / 10 / 140
    3 tail, dropout 0.3                              3000    121     4.15     0.14 / 10 / 210
    3 tail, ±1 px shifts                             3000    108     3.84     0.27 / 10 / 134
    3 tail, shifts, α = 0.01                         3000    120     2.81     0.34 / 10 / 84
    3 tail, shifts, α = 0.002                        3000    123     2.17     0.43 / 10 / 58
    2 tail, shifts, α = 0.0005                       3000     98     1.96     0.40 / 10 / 59
    2 tail, shifts, α = 0.001 (the recipe)           3200     96     2.03     0.39 / 10 / 61

Lower temperatures do not help this flow (T = 0.5: 0.34): shrinking the PCA coordinates pulls samples towards
the mean digit. Without the shifts the test bits/dim rose while the samples improved (overfitting 4,000 digits).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_autograde import calibration  # noqa: E402


def notebook_calibration(n: int = 100) -> float:
    """Steps/s of the fixed tiny model lab 5's training cell also times (moons_flow(4, 32), batch 256)."""
    import torch

    from dgm import flows

    torch.manual_seed(0)
    tiny = flows.moons_flow(4, 32)
    opt = torch.optim.Adam(tiny.parameters(), 1e-3)
    xb = torch.randn(256, 2)
    t0 = time.perf_counter()
    for _ in range(n):
        loss = -tiny.log_prob(xb).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return n / (time.perf_counter() - t0)


def main() -> None:
    os.environ["DGM_FAST"] = "0"
    import torch
    from torchvision.utils import save_image

    import dgm
    import dgm.data
    import dgm.metrics as M
    import dgm.train
    from dgm import flows, flows_pca

    r = flows_pca.LAB_RECIPE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for k, v in r.items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=type(v), default=v)
    ap.add_argument("--png", default="/tmp/flow_samples.png")
    a = ap.parse_args()
    torch.set_num_threads(1)
    x_train, _ = dgm.data.load("mnist5k", "train")
    x_test, _ = dgm.data.load("mnist5k", "test")
    M.classifier("mnist5k")  # trained once and cached: not part of the timing
    cal, load = calibration(), os.getloadavg()[0]
    print(f"notebook calibration: {notebook_calibration():.0f} steps/s (tiny 2-D flow, batch 256)")
    dgm.seed_everything(0)
    t0 = time.perf_counter()
    flow = flows_pca.pca_realnvp(x_train, k=a.k, n_head=a.n_head, n_tail=a.n_tail, hidden=a.hidden, alpha=a.alpha)
    dgm.train.fit(flow, x_train, lambda m, x: flows_pca.shifted_bpd_loss(m, x, a.max_shift), steps=a.steps,
                  batch_size=a.batch_size, lr=a.lr, progress=False)
    sec = time.perf_counter() - t0
    print(f"{vars(a)}\nload {load:.1f}; calibration {cal:.0f} → {calibration():.0f} steps/s; training {sec:.0f} s")
    flow.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        log_py = torch.cat([flow.log_prob(flows.dequantize(xb)) for xb in x_test.split(250)])
        print(f"test bits/dim {flows.bits_per_dim(log_py, 784).mean():.3f}")
        grids = []
        for T in (1.0, 0.7):
            torch.manual_seed(2)
            xs = flow.sample(1000, temperature=T)
            print(f"T = {T}: {M.sample_quality(xs, dataset='mnist5k')}")
            grids.append(xs[:40])
    save_image(torch.cat(grids), a.png, nrow=20, pad_value=0.5)
    print(f"grid (T = 1, then T = 0.7): {a.png}")


if __name__ == "__main__":
    main()
