r"""Benchmark: lab 2's VAE recipe vs the pytorch/examples MLP VAE (784-400-20) at equal wall-clock time.

Both models train on the same binarized digits (dynamic binarization: every batch draws x ~ Bernoulli(pixel)
afresh) with Adam; the lab recipe runs its ``--steps`` and the examples VAE then gets exactly the same number
of seconds (the two alternate in slices of ``--slice`` s so that both see the same machine load). Both are
scored on ONE fixed binarization of the test split: the held-out −ELBO (β = 1, averaged over ``--samples``
draws of ε per image) in nats per image and in bits/dim = nats / (784 ln 2). Lower is better.

A calibration figure (training steps/s of a fixed tiny MLP 784-256-784, batch 128, 1 thread) is measured at
the start and at the end, so times from a loaded machine can be compared with the notebook's.

    python bench/bench_vae.py                          # mnist5k, the lab recipe (defaults = the notebook's)
    python bench/bench_vae.py --metrics --png /tmp/vae_samples.png   # + dgm.metrics and a sample grid

This is a script, not a test: it takes minutes.
"""
from __future__ import annotations

import argparse
import math
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

import dgm
from dgm import vae as V
from dgm.data import load


def calibration(seconds: float = 2.0) -> float:
    """Training steps/s of a fixed tiny MLP (784-256-784, batch 128) on the current threads."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 784))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(128, 784)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        opt.zero_grad()
        F.mse_loss(model(x), x).backward()
        opt.step()
        n += 1
    return n / elapsed


class ExamplesVAE(nn.Module):
    """The MLP VAE of pytorch/examples (vae/main.py): 784 → 400 → (μ, log σ²) of size 20 → 400 → 784.

    Same layers; the decoder returns logits (the original applies a sigmoid and then BCE, which is
    the same loss as BCE-with-logits, only less stable numerically). Trained as there: Adam, lr 1e-3, batch 128.
    """

    def __init__(self, latent_dim: int = 20):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, latent_dim)
        self.fc22 = nn.Linear(400, latent_dim)
        self.fc3 = nn.Linear(latent_dim, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.reshape(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = V.reparameterize(mu, logvar)
        return self.fc4(F.relu(self.fc3(z))).reshape(x.shape), mu, logvar

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z))).reshape(-1, 1, 28, 28)


def race(lab: dict, other: dict, x: torch.Tensor, slice_s: float = 0.5, seed: int = 0) -> dict:
    """Train ``lab`` for its ``steps``, and ``other`` for the same seconds, alternating slices of ``slice_s``.

    Each entry: {"model", "opt", "bs", "steps" (lab only), "sched" (optional)}. Batches are binarized afresh
    (x ~ Bernoulli(pixel)). Returns {"lab": (steps, seconds), "other": (steps, seconds)}.
    """
    torch.manual_seed(seed)
    for s in (lab, other):
        s.update(used=0.0, done=0, batches=iter(()))
        s["model"].train()

    def run(s: dict, budget: float, max_steps: float) -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < budget and s["done"] < max_steps:
            idx = next(s["batches"], None)
            if idx is None:  # new epoch
                s["batches"] = iter(torch.randperm(len(x)).split(s["bs"]))
                continue
            V.train_step(s["model"], s["opt"], torch.bernoulli(x[idx]))  # dynamic binarization
            if s.get("sched") is not None:
                s["sched"].step()
            s["done"] += 1
        s["used"] += time.perf_counter() - start

    while lab["done"] < lab["steps"] or other["used"] < lab["used"]:
        if lab["done"] < lab["steps"]:
            run(lab, slice_s, lab["steps"])
        if other["used"] < lab["used"]:
            run(other, min(slice_s, lab["used"] - other["used"]), math.inf)
    for s in (lab, other):
        s["model"].eval()
    return {"lab": (lab["done"], lab["used"]), "other": (other["done"], other["used"])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="mnist5k", choices=["mnist5k", "digits", "mnist", "fashion_mnist"])
    p.add_argument("--steps", type=int, default=None, help="lab recipe steps (default: the notebook's full budget)")
    p.add_argument("--latent-dim", type=int, default=V.LAB_RECIPE["latent_dim"])
    p.add_argument("--lr", type=float, default=V.LAB_RECIPE["lr"])
    p.add_argument("--batch-size", type=int, default=V.LAB_RECIPE["batch_size"])
    p.add_argument("--final-lr", type=float, default=V.LAB_RECIPE["final_lr"],
                   help="the lab's learning rate decays linearly to lr · final_lr (1: constant)")
    p.add_argument("--hidden", default=",".join(map(str, V.LAB_RECIPE["hidden"])),
                   help="hidden widths of the lab MLP, encoder order (the decoder mirrors them)")
    p.add_argument("--samples", type=int, default=10, help="ε draws per test image for the −ELBO")
    p.add_argument("--metrics", action="store_true", help="also rate 1,000 prior samples with dgm.metrics")
    p.add_argument("--png", default=None, help="save a grid of 100 prior samples of each model here")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 avoids oversubscription)")
    args = p.parse_args(argv)
    steps = args.steps if args.steps is not None else dgm.budget(V.LAB_RECIPE["steps"], 100)
    torch.set_num_threads(args.threads)
    calib = calibration()
    print(f"load average {os.getloadavg()[0]:.2f}; calibration (tiny MLP 784-256-784, B=128, "
          f"{args.threads} thread): {calib:.0f} steps/s")
    x, _ = load(args.data, "train")
    x_test = V.binarize(load(args.data, "test")[0], seed=0)  # one fixed binarization of the test split
    print(f"data={args.data} train={len(x)} test={len(x_test)} (binarized) lab steps={steps}")

    dgm.seed_everything(0)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    ours = V.LabVAE(args.latent_dim, hidden=hidden)
    opt = torch.optim.Adam(ours.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - (1 - args.final_lr) * min(s / max(steps, 1), 1))
    theirs = ExamplesVAE(20)
    lab = {"model": ours, "opt": opt, "bs": args.batch_size, "steps": steps, "sched": sched}
    other = {"model": theirs, "opt": torch.optim.Adam(theirs.parameters(), lr=1e-3), "bs": 128}
    done = race(lab, other, x)
    names = {"lab": f"lab VAE 784-{'-'.join(map(str, hidden))}-{args.latent_dim}", "other": "pytorch/examples VAE 784-400-20"}
    results = {}
    for key, model in (("lab", ours), ("other", theirs)):
        torch.manual_seed(123)
        nelbo = V.negative_elbo(model, x_test, samples=args.samples)
        n_params = sum(q.numel() for q in model.parameters())
        n, secs = done[key]
        results[key] = nelbo
        print(f"{names[key]:34s} params={n_params:>8,d} steps={n:>6d} in {secs:6.1f} s  held-out −ELBO = "
              f"{nelbo:7.2f} nats/image = {V.bits_per_dim(nelbo):.4f} bits/dim")
    print(f"lab − examples = {results['lab'] - results['other']:+.2f} nats/image "
          f"({'lab better' if results['lab'] < results['other'] else 'examples better'}); "
          f"lab seconds / calibration = {done['lab'][1]:.1f} s at {calib:.0f} steps/s")
    if args.metrics or args.png:
        torch.manual_seed(1)
        z = torch.randn(1000, 20)
        with torch.no_grad():
            imgs = {"lab": torch.sigmoid(ours.decode(z[:, :args.latent_dim])),
                    "other": torch.sigmoid(theirs.decode(z))}
        if args.metrics:
            from dgm import metrics

            for key, im in imgs.items():
                print(f"{names[key]:34s} {metrics.sample_quality(im)}")
        if args.png:
            import torchvision.utils as U

            grid = torch.cat([imgs["lab"][:50], imgs["other"][:50]])
            U.save_image(grid, args.png, nrow=10)
            print(f"samples (top 5 rows: lab, bottom 5: examples) → {args.png}")
    print(f"calibration again: {calibration():.0f} steps/s; load average {os.getloadavg()[0]:.2f}")
    return results


if __name__ == "__main__":
    main()
