"""dgm.ddpm against the math, and dgm.checks.ddpm against every mistake it promises to name."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from dgm import ddpm
from dgm.checks import Mistake, evidence
from dgm.checks import ddpm as checks
from dgm.checks._check import Verdict, public_seed

ROOT = Path(__file__).resolve().parents[1]


def sched10(dtype=torch.float64):
    return ddpm.DiffusionSchedule(torch.linspace(0.02, 0.3, 10, dtype=torch.float64)).to(dtype)


# ----------------------------------------------------------------------------- schedules and buffers
def test_linear_and_cosine_schedules():
    beta = ddpm.linear_beta_schedule(1000)
    assert beta.shape == (1000,) and beta[0].item() == pytest.approx(1e-4) and beta[-1].item() == pytest.approx(0.02)
    assert torch.allclose(beta.diff().double(), torch.full((999,), (0.02 - 1e-4) / 999, dtype=torch.float64), atol=1e-8)
    cos = ddpm.cosine_beta_schedule(1000, dtype=torch.float64)
    t = torch.arange(1001, dtype=torch.float64)
    f = torch.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2
    ab = torch.cumprod(1 - cos, 0)
    assert torch.allclose(ab[:-1], (f / f[0])[1:-1], rtol=1e-9)        # ᾱ_t = f(t)/f(0) (before the clip)
    assert (cos > 0).all() and (cos <= 0.999).all()
    assert ddpm.scaled_linear_betas(1000) == pytest.approx((1e-4, 0.02))
    assert ddpm.scaled_linear_betas(20) == pytest.approx((5e-3, 0.5))        # β_T capped for very short chains
    with pytest.raises(ValueError, match="T must be"):
        ddpm.linear_beta_schedule(0)
    with pytest.raises(ValueError, match="beta_1"):
        ddpm.linear_beta_schedule(10, 0.5, 0.1)
    with pytest.raises(ValueError, match="linear' or 'cosine"):
        ddpm.make_schedule(10, "quadratic")


def test_schedule_buffers_follow_the_one_indexing_convention():
    beta = torch.linspace(0.02, 0.3, 10, dtype=torch.float64)
    s = ddpm.DiffusionSchedule(beta)
    assert s.T == 10 and len(s.beta) == 11 and s.beta[0] == 0 and s.alpha_bar[0] == 1
    for t in range(1, 11):                                                # index t is the slide's t
        assert s.beta[t] == beta[t - 1]
        assert s.alpha[t] == pytest.approx(1 - beta[t - 1].item())
        assert s.alpha_bar[t].item() == pytest.approx(math.prod(1 - b for b in beta[:t].tolist()), rel=1e-12)
        assert s.alpha_bar_prev[t] == s.alpha_bar[t - 1]
        bt = (1 - s.alpha_bar[t - 1]) / (1 - s.alpha_bar[t]) * s.beta[t]
        assert s.beta_tilde[t].item() == pytest.approx(bt.item(), rel=1e-12)
    assert s.beta_tilde[1] == 0                                           # x_0 is determined by x_1 and x_0
    names = {n for n, _ in s.named_buffers()}
    assert {"beta", "alpha", "alpha_bar", "alpha_bar_prev", "beta_tilde", "coef_x0", "coef_xt"} <= names
    with pytest.raises(ValueError, match="1-D tensor"):
        ddpm.DiffusionSchedule(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        ddpm.DiffusionSchedule(torch.tensor([0.1, 1.5]))


# ----------------------------------------------------------------------------- the forward process
def test_q_sample_closed_form_and_t0_is_identity():
    s = sched10()
    x0 = torch.linspace(-1, 1, 5 * 2 * 3 * 3, dtype=torch.float64).reshape(5, 2, 3, 3)
    eps = torch.linspace(2, -2, x0.numel(), dtype=torch.float64).reshape(x0.shape)
    t = torch.tensor([0, 1, 4, 9, 10])
    xt = ddpm.q_sample(x0, t, eps, s)
    for i, ti in enumerate(t.tolist()):
        ab = s.alpha_bar[ti]
        assert torch.allclose(xt[i], ab.sqrt() * x0[i] + (1 - ab).sqrt() * eps[i])
    assert torch.equal(xt[0], x0[0])                                      # t = 0: the clean image
    with pytest.raises(ValueError, match=r"\(B,\)"):
        ddpm.q_sample(x0, t[:3], eps, s)
    with pytest.raises(ValueError, match="0..T"):
        ddpm.q_sample(x0, torch.tensor([0, 1, 2, 3, 11]), eps, s)
    with pytest.raises(ValueError, match="shape of x0"):
        ddpm.q_sample(x0, t, eps[:2], s)


def test_q_sample_matches_the_markov_chain_statistically():
    """q(x_t | x_0) in one jump equals t steps of q(x_s | x_{s−1}) = N(√(1 − β_s) x_{s−1}, β_s I)."""
    torch.manual_seed(0)
    s = sched10()
    x0 = torch.linspace(-1, 1, 4, dtype=torch.float64).reshape(1, 4).expand(40000, 4).contiguous()
    for t in (1, 3, 10):
        jump = ddpm.q_sample(x0, t, None, s)                               # (N, 4)
        x = x0.clone()
        for k in range(1, t + 1):
            x = (1 - s.beta[k]).sqrt() * x + s.beta[k].sqrt() * torch.randn_like(x)
        mean, var = s.alpha_bar[t].sqrt() * x0[0], 1 - s.alpha_bar[t]
        for sample in (jump, x):
            se = (var / len(x0)).sqrt()
            assert (sample.mean(0) - mean).abs().max() < 5 * se
            assert (sample.var(0) / var - 1).abs().max() < 0.05


def test_q_posterior_is_bayes_rule():
    r"""q(x_{t−1} | x_t, x_0) ∝ q(x_t | x_{t−1}) q(x_{t−1} | x_0): product of two Gaussians in x_{t−1}."""
    s = sched10()
    x0 = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 4)
    xt = torch.linspace(0.5, -1.5, 12, dtype=torch.float64).reshape(3, 4)
    t = torch.tensor([2, 5, 10])
    mean, var = ddpm.q_posterior(x0, xt, t, s)
    for i, ti in enumerate(t.tolist()):
        a, b, ab_prev = s.alpha[ti], s.beta[ti], s.alpha_bar[ti - 1]
        # likelihood in x_{t−1}: N(x_t; √α x_{t−1}, β) → precision α/β, mean x_t/√α; prior N(√ᾱ_{t−1} x0, 1 − ᾱ_{t−1})
        prec = a / b + 1 / (1 - ab_prev)
        m = (a.sqrt() / b * xt[i] + ab_prev.sqrt() / (1 - ab_prev) * x0[i]) / prec
        assert torch.allclose(mean[i], m, rtol=1e-10) and var[i].item() == pytest.approx(1 / prec.item(), rel=1e-10)
    # t = 1: x_0 is known, so the posterior mean is x_0 exactly, the variance 0
    m1, v1 = ddpm.q_posterior(x0, xt, 1, s)
    assert torch.allclose(m1, x0) and (v1 == 0).all()


# ----------------------------------------------------------------------------- Algorithms 1 and 2
class Oracle(torch.nn.Module):
    """The exact ε for data concentrated on one image x*: ε*(x_t, t) = (x_t − √ᾱ_t x*)/√(1 − ᾱ_t)."""

    def __init__(self, x_star, s):
        super().__init__()
        self.x_star, self.s = x_star, s

    def forward(self, xt, t):
        ab = self.s.alpha_bar[t].to(xt).reshape(-1, *([1] * (xt.dim() - 1)))
        return (xt - ab.sqrt() * self.x_star) / (1 - ab).sqrt()


def test_ddpm_loss_is_zero_for_the_oracle_and_matches_the_formula():
    s = sched10()
    x0 = torch.linspace(-1, 1, 16, dtype=torch.float64).reshape(4, 1, 2, 2)
    assert ddpm.ddpm_loss(Oracle(x0, s), x0, s).item() < 1e-20
    eps = torch.linspace(-1, 2, 16, dtype=torch.float64).reshape(x0.shape)
    t = torch.tensor([1, 3, 5, 10])
    model = lambda xt, tt: 0.5 * xt  # noqa: E731
    xt = ddpm.q_sample(x0, t, eps, s)
    assert ddpm.ddpm_loss(model, x0, s, t=t, eps=eps).item() == pytest.approx(((eps - 0.5 * xt) ** 2).mean().item())


def test_p_sample_formula_and_no_noise_at_the_last_step():
    s = sched10()
    xt = torch.linspace(-2, 2, 8, dtype=torch.float64).reshape(2, 1, 2, 2)
    z = torch.linspace(1, -1, 8, dtype=torch.float64).reshape(xt.shape)
    model = lambda x, t: 0.3 * x + 0.01 * t.to(x).reshape(-1, 1, 1, 1)  # noqa: E731
    for t in (1, 5, 10):
        e = model(xt, torch.full((2,), t))
        mean = (xt - s.beta[t] / (1 - s.alpha_bar[t]).sqrt() * e) / s.alpha[t].sqrt()
        want = mean + (s.beta[t].sqrt() * z if t > 1 else 0)
        assert torch.allclose(ddpm.p_sample(model, xt, t, s, z=z), want)
        want_tilde = mean + (s.beta_tilde[t].sqrt() * z if t > 1 else 0)
        assert torch.allclose(ddpm.p_sample(model, xt, t, s, z=z, variance="beta_tilde"), want_tilde)
    # per-sample t: each image gets its own step, and only the t = 1 image gets no noise
    tt = torch.tensor([1, 7])
    out = ddpm.p_sample(model, xt, tt, s, z=z)
    assert torch.allclose(out[0], ddpm.p_sample(model, xt[:1], 1, s, z=z[:1])[0])
    assert torch.allclose(out[1], ddpm.p_sample(model, xt[1:], 7, s, z=z[1:])[0])
    with pytest.raises(ValueError, match="variance"):
        ddpm.p_sample(model, xt, 3, s, variance="sigma")


def test_p_sample_mean_is_the_posterior_mean_with_the_true_noise():
    """With ε_θ = the true ε, μ_θ(x_t, t) equals μ̃_t(x_t, x_0) — the reverse step undoes the forward one."""
    s = sched10()
    x0 = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 1, 2, 2)
    for t in (2, 6, 10):
        xt = ddpm.q_sample(x0, t, torch.linspace(1, -1, 12, dtype=torch.float64).reshape(x0.shape), s)
        mean = ddpm.p_sample(Oracle(x0, s), xt, t, s, z=torch.zeros_like(xt))
        assert torch.allclose(mean, ddpm.q_posterior(x0, xt, t, s)[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kw", [{}, {"steps": 4}, {"steps": 3, "method": "ddim"}, {"variance": "beta_tilde"},
                                {"steps": 5, "clip_x0": True}])
def test_sample_with_the_oracle_recovers_the_data_point(kw):
    s = sched10()
    x_star = torch.linspace(-0.9, 0.9, 4, dtype=torch.float64).reshape(1, 1, 2, 2)
    x, traj = ddpm.sample(Oracle(x_star, s), (3, 1, 2, 2), s, progress=False, return_trajectory=True, **kw)
    assert torch.allclose(x, x_star.expand_as(x), atol=1e-8)
    assert len(traj) == kw.get("steps", 10) + 1 and traj[0].shape == (3, 1, 2, 2)


def test_sample_variance_of_the_chain_with_a_zero_network():
    torch.manual_seed(0)
    s = sched10()
    x = ddpm.sample(lambda x, t: torch.zeros_like(x), (20000, 2), s, progress=False)
    v = 1.0
    for t in range(10, 0, -1):
        v = v / s.alpha[t].item() + (s.beta[t].item() if t > 1 else 0.0)
    assert x.var().item() == pytest.approx(v, rel=0.04)


def test_sample_generator_makes_it_reproducible():
    s = sched10(torch.float32)
    net = ddpm.UNet(channels=8, time_dim=16).eval()
    a = ddpm.sample(net, (2, 1, 28, 28), s, generator=torch.Generator().manual_seed(3), progress=False)
    b = ddpm.sample(net, (2, 1, 28, 28), s, generator=torch.Generator().manual_seed(3), progress=False)
    c = ddpm.sample(net, (2, 1, 28, 28), s, generator=torch.Generator().manual_seed(4), progress=False)
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="steps"):
        ddpm.sample(net, (2, 1, 28, 28), s, steps=11, progress=False)


# ----------------------------------------------------------------------------- devices and dtypes
@pytest.mark.parametrize("patch, attn", [(1, False), (2, False), (1, True), (2, True)])
def test_reference_runs_on_meta_and_in_float64(patch, attn):
    for dev, dtype in (("meta", torch.float32), ("cpu", torch.float64)):
        s = ddpm.make_schedule(8, "cosine").to(device=dev, dtype=dtype)
        net = ddpm.UNet(channels=8, time_dim=16, patch=patch, attn=attn).to(device=dev, dtype=dtype)
        x0 = torch.zeros(2, 1, 28, 28, device=dev, dtype=dtype)
        loss = ddpm.ddpm_loss(net, x0, s)
        assert loss.device.type == dev and loss.dtype == dtype
        loss.backward()
        xt = ddpm.q_sample(x0, torch.tensor([1, 8], device=dev), None, s)
        mean, var = ddpm.q_posterior(x0, xt, torch.tensor([2, 8], device=dev), s)
        assert mean.device.type == dev and var.dtype == dtype
        x = ddpm.p_sample(net, xt, 3, s)
        assert x.device.type == dev and x.dtype == dtype and x.shape == x0.shape
        for kw in ({}, {"steps": 3, "method": "ddim"}):
            out = ddpm.sample(net, (2, 1, 28, 28), s, progress=False, **kw)
            assert out.device.type == dev and out.dtype == dtype and out.shape == (2, 1, 28, 28)


def test_schedule_moves_with_to():
    s = ddpm.make_schedule(5).to(torch.float64)
    assert all(b.dtype == torch.float64 for b in s.buffers())
    assert all(b.device.type == "meta" for b in s.to("meta").buffers())


def test_unet_shapes_and_errors():
    net = ddpm.UNet(channels=8, time_dim=16)
    out = net(torch.zeros(3, 1, 28, 28), torch.tensor([1, 2, 3]))
    assert out.shape == (3, 1, 28, 28)
    torch.nn.init.normal_(net.out[-1].weight)
    attn = ddpm.UNet(channels=8, time_dim=16, attn=True)              # the attention block starts as the identity
    assert all(k.startswith("attn.") for k in attn.load_state_dict(net.state_dict(), strict=False).missing_keys)
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([1, 2, 3])
    assert torch.allclose(attn(x, t), net(x, t), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B,\)"):
        net(torch.zeros(3, 1, 28, 28), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        net(torch.zeros(3, 28, 28), torch.tensor([1, 2, 3]))
    assert ddpm.DDPMConfig().T == 200


# ----------------------------------------------------------------------------- checks: answers
# Every answer below is a student function; GOOD ones meet the task text, BAD ones carry the mistake id the
# judge must name. The same table drives the in-kernel check, the grader's verdict and their agreement.
def lin(T, beta_1=1e-4, beta_T=0.02):
    return torch.linspace(beta_1, beta_T, T)


def abar(beta):
    return torch.cumprod(1 - beta, 0)


def qs(x0, t, eps, sched):
    ab = sched.alpha_bar[t].view(-1, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def loss(model, x0, sched, t=None, eps=None, q_sample=qs):
    t = torch.randint(1, sched.T + 1, (x0.shape[0],)) if t is None else t
    eps = torch.randn_like(x0) if eps is None else eps
    return ((eps - model(q_sample(x0, t, eps, sched), t)) ** 2).mean()


@torch.no_grad()
def ps(model, xt, t, sched, z=None):
    z = torch.randn_like(xt) if z is None else z
    eps_theta = model(xt, torch.full((xt.shape[0],), t))
    mean = (xt - sched.beta[t] / (1 - sched.alpha_bar[t]).sqrt() * eps_theta) / sched.alpha[t].sqrt()
    return mean + sched.beta[t].sqrt() * z if t > 1 else mean


@torch.no_grad()
def sm(model, shape, sched, p_sample=ps):
    x = torch.randn(shape)
    for t in range(sched.T, 0, -1):
        x = p_sample(model, x, t, sched)
    return x


# --- alternative correct answers, written differently
def lin_arange(T, beta_1=1e-4, beta_T=0.02):
    return beta_1 + (beta_T - beta_1) * torch.arange(T, dtype=torch.float64) / (T - 1)


def lin_list(T, beta_1=1e-4, beta_T=0.02):
    step = (beta_T - beta_1) / (T - 1)
    return torch.tensor([beta_1 + i * step for i in range(T)])


def abar_loop(beta):
    out, prod = [], torch.ones((), dtype=beta.dtype)
    for b in beta:
        prod = prod * (1 - b)
        out.append(prod)
    return torch.stack(out)


def abar_log(beta):
    return torch.exp(torch.cumsum(torch.log1p(-beta), 0))


def abar_schedule_object(beta):
    alpha = 1.0 - beta
    return torch.tensor([math.prod(alpha[: i + 1].tolist()) for i in range(len(alpha))], dtype=beta.dtype)


def qs_none(x0, t, eps, sched):
    ab = sched.alpha_bar[t][:, None, None, None]
    return torch.sqrt(ab) * x0 + torch.sqrt(1.0 - ab) * eps


def qs_addcmul(x0, t, eps, sched):
    ab = sched.alpha_bar.gather(0, t).reshape(-1, *([1] * (x0.dim() - 1)))
    return torch.addcmul(ab.sqrt() * x0, (1 - ab).sqrt(), eps)


def qs_loop(x0, t, eps, sched):
    return torch.stack([sched.alpha_bar[ti].sqrt() * x0[i] + (1 - sched.alpha_bar[ti]).sqrt() * eps[i]
                        for i, ti in enumerate(t)])


def loss_mse(model, x0, sched, t=None, eps=None, q_sample=qs):
    if eps is None:                                                      # ε first, then t: order is free
        eps = torch.randn(x0.shape, dtype=x0.dtype)
    if t is None:
        t = torch.randint(low=1, high=sched.T + 1, size=(x0.shape[0],))
    xt = q_sample(x0=x0, t=t, eps=eps, sched=sched)                      # keyword call
    return torch.nn.functional.mse_loss(model(xt, t), eps)


def loss_sum(model, x0, sched, t=None, eps=None, q_sample=qs):
    B = x0.shape[0]
    t = torch.multinomial(torch.ones(sched.T), B, replacement=True) + 1 if t is None else t
    eps = torch.distributions.Normal(0.0, 1.0).sample(x0.shape).to(x0.dtype) if eps is None else eps
    return torch.nn.functional.mse_loss(model(q_sample(x0, t, eps, sched), t), eps, reduction="sum") / eps.numel()


def loss_generator(model, x0, sched, t=None, eps=None, q_sample=qs):
    g = torch.Generator().manual_seed(123)                               # a private generator is fine too
    t = torch.randint(1, sched.T + 1, (x0.shape[0],), generator=g) if t is None else t
    eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype) if eps is None else eps
    return (eps - model(q_sample(x0, t, eps, sched), t)).pow(2).flatten(1).mean(1).mean()


def ps_minus(model, xt, t, sched, z=None):
    out = ps(model, xt, t, sched, z)
    return out - 2 * sched.beta[t].sqrt() * z if (t > 1 and z is not None) else out


def ps_posterior(model, xt, t, sched, z=None):
    """μ_θ written as the posterior mean with the predicted x̂_0 (the same number, no clipping)."""
    tb = torch.full((xt.shape[0],), t, dtype=torch.long)
    ab = sched.alpha_bar[t]
    x0_hat = (xt - (1 - ab).sqrt() * model(xt, tb)) / ab.sqrt()
    mean = sched.coef_x0[t] * x0_hat + sched.coef_xt[t] * xt
    noise = torch.randn_like(xt) if z is None else z
    return mean + float(t > 1) * sched.beta[t].sqrt() * noise


def ps_normal(model, xt, t, sched, z=None):
    e = model(xt, t=torch.full((len(xt),), t))
    a, ab = sched.alpha[t], sched.alpha_bar[t]
    mean = 1 / torch.sqrt(a) * (xt - (1 - a) / torch.sqrt(1 - ab) * e)
    if t == 1:
        return mean
    if z is None:
        return torch.distributions.Normal(mean, sched.beta[t].sqrt()).sample()
    return mean + torch.sqrt(sched.beta[t]) * z


def sm_clamp(model, shape, sched, p_sample=ps):
    x = torch.randn(shape, device=sched.beta.device)
    for t in reversed(range(1, sched.T + 1)):
        x = p_sample(model, x, t, sched)
    return x.clamp(-1, 1)                                                # the task text allows a final clamp


def sm_keywords(model, shape, sched, p_sample=ps):
    x = torch.randn(*shape)
    t = sched.T
    while t >= 1:
        x = p_sample(model=model, xt=x, t=t, sched=sched, z=torch.randn_like(x))
        t -= 1
    return torch.clip(x, min=-1.0, max=1.0)


def sm_normal(model, shape, sched, p_sample=ps):
    x = torch.distributions.Normal(0.0, 1.0).sample(shape)
    for t in range(sched.T, 0, -1):
        x = p_sample(model, x, t, sched)
    return x


C = checks
GOOD = {
    C.check_linear_beta_schedule: [lin, lin_arange, lin_list, lambda T, b1=1e-4, bT=0.02: torch.linspace(b1, bT, T, dtype=torch.float64)],
    C.check_alpha_bar: [abar, abar_loop, abar_log, abar_schedule_object],
    C.check_q_sample: [qs, qs_none, qs_addcmul, qs_loop],
    C.check_ddpm_loss: [loss, loss_mse, loss_sum, loss_generator],
    C.check_p_sample: [ps, ps_minus, ps_posterior, ps_normal],
    C.check_sample_loop: [sm, sm_clamp, sm_keywords, sm_normal],
}
GOOD_CASES = [(check, fn) for check, fns in GOOD.items() for fn in fns]


def _name(fn):
    return getattr(fn, "__name__", "fn")


# --- typical mistakes and the id each must get
def _qs(coef):
    def q_sample(x0, t, eps, sched):
        return coef(x0, t, eps, sched)
    return q_sample


def _ab(s, t, shift=0):
    return s.alpha_bar[t + shift].view(-1, 1, 1, 1)


Q_MISTAKES = {
    "off-by-one-t": lambda x0, t, e, s: _ab(s, (t - 1).clamp_min(0)).sqrt() * x0 + (1 - _ab(s, (t - 1).clamp_min(0))).sqrt() * e,
    "alpha-not-alpha-bar": lambda x0, t, e, s: s.alpha[t].view(-1, 1, 1, 1).sqrt() * x0
    + (1 - s.alpha[t].view(-1, 1, 1, 1)).sqrt() * e,
    "missing-sqrt": lambda x0, t, e, s: _ab(s, t) * x0 + (1 - _ab(s, t)) * e,
    "missing-sqrt-signal": lambda x0, t, e, s: _ab(s, t) * x0 + (1 - _ab(s, t)).sqrt() * e,
    "noise-scaled-by-variance": lambda x0, t, e, s: _ab(s, t).sqrt() * x0 + (1 - _ab(s, t)) * e,
    "swapped-x0-eps": lambda x0, t, e, s: _ab(s, t).sqrt() * e + (1 - _ab(s, t)).sqrt() * x0,
    "broadcast-t": lambda x0, t, e, s: s.alpha_bar[t].sqrt() * x0 + (1 - s.alpha_bar[t]).sqrt() * e,
    "first-t-only": lambda x0, t, e, s: s.alpha_bar[t[0]].sqrt() * x0 + (1 - s.alpha_bar[t[0]]).sqrt() * e,
    "beta-as-variance": lambda x0, t, e, s: _ab(s, t).sqrt() * x0 + s.beta[t].view(-1, 1, 1, 1).sqrt() * e,
}


def _loss(build=None, target="eps", t_model=0, reduce="mean", draw_t=None, draw_eps=None, detach=False):
    def ddpm_loss(model, x0, sched, t=None, eps=None, q_sample=qs):
        t = (draw_t or (lambda B, T: torch.randint(1, T + 1, (B,))))(x0.shape[0], sched.T) if t is None else t
        eps = (draw_eps or torch.randn_like)(x0) if eps is None else eps
        xt = (build or q_sample)(x0, t, eps, sched)
        err = model(xt, t + t_model) - (eps if target == "eps" else x0)
        out = err.pow(2).mean() if reduce == "mean" else err.pow(2).flatten(1).sum(1).mean()
        return out.detach() if detach else out
    return ddpm_loss


def two_eps(model, x0, sched, t=None, eps=None, q_sample=qs):
    if eps is not None:
        return loss(model, x0, sched, t, eps, q_sample)
    t = torch.randint(1, sched.T + 1, (x0.shape[0],))
    return ((torch.randn_like(x0) - model(q_sample(x0, t, torch.randn_like(x0), sched), t)) ** 2).mean()


def _ps(num="beta", den="sqrt_1_ab", scale="sqrt_a", sigma="sqrt_beta", last_noise=False, sign=-1, idx=0,
        use_z=True, draw=torch.randn_like):
    def p_sample(model, xt, t, sched, z=None):
        z = draw(xt) if (z is None or not use_z) else z
        k = t + idx
        a, ab, b = sched.alpha[k], sched.alpha_bar[k], sched.beta[k]
        e = model(xt, torch.full((xt.shape[0],), t))
        n = {"beta": b, "sqrt_beta": b.sqrt(), "1-ab": 1 - ab}[num]
        d = {"sqrt_1_ab": (1 - ab).sqrt(), "sqrt_1_a": (1 - a).sqrt(), "1_ab": 1 - ab,
             "prev": (1 - sched.alpha_bar[k - 1]).sqrt()}[den]
        c = {"sqrt_a": a.sqrt(), "a": a, "sqrt_ab": ab.sqrt()}[scale]
        sg = {"sqrt_beta": b.sqrt(), "beta": b, "beta_quarter": b.sqrt().sqrt(),
              "tilde": sched.beta_tilde[k].sqrt()}[sigma]
        mean = (xt + sign * n / d * e) / c
        return mean + sg * z if (t > 1 or last_noise) else mean
    return p_sample


def _sm(start=torch.randn, ts=lambda T: range(T, 0, -1), chain=True, clamp_each=False, ret="x"):
    def sample(model, shape, sched, p_sample=ps):
        x_T = start(shape)
        x = x_T
        for t in ts(sched.T):
            x = p_sample(model, x if chain else x_T, t, sched)
            x = x.clamp(-1, 1) if clamp_each else x
        return x_T if ret == "x_T" else x
    return sample


BAD = {
    C.check_linear_beta_schedule: {
        "swapped-endpoints": lambda T, b1=1e-4, bT=0.02: torch.linspace(bT, b1, T),
        "t-plus-one-values": lambda T, b1=1e-4, bT=0.02: torch.linspace(b1, bT, T + 1),
        "returns-alpha": lambda T, b1=1e-4, bT=0.02: 1 - torch.linspace(b1, bT, T),
        "not-evenly-spaced": lambda T, b1=1e-4, bT=0.02: torch.linspace(b1, bT, T + 1)[:T],
        "not-a-tensor": lambda T, b1=1e-4, bT=0.02: [b1] * T,
    },
    C.check_alpha_bar: {
        "product-of-beta": lambda b: torch.cumprod(b, 0),
        "cumsum-not-cumprod": lambda b: torch.cumsum(1 - b, 0),
        "returns-alpha": lambda b: 1 - b,
        "off-by-one-t": lambda b: torch.cat([b.new_ones(1), torch.cumprod(1 - b, 0)[:-1]]),
        "exp-approximation": lambda b: torch.exp(-torch.cumsum(b, 0)),
        "returns-one-minus-alpha-bar": lambda b: 1 - torch.cumprod(1 - b, 0),
        "wrong-shape": lambda b: torch.cumprod(1 - b, 0)[None],
    },
    C.check_q_sample: {**{k: _qs(f) for k, f in Q_MISTAKES.items()},
                       "wrong-shape": lambda x0, t, eps, s: qs(x0, t, eps, s)[0]},
    C.check_ddpm_loss: {
        "target-x0": _loss(target="x0"),
        "swapped-x0-eps": _loss(build=Q_MISTAKES["swapped-x0-eps"]),
        "off-by-one-t": _loss(build=Q_MISTAKES["off-by-one-t"]),
        "alpha-not-alpha-bar": _loss(build=Q_MISTAKES["alpha-not-alpha-bar"]),
        "missing-sqrt": _loss(build=Q_MISTAKES["missing-sqrt"]),
        "model-t-minus-one": _loss(t_model=-1),
        "sum-over-pixels": _loss(reduce="sum"),
        "first-t-only": _loss(build=Q_MISTAKES["first-t-only"]),
        "no-gradient": _loss(detach=True),
        "t-zero": _loss(draw_t=lambda B, T: torch.randint(0, T, (B,))),
        "never-t-T": _loss(draw_t=lambda B, T: torch.randint(1, T, (B,))),
        "one-t-per-batch": _loss(draw_t=lambda B, T: torch.randint(1, T + 1, (1,)).expand(B)),
        "eps-not-standard-normal": _loss(draw_eps=torch.rand_like),
        "eps-drawn-twice": two_eps,
        "not-scalar": lambda m, x0, s, t=None, eps=None, q_sample=qs: loss(m, x0, s, t, eps, q_sample)[None],
    },
    C.check_p_sample: {
        "slide-typo": _ps(den="sqrt_1_a"),
        "noise-at-last-step": _ps(last_noise=True),
        "wrong-sign": _ps(sign=+1),
        "sigma-is-variance": _ps(sigma="beta"),
        "sigma-double-sqrt": _ps(sigma="beta_quarter"),
        "numerator-sqrt": _ps(num="sqrt_beta"),
        "missing-sqrt-denominator": _ps(den="1_ab"),
        "missing-sqrt-scale": _ps(scale="a"),
        "alpha-bar-in-scale": _ps(scale="sqrt_ab"),
        "alpha-bar-in-numerator": _ps(num="1-ab"),
        "off-by-one-t": _ps(den="prev"),
        "all-off-by-one": _ps(idx=-1),
        "beta-tilde": _ps(sigma="tilde"),
        "ignores-z": _ps(use_z=False),
        "z-not-standard-normal": _ps(draw=torch.rand_like),
        "no-noise-when-z-none": _ps(draw=torch.zeros_like),
    },
    C.check_sample_loop: {
        "runs-forwards": _sm(ts=lambda T: range(1, T + 1)),
        "zero-based-t": _sm(ts=lambda T: range(T - 1, -1, -1)),
        "starts-from-constant": _sm(start=torch.zeros),
        "x-T-not-standard-normal": _sm(start=torch.rand),
        "not-chained": _sm(chain=False),
        "returns-x-T": _sm(ret="x_T"),
        "p-sample-not-called": lambda model, shape, sched, p_sample=ps: torch.zeros(shape),
        "wrong-steps": _sm(ts=lambda T: range(T, 1, -1)),
    },
}
BAD_CASES = [(check, mid, fn) for check, fns in BAD.items() for mid, fn in fns.items()]


def in_kernel(check, fn, case, seed):
    """(passed, id) of judge(inputs, run(fn, inputs)) — the JupyterLab path."""
    try:
        check.judge(check.inputs(seed, case), check.run(fn, check.inputs(seed, case)))
    except Mistake as m:
        return False, m.id
    return True, None


def graded(check, fn, case, seed):
    """(passed, id) of the grader's verdict on the evidence after a JSON round trip."""
    rec = evidence.parse(json.dumps(evidence.to_json(check.record(fn, "cell", case, seed))))
    v = check.verdict(case, seed, rec)
    return v.passed, v.mistake


SEEDS = [("visible", None), ("hidden-1", 987654321), ("hidden-2", 2**40 + 17)]


def _seed(check, case, seed):
    return public_seed(check.name, case) if seed is None else seed


# ----------------------------------------------------------------------------- checks: tests
@pytest.mark.parametrize("hidden", [False, True])
def test_solutions_pass_in_the_notebook(hidden, capsys):
    for check, fn in [(C.check_linear_beta_schedule, lin), (C.check_alpha_bar, abar), (C.check_q_sample, qs),
                      (C.check_ddpm_loss, loss), (C.check_p_sample, ps), (C.check_sample_loop, sm)]:
        check(fn, hidden=hidden)
    out = capsys.readouterr()
    assert out.out.count("✔") == 6 and out.err == ""


@pytest.mark.parametrize("check, fn", GOOD_CASES, ids=[f"{c.student}-{_name(f)}" for c, f in GOOD_CASES])
def test_correct_answers_pass_and_the_verdict_agrees(check, fn):
    for case, seed in SEEDS:
        seed = _seed(check, case, seed)
        assert in_kernel(check, fn, case, seed) == (True, None), (case, seed)
        assert graded(check, fn, case, seed) == (True, None), (case, seed)


@pytest.mark.parametrize("check, mistake, fn", BAD_CASES, ids=[f"{c.student}-{m}" for c, m, _ in BAD_CASES])
def test_typical_mistakes_are_named_and_the_verdict_agrees(check, mistake, fn):
    case, seed = "visible", public_seed(check.name, "visible")
    assert in_kernel(check, fn, case, seed) == (False, mistake)
    assert graded(check, fn, case, seed) == (False, mistake)
    for case, seed in SEEDS[1:]:  # hidden cases: the same verdict in both processes, always a fail
        got = in_kernel(check, fn, case, seed)
        assert got[0] is False and got == graded(check, fn, case, seed), (case, got)


def test_hidden_cases_name_the_trap_mistakes_too():
    for seed in (5, 6, 7):
        assert in_kernel(C.check_q_sample, BAD[C.check_q_sample]["broadcast-t"], "hidden-1", seed) == \
            (False, "broadcast-t")
        assert in_kernel(C.check_p_sample, BAD[C.check_p_sample]["noise-at-last-step"], "hidden-1", seed) == \
            (False, "noise-at-last-step")


def test_hidden_inputs_come_from_the_seed():
    for check in GOOD:
        a, b = check.inputs(11, "hidden-1"), check.inputs(11, "hidden-1")
        assert repr(a) == repr(b)                                         # pure
    shapes = {C.check_q_sample.inputs(s, "hidden-2")["x0"].shape for s in range(12)}
    assert len(shapes) > 3                                               # shapes vary with the seed
    assert len({C.check_sample_loop.inputs(s, "hidden-1")["T"] for s in range(12)}) > 2


def test_error_carried_forward_earlier_bugs_cost_only_their_own_part():
    bad_q = BAD[C.check_q_sample]["missing-sqrt"]
    bad_p = BAD[C.check_p_sample]["slide-typo"]

    def loss_with_bad_default(model, x0, sched, t=None, eps=None, q_sample=bad_q):
        return loss(model, x0, sched, t, eps, q_sample)

    def sample_with_bad_default(model, shape, sched, p_sample=bad_p):
        return sm(model, shape, sched, p_sample)
    for case, seed in SEEDS:
        assert in_kernel(C.check_ddpm_loss, loss_with_bad_default, case, _seed(C.check_ddpm_loss, case, seed))[0]
        assert in_kernel(C.check_sample_loop, sample_with_bad_default, case, _seed(C.check_sample_loop, case, seed))[0]


def test_a_loss_that_ignores_its_q_sample_parameter_is_told_so():
    def own_q(model, x0, sched, t=None, eps=None, q_sample=qs):
        return loss(model, x0, sched, t, eps, Q_MISTAKES["missing-sqrt"])
    with pytest.raises(Mistake) as err:
        C.check_ddpm_loss(own_q)
    assert err.value.id == "missing-sqrt" and "did not call the `q_sample` it was given" in str(err.value)


def test_sample_clamping_every_step_is_not_the_final_clamp():
    wide = lambda shape: 3 * torch.randn(shape)  # noqa: E731 - values beyond [−1, 1] make the clamp visible
    assert in_kernel(C.check_sample_loop, _sm(clamp_each=True), "visible", 1)[1] in ("not-chained",
                                                                                         "x-T-not-standard-normal")
    assert in_kernel(C.check_sample_loop, _sm(start=wide), "visible", 1) == (False, "x-T-not-standard-normal")


def _values_paths(values, path=()):
    """Every (path, leaf) of an evidence values dict."""
    if isinstance(values, dict):
        for k, v in values.items():
            yield from _values_paths(v, path + (k,))
    elif isinstance(values, list):
        for i, v in enumerate(values):
            yield from _values_paths(v, path + (i,))
    else:
        yield path, values


def _replace(values, path, new):
    values = copy.deepcopy(values)
    target = values
    for p in path[:-1]:
        target = target[p]
    if new is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = new
    return values


_DELETE = object()


@pytest.mark.parametrize("check", list(GOOD), ids=[c.student for c in GOOD])
def test_forged_evidence_gives_a_failed_verdict_never_an_exception(check):
    seed = public_seed(check.name, "visible")
    good = check.record(GOOD[check][0], "cell", "visible", seed)
    assert check.verdict("visible", seed, good).passed
    tensors = [(p, v) for p, v in _values_paths(good.values) if isinstance(v, torch.Tensor)]
    assert tensors
    forged = []
    for path, v in tensors:
        forged += [_replace(good.values, path, v.flatten()[:1].clone()),          # a wrong shape
                   _replace(good.values, path, torch.full_like(v.double(), float("nan"))),  # NaN
                   _replace(good.values, path, "a string"),                        # a string where a tensor belongs
                   _replace(good.values, path, v + 1.0 if v.is_floating_point() else v + 1)]  # wrong values
    forged += [_replace(good.values, (k,), _DELETE) for k in good.values]          # a missing key
    forged += [{}, {"out": 1.5}]
    for values in forged:
        rec = dataclasses.replace(good, values=values)
        v = check.verdict("visible", seed, rec)
        assert isinstance(v, Verdict) and v.passed is False, values.keys()


def test_cells_cover_the_notebooks_test_cells():
    import nbformat

    nb = nbformat.read(ROOT / "course" / "source" / "04_ddpm" / "04_ddpm.ipynb", as_version=4)
    graded_ids = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.cell_type == "code"
                  and c.metadata.get("nbgrader", {}).get("grade")}
    assert set(C.CELLS) == graded_ids
    assert C.CELLS["test_schedule"] == (C.check_linear_beta_schedule, C.check_alpha_bar)
    for grade_id, cell_checks in C.CELLS.items():
        source = next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
        for check in cell_checks:
            assert check.name.startswith("ddpm.") and f"checks.check_" in source


def test_checks_are_fast():
    import time
    start = time.process_time()
    for check, fns in GOOD.items():
        check(fns[0], hidden=True)
    assert time.process_time() - start < 4  # CPU time (robust to a loaded machine)


# ----------------------------------------------------------------------------- shortcut guard
def test_reference_calls_are_rejected_even_under_another_name():
    from dgm.ddpm import p_sample as my_p
    from dgm.ddpm import q_sample as my_q  # aliased import
    cases = [
        (C.check_q_sample, lambda x0, t, eps, s: my_q(x0, t, eps, s)),
        (C.check_p_sample, lambda m, xt, t, s, z=None: my_p(m, xt, t, s, z=z)),
        (C.check_ddpm_loss, lambda m, x0, s, t=None, eps=None, q_sample=qs: ddpm.ddpm_loss(m, x0, s, t, eps)),
        (C.check_sample_loop, lambda m, shape, s, p_sample=ps: ddpm.sample(m, shape, s, progress=False)),
        (C.check_linear_beta_schedule, ddpm.linear_beta_schedule),
        (C.check_alpha_bar, lambda b: ddpm.DiffusionSchedule(b).alpha_bar[1:]),
    ]
    for check, fn in cases:
        with pytest.raises(Mistake) as err:
            check(fn)
        assert "reference implementation" in str(err.value)
        assert graded(check, fn, "hidden-1", 3)[0] is False


def test_not_implemented_is_friendly():
    def todo(*a, **k):
        raise NotImplementedError
    for check in GOOD:
        with pytest.raises(Mistake) as err:
            check(todo)
        assert err.value.id == "not-implemented" and "not implemented yet" in str(err.value)
        assert graded(check, todo, "hidden-1", 3) == (False, "not-implemented")
