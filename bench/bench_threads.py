"""Benchmark (not a test): torch CPU threads vs training speed of the lab models, quiet and busy machine.

    .venv/bin/python bench/bench_threads.py [--seconds 3] [--models ae,vae,gan,ddpm]

For each lab model (lab 1's MLP autoencoder, lab 2's VAE, lab 3's DCGAN, lab 4's DDPM U-Net, at the lab
batch sizes) it measures training steps/s with 1, 2 and all threads, once on a quiet machine and once
with a CPU-bound process (``while True: pass``) running beside it. Each measurement runs in a fresh
subprocess. A calibration figure (steps/s of a fixed tiny MLP, 1 thread, quiet) is printed at the start
and the end, so tables from different machines / load levels can be compared.

The question it answers: which default thread count keeps a busy neighbour from costing more than 2×?
Measured on 2 cores (lab 1 AE, machine load ~1, calibration 89–154): 1 thread 114–121 steps/s quiet,
93–116 busy (≤ 1.3×); 2 threads 179–190 quiet, 8–55 busy (3–23×). Under load ≈ 9 from other processes,
2 threads were 5–16× slower than 1 for the VAE, DCGAN and DDPM U-Net. Hence dgm.default_threads: 1 on ≤ 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MODELS = {  # name: (what, batch size)
    "ae": ("lab 1: dgm.ae.Autoencoder(2) MLP", 128),
    "vae": ("lab 2: dgm.vae.VAE(latent_dim=8)", 128),
    "gan": ("lab 3: DCGenerator + DCDiscriminator", 64),
    "ddpm": ("lab 4: dgm.ddpm.UNet(channels=16), T=200", 32),
    "tiny": ("calibration: MLP 784-256-784", 128),
}


def make_step(name: str):
    """A closure doing one training step of ``name`` on random digits-like data (B, 1, 28, 28)."""
    import torch
    import torch.nn.functional as F

    import dgm.ae
    import dgm.ddpm
    import dgm.gan
    import dgm.vae

    torch.manual_seed(0)
    B = MODELS[name][1]
    x = torch.rand(B, 1, 28, 28)
    if name == "tiny":
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 784))
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        def step():
            opt.zero_grad()
            F.mse_loss(model(x), x.flatten(1)).backward()
            opt.step()
        return step
    if name == "ae":
        model = dgm.ae.Autoencoder(2)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        return lambda: dgm.ae.train_step(model, opt, x)
    if name == "vae":
        model = dgm.vae.VAE(latent_dim=8)
        opt = torch.optim.Adam(model.parameters(), 2e-3)
        return lambda: dgm.vae.train_step(model, opt, x)
    if name == "gan":
        cfg = dgm.gan.DCGANConfig()
        G, D = dgm.gan.DCGenerator(cfg.z_dim, cfg.channels), dgm.gan.DCDiscriminator(cfg.channels)
        opt_g = torch.optim.Adam(G.parameters(), cfg.lr, betas=cfg.betas)
        opt_d = torch.optim.Adam(D.parameters(), cfg.lr, betas=cfg.betas)
        return lambda: dgm.gan.train_step(G, D, opt_g, opt_d, x, torch.randn(B, cfg.z_dim))
    if name == "ddpm":
        cfg = dgm.ddpm.DDPMConfig()
        sched = dgm.ddpm.make_schedule(cfg.T, beta_1=cfg.beta_1, beta_T=cfg.beta_T)
        model = dgm.ddpm.UNet(channels=cfg.channels)
        opt = torch.optim.Adam(model.parameters(), cfg.lr)
        x0 = 2 * x - 1  # (B, 1, 28, 28) in [−1, 1]

        def step():
            opt.zero_grad()
            dgm.ddpm.ddpm_loss(model, x0, sched).backward()
            opt.step()
        return step
    raise ValueError(name)


def child(name: str, threads: int, seconds: float) -> None:
    """Runs in a subprocess: prints {"steps_per_s": ...} for ``name`` with ``threads`` torch threads."""
    import torch

    torch.set_num_threads(threads)
    step = make_step(name)
    for _ in range(3):  # warm-up: allocator, oneDNN primitives
        step()
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        step()
        n += 1
    print(json.dumps({"steps_per_s": n / elapsed}))


def measure(name: str, threads: int, seconds: float) -> float:
    env = {**os.environ, "DGM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, __file__, "--child", name, str(threads), str(seconds)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["steps_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    ap.add_argument("--models", default="ae,vae,gan,ddpm")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), float(args.child[2]))
        return
    cores = os.cpu_count() or 1
    counts = sorted({1, 2, cores})
    print(f"cores: {cores}; load average before: {os.getloadavg()[0]:.2f}")
    calib = measure("tiny", 1, args.seconds)
    print(f"calibration (tiny MLP 784-256-784, B=128, 1 thread, quiet): {calib:.0f} steps/s")
    header = f"{'model':<44}{'B':>4} " + "".join(f"{f'{t}T quiet':>10}{f'{t}T busy':>10}" for t in counts)
    print(header + f"{'busy/quiet 1T':>15}{'busy/quiet 2T':>15}")
    rows = {}
    for name in args.models.split(","):
        what, B = MODELS[name]
        r = {}
        for busy in (False, True):
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                for t in counts:
                    r[t, busy] = measure(name, t, args.seconds)
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
        rows[name] = r
        cells = "".join(f"{r[t, False]:>10.1f}{r[t, True]:>10.1f}" for t in counts)
        slow = "".join(f"{r[t, False] / r[t, True]:>14.2f}×" for t in (1, 2) if t in counts)
        print(f"{what:<44}{B:>4} {cells}{slow}", flush=True)
    calib_end = measure("tiny", 1, args.seconds)
    print(f"calibration again at the end: {calib_end:.0f} steps/s; load average after: {os.getloadavg()[0]:.2f}")
    print("steps/s of training (higher is better); 'busy' = one `while True: pass` process beside it.")


if __name__ == "__main__":
    main()
