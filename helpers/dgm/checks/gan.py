r"""Checks for lab 3 (GANs): noise, the discriminator loss, both generator losses, the training step, mode
coverage.

    from dgm.checks import gan as checks
    checks.check_sample_noise(sample_noise)
    checks.check_discriminator_loss(discriminator_loss)
    checks.check_generator_loss(generator_loss)
    checks.check_train_step(train_step)
    checks.check_count_modes(count_modes)

Each check is a :class:`~dgm.checks._check.Check`: ``run`` (the student's kernel) returns raw
evidence, ``judge`` (the grader) decides from it. :class:`SampleNoise` sends the raw draws of the
student's function (taken inside a forked RNG seeded from the case's seed, so the notebook's own
stream is untouched); the judge computes every statistic itself.
"""
from __future__ import annotations

import torch

from .. import gan as ref
from ._check import VISIBLE, Check
from ._core import Mistake, close, fmt, run_student
from ._gan_losses import DiscriminatorLoss, GeneratorLoss, check_discriminator_loss, check_generator_loss
from ._gan_modes import CountModes, check_count_modes
from ._gan_step import TrainStep, check_train_step

__all__ = ["check_sample_noise", "check_discriminator_loss", "check_generator_loss", "check_train_step",
           "check_count_modes", "SampleNoise", "DiscriminatorLoss", "GeneratorLoss", "TrainStep", "CountModes",
           "CELLS"]

_CAP = 2**20  # elements of one tensor sent as evidence (the wire allows 4M; the draws need 32k)


def pack(out, cap: int = _CAP) -> dict:
    """What the student's function returned, as evidence: its type, shape and (when small) its values."""
    if not isinstance(out, torch.Tensor):
        return {"type": type(out).__name__}
    if out.is_complex() or out.numel() > cap:
        return {"type": "complex Tensor" if out.is_complex() else "Tensor", "shape": list(out.shape)}
    return {"type": "Tensor", "shape": list(out.shape), "out": out.detach().cpu()}


def unpack(item, name: str, shape: tuple) -> torch.Tensor:
    """The tensor of a :func:`pack`-ed result, or the mistake its type or shape shows."""
    if not isinstance(item, dict):
        raise Mistake(f"`{name}`: its result could not be judged.", id="malformed-evidence")
    out = item.get("out")
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu()
    else:
        kind = item.get("type")
        if kind in ("Tensor", "complex Tensor"):
            got = item.get("shape")
            raise Mistake(f"`{name}` returned a {kind} of shape {tuple(got) if isinstance(got, list) else '?'}; "
                          f"expected a float tensor of shape {shape}.", id="wrong-shape")
        raise Mistake(f"`{name}` should return a torch.Tensor of shape {shape}, got {kind}.", id="not-a-tensor")
    if tuple(out.shape) != tuple(shape):
        if len(shape) == 2 and tuple(out.shape) == tuple(shape)[::-1]:
            raise Mistake(f"`{name}` returned shape {tuple(out.shape)}: rows and columns are swapped. One noise "
                          f"vector per row: shape (n, dim) = {shape}.", id="transposed")
        raise Mistake(f"`{name}` returned shape {tuple(out.shape)}; expected {shape}.", id="wrong-shape")
    if not out.is_floating_point():
        raise Mistake(f"`{name}` should return floating-point noise, got {out.dtype}.", id="not-float")
    if not bool(torch.isfinite(out).all()):
        raise Mistake(f"`{name}` returned NaN or inf values.", id="non-finite")
    return out


# ----------------------------------------------------------------------------- noise
class SampleNoise(Check):
    r"""``sample_noise(n, dim)``: z ~ N(0, I) of shape (n, dim), fresh on every call."""
    name = "gan.sample_noise"
    student = "sample_noise"
    passed = "shape (n, dim), fresh draws, mean 0, std 1, Gaussian tails, independent coordinates — N(0, I)."

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            return {"small": [(2, 3)], "n": 4000, "dim": 8, "rng_seed": 1234}
        dim = 3 + seed % 14                                   # hidden: 3..16 coordinates,
        small = [(1, 2 + seed % 4), (3 + (seed // 4) % 5, 1)]  # row and column vectors
        return {"small": small, "n": 32_000 // dim, "dim": dim, "rng_seed": seed % 2**31}  # ~32 000 draws

    def run(self, fn, inputs: dict) -> dict:
        n, dim = inputs["n"], inputs["dim"]
        with torch.random.fork_rng(devices=[]):  # the notebook's RNG stream is left untouched
            torch.manual_seed(inputs["rng_seed"])
            small = [pack(run_student(fn, a, b, name=self.student, forbidden=[ref.sample_noise]))
                     for a, b in inputs["small"]]
            z = run_student(fn, n, dim, name=self.student, forbidden=[ref.sample_noise])
            z2 = run_student(fn, n, dim, name=self.student, forbidden=[ref.sample_noise])
        return {"small": small, "z": pack(z), "z2": pack(z2)}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, n, dim = self.student, inputs["n"], inputs["dim"]
        smalls = ev.get("small")
        if not isinstance(smalls, list) or len(smalls) != len(inputs["small"]):
            raise Mistake(f"`{name}`: its result could not be judged.", id="malformed-evidence")
        for (a, b), item in zip(inputs["small"], smalls):
            unpack(item, f"{name}({a}, {b})", (a, b))
        z = unpack(ev.get("z"), name, (n, dim)).double()  # (n, dim)
        z2 = unpack(ev.get("z2"), name, (n, dim)).double()
        _judge_gaussian(name, z, z2)


def _judge_gaussian(name: str, z: torch.Tensor, z2: torch.Tensor) -> None:
    r"""Mistake unless the draws z (n, dim) look like N(0, I) and differ from a second call's z2."""
    dim = z.shape[1]
    if close(z, z2):
        raise Mistake(f"`{name}` returned the same numbers on two calls: draw fresh noise every call "
                      "(no fixed tensor, no manual_seed inside the function).", id="same-each-call")
    if close(z, z[:1].expand_as(z)):
        raise Mistake(f"`{name}`: every row is the same vector. Draw all n·dim numbers independently "
                      "(torch.randn(n, dim)), not one vector repeated.", id="rows-repeated")
    mean, std = z.mean().item(), z.std().item()
    if z.min() >= 0 and z.max() <= 1:
        raise Mistake(f"`{name}` looks uniform on [0, 1) (mean {mean:.2f}, std {std:.2f}): torch.rand draws "
                      "uniform numbers. This lab's prior is p_z = N(0, I): use torch.randn.", id="uniform-01")
    if z.abs().max() <= 1.0 + 1e-9:
        raise Mistake(f"`{name}` looks uniform on [−1, 1] (std {std:.2f}): the prior is the standard normal "
                      "N(0, I), so use torch.randn.", id="uniform-11")
    if abs(mean) > 0.05:
        raise Mistake(f"`{name}` has mean {mean:.3f}; N(0, I) noise has mean 0.", id="wrong-mean")
    if abs(std - 1) > 0.05:
        raise Mistake(f"`{name}` has standard deviation {std:.3f}; N(0, I) noise has standard deviation 1 "
                      "(don't scale it).", id="wrong-std")
    kurt = (((z - mean) / std) ** 4).mean().item()  # 3 for a normal, 1.8 for a uniform
    if abs(kurt - 3) > 0.3:
        raise Mistake(f"`{name}` has mean 0 and std 1 but is not Gaussian (kurtosis {kurt:.2f}, a normal "
                      "distribution has 3): use torch.randn.", id="not-gaussian")
    col_mean, col_std = z.mean(0), z.std(0)  # (dim,)
    if col_mean.abs().max() > 0.12 or (col_std - 1).abs().max() > 0.12:
        raise Mistake(f"`{name}`: some dimensions have the wrong mean/std ({fmt(col_mean)} / {fmt(col_std)}); "
                      "every coordinate should be N(0, 1).", id="per-dimension-stats")
    corr = torch.corrcoef(z.T) - torch.eye(dim, dtype=z.dtype)  # (dim, dim)
    if corr.abs().max() > 0.15:
        raise Mistake(f"`{name}`: the {dim} coordinates are correlated (|corr| up to {corr.abs().max():.2f}); "
                      "N(0, I) has independent coordinates.", id="correlated")


check_sample_noise = SampleNoise()

#: test cell grade_id → the checks it runs (visible case in the cell, hidden cases in its hidden part)
CELLS = {
    "test_sample_noise": (check_sample_noise,),
    "test_discriminator_loss": (check_discriminator_loss,),
    "test_generator_loss": (check_generator_loss,),
    "test_train_step": (check_train_step,),
    "test_count_modes": (check_count_modes,),
}
