r"""The lab-2 check of ``active_units(mu, threshold)`` (re-exported by :mod:`dgm.checks.vae`).

The task states the semantics (Burda et al., 2016): a latent dimension is *active* when the encoder's mean
μ_j(x) moves with the input, A_j = Var_x(μ_j(x)) > threshold. Deciding which statistic shows that — a spread
over the images, not a mean, not a standard deviation compared with a variance threshold — is the student's.

Inputs are built so that every usual wrong rule gives a different mask: each kind of column has an exactly
known spread (standardized), far from the threshold for both the biased and the unbiased variance, so both
estimators pass.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import vae as _ref
from ._check import VISIBLE, Check
from ._core import Mistake, fixed_normal, run_student
from ._vae_fixtures import _dtype, _pick

_FORBID = (_ref.active_units, _ref.kl_per_dim)

# column kinds: (spread as a multiple of the threshold, offset of the mean)
_KINDS = {
    "active": (30.0, 0.0),        # clearly used
    "mild": (3.0, 0.0),           # used, three times the threshold
    "dead": (1e-3, 0.0),          # unused, centred
    "offset": (1e-3, 1.5),        # unused but its mean sits far from 0: μ_j(x) ≈ 1.5 for every x
    "std-trap": (0.3, 0.0),       # unused; its standard deviation √(0.3 t) is above t when t < 0.3
    "neg-active": (30.0, -1.0),   # used, with a negative mean
    "tenth": (0.1, 0.0),          # unused; tells "a fixed 0.01" apart from "std > t" at t = 0.05 and 0.2
}


def _column(n: int, var: float, offset: float, seed: int) -> torch.Tensor:
    """A column of n values whose unbiased variance is exactly ``var`` and whose mean is ``offset``."""
    v = fixed_normal(n, seed=seed, dtype=torch.float64)
    v = (v - v.mean()) / v.std()
    return offset + var ** 0.5 * v  # (n,)


class ActiveUnits(Check):
    r"""active_j = Var over the batch of μ_j(x) > threshold: a bool mask of shape (k,)."""
    name = "vae.active_units"
    student = "active_units"
    passed = "the active dimensions are those whose mean μ_j(x) varies across the images by more than the threshold."

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            n, threshold, dtype = 200, 0.01, torch.float32
            kinds = ["active", "dead", "offset", "mild", "std-trap", "neg-active", "tenth"]
        else:
            n, dtype = _pick(seed, 1, (16, 50, 120, 300)), _dtype(seed)
            threshold = _pick(seed, 2, (0.05, 0.2))  # a fixed 0.01 misjudges both
            base = list(_KINDS) + [_pick(seed, 3, list(_KINDS)), _pick(seed, 4, list(_KINDS))]
            order = torch.randperm(len(base), generator=torch.Generator().manual_seed(seed)).tolist()
            kinds = [base[i] for i in order]
        cols = [_column(n, _KINDS[kd][0] * threshold, _KINDS[kd][1], seed + 11 * j) for j, kd in enumerate(kinds)]
        return {"mu": torch.stack(cols, dim=1).to(dtype), "threshold": threshold, "kinds": kinds}  # mu: (N, k)

    def run(self, fn, inputs: dict) -> dict:
        mu = inputs["mu"].clone()
        out = run_student(fn, mu, inputs["threshold"], name=self.student, forbidden=_FORBID)
        if isinstance(out, np.ndarray):
            out = torch.from_numpy(np.array(out))
        if isinstance(out, torch.Tensor):
            return {"out": out.detach().clone(), "changed_mu": not torch.equal(mu, inputs["mu"])}
        if isinstance(out, (int, float)) and not isinstance(out, bool):
            return {"type": "number", "value": float(out)}
        return {"type": type(out).__name__}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, mu, t = self.student, inputs["mu"].double(), float(inputs["threshold"])
        k = mu.shape[1]
        expected = mu.var(dim=0) > t  # (k,)
        out = ev.get("out")
        if not isinstance(out, torch.Tensor):
            value = ev.get("value")
            if ev.get("type") == "number" and isinstance(value, float) and value == float(expected.sum()):
                raise Mistake(f"`{name}` returns the number of active dimensions; return the mask itself, a bool "
                              f"tensor of shape ({k},) (its .sum() is the count).", id="returns-count")
            raise Mistake(f"`{name}` should return a bool tensor of shape ({k},), got {ev.get('type', '?')}.",
                          id="not-a-tensor")
        if tuple(out.shape) == (mu.shape[0],) and mu.shape[0] != k:
            raise Mistake(f"`{name}` returned one value per image ({mu.shape[0]},); the statistic is taken over "
                          f"the images (dim 0), one value per latent dimension: shape ({k},).", id="wrong-axis")
        if tuple(out.shape) != (k,):
            raise Mistake(f"`{name}` returned shape {tuple(out.shape)}; expected ({k},): one flag per latent "
                          "dimension.", id="wrong-shape")
        if out.is_complex() or not bool(((out == 0) | (out == 1)).all()):
            raise Mistake(f"`{name}` should return a mask (True/False per dimension), got other values: compare "
                          "the statistic with the threshold.", id="not-a-mask")
        got = out.bool()
        if torch.equal(got, expected):
            if ev.get("changed_mu") is True:
                raise Mistake(f"`{name}` changed `mu` in place; compute on a copy.", id="modifies-input")
            return
        var, mean = mu.var(dim=0), mu.mean(dim=0)
        wrong = {
            ("threshold-inverted", "it flags the dimensions BELOW the threshold: an active dimension is one whose "
             "μ_j(x) varies a lot across the images."): ~expected,
            ("std-not-variance", "it compares the standard deviation of μ_j with the threshold; the threshold "
             "is on the variance Var_x(μ_j(x))."): mu.std(dim=0) > t,
            ("mean-not-spread", "it looks at the size of μ_j (its mean), not at how much μ_j(x) changes "
             "between images: a dimension with μ_j(x) ≈ 1.5 for EVERY image carries no information."):
                mean.abs() > t,
            ("mean-square-not-variance", "it uses the mean of μ_j², which also counts a constant offset; "
             "subtract the mean over the images first (a variance)."): mu.pow(2).mean(dim=0) > t,
            ("ignores-threshold", "it ignores the `threshold` argument (a fixed 0.01?): compare with the "
             "threshold you are given."): var > 0.01,
        }
        for (mistake_id, message), mask in wrong.items():
            if torch.equal(got, mask):
                raise Mistake(f"`{name}`: {message}", id=mistake_id)
        raise Mistake(f"`{name}` flags {got.int().tolist()}, expected {expected.int().tolist()} (threshold "
                      f"{t:g}): a dimension is active when its mean μ_j(x) varies across the images by more than "
                      "the threshold.", id="wrong-mask")


check_active_units = ActiveUnits()
