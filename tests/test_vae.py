"""dgm.vae (reference VAE) and dgm.checks.vae (lab 2 checks): math, devices, dtypes, named mistakes."""
from __future__ import annotations

import math


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


# ----------------------------------------------------------------------------- checks: harness
import json  # noqa: E402

from dgm.checks import evidence  # noqa: E402
from dgm.checks._check import VISIBLE, public_seed  # noqa: E402

torch.set_num_threads(1)
HIDDEN_SEEDS = (1, 2, 3, 7, 123456789)  # hidden cases draw shapes, dtypes and β from the seed


def in_kernel(check, fn, case, seed):
    """(passed, mistake id) of judge(run()) in one process, as in JupyterLab."""
    try:
        check.judge(check.inputs(seed, case), check.run(fn, check.inputs(seed, case)))
    except Mistake as m:
        return False, m.id
    return True, None


def graded(check, fn, case, seed):
    """(passed, mistake id) through the evidence wire: record → JSON → parse → verdict."""
    rec = check.record(fn, "cell", case, seed)
    v = check.verdict(case, seed, evidence.parse(json.dumps(evidence.to_json(rec))))
    return v.passed, v.mistake


def cases(check):
    yield VISIBLE, public_seed(check.name, VISIBLE)
    for seed in HIDDEN_SEEDS:
        yield "hidden-1", seed


def assert_passes(check, fn):
    for case, seed in cases(check):
        assert in_kernel(check, fn, case, seed) == (True, None), (case, seed, in_kernel(check, fn, case, seed))
        assert graded(check, fn, case, seed) == (True, None), (case, seed)


def assert_fails(check, fn, mistake_id, case=VISIBLE, seed=None):
    seed = public_seed(check.name, case) if seed is None else seed
    got = in_kernel(check, fn, case, seed)
    assert got == (False, mistake_id), got
    assert graded(check, fn, case, seed) == got  # the verdict agrees with the in-kernel judge


# ----------------------------------------------------------------------------- the right answers (as the notebook)
def rep_ok(mu, logvar, eps=None):
    eps = torch.randn_like(mu) if eps is None else eps
    return mu + torch.exp(0.5 * logvar) * eps


def kl_ok(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1)


def kl_wrong(mu, logvar):  # a student's wrong KL: elbo_loss and train_step must not pay for it
    return 0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1)


def elbo_ok(x_logits, x, mu, logvar, beta=1.0, kl_fn=kl_wrong):
    recon = F.binary_cross_entropy_with_logits(x_logits, x, reduction="sum") / x.shape[0]
    kl = kl_fn(mu, logvar).mean()
    return recon + beta * kl, recon, kl


def elbo_wrong(x_logits, x, mu, logvar, beta=1.0, kl_fn=kl_wrong):  # β on the reconstruction
    loss, recon, kl = elbo_ok(x_logits, x, mu, logvar, beta, kl_fn)
    return beta * recon + kl, recon, kl


def step_ok(model, optimizer, x, beta=1.0, loss_fn=elbo_wrong):
    x_logits, mu, logvar = model(x)
    loss, _, _ = loss_fn(x_logits, x, mu, logvar, beta)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def rep_wrong(mu, logvar, eps=None):  # σ taken as the variance: the VAE part must not pay for it
    return mu + logvar.exp() * (torch.randn_like(mu) if eps is None else eps)


class GoodVAE(torch.nn.Module):
    """The lab's MLP VAE (shared body → μ head and log σ² head; decoder → logits), with switchable mistakes."""

    def __init__(self, latent_dim, reparameterize=rep_wrong, sigmoid=False, same_head=False, logvar_act=None,
                 decode_mu=False, flat=False, hand_sigma=False, forward_sigmoid=False, own_sampler=False,
                 detach=False, mu_in_eval=False):
        super().__init__()
        self.latent_dim, self.reparameterize = latent_dim, reparameterize
        self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU())
        self.mu_head = torch.nn.Linear(64, latent_dim)
        self.logvar_head = self.mu_head if same_head else torch.nn.Linear(64, latent_dim)
        self.dec = torch.nn.Sequential(torch.nn.Linear(latent_dim, 64), torch.nn.ReLU(), torch.nn.Linear(64, 784))
        self.opts = dict(sigmoid=sigmoid, logvar_act=logvar_act, decode_mu=decode_mu, flat=flat,
                         hand_sigma=hand_sigma, forward_sigmoid=forward_sigmoid, own_sampler=own_sampler,
                         detach=detach, mu_in_eval=mu_in_eval)

    def encode(self, x):
        h = self.body(x)
        logvar = self.logvar_head(h)
        act = self.opts["logvar_act"]
        return self.mu_head(h), (act(logvar) if act else logvar)

    def decode(self, z):
        out = self.dec(z)
        out = torch.sigmoid(out) if self.opts["sigmoid"] else out
        return out if self.opts["flat"] else out.view(-1, 1, 28, 28)

    def forward(self, x):
        o = self.opts
        mu, logvar = self.encode(x)
        if o["decode_mu"] or (o["mu_in_eval"] and not self.training):
            z = mu
        elif o["own_sampler"]:
            z = rep_ok(mu, logvar)
        else:
            m, lv = (mu.detach(), logvar.detach()) if o["detach"] else (mu, logvar)
            z = self.reparameterize(m, (0.5 * lv).exp() if o["hand_sigma"] else lv)
        x_logits = self.decode(z)
        return (torch.sigmoid(x_logits) if o["forward_sigmoid"] else x_logits), mu, logvar


def vae_with(**opts):
    def make(latent_dim, reparameterize=rep_wrong):
        return GoodVAE(latent_dim, reparameterize, **opts)
    return make


# ----------------------------------------------------------------------------- solutions and alternatives pass
def test_the_solutions_pass_every_case_and_the_verdict_agrees(capsys):
    assert_passes(C.check_reparameterize, rep_ok)
    assert_passes(C.check_kl_divergence, kl_ok)
    assert_passes(C.check_elbo_loss, elbo_ok)          # its default kl_fn is wrong: the check passes the reference
    assert_passes(C.check_vae_model, vae_with())       # its default reparameterize is wrong: idem
    assert_passes(C.check_train_step, step_ok)         # its default loss_fn is wrong: idem
    for check, fn in ((C.check_reparameterize, rep_ok), (C.check_kl_divergence, kl_ok),
                      (C.check_elbo_loss, elbo_ok), (C.check_vae_model, vae_with()), (C.check_train_step, step_ok)):
        check(fn)
        check(fn, hidden=True)
    out, err = capsys.readouterr()
    assert err == "" and out.count("\u2714") == 10


def _rep_distributions(mu, logvar, eps=None):
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    return q.rsample() if eps is None else q.loc + q.scale * eps


def _rep_old_examples(mu, logvar, eps=None):  # std.data.new(...).normal_(), as in old PyTorch examples
    std = logvar.mul(0.5).exp_()
    eps = std.data.new(std.size()).normal_() if eps is None else eps
    return eps.mul(std).add_(mu)


def _rep_addcmul(mu, logvar, eps=None):
    eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device) if eps is None else eps
    return torch.addcmul(mu, torch.sqrt(logvar.exp()), eps)


@pytest.mark.parametrize("fn", [_rep_distributions, _rep_old_examples, _rep_addcmul])
def test_reparameterize_alternatives_pass(fn):
    assert_passes(C.check_reparameterize, fn)


def _kl_distributions(mu, logvar):
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    return torch.distributions.kl_divergence(q, p).sum(-1)


def _kl_independent(mu, logvar):
    q = torch.distributions.Independent(torch.distributions.Normal(mu, (0.5 * logvar).exp()), 1)
    p = torch.distributions.Independent(torch.distributions.Normal(torch.zeros_like(mu), 1.0), 1)
    return torch.distributions.kl_divergence(q, p)


def _kl_sigma(mu, logvar):
    var = logvar.exp()
    return ((var + mu.pow(2) - 1 - torch.log(var)) / 2).sum(dim=-1)


@pytest.mark.parametrize("fn", [_kl_distributions, _kl_independent, _kl_sigma])
def test_kl_alternatives_pass(fn):
    assert_passes(C.check_kl_divergence, fn)


def _elbo_bernoulli(x_logits, x, mu, logvar, beta=1.0, kl_fn=kl_wrong):
    px = torch.distributions.Bernoulli(logits=x_logits, validate_args=False)
    recon = -px.log_prob(x).flatten(1).sum(1).mean()
    kl = kl_fn(mu=mu, logvar=logvar).mean()  # keyword call of the passed-in callable
    return recon + beta * kl, recon, kl


def _elbo_sigmoid_bce(x_logits, x, mu, logvar, beta=1.0, kl_fn=kl_wrong):  # 'none' on probabilities, summed
    recon = F.binary_cross_entropy(torch.sigmoid(x_logits), x, reduction="none").sum((1, 2, 3)).mean()
    kl = torch.mean(kl_fn(mu, logvar))
    return recon + beta * kl, recon.item(), kl.item()  # the two logged terms as Python floats


def _elbo_per_sample(x_logits, x, mu, logvar, beta=1.0, kl_fn=kl_wrong):
    recon = F.binary_cross_entropy_with_logits(x_logits.flatten(1), x.flatten(1), reduction="none").sum(-1)  # (B,)
    kl = kl_fn(mu, logvar)  # (B,)
    return (recon + beta * kl).mean(), recon.mean(), kl.mean()


@pytest.mark.parametrize("fn", [_elbo_bernoulli, _elbo_sigmoid_bce, _elbo_per_sample])
def test_elbo_alternatives_pass(fn):
    assert_passes(C.check_elbo_loss, fn)


class ConvVAE(torch.nn.Module):
    """Another architecture: conv encoder, one Linear for both heads (chunked), explicit layers, Tanh, z = μ in eval."""

    def __init__(self, latent_dim, reparameterize=rep_wrong):
        super().__init__()
        self.sample = reparameterize
        self.conv = torch.nn.Conv2d(1, 4, 4, 2, 1)
        self.fc = torch.nn.Linear(4 * 14 * 14, 32)
        self.heads = torch.nn.Linear(32, 2 * latent_dim)
        self.fc1, self.fc2 = torch.nn.Linear(latent_dim, 32), torch.nn.Linear(32, 784)

    def encode(self, x):
        h = torch.tanh(self.fc(torch.tanh(self.conv(x)).flatten(1)))
        mu, logvar = self.heads(h).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z):
        return self.fc2(torch.tanh(self.fc1(z))).reshape(z.shape[0], 1, 28, 28)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = self.sample(mu=mu, logvar=logvar) if self.training else mu  # keyword call; the mean code in eval mode
        return self.decode(z), mu, logvar


@pytest.mark.parametrize("make", [vae_with(), vae_with(mu_in_eval=True), ConvVAE])
def test_vae_model_alternatives_pass(make):
    assert_passes(C.check_vae_model, make)


def _step_keywords(model, optimizer, x, beta=1.0, loss_fn=elbo_wrong):
    optimizer.zero_grad(set_to_none=False)
    x_logits, mu, logvar = model(x)
    loss = loss_fn(x_logits=x_logits, x=x, mu=mu, logvar=logvar, beta=beta)[0]
    loss.backward()
    optimizer.step()
    return float(loss)


def _step_tensor(model, optimizer, x, beta=1.0, loss_fn=elbo_wrong):
    model.zero_grad()
    out = model(x)
    loss, recon, kl = loss_fn(*out[:1], x, *out[1:], beta=beta)
    loss.backward()
    optimizer.step()
    return loss.detach()  # a 0-dim tensor is a number too


def _step_closure(model, optimizer, x, beta=1.0, loss_fn=elbo_wrong):
    losses = []

    def closure():
        optimizer.zero_grad()
        x_logits, mu, logvar = model(x)
        loss = loss_fn(x_logits, x, mu, logvar, beta)[0]
        loss.backward()
        losses.append(loss.item())
        return loss
    optimizer.step(closure)
    return losses[0]


@pytest.mark.parametrize("fn", [_step_keywords, _step_tensor, _step_closure])
def test_train_step_alternatives_pass(fn):
    assert_passes(C.check_train_step, fn)


# ----------------------------------------------------------------------------- named mistakes
_GLOBAL_EPS = {}


def _reused_eps(mu, logvar, eps=None):
    if eps is None:
        eps = _GLOBAL_EPS.setdefault(mu.shape, torch.randn_like(mu))
    return mu + torch.exp(0.5 * logvar) * eps


def _draw(fn):
    """A reparameterize that uses the given eps but draws its own with ``fn(mu)``."""
    return lambda mu, lv, eps=None: rep_ok(mu, lv, fn(mu) if eps is None else eps)


REPARAM_MISTAKES = {
    "sigma_is_variance": (rep_wrong, "sigma-is-variance"),
    "sigma_is_variance_without_eps": (lambda mu, lv, eps=None: rep_ok(mu, lv, eps) if eps is not None
                                      else mu + lv.exp() * torch.randn_like(mu), "sigma-is-variance"),
    "returns_mu": (lambda mu, lv, eps=None: mu, "returns-mu"),
    "returns_mu_without_eps": (lambda mu, lv, eps=None: mu if eps is None else rep_ok(mu, lv, eps), "mu-without-eps"),
    "detached": (lambda mu, lv, eps=None: rep_ok(mu, lv, eps).detach(), "no-gradient"),
    "no_grad_sampling": (lambda mu, lv, eps=None: rep_ok(mu.detach(), lv.detach(), eps), "no-gradient"),
    "torch_normal": (lambda mu, lv, eps=None: torch.normal(mu, (0.5 * lv).exp()), "ignores-eps"),
    "uniform_eps": (_draw(torch.rand_like), "uniform-eps"),
    "eps_shared_over_batch": (_draw(lambda mu: torch.randn(mu.shape[-1]).expand_as(mu)), "eps-shared-over-batch"),
    "eps_shared_over_dims": (_draw(lambda mu: torch.randn(mu.shape[0], 1).expand_as(mu)), "eps-correlated"),
    "eps_reused_between_calls": (_reused_eps, "eps-reused-between-calls"),
    "eps_scaled": (_draw(lambda mu: 2 * torch.randn_like(mu)), "eps-not-standard-normal"),
    "logvar_as_sigma": (lambda mu, lv, eps=None: mu + lv * eps, "logvar-as-sigma"),
}


@pytest.mark.parametrize("case", sorted(REPARAM_MISTAKES))
def test_reparameterize_mistakes_are_named(case):
    fn, mistake = REPARAM_MISTAKES[case]
    assert_fails(C.check_reparameterize, fn, mistake)
    seed = hidden_seed(C.check_reparameterize, lambda i: i["mu"].shape[0] > 1)
    assert_fails(C.check_reparameterize, fn, mistake, "hidden-1", seed)


def test_eps_on_the_wrong_device_is_caught_by_the_hidden_cases():
    cpu_eps = _draw(lambda mu: torch.randn(mu.shape, dtype=mu.dtype))
    assert in_kernel(C.check_reparameterize, cpu_eps, VISIBLE, 1) == (True, None)  # right values on the CPU
    for seed in HIDDEN_SEEDS[:2]:
        assert_fails(C.check_reparameterize, cpu_eps, "eps-wrong-device", "hidden-1", seed)


def test_the_typical_mistake_names_the_variance_in_its_message():
    """The pipeline test looks for this phrase in the feedback."""
    with pytest.raises(Mistake, match=r"exp\(logvar\) is the variance"):
        C.check_reparameterize(rep_wrong)


def _kl_terms(mu, lv):
    return 1 + lv - mu**2 - lv.exp()


KL_MISTAKES = {
    "sign_flipped": (kl_wrong, "kl-sign-flipped"),
    "missing_half": (lambda mu, lv: -_kl_terms(mu, lv).sum(1), "kl-missing-half"),
    "mean_over_dims": (lambda mu, lv: -0.5 * _kl_terms(mu, lv).mean(1), "kl-mean-over-dims"),
    "batch_mean": (lambda mu, lv: -0.5 * _kl_terms(mu, lv).sum(1).mean(), "kl-batch-mean"),
    "batch_sum": (lambda mu, lv: -0.5 * _kl_terms(mu, lv).sum(), "kl-batch-sum"),
    "no_reduction": (lambda mu, lv: -0.5 * _kl_terms(mu, lv), "kl-no-reduction"),
    "logvar_as_log_sigma": (lambda mu, lv: 0.5 * ((2 * lv).exp() + mu**2 - 1 - 2 * lv).sum(1), "logvar-as-log-sigma"),
    "slide_sigma": (lambda mu, lv: 0.5 * ((0.5 * lv).exp() + mu**2 - 1 - 0.5 * lv).sum(1), "sigma-for-variance"),
    "missing_mu": (lambda mu, lv: 0.5 * (lv.exp() - 1 - lv).sum(1), "kl-missing-mu-term"),
    "detached": (lambda mu, lv: kl_ok(mu, lv).detach(), "no-gradient"),
    "numpy": (lambda mu, lv: torch.tensor(kl_ok(mu, lv).detach().numpy()), "no-gradient"),
}


def hidden_seed(check, wanted):
    """A seed whose hidden case has a batch > 1 (a batch of one hides the reduction mistakes)."""
    return next(s for s in range(1, 100) if wanted(check.inputs(s, "hidden-1")))


@pytest.mark.parametrize("case", sorted(KL_MISTAKES))
def test_kl_mistakes_are_named(case):
    fn, mistake = KL_MISTAKES[case]
    assert_fails(C.check_kl_divergence, fn, mistake)
    seed = hidden_seed(C.check_kl_divergence, lambda i: i["mu"].shape[0] > 1 and i["mu"].shape[1] > 1)
    assert_fails(C.check_kl_divergence, fn, mistake, "hidden-1", seed)


def _elbo(recon_fn=None, kl=None, combine=None):
    def elbo(x_logits, x, mu, logvar, beta=1.0, kl_fn=kl_ok):
        recon = recon_fn(x_logits, x) if recon_fn else \
            F.binary_cross_entropy_with_logits(x_logits, x, reduction="sum") / x.shape[0]
        k = kl(kl_fn, mu, logvar) if kl else kl_fn(mu, logvar).mean()
        loss = combine(recon, k, beta) if combine else recon + beta * k
        return loss, recon, k
    return elbo


ELBO_MISTAKES = {
    "beta_on_recon": (_elbo(combine=lambda r, k, b: b * r + k), "beta-on-recon"),
    "beta_ignored": (_elbo(combine=lambda r, k, b: r + k), "beta-ignored"),
    "kl_sign": (_elbo(combine=lambda r, k, b: r - b * k), "kl-wrong-sign-in-loss"),
    "returns_elbo": (_elbo(combine=lambda r, k, b: -(r + b * k)), "returns-elbo"),
    "detached": (_elbo(combine=lambda r, k, b: torch.tensor((r + b * k).item())), "loss-detached"),
    "pixel_mean": (_elbo(recon_fn=lambda xl, x: F.binary_cross_entropy_with_logits(xl, x)), "recon-mean-over-pixels"),
    "batch_sum": (_elbo(recon_fn=lambda xl, x: F.binary_cross_entropy_with_logits(xl, x, reduction="sum")),
                  "recon-sum-over-batch"),
    "probabilities_as_logits": (_elbo(recon_fn=lambda xl, x: F.binary_cross_entropy_with_logits(
        torch.sigmoid(xl), x, reduction="sum") / x.shape[0]), "probabilities-as-logits"),
    "logits_as_probabilities": (_elbo(recon_fn=lambda xl, x: F.binary_cross_entropy(xl, x, reduction="sum")),
                                "logits-as-probabilities"),
    "mse": (_elbo(recon_fn=lambda xl, x: F.mse_loss(torch.sigmoid(xl), x, reduction="sum") / x.shape[0]),
            "mse-not-bce"),
    "own_kl_inline": (_elbo(kl=lambda f, mu, lv: kl_ok(mu, lv).mean()), "kl-fn-not-used"),
    "kl_sum_over_batch": (_elbo(kl=lambda f, mu, lv: f(mu, lv).sum()), "kl-sum-over-batch"),
    "sigma_to_kl_fn": (_elbo(kl=lambda f, mu, lv: f(mu, (0.5 * lv).exp()).mean()), "sigma-handed-as-logvar"),
    "kl_includes_beta": (lambda xl, x, mu, lv, beta=1.0, kl_fn=kl_ok: (
        _elbo()(xl, x, mu, lv, beta, kl_fn)[0], _elbo()(xl, x, mu, lv, beta, kl_fn)[1],
        beta * kl_fn(mu, lv).mean()), "kl-includes-beta"),
    "not_a_tuple": (lambda xl, x, mu, lv, beta=1.0, kl_fn=kl_ok: _elbo()(xl, x, mu, lv, beta, kl_fn)[0],
                    "not-a-tuple"),
    "no_kl_fn_parameter": (lambda xl, x, mu, lv, beta=1.0: _elbo()(xl, x, mu, lv, beta), "missing-kl-fn"),
}


@pytest.mark.parametrize("case", sorted(ELBO_MISTAKES))
def test_elbo_mistakes_are_named(case):
    fn, mistake = ELBO_MISTAKES[case]
    assert_fails(C.check_elbo_loss, fn, mistake)
    seed = hidden_seed(C.check_elbo_loss, lambda i: i["x"].shape[0] > 1)
    assert_fails(C.check_elbo_loss, fn, mistake, "hidden-1", seed)


VAE_MISTAKES = {
    "sigmoid_output": (dict(sigmoid=True), "decoder-sigmoid"),
    "same_head": (dict(same_head=True), "same-head"),
    "softplus_logvar": (dict(logvar_act=F.softplus), "logvar-nonnegative"),
    "exp_logvar": (dict(logvar_act=torch.exp), "logvar-nonnegative"),
    "decodes_mu": (dict(decode_mu=True), "decodes-mu"),
    "flat_output": (dict(flat=True), "flat-output"),
    "hands_sigma": (dict(hand_sigma=True), "sigma-handed-as-logvar"),
    "forward_returns_probabilities": (dict(forward_sigmoid=True), "forward-returns-probabilities"),
    "ignores_the_given_sampler": (dict(own_sampler=True), "forward-no-reparameterize"),
    "detached_encoder": (dict(detach=True), "no-gradient-to-encoder"),
}


@pytest.mark.parametrize("case", sorted(VAE_MISTAKES))
def test_vae_model_mistakes_are_named(case):
    opts, mistake = VAE_MISTAKES[case]
    assert_fails(C.check_vae_model, vae_with(**opts), mistake)
    seed = hidden_seed(C.check_vae_model, lambda i: i["k"] >= 16)  # logvar ≥ 0 is judged on 16+ heads
    assert_fails(C.check_vae_model, vae_with(**opts), mistake, "hidden-1", seed)


def test_vae_model_without_the_sampler_parameter_is_named():
    assert_fails(C.check_vae_model, lambda k: GoodVAE(k), "missing-reparameterize-parameter")


def _step(no_zero=False, no_step=False, beta_one=False, sigmoid=False, ascend=False, ret=None, own_loss=False):
    def train_step(model, optimizer, x, beta=1.0, loss_fn=elbo_wrong):
        x_logits, mu, logvar = model(x)
        x_logits = torch.sigmoid(x_logits) if sigmoid else x_logits
        fn = elbo_ok if own_loss else loss_fn
        loss, _, _ = fn(x_logits, x, mu, logvar, 1.0 if beta_one else beta)
        if not no_zero:
            optimizer.zero_grad()
        (-loss if ascend else loss).backward()
        if not no_step:
            optimizer.step()
        return ret(loss) if ret else loss.item()
    return train_step


STEP_MISTAKES = {
    "no_zero_grad": (_step(no_zero=True), "no-zero-grad"),
    "no_step": (_step(no_step=True), "no-step"),
    "beta_ignored": (_step(beta_one=True), "beta-not-passed"),
    "probabilities": (_step(sigmoid=True), "probabilities-to-loss"),
    "ascent": (_step(ascend=True), "ascent"),
    "returns_none": (_step(ret=lambda loss: None), "not-a-number"),
    "wrong_loss_value": (_step(ret=lambda loss: 2 * loss.item()), "wrong-loss-returned"),
    "ignores_loss_fn": (_step(own_loss=True), "loss-fn-not-called"),
    "no_loss_fn_parameter": (lambda model, opt, x, beta=1.0: step_ok(model, opt, x, beta, elbo_ok), "missing-loss-fn"),
}


@pytest.mark.parametrize("case", sorted(STEP_MISTAKES))
def test_train_step_mistakes_are_named(case):
    fn, mistake = STEP_MISTAKES[case]
    assert_fails(C.check_train_step, fn, mistake)
    assert_fails(C.check_train_step, fn, mistake, "hidden-1", HIDDEN_SEEDS[0])


def test_stubs_say_not_implemented():
    def stub(*args, loss_fn=None, kl_fn=None, reparameterize=None):
        raise NotImplementedError
    for check in (C.check_reparameterize, C.check_kl_divergence, C.check_elbo_loss, C.check_train_step,
                  C.check_vae_model):
        assert_fails(check, stub, "not-implemented")


# ----------------------------------------------------------------------------- error carried forward
def test_a_wrong_earlier_part_costs_only_its_own_cell():
    """elbo_loss, VAE and train_step are graded with the references passed in, whatever the defaults are."""
    assert in_kernel(C.check_kl_divergence, kl_wrong, VISIBLE, 1)[0] is False
    assert in_kernel(C.check_reparameterize, rep_wrong, VISIBLE, 1)[0] is False
    assert in_kernel(C.check_elbo_loss, elbo_wrong, VISIBLE, 1)[0] is False
    assert_passes(C.check_elbo_loss, elbo_ok)  # default kl_fn = the wrong KL
    assert_passes(C.check_vae_model, vae_with())  # default reparameterize = the wrong one
    assert_passes(C.check_train_step, step_ok)  # default loss_fn = the wrong ELBO


# ----------------------------------------------------------------------------- forged evidence
FORGE = {  # check, a passing answer, the evidence keys a pass depends on
    "reparameterize": (C.check_reparameterize, rep_ok, ("z", "noise", "g_mu", "g_logvar", "requires_grad")),
    "kl": (C.check_kl_divergence, kl_ok, ("out", "g_mu", "requires_grad")),
    "elbo": (C.check_elbo_loss, elbo_ok, ("betas",)),
    "vae": (C.check_vae_model, vae_with(), ("encode", "forward", "handed", "decoded", "probes", "n_calls",
                                            "eval_forward", "g_mu")),
    "step": (C.check_train_step, step_ok, ("after", "out", "calls", "n_calls")),
    "active": (C.check_active_units, lambda mu, threshold=0.01: mu.var(dim=0) > threshold, ("out",)),
}


def _forgeries(value):
    yield "missing", None
    yield "string", "a string"
    if isinstance(value, torch.Tensor):
        yield "wrong shape", torch.zeros(3, 1, 2, dtype=torch.float64)
        yield "nan", torch.full_like(value.double(), float("nan"))
    if isinstance(value, list):
        yield "empty list", []
        yield "list of strings", ["x"] * len(value)


@pytest.mark.parametrize("which", sorted(FORGE))
def test_forged_evidence_fails_without_an_exception(which):
    check, fn, keys = FORGE[which]
    case, seed = "hidden-1", HIDDEN_SEEDS[0]
    payload = evidence.to_json(check.record(fn, "cell", case, seed))
    assert check.verdict(case, seed, evidence.parse(json.dumps(payload))).passed
    for key in keys:
        good = evidence.parse(json.dumps(payload)).values
        assert key in good, key
        for what, forged in _forgeries(good[key]):
            values = dict(good)
            if what == "missing":
                del values[key]
            else:
                values[key] = forged
            rec = evidence.Record("cell", check.name, case, seed, values, None)
            v = check.verdict(case, seed, rec)
            assert not v.passed and v.mistake, (key, what, v)
    assert not check.verdict(case, seed, None).passed
    assert not check.verdict(case, seed, evidence.Record("cell", check.name, case, seed, {}, None)).passed


def test_forged_elbo_entries_fail():
    check = C.check_elbo_loss
    case, seed = VISIBLE, 5
    good = evidence.parse(json.dumps(evidence.to_json(check.record(elbo_ok, "cell", case, seed)))).values
    for key in ("loss", "recon", "kl", "kl_handed", "kl_calls", "g_logits", "requires_grad"):
        for forged in (None, "x", torch.full((3,), float("nan"))):
            first = dict(good["betas"][0])
            first[key] = forged
            values = {"betas": [first, good["betas"][1]]}
            v = check.verdict(case, seed, evidence.Record("cell", check.name, case, seed, values, None))
            assert not v.passed and v.mistake, (key, forged, v)


# ----------------------------------------------------------------------------- shortcut guard
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
        (C.check_elbo_loss, lambda xl, x, mu, lv, beta=1.0, kl_fn=None: my_elbo(xl, x, mu, lv, beta)),
        (C.check_train_step, lambda model, opt, x, beta=1.0, loss_fn=None: my_step(model, opt, x, beta)),
        (C.check_vae_model, lambda k, reparameterize=None: V.VAE(latent_dim=k)),
    ]
    for check, fn in cases:
        with pytest.raises(Mistake, match="reference implementation"):
            check(fn)


def test_the_reference_inside_a_wrapper_class_is_rejected():
    class Wrapper(torch.nn.Module):
        def __init__(self, k, reparameterize=None):
            super().__init__()
            self.inner = V.VAE(latent_dim=k, channels=4, hidden=8)

        def encode(self, x):
            return self.inner.encode(x)

        def decode(self, z):
            return self.inner.decode(z)

        def forward(self, x):
            return self.inner(x)
    with pytest.raises(Mistake, match="reference implementation"):
        C.check_vae_model(Wrapper)


def test_a_shortcut_costs_only_its_own_part():
    """An ELBO whose default KL is the reference is graded on the ELBO's own logic (the KL part already lost)."""
    from dgm.vae import kl_divergence as my_kl

    C.check_elbo_loss(_elbo(kl=lambda f, mu, lv: f(mu, lv).mean()))
    C.check_elbo_loss(lambda xl, x, mu, lv, beta=1.0, kl_fn=my_kl: elbo_ok(xl, x, mu, lv, beta, kl_fn))


def test_checks_are_fast_and_write_nothing_to_stderr(capsys):
    import time

    C.check_train_step(step_ok)  # warm-up: the first torch.optim use pays a one-off import
    t = time.process_time()  # CPU time: robust to other jobs sharing the cores
    C.check_reparameterize(rep_ok)
    C.check_kl_divergence(kl_ok)
    C.check_elbo_loss(elbo_ok)
    C.check_vae_model(vae_with())
    C.check_train_step(step_ok)
    C.check_active_units(active_ok)
    elapsed = time.process_time() - t
    assert elapsed < 4.0, elapsed  # the visible cases, each well under a second of CPU
    assert capsys.readouterr().err == ""


def test_cells_cover_the_notebook_test_cells():
    import nbformat

    from dgm.checks import cells

    nb = nbformat.read("course/source/02_vae/02_vae.ipynb", as_version=4)
    graded = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.cell_type == "code"
              and c.metadata.get("nbgrader", {}).get("grade")}
    assert set(cells("02_vae")) == graded



# ----------------------------------------------------------------------------- active units (new graded part)
def active_ok(mu, threshold=0.01):
    return mu.var(dim=0) > threshold


ACTIVE_ALTERNATIVES = {
    "biased variance": lambda mu, threshold=0.01: mu.var(dim=0, unbiased=False) > threshold,
    "by hand": lambda mu, threshold=0.01: ((mu - mu.mean(0, keepdim=True)) ** 2).sum(0) / (len(mu) - 1) > threshold,
    "covariance diagonal": lambda mu, threshold=0.01: torch.diag(torch.cov(mu.T).reshape(mu.shape[1], -1)) > threshold,
    "numpy": lambda mu, threshold=0.01: __import__("numpy").var(mu.numpy(), axis=0) > threshold,
    "float mask": lambda mu, threshold=0.01: (mu.var(0) > threshold).float(),
    "correction 0": lambda mu, threshold=0.01: torch.var(mu, dim=0, correction=0).gt(threshold),
}


def test_active_units_solution_passes_and_reference_matches(capsys):
    assert_passes(C.check_active_units, active_ok)
    C.check_active_units(active_ok)
    C.check_active_units(active_ok, hidden=True)
    out, err = capsys.readouterr()
    assert err == "" and out.count("\u2714") == 2
    mu = torch.cat([torch.randn(64, 2), torch.full((64, 1), 1.5)], dim=1)  # two used dims, one constant
    assert V.active_units(mu).tolist() == [True, True, False]


@pytest.mark.parametrize("name", sorted(ACTIVE_ALTERNATIVES))
def test_active_units_alternatives_pass(name):
    assert_passes(C.check_active_units, ACTIVE_ALTERNATIVES[name])


ACTIVE_MISTAKES = {
    "inverted": (lambda mu, t=0.01: mu.var(0) < t, "threshold-inverted", VISIBLE),
    "std": (lambda mu, t=0.01: mu.std(0) > t, "std-not-variance", VISIBLE),
    "mean": (lambda mu, t=0.01: mu.mean(0).abs() > t, "mean-not-spread", VISIBLE),
    "mean square": (lambda mu, t=0.01: (mu ** 2).mean(0) > t, "mean-square-not-variance", VISIBLE),
    "fixed threshold": (lambda mu, t=0.01: mu.var(0) > 0.01, "ignores-threshold", "hidden-1"),
    "wrong axis": (lambda mu, t=0.01: mu.var(1) > t, "wrong-axis", VISIBLE),
    "count": (lambda mu, t=0.01: int((mu.var(0) > t).sum()), "returns-count", VISIBLE),
    "statistic only": (lambda mu, t=0.01: mu.var(0), "not-a-mask", VISIBLE),
    "in place": (lambda mu, t=0.01: mu.sub_(mu.mean(0)).pow(2).mean(0) > t, "modifies-input", VISIBLE),
    "ten times the threshold": (lambda mu, t=0.01: mu.var(0) > 10 * t, "wrong-mask", VISIBLE),
    "reference": (V.active_units, "reference-call", VISIBLE),
}


@pytest.mark.parametrize("case", sorted(ACTIVE_MISTAKES))
def test_active_units_mistakes_are_named(case):
    fn, mistake_id, which = ACTIVE_MISTAKES[case]
    seeds = [public_seed(C.check_active_units.name, which)] if which == VISIBLE else HIDDEN_SEEDS
    for seed in seeds:
        assert_fails(C.check_active_units, fn, mistake_id, which, seed)


# ----------------------------------------------------------------------------- binarized likelihood, saving
def test_binarize_dynamic_and_fixed():
    x = torch.full((2000, 1, 28, 28), 0.3)
    b = V.binarize(x)
    assert set(b.unique().tolist()) <= {0.0, 1.0} and b.shape == x.shape and b.dtype == x.dtype
    assert abs(b.mean().item() - 0.3) < 0.01
    assert not torch.equal(b, V.binarize(x))  # dynamic: a fresh draw every call
    assert torch.equal(V.binarize(x, seed=0), V.binarize(x, seed=0))  # fixed: the test set
    assert V.bits_per_dim(784 * math.log(2)) == pytest.approx(1.0)


def test_negative_elbo_samples_z_itself_and_bounds_the_likelihood():
    class DecodesMuInEval(V.LabVAE):
        def forward(self, x):
            mu, logvar = self.encode(x)
            z = mu if not self.training else self.reparameterize(mu, logvar)
            return self.decode(z), mu, logvar

    torch.manual_seed(0)
    a = V.LabVAE(4).eval()
    b = DecodesMuInEval(4).eval()
    b.load_state_dict(a.state_dict())
    x = V.binarize(torch.rand(32, 1, 28, 28), seed=1)
    torch.manual_seed(3)
    na = V.negative_elbo(a, x, samples=2)
    torch.manual_seed(3)
    assert V.negative_elbo(b, x, samples=2) == pytest.approx(na)  # z ~ q is drawn by negative_elbo, not forward
    assert na > 0


def test_lab_vae_is_a_correct_notebook_answer():
    assert_passes(C.check_vae_model, lambda k, reparameterize=V.reparameterize: V.LabVAE(k, reparameterize))


def test_save_samples_writes_the_record(tmp_path):
    from dgm.metrics import SampleQuality, save_samples

    q = SampleQuality(confident=0.8, n_classes=10, class_entropy=0.97, fid=1.5, n=100)
    path = save_samples("02_vae", torch.rand(100, 1, 28, 28), q, folder=tmp_path / "samples",
                        nelbo_test=torch.tensor(101.5), bits_per_dim_test=0.19)
    assert path == tmp_path / "samples" / "02_vae.pt"
    rec = torch.load(path, weights_only=False)
    assert rec["images"].shape == (100, 1, 28, 28) and 0 <= rec["images"].min() <= rec["images"].max() <= 1
    assert rec["nelbo_test"] == 101.5 and isinstance(rec["nelbo_test"], float)
    assert rec["confident"] == 0.8 and rec["n_classes"] == 10 and rec["fid"] == 1.5
    assert save_samples("02_vae", torch.rand(100, 1, 28, 28), folder=tmp_path / "samples", nelbo_test=99.0) == path
    with pytest.raises(ValueError):
        save_samples("02_vae", torch.rand(100, 784), folder=tmp_path)
