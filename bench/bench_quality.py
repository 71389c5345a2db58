"""Benchmark (not a test): what dgm.metrics.sample_quality says about real digits, junk and a short
reference-model run, and how long the digit classifier takes to train.

    DGM_FAST=1 .venv/bin/python bench/bench_quality.py [--full] [--ae-steps 300]

Runs on one CPU thread in a private cache folder (the classifier is trained from scratch, so its training
time is measured). ``--full`` trains the classifier with the full budget (dgm.metrics.STEPS) instead of the
fast one. A calibration figure (steps/s of a fixed tiny MLP) is printed at the start and the end, so
figures from a busy machine can be put in proportion.

Measured on 2 shared cores under heavy load (calibration 25–41 tiny-MLP steps/s; a quiet core gives ~140–154):
fast classifier (500 steps) 50 s, test accuracy 0.982; full (1500 steps) 163 s, 0.985 — about 13 s and 33 s
on a quiet core. confident / classes / FID (full classifier): real test 0.92 / 10 / 0; first 1000 train digits
0.96 / 10 / 6.5; uniform noise 0.00 / 0 / 526; 400 threes 0.96 / 1 / 420; averages of two digits 0.04 / 10 / 297;
AE(16) reconstructions after 300 steps 0.40 / 10 / 113.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def calibration(seconds: float = 2.0) -> float:
    """Training steps/s of a fixed tiny MLP (784-256-784, batch 128) on one thread."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 784))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(128, 784)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        opt.zero_grad()
        F.mse_loss(model(x), x).backward()
        opt.step()
        n += 1
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="train the classifier with the full budget")
    ap.add_argument("--ae-steps", type=int, default=300, help="steps of the reference AE run (0: skip)")
    args = ap.parse_args()
    os.environ["DGM_FAST"] = "0" if args.full else "1"
    os.environ["DGM_DATA"] = tempfile.mkdtemp(prefix="dgm_bench_quality_")
    os.environ.pop("DGM_DATASET", None)
    import torch

    import dgm
    import dgm.data
    import dgm.metrics as M

    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f}; calibration (tiny MLP, 1 thread): {calibration():.0f} steps/s")
    start = time.perf_counter()
    model = M.classifier("mnist5k")
    print(f"classifier: {M.STEPS if args.full else M.FAST_STEPS} steps in {time.perf_counter() - start:.1f} s, "
          f"test accuracy {model.test_accuracy.item():.3f}")

    x, y = dgm.data.load("mnist5k", "train")
    x_test, _ = dgm.data.load("mnist5k", "test")
    g = torch.Generator().manual_seed(0)
    rows = {
        "real test digits (the FID reference)": x_test,
        "real train digits, first 1000": x[:1000],
        "real train digits, first 200": x[:200],
        "uniform noise": torch.rand(1000, 1, 28, 28, generator=g),
        "one class (400 threes)": x[y == 3],
        "two classes (zeros and ones)": torch.cat([x[y == 0], x[y == 1]]),
        "averages of two test digits": 0.5 * (x_test + x_test.roll(1, 0)),
        "test digits blurred (3×3 mean)": torch.nn.functional.avg_pool2d(x_test, 3, 1, 1),
    }
    names = ["noise^p", "blobs", "strokes", "avg of two", "inverted", "shuffled px", "buried in noise"]
    for name, part in zip(names, M.junk(x_test, 700, torch.Generator().manual_seed(7)).view(7, 100, 1, 28, 28)):
        rows[f"junk: {name} (100)"] = part
    if args.ae_steps:
        dgm.seed_everything(0)
        ae = dgm.ae.Autoencoder(16)
        opt = torch.optim.Adam(ae.parameters(), lr=2e-3)
        t = time.perf_counter()
        dgm.train.fit(ae, x, step_fn=lambda xb, s: dgm.ae.train_step(ae, opt, xb), optimizer=opt,
                      steps=args.ae_steps, batch_size=128, device="cpu", progress=False)
        seconds = time.perf_counter() - t
        with torch.no_grad():
            rows[f"AE(16) reconstructions after {args.ae_steps} steps ({seconds:.0f} s)"] = ae(x_test)
            rows["AE(16) decoded z ~ N(0, I) (not a generative model)"] = ae.decode(torch.randn(1000, 16,
                                                                                              generator=g))
    width = max(map(len, rows)) + 2
    print(f"{'images':<{width}}{'n':>6}{'confident':>11}{'classes':>9}{'entropy':>9}{'FID':>10}{'s':>7}")
    for name, images in rows.items():
        t = time.perf_counter()
        q = M.sample_quality(images, dataset="mnist5k")
        print(f"{name:<{width}}{q.n:>6}{q.confident:>11.3f}{q.n_classes:>9}{q.class_entropy:>9.2f}{q.fid:>10.3g}"
              f"{time.perf_counter() - t:>7.2f}", flush=True)
    print(f"calibration again: {calibration():.0f} steps/s; load average {os.getloadavg()[0]:.2f}")
    print(f"confident = share with max softmax ≥ {M.THRESHOLD}; FID against the 1,000 mnist5k test digits")


if __name__ == "__main__":
    sys.exit(main())
