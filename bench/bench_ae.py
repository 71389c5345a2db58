"""Benchmark (not a test): lab 1's full-budget recipe on mnist5k, timed next to a calibration figure, and what
the autoencoder's decoded random codes score with dgm.metrics.

    .venv/bin/python bench/bench_ae.py [--steps 1500] [--n 1000] [--vae-seconds 0] [--png /tmp/ae_samples.png]

Trains the notebook's three autoencoders (784-256-128-d_z MLP, d_z ∈ {2, 5, 32}, Adam 1e-3, batch 128) on one
thread, then rates, for each d_z, n decoded codes drawn from a Gaussian fitted to the training codes (what the
lab saves), codes drawn uniformly in the codes' bounding box (the lab's first try, d_z = 2) and the test
reconstructions (a ceiling). ``--vae-seconds s`` (or ``--vae-steps n``) also trains the lab-2 reference VAE
for s seconds of wall clock (n steps) and rates its prior samples: the number lab 1 compares with. A calibration (steps/s of a fixed tiny MLP,
as in bench_quality.py) is measured right before the training, so the time can be put in proportion.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import calibration  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--vae-seconds", type=float, default=0.0)
    ap.add_argument("--vae-steps", type=int, default=0, help="train the VAE for this many steps instead")
    ap.add_argument("--skip-ae", action="store_true", help="only the VAE")
    ap.add_argument("--png", default="/tmp/ae_samples.png")
    args = ap.parse_args()
    os.environ["DGM_FAST"] = "0"
    import torch
    from torchvision.utils import save_image

    import dgm
    import dgm.data
    import dgm.metrics as M
    import dgm.train
    from dgm.ae import Autoencoder, random_codes, reconstruction_loss, train_step

    torch.set_num_threads(1)
    x, _ = dgm.data.load("mnist5k", "train")
    x_test, _ = dgm.data.load("mnist5k", "test")
    M.classifier("mnist5k")  # trained once and cached: not part of the timing
    cal = calibration()
    print(f"load average {os.getloadavg()[0]:.2f}; calibration (tiny MLP, 1 thread): {cal:.0f} steps/s")
    grids, total = [], 0.0
    for d in (() if args.skip_ae else (2, 5, 32)):
        dgm.seed_everything(d)
        model = Autoencoder(d)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        t = time.perf_counter()
        dgm.train.fit(model, x, step_fn=lambda xb, s: train_step(model, opt, xb), optimizer=opt,
                      steps=args.steps, batch_size=128, progress=False)
        sec = time.perf_counter() - t
        total += sec
        model.eval()
        with torch.no_grad():
            err = reconstruction_loss(x_test, model(x_test)).item()
            z = model.encode(x)
            gauss = model.decode(random_codes(z, args.n, seed=0))
            recon = model(x_test[: args.n])
        print(f"d_z={d:>2}: {args.steps} steps in {sec:.1f} s ({args.steps / sec:.0f} steps/s, "
              f"{args.steps / sec / cal:.2f}× calibration); test error {err:.1f}")
        print(f"   Gaussian codes : {M.sample_quality(gauss, dataset='mnist5k')}")
        if d == 2:
            lo, hi = z.min(0).values, z.max(0).values
            box = model.decode(lo + (hi - lo) * torch.rand(args.n, 2, generator=torch.Generator().manual_seed(0)))
            print(f"   uniform in box : {M.sample_quality(box, dataset='mnist5k')}")
        print(f"   reconstructions: {M.sample_quality(recon, dataset='mnist5k')}")
        grids.append(gauss[:32])
    print(f"three autoencoders: {total:.1f} s of training ({total * cal:.0f} calibration-steps)")
    print(f"real test digits: {M.sample_quality(x_test[: args.n], dataset='mnist5k')}")
    if grids:
        save_image(torch.cat(grids), args.png, nrow=16, pad_value=0.5)
        print(f"grid (rows of 16: d_z=2, 2, 5, 5, 32, 32): {args.png}")
    if args.vae_seconds > 0 or args.vae_steps > 0:
        from dgm.vae import VAE, elbo_loss

        dgm.seed_everything(0)
        vae = VAE()
        opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
        g, n, t = torch.Generator().manual_seed(0), 0, time.perf_counter()
        while (n < args.vae_steps) if args.vae_steps else (time.perf_counter() - t < args.vae_seconds):
            xb = x[torch.randint(0, len(x), (128,), generator=g)]
            opt.zero_grad()
            x_logits, mu, logvar = vae(xb)
            elbo_loss(x_logits, xb, mu, logvar)[0].backward()
            opt.step()
            n += 1
        with torch.no_grad():
            vae.eval()
            s = vae.sample(args.n)
        print(f"reference VAE, {n} steps in {time.perf_counter() - t:.0f} s, prior samples: "
              f"{M.sample_quality(s, dataset='mnist5k')}")
        save_image(s[:32], args.png.replace(".png", "_vae.png"), nrow=16, pad_value=0.5)


if __name__ == "__main__":
    main()
