r"""Checks for Lab 4 (DDPM). Each one names the mistake it recognises.

Convention (as in :mod:`dgm.ddpm`): ``sched.alpha_bar[t]`` is ᾱ_t for t = 0..T (index 0 = clean data).

Error carried forward: ``ddpm_loss`` gets the reference ``q_sample`` and ``sample`` the reference
``p_sample`` as explicit parameters, so a bug in an earlier part costs that part's test cell only.
This module holds the schedule and ``q_sample`` checks; the cosine schedule is in :mod:`._ddpm_cosine`,
the loss in :mod:`._ddpm_loss`, the
reverse step and the sampling loop in :mod:`._ddpm_sample`.
"""
from __future__ import annotations

import torch

from .. import ddpm as ref
from ._check import VISIBLE, Check
from ._core import Mistake, compare, fixed_normal, fixed_uniform, run_student
from ._ddpm_cosine import check_cosine_schedule
from ._ddpm_loss import DDPMLoss
from ._ddpm_nets import OFF_BY_ONE, as_evidence, dtype_of, ints, per_image as _b, small_schedule, tensor_of
from ._ddpm_sample import PSample, SampleLoop

__all__ = ["check_linear_beta_schedule", "check_alpha_bar", "check_q_sample", "check_ddpm_loss",
           "check_p_sample", "check_sample_loop", "check_cosine_schedule", "CELLS"]


# ----------------------------------------------------------------------------- schedule
class LinearBetaSchedule(Check):
    r"""``linear_beta_schedule(T, beta_1, beta_T)`` → (T,) tensor β_1..β_T, evenly spaced."""
    name = "ddpm.linear_beta_schedule"
    student = "linear_beta_schedule"
    passed = "β_1 … β_T evenly spaced — matches the reference."

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            return {"configs": [(10, 1e-4, 0.02), (50, 2e-3, 0.3)]}
        T, k1, k2 = ints(seed, 3, 2, 400)
        beta_1 = 1e-4 * (1 + k1 % 50)                                     # 1e-4 .. 5e-3
        beta_T = min(0.5, beta_1 + 1e-3 * (1 + k2 % 300))                 # > beta_1, ≤ 0.5
        return {"configs": [(T, beta_1, beta_T), (2 + k1 % 3, 0.05, 0.1)]}

    def run(self, fn, inputs: dict) -> dict:
        outs = [as_evidence(run_student(fn, T, b1, bT, name=self.student,
                                        forbidden=[ref.linear_beta_schedule, ref.cosine_beta_schedule]))
                for T, b1, bT in inputs["configs"]]
        return {"outs": outs}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, configs, outs = self.student, inputs["configs"], ev["outs"]
        if not isinstance(outs, list) or len(outs) != len(configs):
            raise ValueError("one output per configuration expected")
        for (T, b1, bT), out in zip(configs, outs):
            out = tensor_of(out, name)
            if tuple(out.shape) == (T + 1,):
                raise Mistake(f"`{name}({T}, ...)` returned T + 1 = {T + 1} values; it should return the "
                              f"T = {T} values β_1, …, β_T.", id="t-plus-one-values")
            out = tensor_of(out, f"{name}({T}, ...)", shape=(T,))
            expected = torch.linspace(b1, bT, T, dtype=torch.float64)
            compare(out, expected, name, {
                ("swapped-endpoints", "the end points are swapped: β must grow from beta_1 (little noise) to "
                 "beta_T."): expected.flip(0),
                ("returns-alpha", "it returns α_t = 1 − β_t; return the β_t themselves."): 1 - expected,
                ("not-evenly-spaced", "the values are not evenly spaced from beta_1 to beta_T (both end points "
                 "included)."): torch.linspace(b1, bT, T + 1, dtype=torch.float64)[:T],
            }, rtol=1e-5, atol=1e-7, what=f" (T={T})")


class AlphaBar(Check):
    r"""``alpha_bar_from_beta(beta)`` → (T,) tensor ᾱ_t = ∏_{s=1}^t (1 − β_s)."""
    name = "ddpm.alpha_bar_from_beta"
    student = "alpha_bar_from_beta"
    passed = "ᾱ_t = ∏ (1 − β_s) — matches the reference."

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            return {"beta": torch.linspace(0.05, 0.5, 8, dtype=torch.float64)}
        (T,) = ints(seed, 1, 2, 16)
        u = fixed_uniform(T, seed=seed % 100_003 + 7, dtype=torch.float64)
        return {"beta": (0.01 + 0.39 * u).sort().values.to(dtype_of(seed))}   # (T,) in [0.01, 0.4)

    def run(self, fn, inputs: dict) -> dict:
        out = run_student(fn, inputs["beta"].clone(), name=self.student,
                          forbidden=[ref.DiffusionSchedule, ref.make_schedule])
        return {"out": as_evidence(out)}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, b = self.student, inputs["beta"].double()
        out = tensor_of(ev["out"], name, shape=b.shape, what=" (one ᾱ_t per β_t)")
        expected = torch.cumprod(1 - b, 0)
        compare(out, expected, name, {
            ("returns-alpha", "it returns α_t = 1 − β_t; ᾱ_t is the running PRODUCT of the α_s."): 1 - b,
            ("product-of-beta", "it multiplies the β_s; ᾱ_t multiplies the α_s = 1 − β_s."): torch.cumprod(b, 0),
            ("cumsum-not-cumprod", "it adds instead of multiplying: use a running product, not a running sum."):
                torch.cumsum(1 - b, 0),
            ("off-by-one-t", OFF_BY_ONE.split(" In this")[0] + " The first entry must already include α_1."):
                torch.cat([b.new_ones(1), expected[:-1]]),
            ("returns-one-minus-alpha-bar", "it returns 1 − ᾱ_t (the noise variance); return ᾱ_t itself."):
                1 - expected,
            ("exp-approximation", "it uses the approximation exp(−Σβ_s); compute the exact product ∏(1 − β_s)."):
                torch.exp(-torch.cumsum(b, 0)),
        }, rtol=1e-5, atol=1e-7, what=f" (T={len(b)})")


# ----------------------------------------------------------------------------- q_sample
def _q_mistakes(x0, t, eps, s) -> dict:
    ab, a, beta = _b(s.alpha_bar[t], x0), _b(s.alpha[t], x0), _b(s.beta[t], x0)
    ab_prev = _b(s.alpha_bar[(t - 1).clamp_min(0)], x0)
    ab0 = _b(s.alpha_bar[t[:1].expand_as(t)], x0)
    flat = s.alpha_bar[t].to(x0.dtype)  # (B,): broadcasts along the LAST dim when W == B
    return {
        ("off-by-one-t", OFF_BY_ONE): ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps,
        ("alpha-not-alpha-bar", "it uses α_t where ᾱ_t belongs: q(x_t | x_0) jumps t steps at once, so it needs "
         "the product ᾱ_t = sched.alpha_bar[t], not sched.alpha[t]."): a.sqrt() * x0 + (1 - a).sqrt() * eps,
        ("swapped-x0-eps", "ε and x_0 are swapped: x0 is scaled by √ᾱ_t, the noise by √(1 − ᾱ_t)."):
            ab.sqrt() * eps + (1 - ab).sqrt() * x0,
        ("missing-sqrt", "missing square roots: the coefficients are √ᾱ_t and √(1 − ᾱ_t)."):
            ab * x0 + (1 - ab) * eps,
        ("missing-sqrt-signal", "missing square root on ᾱ_t: the signal is scaled by √ᾱ_t."):
            ab * x0 + (1 - ab).sqrt() * eps,
        ("noise-scaled-by-variance", "the noise is scaled by its variance 1 − ᾱ_t; scale ε by the standard "
         "deviation √(1 − ᾱ_t)."): ab.sqrt() * x0 + (1 - ab) * eps,
        ("beta-as-variance", "it uses β_t as the noise variance; after t steps the variance is 1 − ᾱ_t."):
            ab.sqrt() * x0 + beta.sqrt() * eps,
        ("broadcast-t", "t is broadcast wrongly across the batch: sched.alpha_bar[t] has shape (B,); reshape it "
         "to (B, 1, 1, 1) so each image uses its own t."):
            (flat.sqrt() * x0 + (1 - flat).sqrt() * eps) if x0.shape[-1] == len(t) else None,
        ("first-t-only", "every image uses the first image's t: use each image's own t[i] (index with the "
         "whole tensor t)."): ab0.sqrt() * x0 + (1 - ab0).sqrt() * eps,
    }


class QSample(Check):
    r"""``q_sample(x0, t, eps, sched)`` = √ᾱ_t x_0 + √(1 − ᾱ_t) ε with one t per image (ε is given)."""
    name = "ddpm.q_sample"
    student = "q_sample"
    passed = "x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε with one t per image — matches the reference."

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            shape, dtype, T, k = (4, 1, 3, 4), torch.float32, 10, 1
        else:
            B, C, H, W, T, k = ints(seed, 6, 1, 6)
            B, T = B + 1, 4 + 3 * T                                       # B in 2..7, T in 7..22
            shape, dtype = (B, C, H, B if case == "hidden-1" else W), dtype_of(seed)  # W == B shows a bad broadcast
        B, s = shape[0], seed % 100_003
        t = (torch.arange(B) * 3 + k) % T + 1                            # (B,) steps in 1..T
        if case != VISIBLE:
            t[-1] = 0                                                     # t = 0 must give x0 back
        return {"x0": 2 * fixed_uniform(*shape, seed=s, dtype=dtype) - 1,  # (B, C, H, W) in [−1, 1)
                "eps": fixed_normal(*shape, seed=s + 50, dtype=dtype), "t": t, "sched": small_schedule(T, dtype)}

    def run(self, fn, inputs: dict) -> dict:
        x0, t, eps, s = inputs["x0"], inputs["t"], inputs["eps"], inputs["sched"]
        out = run_student(fn, x0.clone(), t.clone(), eps.clone(), s, name=self.student,
                          forbidden=[ref.q_sample, ref.q_posterior, ref.ddpm_loss])
        return {"out": as_evidence(out)}

    def judge(self, inputs: dict, ev: dict) -> None:
        x0, t, eps, s = inputs["x0"], inputs["t"], inputs["eps"], inputs["sched"]
        out = tensor_of(ev["out"], self.student, shape=x0.shape, what=" (like x0)")
        tol = dict(rtol=1e-5, atol=1e-6) if x0.dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
        compare(out, ref.q_sample(x0, t, eps, s), self.student, _q_mistakes(x0, t, eps, s),
                what=f" (t = {t.tolist()})", **tol)


check_linear_beta_schedule = LinearBetaSchedule()
check_alpha_bar = AlphaBar()
check_q_sample = QSample()
check_ddpm_loss = DDPMLoss()
check_p_sample = PSample()
check_sample_loop = SampleLoop()

#: test cell grade_id → the checks it runs (visible and hidden cases)
CELLS = {
    "test_schedule": (check_linear_beta_schedule, check_alpha_bar),
    "test_cosine_schedule": (check_cosine_schedule,),
    "test_q_sample": (check_q_sample,),
    "test_ddpm_loss": (check_ddpm_loss,),
    "test_p_sample": (check_p_sample,),
    "test_sample_loop": (check_sample_loop,),
}
