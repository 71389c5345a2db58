r"""Benchmark for lab 4 (not a test): the reference DDPM's fast-mode training wall time, sampling time
for all T steps and for the fewer-step samplers, and the classifier-based sample quality of each.

    DGM_FAST=1 .venv/bin/python bench/bench_ddpm.py [--steps 600] [--n 100] [--threads 1]

Quality = fraction of samples a digit classifier (trained here on the real digits, with outlier
exposure so it is not confident on junk) labels with probability ≥ 0.7, and how many of the 10
classes those samples cover; printed for real held-out digits and pure noise as the two anchors.
Also prints the autograde cost of lab 4's source notebook in fast mode (nbclient wall time).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import ddpm_quality_utils as Q  # noqa: E402
from nbgrader_utils import run_notebook  # noqa: E402

import dgm  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=Q.FAST["steps"], help="training steps (fast budget by default)")
    ap.add_argument("--n", type=int, default=100, help="samples rated per sampler")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--skip-notebook", action="store_true")
    ap.add_argument("--save", metavar="PNG", help="also save a grid of 64 samples (20 strided steps, x̂0 clipped)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    judge, acc = Q.train_judge()
    x_test, _ = dgm.data.load("digits", "test")
    print(f"judge: held-out accuracy {acc:.3f} | real digits {Q.rate(judge, x_test[:args.n])} | "
          f"noise {Q.rate(judge, torch.rand(args.n, 1, 28, 28, generator=torch.Generator().manual_seed(0)))}")

    model, sched, seconds = Q.train_fast(steps=args.steps)
    cfg = {**Q.FAST, "steps": args.steps}
    print(f"training (fast mode, {cfg}): {seconds:.1f} s wall")
    T, k = sched.T, sched.T // 5
    for name, kw in {f"DDPM, all T = {T} steps": {}, f"DDPM, {T} steps, x̂0 clipped": {"clip_x0": True},
                     f"DDPM, {T} steps, σ² = β̃": {"variance": "beta_tilde"},
                     f"DDPM, {k} strided steps": {"steps": k},
                     f"DDPM, {k} strided, x̂0 clipped": {"steps": k, "clip_x0": True},
                     f"DDIM, {k} steps": {"steps": k, "method": "ddim"},
                     f"DDIM, {k} steps, x̂0 clipped": {"steps": k, "method": "ddim", "clip_x0": True}}.items():
        quality, secs = Q.sample_and_rate(judge, model, sched, n=args.n, **kw)
        print(f"{name:<28} sampling {args.n} images: {secs:6.1f} s | confident {quality['confident']:.2f} | "
              f"classes {quality['classes']}")
    if args.save:
        from dgm.ddpm import sample, to_unit
        from dgm.widgets import tensor_to_png
        x = sample(model, (64, 1, 28, 28), sched, steps=k, clip_x0=True, progress=False,
                   generator=torch.Generator().manual_seed(1))
        Path(args.save).write_bytes(tensor_to_png(to_unit(x), scale=2))
    if not args.skip_notebook:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            run_notebook(ROOT / "course" / "source" / "04_ddpm" / "04_ddpm.ipynb", cwd=Path(tmp))
            print(f"lab 4 notebook, fast mode, nbclient: {time.perf_counter() - t:.1f} s (goal ≤ 40 s)")


if __name__ == "__main__":
    main()
