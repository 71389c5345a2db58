r"""The check of lab 4's cosine schedule (a graded part that needs a decision, not a transcription).

The task gives ᾱ_t = f(t)/f(0), f(t) = cos²(π/2 · (t/T + s)/(1 + s)) and asks for the β_t of the chain: the
student has to turn the cumulative ᾱ_t = ∏_{u≤t} (1 − β_u) back into per-step β_t = 1 − ᾱ_t/ᾱ_{t−1}, and decide
what keeps the chain valid at t = T, where f(T) = 0 would make β_T = 1 (clip each β_t to ``max_beta``).
The judge compares with a float64 reference and names the usual wrong turns.
"""
from __future__ import annotations

import math

import torch

from .. import ddpm as ref
from ._check import VISIBLE, Check
from ._core import Mistake, compare, run_student
from ._ddpm_nets import as_evidence, ints, tensor_of


def _alpha_bar(T: int, s: float, squared: bool = True) -> torch.Tensor:
    t = torch.arange(T + 1, dtype=torch.float64)                          # 0..T
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2)
    f = f ** 2 if squared else f
    return f / f[0]                                                       # ᾱ_0..ᾱ_T


def _beta(ab: torch.Tensor, max_beta: float | None) -> torch.Tensor:
    beta = 1 - ab[1:] / ab[:-1]                                           # β_t = 1 − ᾱ_t/ᾱ_{t−1}
    return beta if max_beta is None else beta.clamp(max=max_beta)


def reference(T: int, s: float, max_beta: float) -> torch.Tensor:
    return _beta(_alpha_bar(T, s), max_beta)                              # (T,)


class CosineSchedule(Check):
    r"""``cosine_beta_schedule(T, s, max_beta)`` → (T,) tensor β_1..β_T of the cosine schedule, each ≤ max_beta."""
    name = "ddpm.cosine_beta_schedule"
    student = "cosine_beta_schedule"
    passed = "β_t = 1 − ᾱ_t/ᾱ_{t−1} of the cosine ᾱ_t, clipped at max_beta — matches the reference."

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            return {"configs": [(10, 0.008, 0.999), (50, 0.008, 0.999)]}
        T, ks, km = ints(seed, 3, 3, 300)
        s = (0.004, 0.008, 0.02, 0.05)[ks % 4]
        max_beta = (0.999, 0.9, 0.5, 0.99)[km % 4]                         # 0.5: several β_t are clipped
        return {"configs": [(T, s, max_beta), (3 + ks % 7, 0.008, 0.999)]}

    def run(self, fn, inputs: dict) -> dict:
        outs = [as_evidence(run_student(fn, T, s=s, max_beta=m, name=self.student,
                                        forbidden=[ref.cosine_beta_schedule, ref.make_schedule]))
                for T, s, m in inputs["configs"]]
        return {"outs": outs}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, configs, outs = self.student, inputs["configs"], ev.get("outs")
        if not isinstance(outs, list) or len(outs) != len(configs):
            raise ValueError("one output per configuration expected")
        for (T, s, m), out in zip(configs, outs):
            what = f" (T={T}, s={s}, max_beta={m})"
            out = tensor_of(out, name, what=what)
            ab = _alpha_bar(T, s)
            if tuple(out.shape) == (T + 1,):
                msg = ("it returns ᾱ_0, …, ᾱ_T; return the T per-step values β_1, …, β_T."
                       if torch.allclose(out.double(), ab, atol=1e-5) else
                       "it returns T + 1 values; return the T values β_1, …, β_T (t = 1..T).")
                raise Mistake(f"`{name}`{what}: {msg}", id="t-plus-one-values")
            out = tensor_of(out, name, shape=(T,), what=what)
            compare(out.double(), reference(T, s, m), name, {
                ("no-clip", "β_T is 1 (f(T) = 0): clip every β_t to at most max_beta, or the last step wipes out "
                 "everything and 1 − β_T = 0 breaks the reverse step."): _beta(ab, None),
                ("returns-alpha-bar", "it returns ᾱ_t; the schedule is the per-step β_t, from "
                 "ᾱ_t = ∏ (1 − β_u)."): ab[1:],
                ("one-minus-alpha-bar", "it returns 1 − ᾱ_t (the total noise variance after t steps); β_t is the "
                 "noise added by step t alone: compare ᾱ_t with ᾱ_{t−1}."): (1 - ab[1:]).clamp(max=m),
                ("returns-alpha", "it returns α_t = ᾱ_t/ᾱ_{t−1}; β_t = 1 − α_t."): 1 - _beta(ab, m),
                ("cos-not-squared", "f(t) is cos²(…), the square of the cosine."):
                    _beta(_alpha_bar(T, s, squared=False), m),
                ("ignores-s", f"the offset s = {s} is ignored: it enters f(t) as (t/T + s)/(1 + s)."):
                    _beta(_alpha_bar(T, 0.0), m),
                ("ignores-max-beta", f"it clips at 0.999 whatever max_beta is; clip at max_beta = {m}."):
                    _beta(ab, 0.999) if m != 0.999 else None,
                ("clip-alpha-bar", "it clips ᾱ_t instead of β_t; the bound is on each step's β_t."):
                    _beta(ab.clamp(min=1 - m), None),
            }, rtol=2e-4, atol=1e-5, what=what)


check_cosine_schedule = CosineSchedule()
