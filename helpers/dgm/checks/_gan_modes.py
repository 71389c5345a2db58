r"""The lab-3 check of ``count_modes`` (re-exported by :mod:`dgm.checks.gan`): mode coverage with stated rules.

``count_modes(x, centers, std, quality=3.0, min_share=0.1) -> (covered, high_quality)``: each sample belongs
to its nearest centre; it is high quality when that distance is at most quality·std; a mode is covered when
at least min_share·N/K high-quality samples belong to it (N = all samples); ``high_quality`` is the fraction
of the N samples that are high quality.

Inputs are point sets built from the seed so that every rule matters: modes holding exactly the threshold
(≥ vs >), one sample short plus near misses (quality decides), half the samples far-away junk (the fair share
is of ALL samples), two overlapping modes (nearest centre, no double counting), centres off the lab's ring.
Evidence: the two numbers the student's function returned for each set. The judge recomputes the reference
and the known mistakes on the sets it regenerates itself.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from .. import gan as ref
from ._check import VISIBLE, Check
from ._core import Mistake, fixed_uniform, run_student

__all__ = ["CountModes", "check_count_modes"]


# ----------------------------------------------------------------------------- inputs
def _disc(c: torch.Tensor, n: int, r_lo: float, r_hi: float, seed: int) -> torch.Tensor:
    """n points around centre c (2,) at distances in [r_lo, r_hi) (float64)."""
    rad = fixed_uniform(n, seed=seed, low=r_lo, high=r_hi, dtype=torch.float64)
    ang = fixed_uniform(n, seed=seed + 7919, high=2 * math.pi, dtype=torch.float64)
    return c + rad[:, None] * torch.stack([torch.cos(ang), torch.sin(ang)], 1)  # (n, 2)


def _point_set(seed: int, K: int, t: int, min_share: float, std: float, quality: float, *, ring: bool,
               overlap: bool, dtype: torch.dtype, defaults: bool) -> dict:
    """One set of samples; N = K·t / min_share so that the threshold min_share·N/K is exactly t."""
    r = quality * std
    if ring:
        centers = ref.ring_centers(K, 2.0, dtype=torch.float64)
    else:  # a jittered grid (spacing 1.5 ≫ 2·sqrt(r)): no two neighbourhoods touch
        side = math.ceil(math.sqrt(K))
        cells = torch.tensor([(i % side, i // side) for i in range(K)], dtype=torch.float64)
        centers = 1.5 * cells + 0.3 * (fixed_uniform(K, 2, seed=seed, dtype=torch.float64) - 0.5) - 1.5
    if overlap:  # the last centre sits 1.2 r from the first: their neighbourhoods overlap
        centers[-1] = centers[0] + torch.tensor([1.2 * r, 0.0], dtype=torch.float64)
    pattern = [(t, 0), (t - 1, 2), (3 * t, 1), (0, 0), (t + 1, 3)]  # (high-quality, near misses) per mode
    shift = seed % len(pattern)
    parts = []
    for k in range(K - 1 if overlap else K):
        hq, near = pattern[(k + shift) % len(pattern)]
        parts.append(_disc(centers[k], hq, 0.02 * r, 0.9 * r, seed + 11 * k + 1))
        parts.append(_disc(centers[k], near, 1.15 * r, 1.6 * r, seed + 11 * k + 2))
    if overlap:  # t samples within r of both centres, nearer to centre 0: they belong to mode 0 only
        a, b = centers[0], centers[-1]
        mid = a + 0.45 * (b - a)
        parts.append(_disc(mid, t, 0.0, 0.04 * r, seed + 5))
    x = torch.cat(parts)
    n = round(K * t / min_share)
    junk = n - len(x)
    if junk < 0:
        raise ValueError("point set: too many structured samples for N")  # never for the cases below
    ang = fixed_uniform(junk, seed=seed + 3, high=2 * math.pi, dtype=torch.float64)
    far = 12.0 * torch.stack([torch.cos(ang), torch.sin(ang)], 1)  # far from every centre
    x = torch.cat([x, far])
    perm = torch.argsort(fixed_uniform(len(x), seed=seed + 4, dtype=torch.float64))
    return {"x": x[perm].to(dtype), "centers": centers.to(dtype), "std": std, "quality": quality,
            "min_share": min_share, "defaults": defaults}


# ----------------------------------------------------------------------------- reference and mistakes
def _answer(s: dict, kind: str = "reference") -> tuple[int, float]:
    """(covered, high_quality) of one set by the stated rules, or by a known mistake ``kind``."""
    x, c = s["x"].double(), s["centers"].double()
    std, q, ms = s["std"], s["quality"], s["min_share"]
    if kind == "ignores-centers":
        c = ref.ring_centers(8, 2.0, dtype=torch.float64)
    N, K = len(x), len(c)
    dist = torch.cdist(x, c)  # (N, K)
    d_min, k = dist.min(1)
    radius = std if kind == "radius-without-quality" else q * std
    d_cmp = d_min ** 2 if kind == "squared-distance" else d_min
    good = d_cmp <= radius  # (N,)
    if kind == "double-counted":
        counts = (dist <= radius).sum(0)  # every centre within reach counts the sample
    elif kind == "counts-low-quality-samples":
        counts = torch.bincount(k, minlength=K)
    else:
        counts = torch.bincount(k[good], minlength=K)
    share = int(good.sum()) if kind == "fair-share-of-high-quality" else N
    if kind == "strict-threshold":
        covered = int((counts * K > ms * share).sum())
    else:
        covered = int((counts * K >= ms * share).sum())
    return covered, float(good.double().mean())


MISTAKES = {
    "fair-share-of-high-quality": "the threshold is a share of ALL N samples: a mode needs at least "
    "min_share·N/K high-quality samples, N counting every sample — you used the number of high-quality samples "
    "instead of N.",
    "counts-low-quality-samples": "a mode counts only its HIGH-QUALITY samples (within quality·std of its "
    "centre); you counted every sample whose nearest centre it is.",
    "strict-threshold": "a mode with exactly min_share·N/K high-quality samples is covered: 'at least' means ≥, "
    "not >.",
    "double-counted": "each sample belongs to its NEAREST centre only; where two neighbourhoods overlap you "
    "counted a sample for every centre within reach.",
    "radius-without-quality": "a sample is high quality within quality·std of its centre; you used std alone "
    "(forgot the factor `quality`).",
    "squared-distance": "you compared the squared distance with quality·std: compare the distance ‖x − c_k‖ "
    "itself (or its square with (quality·std)²).",
    "ignores-centers": "use the `centers` you are given: these modes are not the lab's ring of 8.",
}


# ----------------------------------------------------------------------------- the check
def _number(v):
    """A returned number as a Python float (ints, floats, numpy scalars, one-element tensors), else None."""
    if isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_complex():
        return float(v.detach().cpu().item())
    if isinstance(v, np.ndarray) and v.size == 1 and v.dtype.kind in "iuf":
        return float(v.reshape(()).item())
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return float(v)
    return None


class CountModes(Check):
    r"""``count_modes(x, centers, std, quality=3.0, min_share=0.1)`` → (modes covered, high-quality fraction)."""
    name = "gan.count_modes"
    student = "count_modes"
    passed = ("nearest centre, high quality within quality·std, covered at ≥ min_share·N/K high-quality samples "
              "(N = all samples), fraction over all N.")

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            sets = [_point_set(1, 8, 5, 0.1, 0.05, 3.0, ring=True, overlap=False, dtype=torch.float32,
                               defaults=True),
                    _point_set(2, 6, 4, 0.125, 0.08, 2.5, ring=False, overlap=True, dtype=torch.float32,
                               defaults=False)]
            return {"sets": sets}
        K = 4 + seed % 7  # 4..10 modes
        t = 3 + (seed // 7) % 4  # threshold 3..6
        min_share = (0.1, 0.125, 0.2, 0.25)[(seed // 29) % 4]
        std = (0.03, 0.05, 0.08, 0.1)[(seed // 3) % 4]
        quality = (2.0, 2.5, 3.0)[(seed // 5) % 3]
        dtype = torch.float64 if seed % 2 else torch.float32
        sets = [_point_set(seed % 10007, K, t, min_share, std, quality, ring=False, overlap=True, dtype=dtype,
                           defaults=False),
                _point_set(seed % 10007 + 1, 8, t, 0.1, 0.05, 3.0, ring=True, overlap=False, dtype=dtype,
                           defaults=True)]
        return {"sets": sets}

    def run(self, fn, inputs: dict) -> dict:
        out = []
        for s in inputs["sets"]:
            kwargs = {} if s["defaults"] else {"quality": s["quality"], "min_share": s["min_share"]}
            res = run_student(fn, s["x"].clone(), s["centers"].clone(), s["std"], name=self.student,
                              forbidden=[ref.count_modes, ref.mode_coverage], **kwargs)
            if isinstance(res, (tuple, list)) and len(res) == 2:
                out.append({"type": "pair", "covered": _number(res[0]), "high_quality": _number(res[1])})
            else:
                out.append({"type": type(res).__name__})
        return {"results": out}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, sets, results = self.student, inputs["sets"], ev.get("results")
        if not isinstance(results, list) or len(results) != len(sets):
            raise Mistake(f"`{name}`: its result could not be judged.", id="malformed-evidence")
        answers = [self._validated(s, res) for s, res in zip(sets, results)]  # [(covered, hq)] per set
        wants = [_answer(s) for s in sets]
        wrong = [i for i, (got, want) in enumerate(zip(answers, wants)) if not _same(got, want)]
        if not wrong:
            return
        i = wrong[0]
        s, got, want = sets[i], answers[i], wants[i]
        K = len(s["centers"])
        where = (f"with K = {K} centres, N = {len(s['x'])} samples, std = {s['std']}, quality = {s['quality']}, "
                 f"min_share = {s['min_share']}" + (" (the default quality and min_share)" if s["defaults"] else ""))
        for kind, message in MISTAKES.items():  # a known mistake explains EVERY set's answer
            if all(_same(a, _answer(t, kind)) for a, t in zip(answers, sets)):
                raise Mistake(f"`{name}` {where}: you returned {got[0]} modes and {got[1]:.4f}; expected "
                              f"{want[0]} and {want[1]:.4f}. It looks like {message}", id=kind)
        if got[0] != want[0]:
            raise Mistake(f"`{name}` {where}: {got[0]} modes covered, expected {want[0]} (high-quality "
                          f"fraction {want[1]:.4f}).", id="wrong-count")
        raise Mistake(f"`{name}` {where}: high-quality fraction {got[1]:.4f}, expected {want[1]:.4f} (the "
                      "fraction of ALL N samples within quality·std of their nearest centre).",
                      id="wrong-high-quality")

    def _validated(self, s: dict, res) -> tuple[int, float]:
        """The (covered, high_quality) of one evidence item, or the mistake its form shows."""
        name, K = self.student, len(s["centers"])
        if not isinstance(res, dict):
            raise Mistake(f"`{name}`: its result could not be judged.", id="malformed-evidence")
        if res.get("type") != "pair":
            raise Mistake(f"`{name}` should return a pair (covered, high_quality), got {res.get('type')}.",
                          id="not-a-pair")
        covered, hq = res.get("covered"), res.get("high_quality")
        if not isinstance(covered, float) or not isinstance(hq, float) or not all(map(math.isfinite, (covered, hq))):
            raise Mistake(f"`{name}` should return two numbers: (modes covered, fraction of high-quality "
                          "samples).", id="not-numbers")
        if covered != round(covered) or not 0 <= covered <= K:
            raise Mistake(f"`{name}`: the first number is the COUNT of covered modes, an integer from 0 to "
                          f"K = {K}; got {covered:g}.", id="covered-not-a-count")
        if not 0 <= hq <= 1:
            raise Mistake(f"`{name}`: the second number is a FRACTION of the N = {len(s['x'])} samples, in "
                          f"[0, 1]; got {hq:g}.", id="high-quality-not-a-fraction")
        return int(round(covered)), hq


def _same(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and abs(a[1] - b[1]) <= 1e-6


check_count_modes = CountModes()
