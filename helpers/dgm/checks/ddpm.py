r"""Checks for Lab 4 (DDPM). Each one names the mistake it recognises.

Convention (as in :mod:`dgm.ddpm`): ``sched.alpha_bar[t]`` is ᾱ_t for t = 0..T (index 0 = clean data).
"""
from __future__ import annotations

import torch
from .. import ddpm as ref
from ._core import Mistake, close, compare, expect_tensor, fixed_normal, fixed_uniform, ok, run_student
from ._ddpm_nets import EpsNet as _EpsNet, Recorder as _Recorder, per_image as _b, small_schedule as _sched

__all__ = ["check_linear_beta_schedule", "check_alpha_bar", "check_q_sample", "check_ddpm_loss",
           "check_p_sample", "check_sample_loop"]

_OFF_BY_ONE = ("off by one in t: it uses ᾱ_{t−1} where ᾱ_t belongs. In this lab the buffers are indexed by "
               "the slide's t, so ᾱ_t is sched.alpha_bar[t] (index 0 holds ᾱ_0 = 1, the clean image).")


# ----------------------------------------------------------------------------- schedule
def check_linear_beta_schedule(linear_beta_schedule, hidden: bool = False) -> None:
    r"""``linear_beta_schedule(T, beta_1, beta_T)`` → (T,) tensor β_1..β_T, evenly spaced."""
    cases = [(7, 1e-3, 0.2), (1000, 1e-4, 0.02), (2, 0.05, 0.1)] if hidden else [(10, 1e-4, 0.02), (50, 2e-3, 0.3)]
    for T, b1, bT in cases:
        out = run_student(linear_beta_schedule, T, b1, bT, name="linear_beta_schedule",
                          forbidden=[ref.linear_beta_schedule, ref.cosine_beta_schedule])
        out = expect_tensor(out, "linear_beta_schedule")
        expected = torch.linspace(b1, bT, T, dtype=torch.float64)
        if out.shape == (T + 1,):
            raise Mistake(f"`linear_beta_schedule({T}, ...)` returned T + 1 = {T + 1} values; it should return the "
                          f"T = {T} values β_1, …, β_T (torch.linspace(beta_1, beta_T, T)).")
        if out.shape != (T,):
            raise Mistake(f"`linear_beta_schedule({T}, ...)` should return a tensor of shape ({T},), "
                          f"got {tuple(out.shape)}.")
        compare(out, expected, "linear_beta_schedule", {
            "the end points are swapped: β must grow from beta_1 (little noise) to beta_T.": expected.flip(0),
            "it returns α_t = 1 − β_t; return the β_t themselves.": 1 - expected,
            "the values are not evenly spaced from beta_1 to beta_T: use torch.linspace(beta_1, beta_T, T).":
                torch.linspace(b1, bT, T + 1, dtype=torch.float64)[:T],
        }, rtol=1e-5, atol=1e-7, what=f" (T={T})")
    ok("linear_beta_schedule: β_1 … β_T evenly spaced — matches the reference.")


def check_alpha_bar(alpha_bar_from_beta, hidden: bool = False) -> None:
    r"""``alpha_bar_from_beta(beta)`` → (T,) tensor ᾱ_t = ∏_{s=1}^t (1 − β_s)."""
    cases = [torch.linspace(0.01, 0.4, 12, dtype=torch.float32), torch.tensor([0.3], dtype=torch.float64)] if hidden \
        else [torch.linspace(0.05, 0.5, 8, dtype=torch.float64)]
    for beta in cases:
        out = run_student(alpha_bar_from_beta, beta.clone(), name="alpha_bar_from_beta",
                          forbidden=[ref.DiffusionSchedule, ref.make_schedule])
        out = expect_tensor(out, "alpha_bar_from_beta", shape=beta.shape, what=" (one ᾱ_t per β_t)")
        b = beta.double()
        expected = torch.cumprod(1 - b, 0)
        compare(out, expected, "alpha_bar_from_beta", {
            "it returns α_t = 1 − β_t; ᾱ_t is the running PRODUCT of the α_s (torch.cumprod).": 1 - b,
            "it multiplies the β_s; ᾱ_t multiplies the α_s = 1 − β_s.": torch.cumprod(b, 0),
            "it adds instead of multiplying: use torch.cumprod, not cumsum.": torch.cumsum(1 - b, 0),
            _OFF_BY_ONE.split(" In this")[0] + " The first entry must already include α_1.":
                torch.cat([b.new_ones(1), expected[:-1]]),
            "it returns 1 − ᾱ_t (the noise variance); return ᾱ_t itself.": 1 - expected,
            "it uses the approximation exp(−Σβ_s); compute the exact product ∏(1 − β_s).":
                torch.exp(-torch.cumsum(b, 0)),
        }, rtol=1e-5, atol=1e-7, what=f" (T={len(beta)})")
    ok("alpha_bar_from_beta: ᾱ_t = ∏ (1 − β_s) — matches the reference.")


# ----------------------------------------------------------------------------- q_sample
def _q_mistakes(x0, t, eps, s) -> dict:
    ab, a, beta = _b(s.alpha_bar[t], x0), _b(s.alpha[t], x0), _b(s.beta[t], x0)
    ab_prev = _b(s.alpha_bar[(t - 1).clamp_min(0)], x0)
    ab0 = _b(s.alpha_bar[t[:1].expand_as(t)], x0)
    flat = s.alpha_bar[t].to(x0.dtype)  # (B,): broadcasts along the LAST dim when W == B
    return {
        _OFF_BY_ONE: ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps,
        "it uses α_t where ᾱ_t belongs: q(x_t | x_0) jumps t steps at once, so it needs the product "
        "ᾱ_t = sched.alpha_bar[t], not sched.alpha[t].": a.sqrt() * x0 + (1 - a).sqrt() * eps,
        "ε and x_0 are swapped: x_t = √ᾱ_t · x0 + √(1 − ᾱ_t) · eps.": ab.sqrt() * eps + (1 - ab).sqrt() * x0,
        "missing square roots: the coefficients are √ᾱ_t and √(1 − ᾱ_t).": ab * x0 + (1 - ab) * eps,
        "missing square root on ᾱ_t: the signal is scaled by √ᾱ_t.": ab * x0 + (1 - ab).sqrt() * eps,
        "the noise is scaled by its variance 1 − ᾱ_t; scale ε by the standard deviation √(1 − ᾱ_t).":
            ab.sqrt() * x0 + (1 - ab) * eps,
        "it uses β_t as the noise variance; after t steps the variance is 1 − ᾱ_t.":
            ab.sqrt() * x0 + beta.sqrt() * eps,
        "t is broadcast wrongly across the batch: sched.alpha_bar[t] has shape (B,); reshape it to "
        "(B, 1, 1, 1) (e.g. .view(-1, 1, 1, 1)) so each image uses its own t.":
            (flat.sqrt() * x0 + (1 - flat).sqrt() * eps) if x0.shape[-1] == len(t) else None,
        "every image uses the first image's t: use each image's own t[i] (index with the whole tensor t).":
            ab0.sqrt() * x0 + (1 - ab0).sqrt() * eps,
    }


def check_q_sample(q_sample, hidden: bool = False) -> None:
    r"""``q_sample(x0, t, eps, sched)`` = √ᾱ_t x_0 + √(1 − ᾱ_t) ε with one t per image."""
    cases = [(5, (5, 2, 3, 5), torch.float64, 0), (1, (1, 1, 4, 4), torch.float32, 7)] if hidden \
        else [(4, (4, 1, 3, 4), torch.float32, 1)]
    for b, shape, dtype, seed in cases:
        s = _sched(10, dtype)
        x0 = 2 * fixed_uniform(*shape, seed=seed, dtype=dtype) - 1                 # (B, C, H, W)
        eps = fixed_normal(*shape, seed=seed + 50, dtype=dtype)
        t = (torch.arange(b) * 3 + seed) % 10 + 1 if b > 1 else torch.tensor([seed % 10 + 1])
        if hidden and b > 1:
            t[-1] = 0  # t = 0 must give x0 back
        out = run_student(q_sample, x0.clone(), t.clone(), eps.clone(), s, name="q_sample",
                          forbidden=[ref.q_sample, ref.q_posterior, ref.ddpm_loss])
        out = expect_tensor(out, "q_sample", shape=shape, what=" (like x0)")
        expected = ref.q_sample(x0, t, eps, s)
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
        compare(out, expected, "q_sample", _q_mistakes(x0, t, eps, s), what=f" (t = {t.tolist()})", **tol)
    ok("q_sample: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε with one t per image — matches the reference.")


# ----------------------------------------------------------------------------- ddpm_loss
def _loss_mistakes(model, x0, t, eps, s) -> dict:
    ab, a = _b(s.alpha_bar[t], x0), _b(s.alpha[t], x0)
    ab_prev = _b(s.alpha_bar[t - 1], x0)
    ab0 = _b(s.alpha_bar[t[:1].expand_as(t)], x0)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def mse(pred, target):
        return (pred - target).pow(2).mean()
    return {
        "ε and x_0 are swapped in the loss: the network predicts the noise, so the target is ε, not x_0.":
            mse(model(xt, t), x0),
        "ε and x_0 are swapped when building x_t: x_t = √ᾱ_t · x0 + √(1 − ᾱ_t) · ε.":
            mse(model(ab.sqrt() * eps + (1 - ab).sqrt() * x0, t), eps),
        _OFF_BY_ONE: mse(model(ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps, t), eps),
        "it uses α_t where ᾱ_t belongs when building x_t.": mse(model(a.sqrt() * x0 + (1 - a).sqrt() * eps, t), eps),
        "missing square roots when building x_t (√ᾱ_t and √(1 − ᾱ_t)).":
            mse(model(ab * x0 + (1 - ab) * eps, t), eps),
        "the network gets t − 1 instead of t: call model(x_t, t) with the same t used to build x_t.":
            mse(model(xt, t - 1), eps),
        "wrong reduction — it sums over the pixels. This lab averages the squared error over every element "
        "(like F.mse_loss), which only rescales the gradient.":
            (model(xt, t) - eps).pow(2).flatten(1).sum(1).mean(),
        "it sums over everything; average the squared error over every element (F.mse_loss).":
            (model(xt, t) - eps).pow(2).sum(),
        "every image uses the first image's t: index the schedule with the whole (B,) tensor t.":
            mse(model(ab0.sqrt() * x0 + (1 - ab0).sqrt() * eps, t), eps),
    }


def check_ddpm_loss(ddpm_loss, hidden: bool = False) -> None:
    r"""``ddpm_loss(model, x0, sched, t=None, eps=None)`` — Algorithm 1:
    t ~ U{1..T}, ε ~ N(0, I), mean of (ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t))²."""
    cases = [((3, 2, 3, 4), torch.float64, 4), ((1, 1, 4, 4), torch.float32, 9)] if hidden \
        else [((4, 1, 4, 4), torch.float32, 2)]
    T = 10
    for shape, dtype, seed in cases:
        s, model = _sched(T, dtype), _EpsNet(dtype)
        x0 = 2 * fixed_uniform(*shape, seed=seed, dtype=dtype) - 1
        eps = fixed_normal(*shape, seed=seed + 50, dtype=dtype)
        t = (torch.arange(shape[0]) * 3 + seed) % T + 1
        out = run_student(ddpm_loss, model, x0.clone(), s, t=t.clone(), eps=eps.clone(), name="ddpm_loss",
                          forbidden=[ref.ddpm_loss])
        out = expect_tensor(out, "ddpm_loss", scalar=True)
        if not out.requires_grad:
            raise Mistake("`ddpm_loss` returned a tensor without gradient: compute it from the model's output "
                          "with torch operations (no .item(), .detach() or torch.no_grad()).")
        with torch.no_grad():
            compare(out, ref.ddpm_loss(model, x0, s, t=t, eps=eps), "ddpm_loss",
                    _loss_mistakes(model, x0, t, eps, s), rtol=1e-4, atol=1e-6,
                    what=f" (given t = {t.tolist()} and eps)")
    # the random part: t ~ U{1..T} per image, ε ~ N(0, I), and the same ε in x_t and in the target
    B, T = (1500, 6) if hidden else (1200, 10)
    s, model = _sched(T, torch.float64), _EpsNet(torch.float64, record=True)
    x0 = 2 * fixed_uniform(B, 1, 2, 2, seed=3, dtype=torch.float64) - 1
    out = expect_tensor(run_student(ddpm_loss, model, x0.clone(), s, name="ddpm_loss (t and eps drawn inside)",
                                    forbidden=[ref.ddpm_loss]), "ddpm_loss", scalar=True)
    if len(model.calls) != 1:
        raise Mistake(f"`ddpm_loss` called the network {len(model.calls)} times; call it once on the noisy "
                      "batch x_t.")
    xt, t = model.calls[0]
    t = t.long().cpu()
    if len(torch.unique(t)) == 1:
        raise Mistake("`ddpm_loss` uses one t for the whole batch; draw one t per image: "
                      "torch.randint(1, T + 1, (B,)).")
    if t.min() < 1:
        raise Mistake("`ddpm_loss` draws t = 0. t is uniform on {1, …, T} (t = 0 is the clean image): "
                      "torch.randint(1, T + 1, (B,)).")
    if t.max() > T:
        raise Mistake(f"`ddpm_loss` draws t > T = {T}; t is uniform on {{1, …, T}}.")
    if t.max() < T:
        raise Mistake("`ddpm_loss` never draws t = T: torch.randint's upper bound is exclusive, use "
                      "torch.randint(1, T + 1, (B,)).")
    counts = torch.bincount(t, minlength=T + 1)[1:].double()
    if (counts - B / T).abs().max() > 5 * (B / T) ** 0.5 + 5:
        raise Mistake(f"`ddpm_loss`: t does not look uniform on {{1..{T}}} (counts {counts.long().tolist()}).")
    ab = _b(s.alpha_bar[t], x0)
    eps_hat = (xt - ab.sqrt() * x0) / (1 - ab).sqrt()                  # the ε hidden in x_t
    m, v = eps_hat.mean().item(), eps_hat.var().item()
    if abs(m) > 0.12 or abs(v - 1) > 0.15:
        raise Mistake(f"`ddpm_loss`: the noise in x_t has mean {m:.3f} and variance {v:.3f}; ε must be standard "
                      "normal (torch.randn_like(x0), not torch.rand_like).")
    with torch.no_grad():
        again = (model(xt, t) - eps_hat).pow(2).mean()
    if not close(out, again, rtol=1e-4, atol=1e-6):
        raise Mistake("`ddpm_loss` compares ε_θ with a different ε than the one used to build x_t: draw ε once "
                      "and use it both in q_sample and as the target.")
    ok("ddpm_loss: t ~ U{1..T} per image, ε ~ N(0, I), mean (ε − ε_θ(x_t, t))² — matches the reference.")


# ----------------------------------------------------------------------------- p_sample
def _p_parts(model, xt, t: int, s):
    tb = torch.full((xt.shape[0],), t, dtype=torch.long)
    one = lambda buf, i=t: buf[i].to(xt.dtype)  # noqa: E731
    return tb, model(xt, tb), one(s.alpha), one(s.alpha_bar), one(s.beta), one


def _p_mistakes(model, xt, t: int, z, s) -> dict:
    tb, e, a, ab, beta, one = _p_parts(model, xt, t, s)
    sig, last = beta.sqrt(), float(t > 1)

    def step(num=beta, den=(1 - ab).sqrt(), scale=a.sqrt(), sigma=sig, noise=last, sign=-1.0, eps=e):
        return (xt + sign * num / den * eps) / scale + noise * sigma * z
    a_p, ab_p = one(s.alpha, max(t - 1, 0)), one(s.alpha_bar, max(t - 1, 0))
    return {
        "√(1 − α_t) in the denominator — that is a typo on the slide: the noise coefficient is "
        "(1 − α_t)/√(1 − ᾱ_t), with ᾱ_t (bar).": step(den=(1 - a).sqrt()),
        "noise is added at the final step: for t = 1 return the mean only (z = 0), x_0 must not get fresh noise.":
            step(noise=1.0),
        "wrong sign in the mean: subtract the predicted noise, x_t − (1 − α_t)/√(1 − ᾱ_t) · ε_θ.": step(sign=1.0),
        "σ_t is the variance β_t; the noise is scaled by the standard deviation σ_t = √β_t.": step(sigma=beta),
        "σ_t = β_t^{1/4}: the square root was taken twice. σ_t² = β_t, so σ_t = √β_t.":
            step(sigma=beta.sqrt().sqrt()),
        "the numerator uses the standard deviation √β_t where the variance β_t = 1 − α_t belongs.":
            step(num=beta.sqrt()),
        "missing square root on 1 − ᾱ_t in the denominator: divide by √(1 − ᾱ_t).": step(den=1 - ab),
        "missing square root: the mean is divided by √α_t, not α_t.": step(scale=a),
        "it uses ᾱ_t where α_t belongs in 1/√α_t (one step back needs α_t alone).": step(scale=ab.sqrt()),
        "it uses ᾱ_t where α_t belongs in the numerator: it is 1 − α_t = β_t.": step(num=1 - ab),
        _OFF_BY_ONE: step(den=(1 - ab_p).sqrt()),
        "off by one in t: it uses α_{t−1}, ᾱ_{t−1} and β_{t−1}; x_{t−1} is computed with the step-t values.":
            (xt - (1 - a_p) / (1 - ab_p).sqrt() * e) / a_p.sqrt() + last * one(s.beta, max(t - 1, 0)).sqrt() * z,
        "the network gets t − 1 instead of t: call model(x_t, t).": step(eps=model(xt, tb - 1)),
        "it uses σ_t² = β̃_t (the posterior variance); this lab uses σ_t² = β_t = sched.beta[t].":
            step(sigma=one(s.beta_tilde).sqrt()),
    }


def check_p_sample(p_sample, hidden: bool = False) -> None:
    r"""``p_sample(model, xt, t, sched, z)`` — Algorithm 2, line 4 (σ_t² = β_t, no noise at t = 1)."""
    cases = [((1, 1, 3, 3), torch.float64, (6, 10, 1), 5), ((3, 2, 3, 5), torch.float32, (9, 2), 8)] if hidden \
        else [((3, 1, 4, 4), torch.float32, (4, 10, 1), 0)]  # t = 1 last: ᾱ_1 = α_1 hides some mistakes
    for shape, dtype, ts, seed in cases:
        s, model = _sched(10, dtype), _EpsNet(dtype)
        xt = fixed_normal(*shape, seed=seed, dtype=dtype)
        z = fixed_normal(*shape, seed=seed + 50, dtype=dtype)
        for t in ts:
            out = run_student(p_sample, model, xt.clone(), t, s, z=z.clone(), name="p_sample",
                              forbidden=[ref.p_sample, ref.sample, ref.q_posterior])
            out = expect_tensor(out, "p_sample", shape=shape, what=" (like xt)")
            with torch.no_grad():
                expected = ref.p_sample(model, xt, t, s, z=z)
                beta = s.beta[t].to(dtype)
                if t > 1 and close(out, expected - 2 * beta.sqrt() * z, 1e-4, 1e-5):
                    continue  # −σ_t z is as good as +σ_t z
                try:
                    compare(out, expected, "p_sample", _p_mistakes(model, xt, t, z, s), rtol=1e-4, atol=1e-5,
                            what=f" (t = {t})")
                except Mistake as err:
                    r = (out - (expected - beta.sqrt() * z)) / beta.sqrt()   # the noise the student added
                    if t > 1 and "does not match the reference" in str(err) and bool(torch.isfinite(r).all()) \
                            and 0.5 < float(r.std()) < 1.5 and abs(float(r.mean())) < 1:
                        raise Mistake("`p_sample` ignores the z it was given: use `z` when it is passed, and draw "
                                      "z = torch.randn_like(xt) only when z is None.") from None
                    raise
    ok("p_sample: x_{t−1} = (x_t − β_t/√(1 − ᾱ_t) ε_θ)/√α_t + σ_t z, no noise at t = 1 — matches the reference.")


# ----------------------------------------------------------------------------- the sampling loop
def check_sample_loop(sample, hidden: bool = False) -> None:
    r"""``sample(model, shape, sched)``: x_T ~ N(0, I), then x_{t−1} = p_sample(model, x_t, t, sched) for t = T..1."""
    T, shape = (4, (1000, 1, 2, 2)) if hidden else (6, (800, 1, 3, 1))
    s = ref.DiffusionSchedule(torch.linspace(0.1, 0.4, T, dtype=torch.float64)).float()
    model = _Recorder()
    out = run_student(sample, model, shape, s, name="sample", forbidden=[ref.sample])
    out = expect_tensor(out[0] if isinstance(out, (tuple, list)) else out, "sample", shape=shape)
    ts, want = model.ts, list(range(T, 0, -1))
    if ts == want[::-1]:
        raise Mistake("`sample` runs the chain forwards (t = 1, …, T); denoise from t = T down to t = 1.")
    if ts == list(range(T - 1, -1, -1)):
        raise Mistake("`sample` uses t = T−1, …, 0 (0-based); the steps are t = T, …, 1: range(T, 0, -1).")
    if ts != want:
        raise Mistake(f"`sample` should call the network once per step with t = T, …, 1 = {want}, "
                      f"but it used t = {ts[:12]}{' …' if len(ts) > 12 else ''}.")
    a, beta = s.alpha.double(), s.beta.double()
    v = 1.0                                                               # Var(x_T)
    for t in range(T, 0, -1):
        v = v / a[t].item() + (beta[t].item() if t > 1 else 0.0)          # ε_θ = 0: x_{t−1} = x_t/√α_t + σ_t z
    got = out.double().var().item()
    mean = out.double().mean().item()
    if got < 1e-8:
        raise Mistake("`sample` returned the same value everywhere: start from x_T = torch.randn(shape), not zeros.")
    if abs(got / v - 1) > 0.12 or abs(mean) > 0.15 * v ** 0.5:
        no_start = sum(beta[t].item() * float(t > 1) / torch.prod(a[1:t]).item() for t in range(1, T + 1))
        if abs(got / no_start - 1) < 0.12:
            raise Mistake("`sample` does not start from noise: x_T must be drawn from N(0, I) (torch.randn(shape)).")
        raise Mistake(f"`sample`: with ε_θ = 0 the result should have variance {v:.3f} (mean 0) but has "
                      f"{got:.3f} (mean {mean:.3f}). Start from x_T = torch.randn(shape) and feed each x_{{t−1}} "
                      "into the next step (does your p_sample check pass?).")
    ok(f"sample: x_T ~ N(0, I), then p_sample for t = {T}, …, 1 — the statistics match.")
