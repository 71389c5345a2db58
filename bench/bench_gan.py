r"""Benchmark for lab 3: fast-mode wall time of the 2-D game and of the image GAN, and the ring's
mode coverage under both generator losses.

* ring: the reference GAN (dgm.gan.train_ring) for the lab's fast budget (RING_FAST_STEPS), for
  the non-saturating and the minimax loss over several seeds; coverage = modes holding at least a
  tenth of a fair share of high-quality samples (within 3σ of a centre), out of 8.
* saturation: D gets a head start (it is trained alone against a frozen G), then the norm of
  ∇_{θ_G} J_G is measured for both losses — the minimax gradient collapses with D(G(z)) → 0.
* images: the small DCGAN on 28×28 digits for the lab's fast budget (wall time, final losses).

    python bench/bench_gan.py            # about a minute on a laptop CPU
    python bench/bench_gan.py --seeds 3 --image-steps 200

This is a script, not a test.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import dgm
from dgm import gan as Gm


def ring(kind: str, seeds: int, steps: int):
    rows = []
    for seed in range(seeds):
        t0 = time.perf_counter()
        G, D, _ = Gm.train_ring(steps=steps, kind=kind, seed=seed, device="cpu")
        wall = time.perf_counter() - t0
        with torch.no_grad():
            x = G(Gm.sample_noise(2000, G.z_dim, generator=torch.Generator().manual_seed(0)))
        rows.append((wall, Gm.mode_coverage(x)))
    return rows


def saturation(seed: int = 0, head_start: int = 300):
    """‖∇θ_G J_G‖ for both losses after D was trained alone for ``head_start`` steps."""
    cfg = Gm.GANConfig()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G, D, _, opt_d = Gm.make_ring_game(cfg)
    for _ in range(head_start):
        real = Gm.ring_of_gaussians(cfg.batch_size, generator=gen)
        with torch.no_grad():
            fake = G(Gm.sample_noise(cfg.batch_size, cfg.z_dim, generator=gen))
        opt_d.zero_grad()
        Gm.discriminator_loss(D(real), D(fake)).backward()
        opt_d.step()
    z = Gm.sample_noise(1024, cfg.z_dim, generator=gen)
    out = {"D(G(z))": torch.sigmoid(D(G(z))).mean().item()}
    for kind in Gm.KINDS:
        grads = torch.autograd.grad(Gm.generator_loss(D(G(z)), kind), list(G.parameters()))
        out[kind] = torch.sqrt(sum((g ** 2).sum() for g in grads)).item()
    return out


def images(steps: int, seed: int = 0):
    cfg = Gm.DCGANConfig()
    x, _ = dgm.data.load("digits")
    torch.manual_seed(seed)
    G, D, opt_g, opt_d = Gm.make_image_game(cfg, device="cpu")

    def step_fn(xb, step):
        z = Gm.sample_noise(len(xb), cfg.z_dim, device=xb.device)
        loss_d, loss_g = Gm.train_step(G, D, opt_g, opt_d, xb, z, kind=cfg.kind)
        return {"loss_d": loss_d, "loss_g": loss_g}

    t0 = time.perf_counter()
    hist = dgm.train.fit({"G": G, "D": D}, x, step_fn=step_fn, optimizer={"G": opt_g, "D": opt_d}, steps=steps,
                         batch_size=cfg.batch_size, device="cpu", progress=False, seed=seed)
    return time.perf_counter() - t0, hist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--ring-steps", type=int, default=Gm.RING_FAST_STEPS)
    ap.add_argument("--image-steps", type=int, default=Gm.IMAGE_FAST_STEPS)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu")
    batch = Gm.GANConfig().batch_size
    print(f"\n2-D game on the ring: {args.ring_steps} steps, batch {batch}, seeds 0..{args.seeds - 1}")
    for kind in Gm.KINDS:
        rows = ring(kind, args.seeds, args.ring_steps)
        walls = [w for w, _ in rows]
        modes = [c.modes for _, c in rows]
        hq = [c.high_quality for _, c in rows]
        print(f"  {kind:13s} wall {statistics.median(walls):5.2f} s/run (median) | modes per seed {modes} "
              f"(mean {statistics.mean(modes):.1f}/8, >=6 in {sum(m >= 6 for m in modes)}/{len(modes)}) | "
              f"high-quality {100 * statistics.mean(hq):.0f}%")
    sat = saturation()
    print(f"\nsaturation after a 300-step head start for D: mean D(G(z)) = {sat['D(G(z))']:.2e}; "
          f"‖∇θ_G J_G‖ non-saturating {sat['nonsaturating']:.2e} vs minimax {sat['minimax']:.2e} "
          f"(ratio {sat['nonsaturating'] / max(sat['minimax'], 1e-30):.0f}×)")
    wall, hist = images(args.image_steps)
    print(f"\nDCGAN on 28×28 digits: {args.image_steps} steps, batch {Gm.DCGANConfig().batch_size}: "
          f"wall {wall:.2f} s ({1000 * wall / max(args.image_steps, 1):.0f} ms/step); "
          f"final loss_d {hist['loss_d'][-1]:.3f}, loss_g {hist['loss_g'][-1]:.3f}")


if __name__ == "__main__":
    main()
