r"""Lab-1 checks of anomaly detection by reconstruction error (re-exported by :mod:`dgm.checks.ae`).

* ``anomaly_score(model, x)``: one score per image, s(x) = ‖x − model(x)‖² summed over the pixels, measured in
  eval mode (the check's model has dropout) and returned without a graph. The model is the check's own tiny
  autoencoder with fixed weights, so this part does not depend on the student's ``Autoencoder``.
* ``pick_threshold(normal_scores, max_fpr)``: a decision, judged by its behaviour on the scores: an image is
  flagged when its score is > t; on the given normal scores at most ``max_fpr`` of them may be flagged, and t
  must be the most sensitive such threshold (any t that flags exactly as many normal scores as the smallest
  admissible one passes: a sorted score, ``torch.kthvalue``, ``topk``, the midpoint between two scores, …).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import ae as ref
from ._ae_model import guarded_call, images
from ._check import VISIBLE, Check, tensor_evidence
from ._core import Mistake, close, compare, fixed_normal, fixed_uniform

__all__ = ["AnomalyScore", "PickThreshold"]


class _TinyDropout(nn.Module):
    """784 → k → 784 with dropout on the code, built from given weights; records the mode of each forward."""

    def __init__(self, params: list):
        super().__init__()
        self.w1, self.b1, self.w2, self.b2 = (nn.Parameter(p.detach().clone()) for p in params)
        self.drop = nn.Dropout(0.5)
        self.modes: list[bool] = []

    def encode(self, x):
        self.modes.append(self.training)
        return self.drop(F.linear(x.flatten(1), self.w1, self.b1))                 # (B, k)

    def decode(self, z):
        return torch.sigmoid(F.linear(z, self.w2, self.b2)).view(-1, 1, 28, 28)     # (B, 1, 28, 28)

    def forward(self, x):
        return self.decode(self.encode(x))


def _score_inputs(seed: int, case: str) -> dict:
    if case == VISIBLE:
        b, k, dtype = 5, 3, torch.float32
    else:  # hidden: batch 2..8, code size 2..5, dtype from the seed
        b, k = 2 + seed % 7, 2 + (seed // 7) % 4
        dtype = torch.float64 if (seed // 28) % 2 else torch.float32
    shapes = [(k, 784), (k,), (784, k), (784,)]
    return {"x": images(b, seed + 3, dtype),
            "params": [0.1 * fixed_normal(*s, seed=seed + 60 + i, dtype=dtype) for i, s in enumerate(shapes)]}


class AnomalyScore(Check):
    r"""``anomaly_score(model, x)`` → (B,): ‖x − model(x)‖² per image, in eval mode, without a graph."""
    name = "ae.anomaly_score"
    student = "anomaly_score"
    passed = "one squared reconstruction error per image, in eval mode, without a graph."
    n_hidden = 2

    def inputs(self, seed: int, case: str) -> dict:
        return _score_inputs(seed, case)

    def run(self, fn, inputs: dict) -> dict:
        model = _TinyDropout(inputs["params"]).train()  # as a model comes out of training: dropout on
        out = guarded_call(fn, model, inputs["x"], name=self.student, forbidden=[ref.anomaly_score])
        ev = {"modes": list(model.modes[:4]), "type": type(out).__name__}
        if isinstance(out, torch.Tensor):
            ev.update(out=out.detach().cpu(), requires_grad=bool(out.requires_grad))
        return ev

    def judge(self, inputs: dict, ev: dict) -> None:
        name, x = self.student, inputs["x"]
        b = x.shape[0]
        out = tensor_evidence(ev, name)
        model = _TinyDropout(inputs["params"]).eval()
        with torch.no_grad():
            x_hat = model(x)                                                  # (B, 1, 28, 28)
        err = (x - x_hat).pow(2)                                              # (B, 1, 28, 28)
        if out.dim() == 0:
            raise Mistake(f"`{name}` returns one number for the whole batch: return one score per image, "
                          f"shape (B,) = ({b},) — don't average over the batch.", id="one-number")
        if tuple(out.shape) in ((b, 1, 28, 28), (b, 784)):
            raise Mistake(f"`{name}` returns per-pixel errors {tuple(out.shape)}: sum them over the pixels of "
                          "each image to get one score per image.", id="no-reduction")
        if tuple(out.shape) != (b,):
            raise Mistake(f"`{name}` should return shape (B,) = ({b},), got {tuple(out.shape)}.", id="wrong-shape")
        if not bool(torch.isfinite(out).all()):
            raise Mistake(f"`{name}` returned NaN or inf.", id="not-finite")
        expected = err.flatten(1).sum(1)                                      # (B,)
        modes = ev.get("modes")
        if not close(out, expected, 1e-4, 1e-5) and isinstance(modes, list) and True in modes:
            raise Mistake(f"`{name}` ran the model in training mode, so dropout changed the reconstructions: "
                          "call model.eval() before scoring.", id="train-mode")
        compare(out, expected, name, {
            ("mean-over-pixels", "it averages over the pixels. The score is the squared error summed over the "
             "784 pixels of each image, in the same units as reconstruction_loss."): err.flatten(1).mean(1),
            ("norm-not-squared", "it takes the norm ‖x − x̂‖; the score is its square ‖x − x̂‖²."):
                err.flatten(1).sum(1).sqrt(),
            ("missing-square", "it sums |x − x̂|; the score is the squared error."):
                (x - x_hat).abs().flatten(1).sum(1),
        }, rtol=1e-4, atol=1e-5, what=f" (batch of {b})")
        if ev.get("requires_grad") is not False:
            raise Mistake(f"`{name}` returns scores that still carry a graph: scores are measurements, not a "
                          "loss — compute them under torch.no_grad() (or detach them).", id="keeps-graph")


def _threshold_inputs(seed: int, case: str) -> dict:
    if case == VISIBLE:
        n, max_fpr, ties = 58, 0.05, False     # ⌊0.05 · 58⌋ = 2 false positives allowed
    else:  # hidden: 20..219 scores, a false-positive budget and (every other seed) ties, from the seed
        n = 20 + seed % 200
        max_fpr = (0.05, 0.1, 0.2, 0.25)[(seed // 200) % 4]
        ties = bool((seed // 800) % 2)
        if math.floor(max_fpr * n) != math.floor(max_fpr * n + 1e-6):  # keep ⌊max_fpr · n⌋ unambiguous
            n += 1
    u = fixed_uniform(n, seed=seed + 5, dtype=torch.float64)
    s = 20.0 + 40.0 * u ** 2                                  # (n,) positive, skewed like squared errors
    if ties:
        s = (s / 4).round() * 4                               # coarse scores: many equal values
    return {"scores": s, "max_fpr": max_fpr}


def _admissible(s: torch.Tensor, max_fpr: float):
    """k = ⌊max_fpr · n⌋ and the smallest threshold t* with #{s > t*} ≤ k."""
    k = math.floor(max_fpr * len(s) + 1e-9)
    return k, s.sort().values[len(s) - k - 1].item()


class PickThreshold(Check):
    r"""``pick_threshold(normal_scores, max_fpr)``: the most sensitive t with #{s > t}/n ≤ max_fpr."""
    name = "ae.pick_threshold"
    student = "pick_threshold"
    passed = "the lowest threshold whose false-positive rate on the normal scores stays within max_fpr."
    n_hidden = 3

    def inputs(self, seed: int, case: str) -> dict:
        return _threshold_inputs(seed, case)

    def run(self, fn, inputs: dict) -> dict:
        out = guarded_call(fn, inputs["scores"].clone(), inputs["max_fpr"], name=self.student,
                           forbidden=[ref.pick_threshold])
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            return {"t": out.detach().double().reshape(()).cpu(), "type": "Tensor"}
        if isinstance(out, (int, float)) and not isinstance(out, bool):
            return {"t": float(out), "type": type(out).__name__}
        return {"type": type(out).__name__}

    def judge(self, inputs: dict, ev: dict) -> None:
        name, s, max_fpr = self.student, inputs["scores"], inputs["max_fpr"]
        t = ev.get("t")
        if isinstance(t, torch.Tensor) and t.numel() == 1:
            t = t.double().item()
        if not isinstance(t, (int, float)) or isinstance(t, bool):
            raise Mistake(f"`{name}` should return one number (a float or a 0-dim tensor), got "
                          f"{ev.get('type', type(t).__name__)}.", id="not-a-number")
        if not math.isfinite(t):
            raise Mistake(f"`{name}` returned {t}: the threshold must be a finite score.", id="not-finite")
        n = len(s)
        k, t_star = _admissible(s, max_fpr)
        flagged = int((s > t).sum())
        allowed = f"at most ⌊{max_fpr:g} · {n}⌋ = {k}"
        if flagged > k:
            if t < s.median().item():
                raise Mistake(f"`{name}`: your threshold {t:.4g} flags {flagged} of the {n} normal scores — it sits "
                              "in the low tail. Flagged means score > t, so the false positives are the normal "
                              f"scores ABOVE t; {allowed} of them may be.", id="wrong-tail")
            raise Mistake(f"`{name}`: with your threshold {t:.4g}, {flagged} of the {n} normal scores are above it "
                          f"(false-positive rate {flagged / n:.3f}), but {allowed} may be (max_fpr={max_fpr:g}). "
                          "torch.quantile's interpolation can land one score too low: count the scores above t.",
                          id="fpr-too-high")
        best = int((s > t_star).sum())
        if flagged < best:
            raise Mistake(f"`{name}`: your threshold {t:.4g} meets the bound, but a lower one would too: it flags "
                          f"{flagged} normal scores where {best} are allowed ({allowed}), so it misses anomalies "
                          "for nothing. Pick the lowest threshold that meets the bound.", id="too-strict")
