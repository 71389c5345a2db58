r"""Benchmark: dgm's VAE vs the pytorch/examples MLP VAE (784-400-20) at equal wall-clock time.

Both models train on the same images with Adam for the same number of seconds, then report the
held-out negative ELBO in nats per image (−ELBO = Σ_pixels BCE + KL, β = 1, averaged over the test
images and over ``--samples`` draws of ε). Lower is better; the ratio is ours / theirs.

    python bench/bench_vae.py                 # digits (offline), 60 s per model (10 s with DGM_FAST=1)
    python bench/bench_vae.py --data mnist --seconds 300

This is a script, not a test: it takes minutes.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

import dgm
from dgm import vae as V
from dgm.data import load


class ExamplesVAE(nn.Module):
    """The MLP VAE of pytorch/examples (vae/main.py): 784 → 400 → (μ, log σ²) of size 20 → 400 → 784.

    Same layers; the decoder returns logits (the original applies a sigmoid and then BCE, which is
    the same loss as BCE-with-logits, only less stable numerically).
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


def race(models: dict, x: torch.Tensor, seconds: float, slice_s: float = 0.5, seed: int = 0) -> dict:
    """Train every model for ``seconds`` of wall-clock time, in alternating slices of ``slice_s``.

    Interleaving gives both models the same share of a busy machine (other jobs' load changes
    over time). ``models`` maps name → (model, lr, batch_size); returns name → steps done.
    """
    torch.manual_seed(seed)
    state = {}
    for name, (model, lr, bs) in models.items():
        model.train()
        state[name] = {"model": model, "opt": torch.optim.Adam(model.parameters(), lr=lr), "bs": bs,
                       "used": 0.0, "steps": 0, "batches": iter(())}
    while any(s["used"] < seconds for s in state.values()):
        for s in state.values():
            budget = min(slice_s, seconds - s["used"])
            if budget <= 0:
                continue
            start = time.perf_counter()
            while time.perf_counter() - start < budget:
                idx = next(s["batches"], None)
                if idx is None:  # new epoch
                    s["batches"] = iter(torch.randperm(len(x)).split(s["bs"]))
                    continue
                V.train_step(s["model"], s["opt"], x[idx])
                s["steps"] += 1
            s["used"] += time.perf_counter() - start
    for s in state.values():
        s["model"].eval()
    return {name: s["steps"] for name, s in state.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="digits", choices=["digits", "mnist", "fashion_mnist"])
    p.add_argument("--seconds", type=float, default=None,
                   help="training time per model (default 60; 10 in fast mode, e.g. `make bench`)")
    p.add_argument("--samples", type=int, default=10, help="ε draws per test image for the −ELBO")
    p.add_argument("--latent-dim", type=int, default=20, help="latent size of both models")
    p.add_argument("--channels", type=int, default=None, help="override VAEConfig.channels of ours")
    p.add_argument("--hidden", type=int, default=None, help="override VAEConfig.hidden of ours")
    p.add_argument("--lr", type=float, default=None, help="override VAEConfig.lr of ours")
    p.add_argument("--batch-size", type=int, default=None, help="override VAEConfig.batch_size of ours")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default); 1 avoids "
                   "oversubscription on a shared machine")
    args = p.parse_args(argv)
    args.seconds = args.seconds if args.seconds is not None else dgm.budget(60.0, 10.0)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = dgm.device()
    x, _ = load(args.data, "train")
    x_test, _ = load(args.data, "test")
    x, x_test = x.to(dev), x_test.to(dev)
    print(f"data={args.data} train={len(x)} test={len(x_test)} device={dev} budget={args.seconds:g}s/model")

    cfg = V.VAEConfig(latent_dim=args.latent_dim)
    cfg.channels = args.channels or cfg.channels
    cfg.hidden = args.hidden or cfg.hidden
    cfg.lr = args.lr or cfg.lr
    cfg.batch_size = args.batch_size or cfg.batch_size
    dgm.seed_everything(0)
    ours = V.VAE(cfg).init_output_bias(x.cpu()).to(dev)
    theirs = ExamplesVAE(args.latent_dim).to(dev)
    models = {"dgm VAE (conv)": (ours, cfg.lr, cfg.batch_size),
              "pytorch/examples MLP VAE 784-400-20": (theirs, 1e-3, 128)}
    steps = race(models, x, args.seconds)
    results = {}
    for name, (model, _, _) in models.items():
        torch.manual_seed(123)
        nelbo = V.negative_elbo(model, x_test, samples=args.samples)
        train_nelbo = V.negative_elbo(model, x[: len(x_test)], samples=args.samples)
        n_params = sum(p.numel() for p in model.parameters())
        results[name] = nelbo
        print(f"{name:36s} params={n_params:>9,d} steps={steps[name]:>6d} "
              f"held-out -ELBO={nelbo:8.2f} nats/image (train {train_nelbo:.2f})")
    ours, theirs = results.values()
    print(f"ratio ours/theirs = {ours / theirs:.3f} ({'ours better' if ours < theirs else 'theirs better'})")
    # Soft targets x ∈ [0, 1] put a floor under any BCE: Σ_i H(x_i) ≤ −ELBO. The excess above it is
    # what the models can still improve, so its ratio shows the gap more plainly.
    floor = F.binary_cross_entropy(x_test, x_test, reduction="none").flatten(1).sum(1).mean().item()
    print(f"floor Σ_i H(x_i) = {floor:.2f} nats/image; excess ratio (ours − floor)/(theirs − floor) = "
          f"{(ours - floor) / (theirs - floor):.3f}")
    return results


if __name__ == "__main__":
    main()
