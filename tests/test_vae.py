"""dgm.vae (reference VAE) and dgm.checks.vae (lab 2 checks): math, devices, dtypes, named mistakes."""
from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

import dgm.vae as V
from dgm.checks import vae as C
from dgm.checks._core import Mistake


# ----------------------------------------------------------------------------- math of the reference
def test_kl_matches_torch_distributions_and_monte_carlo():
    torch.manual_seed(0)
    mu = torch.randn(4, 3, dtype=torch.float64)
    logvar = torch.randn(4, 3, dtype=torch.float64)
    kl = V.kl_divergence(mu, logvar)
    assert kl.shape == (4,)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    exact = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(kl, exact)
    z = q.sample((200_000,))  # Monte-Carlo: KL = E_q[log q(z) − log p(z)]
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
    assert torch.allclose(mc, kl, atol=0.03, rtol=0.01), (mc, kl)
    assert (V.kl_divergence(torch.zeros(2, 5), torch.zeros(2, 5)) == 0).all()  # q = p ⇒ KL = 0
    assert (kl >= 0).all()


def test_reparameterize_values_statistics_and_gradients():
    mu = torch.tensor([[0.5, -2.0, 1.0]], dtype=torch.float64, requires_grad=True)
    logvar = torch.tensor([[0.0, -1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    eps = torch.tensor([[1.0, -0.5, 2.0]], dtype=torch.float64)
    z = V.reparameterize(mu, logvar, eps)
    sigma = torch.exp(0.5 * logvar.detach())
    torch.testing.assert_close(z, mu.detach() + sigma * eps)
    g_mu, g_lv = torch.autograd.grad(z.sum(), [mu, logvar])
    torch.testing.assert_close(g_mu, torch.ones_like(g_mu))  # ∂z/∂μ = 1
    torch.testing.assert_close(g_lv, 0.5 * sigma * eps)  # ∂z/∂logσ² = ½ σ ε
    assert torch.autograd.gradcheck(lambda m, lv: V.reparameterize(m, lv, eps), (mu, logvar))
    torch.manual_seed(1)
    n = 100_000
    zs = V.reparameterize(mu.detach().expand(n, 3), logvar.detach().expand(n, 3))  # fresh ε per row
    torch.testing.assert_close(zs.mean(0), mu.detach()[0], atol=0.03, rtol=0)
    torch.testing.assert_close(zs.std(0), sigma[0], atol=0.03, rtol=0.01)
    assert not torch.equal(V.reparameterize(mu, logvar), V.reparameterize(mu, logvar))  # new ε every call


def test_elbo_units_nats_per_image():
    b = 3
    x = (torch.rand(b, 1, 28, 28) > 0.5).float()
    logits = torch.zeros(b, 1, 28, 28)  # p = ½ per pixel ⇒ −log p(x|z) = 784 · log 2 per image
    mu, logvar = torch.zeros(b, 4), torch.zeros(b, 4)
    loss, recon, kl = V.elbo_loss(logits, x, mu, logvar)
    assert math.isclose(recon.item(), 784 * math.log(2), rel_tol=1e-6)
    assert kl.item() == 0 and math.isclose(loss.item(), recon.item(), rel_tol=1e-7)
    torch.manual_seed(2)
    logits, mu, logvar = torch.randn(b, 1, 28, 28), torch.randn(b, 4), torch.randn(b, 4)
    x = torch.rand(b, 1, 28, 28)
    loss, recon, kl = V.elbo_loss(logits, x, mu, logvar, beta=4.0)
    nll = -torch.distributions.Bernoulli(logits=logits).log_prob((x > 0.5).float()).flatten(1).sum(1).mean()
    _, recon_bin, _ = V.elbo_loss(logits, (x > 0.5).float(), mu, logvar)
    torch.testing.assert_close(recon_bin, nll)  # Bernoulli log-likelihood, summed over pixels
    torch.testing.assert_close(loss, recon + 4.0 * kl)  # β weights the KL only
    torch.testing.assert_close(kl, V.kl_divergence(mu, logvar).mean())


def test_elbo_is_a_lower_bound_on_log_likelihood():
    """log p(x) ≥ ELBO: an importance-sampled log p(x) (k = 256) sits above the ELBO."""
    torch.manual_seed(3)
    model = V.VAE(latent_dim=2, channels=4, hidden=16).double()
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        k = 256
        eps = torch.randn(k, *mu.shape, dtype=torch.float64)
        z = mu + (0.5 * logvar).exp() * eps  # (k, B, 2)
        logits = model.decode(z.reshape(-1, 2)).reshape(k, *x.shape)
        log_px_z = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").flatten(2).sum(2)
        q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
        log_w = log_px_z + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
        log_px = (torch.logsumexp(log_w, 0) - math.log(k)).mean()
        elbo = -V.negative_elbo(model, x, samples=64)
    assert log_px.item() >= elbo - 0.5, (log_px, elbo)


def test_interpolation_and_sampling():
    z_a, z_b = torch.tensor([0.0, 2.0]), torch.tensor([4.0, -2.0])
    path = V.interpolate_latent(z_a, z_b, steps=5)
    torch.testing.assert_close(path, torch.tensor([[0, 2], [1, 1], [2, 0], [3, -1], [4, -2.0]]))
    model = V.VAE(latent_dim=3, channels=4, hidden=16)
    x_a, x_b = torch.rand(1, 28, 28), torch.rand(1, 1, 28, 28)
    imgs = model.interpolate(x_a, x_b, steps=4)
    assert imgs.shape == (4, 1, 28, 28)
    torch.testing.assert_close(imgs[0], model.reconstruct(x_a[None])[0])
    torch.testing.assert_close(imgs[-1], model.reconstruct(x_b)[0])
    s = model.sample(6)
    assert s.shape == (6, 1, 28, 28) and s.min() >= 0 and s.max() <= 1
    z = torch.zeros(2, 3)
    torch.testing.assert_close(model.sample(2, z=z), torch.sigmoid(model.decode(z)))


def test_init_output_bias_starts_at_the_mean_image():
    x = torch.rand(16, 1, 28, 28) * torch.linspace(0, 1, 28)  # pixel means vary across columns
    model = V.VAE(latent_dim=2, channels=4, hidden=8).init_output_bias(x)
    p = x.mean(0).clamp(1e-3, 1 - 1e-3)
    torch.testing.assert_close(torch.sigmoid(model.logit_bias), p, atol=1e-5, rtol=1e-4)
    torch.manual_seed(0)
    fresh = V.VAE(latent_dim=2, channels=4, hidden=8)
    assert V.negative_elbo(model, x, samples=4) < V.negative_elbo(fresh, x, samples=4)


def test_perturbation_grid_moves_one_latent_per_row():
    model = V.VAE(latent_dim=4, channels=4, hidden=16)
    z0 = torch.tensor([0.5, -1.0, 0.0, 2.0])
    grid = V.perturbation_grid(model, z0, dims=[1, 3], values=[-2.0, 0.0, 2.0])
    assert grid.shape == (6, 1, 28, 28)
    z = torch.tensor([[0.5, v, 0.0, 2.0] for v in (-2.0, 0.0, 2.0)] + [[0.5, -1.0, 0.0, v] for v in (-2.0, 0.0, 2.0)])
    torch.testing.assert_close(grid, torch.sigmoid(model.decode(z)))
    with pytest.raises(ValueError, match="dims"):
        V.perturbation_grid(model, z0, dims=[4], values=[0.0])


def test_meta_device_and_float64():
    with torch.device("meta"):
        model = V.VAE(latent_dim=5)
        x = torch.empty(3, 1, 28, 28)
    x_logits, mu, logvar = model(x)
    assert x_logits.device.type == "meta" and mu.shape == (3, 5)
    loss, recon, kl = V.elbo_loss(x_logits, x, mu, logvar, beta=2.0)
    assert loss.device.type == recon.device.type == kl.device.type == "meta" and loss.shape == ()
    assert model.sample(4).device.type == "meta"
    assert model.interpolate(x[:1], x[1:2], steps=3).shape == (3, 1, 28, 28)
    assert V.reparameterize(mu, logvar).device.type == "meta"
    assert V.kl_per_dim(model, x).shape == (5,)
    assert V.perturbation_grid(model, mu[0], [0, 2], [-1.0, 1.0]).device.type == "meta"

    model64 = V.VAE(latent_dim=4, channels=4, hidden=16).double()
    x64 = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    out = model64(x64)
    assert all(t.dtype == torch.float64 for t in out)
    assert all(t.dtype == torch.float64 for t in V.elbo_loss(*out[:1], x64, *out[1:]))
    assert model64.sample(2).dtype == torch.float64
    assert V.interpolate_latent(torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)).dtype \
        == torch.float64


def test_bad_inputs_raise_clear_errors():
    model = V.VAE(latent_dim=2, channels=4, hidden=8)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model(torch.rand(2, 28, 28))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        model.decode(torch.rand(2, 3))
    with pytest.raises(ValueError, match="same shape"):
        V.kl_divergence(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same shape"):
        V.elbo_loss(torch.zeros(2, 1, 28, 28), torch.zeros(2, 784), torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="eps"):
        V.reparameterize(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="divisible by 4"):
        V.VAE(image_size=30)
    with pytest.raises(TypeError):
        V.kl_divergence([0.0], [0.0])


def test_training_lowers_the_negative_elbo_on_digits():
    import dgm
    from dgm.data import load
    from dgm.train import fit

    x, _ = load("digits", split="train")
    x_test, _ = load("digits", split="test")
    dgm.seed_everything(0)
    model = V.VAE(latent_dim=8, channels=8, hidden=64)
    before = V.negative_elbo(model, x_test[:200])
    history = fit(model, x, V.vae_loss, steps=60, batch_size=64, lr=3e-3, device="cpu", progress=False)
    after = V.negative_elbo(model, x_test[:200])
    assert set(history) >= {"loss", "recon", "kl"}
    assert after < 0.6 * before, (before, after)


# ----------------------------------------------------------------------------- checks: the right answer passes
def rep_ok(mu, logvar, eps=None):
    eps = torch.randn_like(mu) if eps is None else eps
    return mu + torch.exp(0.5 * logvar) * eps


def kl_ok(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1)


def elbo_ok(x_logits, x, mu, logvar, beta=1.0):
    recon = F.binary_cross_entropy_with_logits(x_logits, x, reduction="sum") / x.shape[0]
    kl = kl_ok(mu, logvar).mean()
    return recon + beta * kl, recon, kl


def step_ok(model, optimizer, x, beta=1.0):
    x_logits, mu, logvar = model(x)
    loss, _, _ = elbo_ok(x_logits, x, mu, logvar, beta)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


@pytest.mark.parametrize("hidden", [False, True])
def test_correct_answers_pass_quietly(hidden, capsys):
    C.check_reparameterize(rep_ok, hidden=hidden)
    C.check_kl_divergence(kl_ok, hidden=hidden)
    C.check_elbo_loss(elbo_ok, hidden=hidden)
    C.check_train_step(step_ok, hidden=hidden)
    out, err = capsys.readouterr()
    assert err == "" and out.count("\u2714") == 4 and len(out.strip().splitlines()) == 4


def test_equivalent_formulations_pass():
    C.check_reparameterize(lambda mu, lv, eps=None: torch.distributions.Normal(mu, (0.5 * lv).exp()).rsample()
                           if eps is None else mu + lv.mul(0.5).exp() * eps, hidden=True)
    C.check_kl_divergence(lambda mu, lv: 0.5 * (lv.exp() + mu.pow(2) - 1 - lv).sum(-1), hidden=True)

    def elbo_mean_reduction(x_logits, x, mu, logvar, beta=1.0):  # 'mean' × pixels is the same sum
        recon = F.binary_cross_entropy(torch.sigmoid(x_logits), x, reduction="none").sum((1, 2, 3)).mean()
        kl = kl_ok(mu, logvar).mean()
        return recon + beta * kl, recon, kl
    C.check_elbo_loss(elbo_mean_reduction, hidden=False)

    def elbo_float_logs(x_logits, x, mu, logvar, beta=1.0):  # the two logged terms as Python floats
        loss, recon, kl = elbo_ok(x_logits, x, mu, logvar, beta)
        return loss, recon.item(), kl.item()
    C.check_elbo_loss(elbo_float_logs, hidden=True)

    def old_pytorch_examples_style(mu, logvar, eps=None):  # std.data.new(...).normal_()
        std = logvar.mul(0.5).exp_()
        eps = std.data.new(std.size()).normal_() if eps is None else eps
        return eps.mul(std).add_(mu)
    C.check_reparameterize(old_pytorch_examples_style, hidden=True)


# ----------------------------------------------------------------------------- checks: named mistakes
_GLOBAL_EPS = {}


def _reused_eps(mu, logvar, eps=None):
    if eps is None:
        eps = _GLOBAL_EPS.setdefault(mu.shape, torch.randn_like(mu))
    return mu + torch.exp(0.5 * logvar) * eps


REPARAM_MISTAKES = {
    "sigma_is_variance": (lambda mu, lv, eps=None: mu + lv.exp() * (torch.randn_like(mu) if eps is None else eps),
                          "exp(logvar) is the variance"),
    "returns_mu": (lambda mu, lv, eps=None: mu, "returns μ without noise"),
    "returns_mu_without_eps": (lambda mu, lv, eps=None: mu if eps is None else rep_ok(mu, lv, eps), "returns μ when eps is None"),
    "detached": (lambda mu, lv, eps=None: rep_ok(mu, lv, eps).detach(), "no gradient"),
    "no_grad_sampling": (lambda mu, lv, eps=None: rep_ok(mu.detach(), lv.detach(), eps), "no gradient"),
    "torch_normal": (lambda mu, lv, eps=None: torch.normal(mu, (0.5 * lv).exp()), "ignores the `eps` argument"),
    "uniform_eps": (lambda mu, lv, eps=None: rep_ok(mu, lv, torch.rand_like(mu) if eps is None else eps), "uniform"),
    "eps_shared_over_batch": (lambda mu, lv, eps=None: rep_ok(mu, lv, torch.randn(mu.shape[-1]).expand_as(mu)
                                                              if eps is None else eps), "same ε for every sample"),
    "eps_shared_over_dims": (lambda mu, lv, eps=None: rep_ok(mu, lv, torch.randn(mu.shape[0], 1).expand_as(mu)
                                                             if eps is None else eps), "correlated"),
    "eps_reused_between_calls": (_reused_eps, "between calls"),
    "eps_scaled": (lambda mu, lv, eps=None: rep_ok(mu, lv, 2 * torch.randn_like(mu) if eps is None else eps),
                   "not standard normal"),
    "logvar_as_sigma": (lambda mu, lv, eps=None: mu + lv * eps, "use σ = exp(½·logvar)"),
}


@pytest.mark.parametrize("case", sorted(REPARAM_MISTAKES))
def test_reparameterize_mistakes_are_named(case):
    fn, message = REPARAM_MISTAKES[case]
    with pytest.raises(Mistake, match=re.escape(message)):
        C.check_reparameterize(fn)


def test_eps_on_the_wrong_device_is_caught_by_the_hidden_part():
    cpu_eps = lambda mu, lv, eps=None: rep_ok(mu, lv, torch.randn(mu.shape, dtype=mu.dtype) if eps is None else eps)  # noqa: E731
    C.check_reparameterize(cpu_eps, hidden=False)  # values are right on the CPU
    with pytest.raises(Mistake, match="device"):
        C.check_reparameterize(cpu_eps, hidden=True)


def _kl_terms(mu, lv):
    return 1 + lv - mu**2 - lv.exp()


KL_MISTAKES = {
    "sign_flipped": (lambda mu, lv: 0.5 * _kl_terms(mu, lv).sum(1), "sign is flipped"),
    "missing_half": (lambda mu, lv: -_kl_terms(mu, lv).sum(1), "factor ½ is missing"),
    "mean_over_dims": (lambda mu, lv: -0.5 * _kl_terms(mu, lv).mean(1), "averaged over the latent dimensions"),
    "batch_mean": (lambda mu, lv: -0.5 * _kl_terms(mu, lv).sum(1).mean(), "averages over the batch"),
    "no_reduction": (lambda mu, lv: -0.5 * _kl_terms(mu, lv), "per-dimension terms"),
    "logvar_as_log_sigma": (lambda mu, lv: 0.5 * ((2 * lv).exp() + mu**2 - 1 - 2 * lv).sum(1), "not log σ"),
    "slide_sigma": (lambda mu, lv: 0.5 * ((0.5 * lv).exp() + mu**2 - 1 - 0.5 * lv).sum(1), "variance"),
    "missing_mu": (lambda mu, lv: 0.5 * (lv.exp() - 1 - lv).sum(1), "μ_j² term is missing"),
    "detached": (lambda mu, lv: kl_ok(mu, lv).detach(), "detached"),
}


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("case", sorted(KL_MISTAKES))
def test_kl_mistakes_are_named(case, hidden):
    fn, message = KL_MISTAKES[case]
    with pytest.raises(Mistake, match=re.escape(message)):
        C.check_kl_divergence(fn, hidden=hidden)


def _elbo(recon_fn=None, kl_fn=None, combine=None):
    def elbo(x_logits, x, mu, logvar, beta=1.0):
        recon = recon_fn(x_logits, x) if recon_fn else \
            F.binary_cross_entropy_with_logits(x_logits, x, reduction="sum") / x.shape[0]
        kl = kl_fn(mu, logvar) if kl_fn else kl_ok(mu, logvar).mean()
        loss = combine(recon, kl, beta) if combine else recon + beta * kl
        return loss, recon, kl
    return elbo


ELBO_MISTAKES = {
    "beta_on_recon": (_elbo(combine=lambda r, k, b: b * r + k), "β multiplies the reconstruction"),
    "beta_ignored": (_elbo(combine=lambda r, k, b: r + k), "β is ignored"),
    "kl_sign": (_elbo(combine=lambda r, k, b: r - b * k), "KL enters with the wrong sign"),
    "returns_elbo": (_elbo(combine=lambda r, k, b: -(r + b * k)), "ELBO itself"),
    "pixel_mean": (_elbo(recon_fn=lambda xl, x: F.binary_cross_entropy_with_logits(xl, x)), "averaged over the pixels"),
    "batch_sum": (_elbo(recon_fn=lambda xl, x: F.binary_cross_entropy_with_logits(xl, x, reduction="sum")),
                  "summed over the batch"),
    "probabilities_as_logits": (_elbo(recon_fn=lambda xl, x: F.binary_cross_entropy_with_logits(
        torch.sigmoid(xl), x, reduction="sum") / x.shape[0]), "probabilities were passed where logits are expected"),
    "logits_as_probabilities": (_elbo(recon_fn=lambda xl, x: F.binary_cross_entropy(xl, x, reduction="sum")),
                                "expects probabilities"),
    "mse": (_elbo(recon_fn=lambda xl, x: F.mse_loss(torch.sigmoid(xl), x, reduction="sum") / x.shape[0]),
            "squared error"),
    "kl_mean_over_dims": (_elbo(kl_fn=lambda mu, lv: (-0.5 * _kl_terms(mu, lv).mean(1)).mean()),
                          "averaged over the latent dimensions"),
    "kl_sign_flipped": (_elbo(kl_fn=lambda mu, lv: 0.5 * _kl_terms(mu, lv).sum(1).mean()), "sign is flipped"),
    "kl_missing_half": (_elbo(kl_fn=lambda mu, lv: -_kl_terms(mu, lv).sum(1).mean()), "factor ½ is missing"),
    "not_a_tuple": (lambda xl, x, mu, lv, beta=1.0: elbo_ok(xl, x, mu, lv, beta)[0], "tuple"),
}


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("case", sorted(ELBO_MISTAKES))
def test_elbo_mistakes_are_named(case, hidden):
    fn, message = ELBO_MISTAKES[case]
    with pytest.raises(Mistake, match=re.escape(message)):
        C.check_elbo_loss(fn, hidden=hidden)


def _step(no_zero=False, no_step=False, beta_one=False, sigmoid=False, ascend=False, ret=None):
    def train_step(model, optimizer, x, beta=1.0):
        x_logits, mu, logvar = model(x)
        x_logits = torch.sigmoid(x_logits) if sigmoid else x_logits
        loss, _, _ = elbo_ok(x_logits, x, mu, logvar, 1.0 if beta_one else beta)
        if not no_zero:
            optimizer.zero_grad()
        (-loss if ascend else loss).backward()
        if not no_step:
            optimizer.step()
        return ret(loss) if ret else loss.item()
    return train_step


STEP_MISTAKES = {
    "no_zero_grad": (_step(no_zero=True), "zero_grad"),
    "no_step": (_step(no_step=True), "did not change the parameters"),
    "beta_ignored": (_step(beta_one=True), "β is not passed on"),
    "probabilities": (_step(sigmoid=True), "probabilities were passed"),
    "ascent": (_step(ascend=True), "uphill"),
    "returns_none": (_step(ret=lambda loss: None), "Python float"),
    "wrong_loss_value": (_step(ret=lambda loss: 2 * loss.item()), "returned loss"),
}


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("case", sorted(STEP_MISTAKES))
def test_train_step_mistakes_are_named(case, hidden):
    fn, message = STEP_MISTAKES[case]
    with pytest.raises(Mistake, match=re.escape(message)):
        C.check_train_step(fn, hidden=hidden)


def test_stubs_say_not_implemented():
    def stub(*args, **kwargs):
        raise NotImplementedError
    for check in (C.check_reparameterize, C.check_kl_divergence, C.check_elbo_loss, C.check_train_step,
                  C.check_vae_model):
        with pytest.raises(Mistake, match="not implemented yet"):
            check(stub)


# ----------------------------------------------------------------------------- checks: shortcut guard
def test_reference_calls_are_rejected_even_under_an_alias():
    from dgm.vae import elbo_loss as my_elbo
    from dgm.vae import kl_divergence as my_kl
    from dgm.vae import reparameterize as my_rep
    from dgm.vae import train_step as my_step

    cases = [
        (C.check_reparameterize, my_rep),
        (C.check_reparameterize, lambda mu, lv, eps=None: my_rep(mu, lv, eps)),
        (C.check_kl_divergence, my_kl),
        (C.check_kl_divergence, lambda mu, lv: my_elbo(torch.zeros(mu.shape[0], 1, 28, 28),
                                                      torch.zeros(mu.shape[0], 1, 28, 28), mu, lv)[2] * 0
         + my_kl(mu, lv)),
        (C.check_elbo_loss, my_elbo),
        (C.check_train_step, my_step),
        (C.check_train_step, lambda model, opt, x, beta=1.0: V.train_step(model, opt, x, beta)),
    ]
    for check, fn in cases:
        with pytest.raises(Mistake, match="reference implementation"):
            check(fn)


def test_a_shortcut_costs_only_its_own_part():
    """An ELBO built on the reference KL is graded on the ELBO's own logic (the KL part already lost)."""
    from dgm.vae import kl_divergence as my_kl

    C.check_elbo_loss(_elbo(kl_fn=lambda mu, lv: my_kl(mu, lv).mean()))


def test_checks_are_fast_and_write_nothing_to_stderr(capsys):
    import time

    C.check_train_step(step_ok)  # warm-up: the first torch.optim use pays a one-off import
    t = time.process_time()  # CPU time: robust to other jobs sharing the cores
    for hidden in (False, True):
        C.check_reparameterize(rep_ok, hidden=hidden)
        C.check_kl_divergence(kl_ok, hidden=hidden)
        C.check_elbo_loss(elbo_ok, hidden=hidden)
        C.check_train_step(step_ok, hidden=hidden)
    elapsed = time.process_time() - t
    assert elapsed < 4.0, elapsed  # 8 checks, each well under a second of CPU
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- checks: the student's VAE class
class GoodVAE(torch.nn.Module):
    """The lab's MLP VAE: shared body → μ head and log σ² head; decoder → logits."""

    def __init__(self, latent_dim, sigmoid=False, same_head=False, logvar_act=None, decode_mu=False, flat=False):
        super().__init__()
        self.latent_dim = latent_dim
        self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU())
        self.mu_head = torch.nn.Linear(64, latent_dim)
        self.logvar_head = self.mu_head if same_head else torch.nn.Linear(64, latent_dim)
        self.dec = torch.nn.Sequential(torch.nn.Linear(latent_dim, 64), torch.nn.ReLU(), torch.nn.Linear(64, 784))
        self.sigmoid, self.logvar_act, self.decode_mu, self.flat = sigmoid, logvar_act, decode_mu, flat

    def encode(self, x):
        h = self.body(x)
        logvar = self.logvar_head(h)
        return self.mu_head(h), (self.logvar_act(logvar) if self.logvar_act else logvar)

    def decode(self, z):
        out = self.dec(z)
        out = torch.sigmoid(out) if self.sigmoid else out
        return out if self.flat else out.view(-1, 1, 28, 28)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu if self.decode_mu else rep_ok(mu, logvar)
        return self.decode(z), mu, logvar


@pytest.mark.parametrize("hidden", [False, True])
def test_vae_model_check_passes_a_correct_model(hidden, capsys):
    C.check_vae_model(GoodVAE, hidden=hidden)
    assert capsys.readouterr().err == ""


VAE_MODEL_MISTAKES = {
    "sigmoid_output": (dict(sigmoid=True), "must return logits"),
    "same_head": (dict(same_head=True), "two separate heads"),
    "softplus_logvar": (dict(logvar_act=F.softplus), "logvar is never negative"),
    "exp_logvar": (dict(logvar_act=torch.exp), "logvar is never negative"),
    "decodes_mu": (dict(decode_mu=True), "decodes μ"),
    "flat_output": (dict(flat=True), "view(-1, 1, 28, 28)"),
}


@pytest.mark.parametrize("case", sorted(VAE_MODEL_MISTAKES))
def test_vae_model_mistakes_are_named(case):
    kwargs, message = VAE_MODEL_MISTAKES[case]
    with pytest.raises(Mistake, match=re.escape(message)):
        C.check_vae_model(lambda k: GoodVAE(k, **kwargs))


def test_vae_model_check_rejects_the_reference_class():
    with pytest.raises(Mistake, match="reference implementation"):
        C.check_vae_model(lambda k: V.VAE(latent_dim=k))

    class Wrapper(torch.nn.Module):
        def __init__(self, k):
            super().__init__()
            self.inner = V.VAE(latent_dim=k, channels=4, hidden=8)
            self.latent_dim = k

        def encode(self, x):
            return self.inner.encode(x)

        def decode(self, z):
            return self.inner.decode(z)

        def forward(self, x):
            return self.inner(x)
    with pytest.raises(Mistake, match="reference implementation"):
        C.check_vae_model(Wrapper)
