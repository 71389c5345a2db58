r"""Benchmark for lab 5 (not a test): the RealNVP of the lab — steps/s, test bits/dim, a sample grid — and a
calibration figure (steps/s of a fixed tiny 2-D flow) measured in the same process.

    .venv/bin/python bench/bench_flows.py [--steps 700] [--threads 2] [--png /tmp/flows_samples.png]

Prints one line per figure; the sample grid (T = 1.0 and T = 0.7) is written to ``--png`` so a human can judge
whether the samples look like digits. Compare the calibration figure with the one the notebook prints to
translate the measured training time to another machine.
"""
from __future__ import annotations

import argparse
import time

import torch

import dgm
import dgm.data
import dgm.flows as F
import dgm.train


def calibration(n: int = 100) -> float:
    """Steps per second of the fixed tiny model the notebook also times (moons_flow(4, 32), batch 256)."""
    torch.manual_seed(0)
    tiny = F.moons_flow(4, 32)
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
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--png", default="/tmp/flows_samples.png")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"calibration: {calibration():.0f} steps/s (tiny 2-D flow, batch 256, {args.threads} threads)")
    x_train, _ = dgm.data.load("mnist5k", "train")
    x_test, _ = dgm.data.load("mnist5k", "test")
    dgm.seed_everything(0)
    flow = F.realnvp(blocks=(8, 0, 0), mlp_hidden=256)
    t0 = time.perf_counter()
    dgm.train.fit(flow, x_train, F.bpd_loss, steps=args.steps, batch_size=64, lr=1e-3, device="cpu", progress=False)
    secs = time.perf_counter() - t0
    print(f"training: {args.steps} steps in {secs:.0f} s ({args.steps / secs:.2f} steps/s)")
    flow.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        lp = torch.cat([flow.log_prob(F.dequantize(b)) for b in x_test.split(250)])
        print(f"test bits/dim: {F.bits_per_dim(lp, 784).mean():.3f}")
        grids = [flow.sample(48, temperature=t) for t in (1.0, 0.7)]
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    import dgm.plot
    fig, axes = plt.subplots(2, 1, figsize=(10, 5))
    for ax, g, t in zip(axes, grids, (1.0, 0.7)):
        dgm.plot.show_images(g, nrow=16, ax=ax, title=f"T = {t}")
    fig.savefig(args.png, dpi=80)
    print(f"samples: {args.png}")


if __name__ == "__main__":
    main()
