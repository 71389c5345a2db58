"""Lab 4's cosine-schedule check (a graded part that needs a design decision): correct answers written in
different ways pass, the typical wrong turns are named, the kernel and the grader agree, forged evidence fails."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from dgm import ddpm
from dgm.checks import Mistake, evidence
from dgm.checks import ddpm as C
from dgm.checks._check import Verdict, public_seed

CHECK = C.check_cosine_schedule


def solution(T, s=0.008, max_beta=0.999):
    t = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * torch.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta).float()


def float32_linspace(T, s=0.008, max_beta=0.999):
    t = torch.linspace(0, T, T + 1)                                      # float32 throughout
    ab = torch.cos(((t / T) + s) / (1 + s) * math.pi / 2).pow(2)
    return torch.minimum(1 - ab[1:] / ab[:-1], torch.tensor(max_beta))


def python_loop(T, s=0.008, max_beta=0.999):
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return torch.tensor([min(1 - f(t) / f(t - 1), max_beta) for t in range(1, T + 1)])


def numpy_cumulative(T, s=0.008, max_beta=0.999):
    t = np.arange(T + 1) / T
    ab = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
    ab = ab / ab[0]                                                       # ᾱ_t, then α_t = ᾱ_t/ᾱ_{t−1}
    return torch.from_numpy(np.clip(1 - np.exp(np.diff(np.log(np.maximum(ab, 1e-300)))), None, max_beta))


def unnormalised(T, s=0.008, max_beta=0.999):                            # f(0) cancels in the ratio
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * torch.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(0, max_beta)


GOOD = [solution, float32_linspace, python_loop, numpy_cumulative, unnormalised]


def _ab(T, s, squared=True):
    t = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * torch.pi / 2)
    f = f ** 2 if squared else f
    return f / f[0]


BAD = {
    "no-clip": lambda T, s=0.008, max_beta=0.999: 1 - _ab(T, s)[1:] / _ab(T, s)[:-1],
    "returns-alpha-bar": lambda T, s=0.008, max_beta=0.999: _ab(T, s)[1:],
    "t-plus-one-values": lambda T, s=0.008, max_beta=0.999: _ab(T, s),
    "one-minus-alpha-bar": lambda T, s=0.008, max_beta=0.999: (1 - _ab(T, s)[1:]).clamp(max=max_beta),
    "returns-alpha": lambda T, s=0.008, max_beta=0.999: 1 - solution(T, s, max_beta),
    "cos-not-squared": lambda T, s=0.008, max_beta=0.999:
        (1 - _ab(T, s, False)[1:] / _ab(T, s, False)[:-1]).clamp(max=max_beta),
    "ignores-s": lambda T, s=0.008, max_beta=0.999: solution(T, 0.0, max_beta),
    "not-a-tensor": lambda T, s=0.008, max_beta=0.999: solution(T, s, max_beta).tolist(),
    "wrong-shape": lambda T, s=0.008, max_beta=0.999: solution(T, s, max_beta)[:-1],
}
SEEDS = [("visible", None), ("hidden-1", 987654321), ("hidden-2", 2**40 + 17)]


def in_kernel(fn, case, seed):
    try:
        CHECK.judge(CHECK.inputs(seed, case), CHECK.run(fn, CHECK.inputs(seed, case)))
    except Mistake as m:
        return False, m.id
    return True, None


def graded(fn, case, seed):
    rec = evidence.parse(json.dumps(evidence.to_json(CHECK.record(fn, "cell", case, seed))))
    v = CHECK.verdict(case, seed, rec)
    return v.passed, v.mistake


def _seed(case, seed):
    return public_seed(CHECK.name, case) if seed is None else seed


def test_reference_module_matches_the_check():
    for T, s, m in [(10, 0.008, 0.999), (57, 0.02, 0.5)]:
        assert torch.allclose(ddpm.cosine_beta_schedule(T, s, max_beta=m, dtype=torch.float64), solution(T, s, m).double(),
                              atol=1e-6)


@pytest.mark.parametrize("fn", GOOD, ids=[f.__name__ for f in GOOD])
def test_correct_answers_pass_and_the_verdict_agrees(fn):
    for case, seed in SEEDS:
        seed = _seed(case, seed)
        assert in_kernel(fn, case, seed) == (True, None), (case, seed)
        assert graded(fn, case, seed) == (True, None), (case, seed)


@pytest.mark.parametrize("mistake", list(BAD))
def test_typical_mistakes_are_named_and_the_verdict_agrees(mistake):
    fn = BAD[mistake]
    seed = _seed("visible", None)
    assert in_kernel(fn, "visible", seed) == (False, mistake)
    assert graded(fn, "visible", seed) == (False, mistake)
    for case, seed in SEEDS[1:]:
        got = in_kernel(fn, case, seed)
        assert got[0] is False and got == graded(fn, case, seed), (case, got)


def test_hidden_cases_vary_and_catch_a_fixed_cap():
    configs = {CHECK.inputs(s, "hidden-1")["configs"][0] for s in range(20)}
    assert len(configs) > 10 and {m for _, _, m in configs} >= {0.5, 0.999}
    fixed_cap = lambda T, s=0.008, max_beta=0.999: solution(T, s, 0.999)  # noqa: E731
    ids = {in_kernel(fixed_cap, "hidden-1", s) for s in range(20)}
    assert (False, "ignores-max-beta") in ids and all(not p or i is None for p, i in ids)


def test_the_reference_is_refused_and_todo_is_friendly():
    with pytest.raises(Mistake) as err:
        CHECK(lambda T, s=0.008, max_beta=0.999: ddpm.cosine_beta_schedule(T, s, max_beta=max_beta))
    assert "reference implementation" in str(err.value)

    def todo(*a, **k):
        raise NotImplementedError
    assert graded(todo, "hidden-1", 3) == (False, "not-implemented")


def test_forged_evidence_gives_a_failed_verdict_never_an_exception():
    seed = _seed("visible", None)
    good = CHECK.record(solution, "cell", "visible", seed)
    assert CHECK.verdict("visible", seed, good).passed
    out = good.values["outs"]
    forged = [{}, {"outs": "a string"}, {"outs": out[:1]}, {"outs": [out[0][:1], out[1]]},
              {"outs": [torch.full_like(out[0], float("nan")), out[1]]}, {"outs": ["a string", out[1]]},
              {"outs": [out[0] + 1, out[1]]}, {"outs": [{"type": "list"}, out[1]]}, {"outs": 1.5}]
    for values in forged:
        v = CHECK.verdict("visible", seed, dataclasses.replace(good, values=values))
        assert isinstance(v, Verdict) and v.passed is False, values


def test_check_is_fast():
    import time
    start = time.process_time()
    CHECK(solution, hidden=True)
    assert time.process_time() - start < 2
