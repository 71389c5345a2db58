"""dgm.ddpm against the math, and dgm.checks.ddpm against every mistake it promises to name."""
from __future__ import annotations

import math

import pytest
import torch

from dgm import ddpm
from dgm.checks import Mistake
from dgm.checks import ddpm as checks


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
@pytest.mark.parametrize("patch", [1, 2])
def test_reference_runs_on_meta_and_in_float64(patch):
    for dev, dtype in (("meta", torch.float32), ("cpu", torch.float64)):
        s = ddpm.make_schedule(8, "cosine").to(device=dev, dtype=dtype)
        net = ddpm.UNet(channels=8, time_dim=16, patch=patch).to(device=dev, dtype=dtype)
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
    with pytest.raises(ValueError, match=r"\(B,\)"):
        net(torch.zeros(3, 1, 28, 28), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        net(torch.zeros(3, 28, 28), torch.tensor([1, 2, 3]))
    assert ddpm.DDPMConfig().T == 200


# ----------------------------------------------------------------------------- checks: correct code passes
def lin(T, beta_1=1e-4, beta_T=0.02):
    return torch.linspace(beta_1, beta_T, T)


def abar(beta):
    return torch.cumprod(1 - beta, 0)


def qs(x0, t, eps, sched):
    ab = sched.alpha_bar[t].view(-1, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def loss(model, x0, sched, t=None, eps=None):
    t = torch.randint(1, sched.T + 1, (x0.shape[0],)) if t is None else t
    eps = torch.randn_like(x0) if eps is None else eps
    return ((eps - model(qs(x0, t, eps, sched), t)) ** 2).mean()


def ps(model, xt, t, sched, z=None):
    z = torch.randn_like(xt) if z is None else z
    eps_theta = model(xt, torch.full((xt.shape[0],), t))
    mean = (xt - sched.beta[t] / (1 - sched.alpha_bar[t]).sqrt() * eps_theta) / sched.alpha[t].sqrt()
    return mean + sched.beta[t].sqrt() * z if t > 1 else mean


def sm(model, shape, sched):
    x = torch.randn(shape)
    for t in range(sched.T, 0, -1):
        x = ps(model, x, t, sched)
    return x


GOOD = [(checks.check_linear_beta_schedule, lin), (checks.check_alpha_bar, abar), (checks.check_q_sample, qs),
        (checks.check_ddpm_loss, loss), (checks.check_p_sample, ps), (checks.check_sample_loop, sm)]


@pytest.mark.parametrize("hidden", [False, True])
def test_correct_solutions_pass(hidden, capsys):
    for check, fn in GOOD:
        check(fn, hidden=hidden)
    out = capsys.readouterr()
    assert out.out.count("✔") == len(GOOD) and out.err == ""


def test_checks_are_fast():
    import time
    start = time.process_time()
    for check, fn in GOOD:
        check(fn, hidden=True)
    assert time.process_time() - start < 2  # CPU time (robust to a loaded machine); measured ≈ 0.1 s


def test_checks_accept_minus_sigma_z_and_float64_code():
    def ps_minus(model, xt, t, sched, z=None):
        out = ps(model, xt, t, sched, z)
        return out - 2 * sched.beta[t].sqrt() * z if t > 1 else out
    checks.check_p_sample(ps_minus, hidden=True)


# ----------------------------------------------------------------------------- checks: every mistake is named
def expect(check, fn, *phrases, hidden=False):
    with pytest.raises(Mistake) as err:
        check(fn, hidden=hidden)
    msg = str(err.value)
    for p in phrases:
        assert p in msg, f"expected {p!r} in: {msg}"
    return msg


def test_schedule_mistakes():
    expect(checks.check_linear_beta_schedule, lambda T, b1=1e-4, bT=0.02: torch.linspace(bT, b1, T), "swapped")
    expect(checks.check_linear_beta_schedule, lambda T, b1=1e-4, bT=0.02: torch.linspace(b1, bT, T + 1), "T + 1")
    expect(checks.check_linear_beta_schedule, lambda T, b1=1e-4, bT=0.02: 1 - torch.linspace(b1, bT, T), "α_t")
    expect(checks.check_alpha_bar, lambda b: torch.cumprod(b, 0), "multiplies the β_s")
    expect(checks.check_alpha_bar, lambda b: torch.cumsum(1 - b, 0), "cumprod, not cumsum")
    expect(checks.check_alpha_bar, lambda b: 1 - b, "running PRODUCT")
    expect(checks.check_alpha_bar, lambda b: torch.cat([b.new_ones(1), torch.cumprod(1 - b, 0)[:-1]]), "off by one")
    expect(checks.check_alpha_bar, lambda b: torch.exp(-torch.cumsum(b, 0)), "approximation")


def _qs(coef):
    def q_sample(x0, t, eps, sched):
        return coef(x0, t, eps, sched)
    return q_sample


def _ab(s, t, shift=0):
    return s.alpha_bar[t + shift].view(-1, 1, 1, 1)


Q_MISTAKES = {
    "off by one in t": lambda x0, t, e, s: _ab(s, t - 1).sqrt() * x0 + (1 - _ab(s, t - 1)).sqrt() * e,
    "α_t where ᾱ_t belongs": lambda x0, t, e, s: s.alpha[t].view(-1, 1, 1, 1).sqrt() * x0
    + (1 - s.alpha[t].view(-1, 1, 1, 1)).sqrt() * e,
    "missing square roots": lambda x0, t, e, s: _ab(s, t) * x0 + (1 - _ab(s, t)) * e,
    "missing square root on ᾱ_t": lambda x0, t, e, s: _ab(s, t) * x0 + (1 - _ab(s, t)).sqrt() * e,
    "scaled by its variance": lambda x0, t, e, s: _ab(s, t).sqrt() * x0 + (1 - _ab(s, t)) * e,
    "ε and x_0 are swapped": lambda x0, t, e, s: _ab(s, t).sqrt() * e + (1 - _ab(s, t)).sqrt() * x0,
    "broadcast wrongly": lambda x0, t, e, s: s.alpha_bar[t].sqrt() * x0 + (1 - s.alpha_bar[t]).sqrt() * e,
    "first image's t": lambda x0, t, e, s: s.alpha_bar[t[0]].sqrt() * x0 + (1 - s.alpha_bar[t[0]]).sqrt() * e,
}


@pytest.mark.parametrize("phrase", list(Q_MISTAKES))
def test_q_sample_mistakes_are_named(phrase):
    expect(checks.check_q_sample, _qs(Q_MISTAKES[phrase]), phrase)


def test_q_sample_broadcast_mistake_is_named_in_hidden_part_too():
    expect(checks.check_q_sample, _qs(Q_MISTAKES["broadcast wrongly"]), "broadcast wrongly", hidden=True)


def _loss(build=qs, target="eps", t_model=0, reduce="mean", draw_t=None, draw_eps=None):
    def ddpm_loss(model, x0, sched, t=None, eps=None):
        t = (draw_t or (lambda B, T: torch.randint(1, T + 1, (B,))))(x0.shape[0], sched.T) if t is None else t
        eps = (draw_eps or torch.randn_like)(x0) if eps is None else eps
        err = model(build(x0, t, eps, sched), t + t_model) - (eps if target == "eps" else x0)
        return err.pow(2).mean() if reduce == "mean" else err.pow(2).flatten(1).sum(1).mean()
    return ddpm_loss


def test_ddpm_loss_mistakes_are_named():
    expect(checks.check_ddpm_loss, _loss(target="x0"), "swapped in the loss")
    expect(checks.check_ddpm_loss, _loss(build=Q_MISTAKES["ε and x_0 are swapped"]), "swapped when building x_t")
    expect(checks.check_ddpm_loss, _loss(build=Q_MISTAKES["off by one in t"]), "off by one in t")
    expect(checks.check_ddpm_loss, _loss(build=Q_MISTAKES["α_t where ᾱ_t belongs"]), "α_t where ᾱ_t belongs")
    expect(checks.check_ddpm_loss, _loss(build=Q_MISTAKES["missing square roots"]), "missing square roots")
    expect(checks.check_ddpm_loss, _loss(t_model=-1), "t − 1 instead of t")
    expect(checks.check_ddpm_loss, _loss(reduce="sum"), "sums over the pixels")
    expect(checks.check_ddpm_loss, _loss(build=Q_MISTAKES["first image's t"]), "first image's t")
    # the random part
    expect(checks.check_ddpm_loss, _loss(draw_t=lambda B, T: torch.randint(0, T, (B,))), "draws t = 0")
    expect(checks.check_ddpm_loss, _loss(draw_t=lambda B, T: torch.randint(1, T, (B,))), "never draws t = T")
    expect(checks.check_ddpm_loss, _loss(draw_t=lambda B, T: torch.randint(1, T + 1, (1,)).expand(B)),
           "one t for the whole batch")
    expect(checks.check_ddpm_loss, _loss(draw_eps=torch.rand_like), "standard normal")

    def two_eps(model, x0, sched, t=None, eps=None):
        if eps is not None:
            return loss(model, x0, sched, t, eps)
        t = torch.randint(1, sched.T + 1, (x0.shape[0],))
        return ((torch.randn_like(x0) - model(qs(x0, t, torch.randn_like(x0), sched), t)) ** 2).mean()
    expect(checks.check_ddpm_loss, two_eps, "different ε")


def _ps(num="beta", den="sqrt_1_ab", scale="sqrt_a", sigma="sqrt_beta", last_noise=False, sign=-1, idx=0,
        use_z=True):
    def p_sample(model, xt, t, sched, z=None):
        z = torch.randn_like(xt) if (z is None or not use_z) else z
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


@pytest.mark.parametrize("kw, phrase", [
    ({"den": "sqrt_1_a"}, "typo on the slide"),
    ({"last_noise": True}, "noise is added at the final step"),
    ({"sign": +1}, "wrong sign"),
    ({"sigma": "beta"}, "σ_t is the variance β_t"),
    ({"sigma": "beta_quarter"}, "square root was taken twice"),
    ({"num": "sqrt_beta"}, "standard deviation √β_t where the variance β_t"),
    ({"den": "1_ab"}, "missing square root on 1 − ᾱ_t"),
    ({"scale": "a"}, "divided by √α_t, not α_t"),
    ({"scale": "sqrt_ab"}, "ᾱ_t where α_t belongs in 1/√α_t"),
    ({"num": "1-ab"}, "ᾱ_t where α_t belongs in the numerator"),
    ({"den": "prev"}, "off by one in t"),
    ({"idx": -1}, "α_{t−1}, ᾱ_{t−1} and β_{t−1}"),
    ({"sigma": "tilde"}, "β̃_t"),
    ({"use_z": False}, "ignores the z"),
])
def test_p_sample_mistakes_are_named(kw, phrase):
    expect(checks.check_p_sample, _ps(**kw), phrase)


def test_p_sample_mistakes_named_in_hidden_part():
    expect(checks.check_p_sample, _ps(last_noise=True), "final step", hidden=True)
    expect(checks.check_p_sample, _ps(sigma="beta"), "variance β_t", hidden=True)


def test_sample_loop_mistakes_are_named():
    def forward(model, shape, sched):
        x = torch.randn(shape)
        for t in range(1, sched.T + 1):
            x = ps(model, x, t, sched)
        return x

    def zero_based(model, shape, sched):
        x = torch.randn(shape)
        for t in range(sched.T - 1, -1, -1):
            x = ps(model, x, max(t, 1), sched) if t else x + 0 * model(x, torch.zeros(shape[0]))
        return x

    def from_zeros(model, shape, sched):
        x = torch.zeros(shape)
        for t in range(sched.T, 0, -1):
            x = ps(model, x, t, sched)
        return x

    def not_chained(model, shape, sched):
        x_T = torch.randn(shape)
        for t in range(sched.T, 0, -1):
            x = ps(model, x_T, t, sched)
        return x

    expect(checks.check_sample_loop, forward, "forwards")
    expect(checks.check_sample_loop, zero_based, "0-based")
    expect(checks.check_sample_loop, from_zeros, "does not start from noise")
    expect(checks.check_sample_loop, not_chained, "feed each x_{t−1} into the next step")
    expect(checks.check_sample_loop, lambda m, shape, s: torch.zeros(shape), "once per step")


# ----------------------------------------------------------------------------- shortcut guard
def test_reference_calls_are_rejected_even_under_another_name():
    from dgm.ddpm import q_sample as my_q  # aliased import
    from dgm.ddpm import p_sample as my_p
    expect(checks.check_q_sample, lambda x0, t, eps, s: my_q(x0, t, eps, s), "reference implementation")
    expect(checks.check_p_sample, lambda m, xt, t, s, z=None: my_p(m, xt, t, s, z=z), "reference implementation")
    expect(checks.check_ddpm_loss, lambda m, x0, s, t=None, eps=None: ddpm.ddpm_loss(m, x0, s, t, eps),
           "reference implementation")
    expect(checks.check_sample_loop, lambda m, shape, s: ddpm.sample(m, shape, s, progress=False),
           "reference implementation")
    expect(checks.check_linear_beta_schedule, ddpm.linear_beta_schedule, "reference implementation")
    expect(checks.check_alpha_bar, lambda b: ddpm.DiffusionSchedule(b).alpha_bar[1:], "reference implementation")


def test_not_implemented_is_friendly():
    def todo(*a, **k):
        raise NotImplementedError
    for check, _ in GOOD:
        expect(check, todo, "not implemented yet")
