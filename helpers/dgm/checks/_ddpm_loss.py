r"""The check of lab 4's ``ddpm_loss(model, x0, sched, t=None, eps=None, q_sample=q_sample)`` (Algorithm 1).

Two parts per case. With ``t`` and ``eps`` given, the value and d loss/dθ are compared with the
reference. With them left out, the student draws them: the kernel seeds torch's RNG from the case
seed (so the evidence is reproducible) and records the one network call (x_t, t); the judge checks
t ~ U{1..T} per image and that the ε hidden in x_t is standard normal and is the loss's target.
The reference ``q_sample`` is passed in, so a bug in the student's q_sample never costs this part.
"""
from __future__ import annotations

import torch

from .. import ddpm as ref
from ._check import VISIBLE, Check
from ._core import Mistake, close, compare, fixed_normal, fixed_uniform, run_student
from ._ddpm_nets import OFF_BY_ONE, EpsNet, as_evidence, dtype_of, ints, per_image as _b, small_schedule, tensor_of


def _loss_mistakes(model, x0, t, eps, s) -> dict:
    ab, a = _b(s.alpha_bar[t], x0), _b(s.alpha[t], x0)
    ab_prev = _b(s.alpha_bar[t - 1], x0)
    ab0 = _b(s.alpha_bar[t[:1].expand_as(t)], x0)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def mse(pred, target):
        return (pred - target).pow(2).mean()
    return {
        ("target-x0", "ε and x_0 are swapped in the loss: the network predicts the noise, so the target is ε, "
         "not x_0."): lambda: mse(model(xt, t), x0),
        ("swapped-x0-eps", "ε and x_0 are swapped when building x_t: call q_sample(x0, t, eps, sched)."):
            lambda: mse(model(ab.sqrt() * eps + (1 - ab).sqrt() * x0, t), eps),
        ("off-by-one-t", OFF_BY_ONE): lambda: mse(model(ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps, t), eps),
        ("alpha-not-alpha-bar", "it uses α_t where ᾱ_t belongs when building x_t (use the q_sample you are "
         "given)."): lambda: mse(model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t), eps),
        ("missing-sqrt", "missing square roots when building x_t (use the q_sample you are given)."):
            lambda: mse(model(ab * x0 + (1 - ab) * eps, t), eps),
        ("model-t-minus-one", "the network gets t − 1 instead of t: call model(x_t, t) with the same t used to "
         "build x_t."): lambda: mse(model(xt, t - 1), eps),
        ("sum-over-pixels", "wrong reduction — it sums over the pixels. This lab averages the squared error over "
         "every element (like F.mse_loss), which only rescales the gradient."):
            lambda: (model(xt, t) - eps).pow(2).flatten(1).sum(1).mean(),
        ("sum-over-everything", "it sums over everything; average the squared error over every element."):
            lambda: (model(xt, t) - eps).pow(2).sum(),
        ("first-t-only", "every image uses the first image's t: pass the whole (B,) tensor t."):
            lambda: mse(model(ab0.sqrt() * x0 + (1 - ab0).sqrt() * eps, t), eps),
    }


class _RecordingQ:
    """The reference q_sample handed to the student's ddpm_loss, counting its calls."""

    def __init__(self):
        self.n = 0

    def __call__(self, x0, t, eps, sched):
        self.n += 1
        return ref.q_sample(x0, t, eps, sched)


class DDPMLoss(Check):
    r"""Algorithm 1: t ~ U{1..T} per image, ε ~ N(0, I), mean of (ε − ε_θ(q_sample(x0, t, ε), t))²."""
    name = "ddpm.ddpm_loss"
    student = "ddpm_loss"
    passed = "t ~ U{1..T} per image, ε ~ N(0, I), mean (ε − ε_θ(x_t, t))² — matches the reference."

    def inputs(self, seed: int, case: str) -> dict:
        s = seed % 100_003
        if case == VISIBLE:
            shape, dtype, T, k, B_r, T_r = (4, 1, 4, 4), torch.float32, 10, 2, 1200, 10
        else:
            B, C, H, W, T, k = ints(seed, 6, 1, 5)
            shape, dtype, T = (B, 1 + C % 2, 1 + H, 1 + W), dtype_of(seed), 4 + 3 * T   # T in 7..19
            B_r, T_r = 1500, 3 + k + T % 5                                             # T_r in 4..12
        t = (torch.arange(shape[0]) * 3 + k) % T + 1                                  # (B,) in 1..T
        return {"x0": 2 * fixed_uniform(*shape, seed=s, dtype=dtype) - 1,               # (B, C, H, W)
                "eps": fixed_normal(*shape, seed=s + 50, dtype=dtype), "t": t, "sched": small_schedule(T, dtype),
                "x0_r": 2 * fixed_uniform(B_r, 1, 2, 2, seed=s + 3, dtype=torch.float64) - 1,
                "sched_r": small_schedule(T_r, torch.float64), "rng_seed": seed % 2**31}

    def run(self, fn, inputs: dict) -> dict:
        x0, eps, t, s = inputs["x0"], inputs["eps"], inputs["t"], inputs["sched"]
        model, q = EpsNet(x0.dtype), _RecordingQ()
        with torch.random.fork_rng(devices=[]):  # reproducible even if it draws when it should not
            torch.manual_seed(inputs["rng_seed"] + 1)
            out = run_student(fn, model, x0.clone(), s, t=t.clone(), eps=eps.clone(), q_sample=q,
                              name=self.student, forbidden=[ref.ddpm_loss])
        grad = None  # d loss / d θ: where the gradient flows
        if isinstance(out, torch.Tensor) and out.requires_grad and out.dim() == 0:
            (grad,) = torch.autograd.grad(out, model.w, allow_unused=True)
        fixed = {"out": as_evidence(out), "requires_grad": bool(getattr(out, "requires_grad", False)),
                 "grad": grad, "q_calls": q.n}
        model_r = EpsNet(torch.float64, record=True)
        with torch.random.fork_rng(devices=[]):  # the student's draws are reproducible from the case seed
            torch.manual_seed(inputs["rng_seed"])
            out_r = run_student(fn, model_r, inputs["x0_r"].clone(), inputs["sched_r"], q_sample=_RecordingQ(),
                                name=f"{self.student} (t and eps drawn inside)", forbidden=[ref.ddpm_loss])
        drawn = {"out": as_evidence(out_r), "calls": model_r.calls[:2], "n_calls": len(model_r.calls)}
        return {"fixed": fixed, "drawn": drawn}

    def judge(self, inputs: dict, ev: dict) -> None:
        self._judge_fixed(inputs, ev["fixed"])
        self._judge_drawn(inputs, ev["drawn"])

    def _judge_fixed(self, inputs: dict, ev: dict) -> None:
        name, (x0, eps, t, s) = self.student, (inputs[k] for k in ("x0", "eps", "t", "sched"))
        out = tensor_of(ev["out"], name)
        if out.dim() > 0 and (tuple(out.shape) == tuple(x0.shape) or tuple(out.shape) == (x0.shape[0],)):
            raise Mistake(f"`{name}` returns shape {tuple(out.shape)}: reduce to one number, the mean over every "
                          "element.", id="no-reduction")
        out = tensor_of(out, name, scalar=True)
        model = EpsNet(x0.dtype)
        expected = ref.ddpm_loss(model, x0, s, t=t, eps=eps)
        what = f" (given t = {t.tolist()} and eps)"
        try:
            with torch.no_grad():
                compare(out, expected.detach(), name, _loss_mistakes(model, x0, t, eps, s), rtol=1e-4, atol=1e-6,
                        what=what)
        except Mistake as m:
            if ev["q_calls"] == 0:  # it built x_t itself (or with its own q_sample): say where to look
                raise Mistake(f"{m}\n(Your ddpm_loss did not call the `q_sample` it was given: build x_t with "
                              "that parameter, so the grade of this part does not depend on your q_sample.)",
                              id=m.id) from None
            raise
        (g_ref,) = torch.autograd.grad(expected, model.w)
        grad = ev.get("grad")
        if ev.get("requires_grad") is not True or not isinstance(grad, torch.Tensor) or not close(grad, g_ref, 1e-4, 1e-7):
            raise Mistake(f"`{name}` returned the right number but no gradient reaches the network's parameters: "
                          "compute it from model(xt, t) with torch operations (no .item(), .detach() or "
                          "torch.no_grad()).", id="no-gradient")

    def _judge_drawn(self, inputs: dict, ev: dict) -> None:
        name, x0, s = self.student, inputs["x0_r"], inputs["sched_r"]
        B, T = x0.shape[0], s.T
        tensor_of(ev["out"], f"{name} (t and eps drawn inside)", scalar=True)
        out = ev["out"]
        if ev["n_calls"] != 1:
            raise Mistake(f"`{name}` called the network {ev['n_calls']} times; call it once, as model(xt, t) on the "
                          "noisy batch.", id="model-calls")
        xt, t = ev["calls"][0]
        xt = tensor_of(xt, "the x_t given to the network", shape=x0.shape)
        t = tensor_of(t, "the t given to the network", shape=(B,))
        if t.is_floating_point() and not bool((t == t.round()).all()):
            raise Mistake(f"`{name}` gives the network non-integer steps t; draw integers.", id="t-not-integer")
        t = t.long()
        if len(torch.unique(t)) == 1:
            raise Mistake(f"`{name}` uses one t for the whole batch; draw one t per image.", id="one-t-per-batch")
        if t.min() < 1:
            raise Mistake(f"`{name}` draws t = 0. t is uniform on {{1, …, T}} (t = 0 is the clean image).",
                          id="t-zero")
        if t.max() > T:
            raise Mistake(f"`{name}` draws t > T = {T}; t is uniform on {{1, …, T}}.", id="t-above-T")
        if t.max() < T:
            raise Mistake(f"`{name}` never draws t = T: torch.randint's upper bound is exclusive.", id="never-t-T")
        counts = torch.bincount(t, minlength=T + 1)[1:].double()
        if (counts - B / T).abs().max() > 5 * (B / T) ** 0.5 + 5:
            raise Mistake(f"`{name}`: t does not look uniform on {{1..{T}}} (counts {counts.long().tolist()}).",
                          id="t-not-uniform")
        ab = _b(s.alpha_bar[t], x0)
        eps_hat = (xt.double() - ab.sqrt() * x0) / (1 - ab).sqrt()          # the ε hidden in x_t
        m, v = eps_hat.mean().item(), eps_hat.var().item()
        if abs(m) > 0.12 or abs(v - 1) > 0.15:
            raise Mistake(f"`{name}`: the noise in x_t has mean {m:.3f} and variance {v:.3f}; ε must be standard "
                          "normal, shaped like x0.", id="eps-not-standard-normal")
        with torch.no_grad():
            again = (EpsNet(torch.float64)(xt.double(), t) - eps_hat).pow(2).mean()
        if not close(out, again, rtol=1e-4, atol=1e-6):
            raise Mistake(f"`{name}` compares ε_θ with a different ε than the one used to build x_t: draw ε once "
                          "and use it both in q_sample and as the target.", id="eps-drawn-twice")
