"""dgm.gan (reference GAN) and dgm.checks.gan (lab 3 checks): math, devices, dtypes, named mistakes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import dgm
import dgm.gan as Gm
from dgm.checks import gan as C
from dgm.checks._core import Mistake


# ----------------------------------------------------------------------------- math of the reference
def test_discriminator_loss_is_half_bce_real_plus_half_bce_fake():
    r = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64, requires_grad=True)
    f = torch.tensor([-3.0, 0.0, 1.0, 4.0, -0.5], dtype=torch.float64, requires_grad=True)
    loss = Gm.discriminator_loss(r, f)
    d_real, d_fake = torch.sigmoid(r), torch.sigmoid(f)
    expected = -0.5 * torch.log(d_real).mean() - 0.5 * torch.log(1 - d_fake).mean()  # the slide's J_D
    torch.testing.assert_close(loss, expected)
    bce = 0.5 * F.binary_cross_entropy(d_real, torch.ones_like(r)) \
        + 0.5 * F.binary_cross_entropy(d_fake, torch.zeros_like(f))
    torch.testing.assert_close(loss, bce)
    g_r, g_f = torch.autograd.grad(loss, [r, f])
    torch.testing.assert_close(g_r, 0.5 * (d_real - 1).detach() / 3)  # ∂J_D/∂ℓ_real = ½(σ − 1)/B_r
    torch.testing.assert_close(g_f, 0.5 * d_fake.detach() / 5)  # ∂J_D/∂ℓ_fake = ½σ/B_f
    zero = Gm.discriminator_loss(torch.zeros(4), torch.zeros(7))  # D = ½ everywhere ⇒ J_D = log 2
    assert math.isclose(zero.item(), math.log(2), rel_tol=1e-6)
    assert torch.autograd.gradcheck(Gm.discriminator_loss, (r, f))


def test_optimal_discriminator_is_density_ratio_and_value_is_jsd():
    r"""On a finite support, min J_D over a free logit per point gives ℓ*(x) = log p_data(x)/p_g(x),
    i.e. D* = p_data/(p_data + p_g), and J_D* = log 2 − JSD(p_data ‖ p_g)."""
    p_data = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    p_g = torch.tensor([0.2, 0.2, 0.6], dtype=torch.float64)
    real_x = torch.tensor([0] * 5 + [1] * 3 + [2] * 2)  # an exact "batch" of p_data
    fake_x = torch.tensor([0] * 2 + [1] * 2 + [2] * 6)  # and of p_g
    ell = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([ell], lr=1, max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        loss = Gm.discriminator_loss(ell[real_x], ell[fake_x])
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(ell.detach(), torch.log(p_data / p_g), atol=1e-6, rtol=1e-6)
    m = 0.5 * (p_data + p_g)
    jsd = 0.5 * (p_data * torch.log(p_data / m)).sum() + 0.5 * (p_g * torch.log(p_g / m)).sum()
    torch.testing.assert_close(Gm.discriminator_loss(ell[real_x], ell[fake_x]).detach(), math.log(2) - jsd)


def test_generator_losses_closed_forms_saturation_and_stability():
    ell = torch.linspace(-8, 8, 33, dtype=torch.float64, requires_grad=True)
    d = torch.sigmoid(ell).detach()
    ns = Gm.generator_loss(ell, "nonsaturating")
    mm = Gm.generator_loss(ell, "minimax")
    torch.testing.assert_close(ns, -torch.log(d).mean())
    torch.testing.assert_close(mm, torch.log(1 - d).mean())
    torch.testing.assert_close(Gm.generator_loss(ell), ns)  # default: non-saturating
    (g_ns,) = torch.autograd.grad(ns * len(ell), ell)
    (g_mm,) = torch.autograd.grad(mm * len(ell), ell)
    torch.testing.assert_close(g_ns, -(1 - d))  # |∂/∂ℓ| = 1 − D: strong when D(G(z)) → 0
    torch.testing.assert_close(g_mm, -d)  # |∂/∂ℓ| = D: vanishes when D(G(z)) → 0 (saturation)
    early = d < 0.01  # D confidently rejects the fakes
    assert (g_mm[early].abs() < 0.01).all() and (g_ns[early].abs() > 0.99).all()
    # minimax = −J_D up to a G-independent constant: −2·J_D + (real term) = E[log(1 − D(G(z)))]
    r = torch.tensor([0.3, -1.2], dtype=torch.float64)
    torch.testing.assert_close(mm, -(2 * Gm.discriminator_loss(r, ell) - F.softplus(-r).mean()))
    big = torch.tensor([-200.0, 200.0, 0.0])
    for kind in Gm.KINDS:
        assert torch.isfinite(Gm.generator_loss(big, kind)).all()
    assert torch.isfinite(Gm.discriminator_loss(big, big))
    assert math.isclose(Gm.generator_loss(torch.tensor([-200.0]), "nonsaturating").item(), 200.0, rel_tol=1e-6)
    assert math.isclose(Gm.generator_loss(torch.tensor([200.0]), "minimax").item(), -200.0, rel_tol=1e-6)
    with pytest.raises(ValueError, match="kind"):
        Gm.generator_loss(ell, "wasserstein")
    with pytest.raises(TypeError, match="logits"):
        Gm.discriminator_loss([0.1], torch.zeros(1))


def test_sample_noise_and_toy_data_statistics():
    torch.manual_seed(0)
    z = Gm.sample_noise(20_000, 4)
    assert z.shape == (20_000, 4) and z.dtype == torch.float32
    assert z.mean().abs() < 0.02 and (z.std() - 1).abs() < 0.02
    assert Gm.sample_noise(3, 2, dtype=torch.float64).dtype == torch.float64
    for bad in [(0, 2), (2, 0), (2.5, 2)]:
        with pytest.raises(ValueError, match="positive ints"):
            Gm.sample_noise(*bad)
    c = Gm.ring_centers(8, 2.0)
    torch.testing.assert_close(c.norm(dim=1), torch.full((8,), 2.0))
    torch.testing.assert_close(c[2], torch.tensor([0.0, 2.0]), atol=1e-6, rtol=0)  # 90°
    x = Gm.ring_of_gaussians(40_000, std=0.05)
    dist, k = torch.cdist(x, c).min(dim=1)
    counts = torch.bincount(k, minlength=8).double()
    assert ((counts / 40_000 - 1 / 8).abs() < 0.01).all()  # modes equally likely
    # ‖x − c_k‖²/σ² ~ χ²₂ ⇒ P(‖x − c_k‖ ≤ 3σ) = 1 − e^{−4.5}
    assert abs((dist <= 0.15).double().mean().item() - (1 - math.exp(-4.5))) < 0.005
    g = Gm.grid_of_gaussians(1000, side=5)
    assert g.shape == (1000, 2) and Gm.grid_centers(5).shape == (25, 2)


def test_mode_coverage_counts_modes_and_quality():
    torch.manual_seed(1)
    x = Gm.ring_of_gaussians(4000)
    cov = Gm.mode_coverage(x)
    assert cov.modes == 8 and cov.total == 8 and abs(cov.high_quality - (1 - math.exp(-4.5))) < 0.01
    centers = Gm.ring_centers()
    three = centers[[0, 3, 5]].repeat_interleave(100, 0) + 0.01 * torch.randn(300, 2)
    cov3 = Gm.mode_coverage(three)
    assert cov3.modes == 3 and cov3.high_quality == 1.0 and cov3.counts == [100, 0, 0, 100, 0, 100, 0, 0]
    collapsed = torch.cat([centers[:1].repeat(990, 1), centers[1:2].repeat(10, 1)])
    assert Gm.mode_coverage(collapsed).modes == 1  # 10 samples < a tenth of a fair share (12.5)
    assert Gm.mode_coverage(torch.zeros(50, 2)).modes == 0 and Gm.mode_coverage(torch.zeros(50, 2)).high_quality == 0
    assert "3/8 modes" in str(cov3)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        Gm.mode_coverage(torch.zeros(5, 3))


def test_networks_shapes_logits_and_shape_errors():
    G, D = Gm.MLPGenerator(8), Gm.MLPDiscriminator()
    assert G(torch.randn(5, 8)).shape == (5, 2) and D(torch.randn(5, 2)).shape == (5,)
    Gc, Dc = Gm.DCGenerator(16, channels=8), Gm.DCDiscriminator(channels=8)
    img = Gc(torch.randn(3, 16))
    assert img.shape == (3, 1, 28, 28) and img.min() >= 0 and img.max() <= 1
    assert Dc(img).shape == (3,)
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        G(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        D(torch.randn(5))
    with pytest.raises(ValueError, match="28, 28"):
        Dc(torch.randn(2, 1, 32, 32))


def _sgd_game(dtype=torch.float64):
    torch.manual_seed(3)
    G, D = Gm.MLPGenerator(3, hidden=16).to(dtype), Gm.MLPDiscriminator(hidden=16).to(dtype)
    real, z = torch.randn(7, 2, dtype=dtype), torch.randn(7, 3, dtype=dtype)
    return G, D, real, z


@pytest.mark.parametrize("kind", Gm.KINDS)
def test_train_step_is_one_d_update_then_one_g_update(kind):
    lr = 0.05
    G, D, real, z = _sgd_game()
    G0, D0 = [p.detach().clone() for p in G.parameters()], [p.detach().clone() for p in D.parameters()]
    # expected: θ_D ← θ_D − lr ∇_D J_D(real, G(z)); then θ_G ← θ_G − lr ∇_G J_G(D_new(G(z)))
    loss_d = Gm.discriminator_loss(D(real), D(G(z).detach()))
    grads_d = torch.autograd.grad(loss_d, list(D.parameters()))
    D1 = [p - lr * g for p, g in zip(D0, grads_d)]
    with torch.no_grad():
        for p, v in zip(D.parameters(), D1):
            p.copy_(v)
    loss_g = Gm.generator_loss(D(G(z)), kind)
    grads_g = torch.autograd.grad(loss_g, list(G.parameters()))
    G1 = [p - lr * g for p, g in zip(G0, grads_g)]
    with torch.no_grad():  # back to the start, then the reference step
        for p, v in zip(list(G.parameters()) + list(D.parameters()), G0 + D0):
            p.copy_(v)
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=lr), torch.optim.SGD(D.parameters(), lr=lr)
    out = Gm.train_step(G, D, opt_g, opt_d, real, z, kind=kind)
    assert isinstance(out[0], float) and isinstance(out[1], float)
    assert math.isclose(out[0], loss_d.item(), rel_tol=1e-9) and math.isclose(out[1], loss_g.item(), rel_tol=1e-9)
    for p, v in zip(D.parameters(), D1):
        torch.testing.assert_close(p.detach(), v)
    for p, v in zip(G.parameters(), G1):
        torch.testing.assert_close(p.detach(), v)


# ----------------------------------------------------------------------------- devices and dtypes
def test_reference_runs_on_the_meta_device():
    meta = torch.device("meta")
    z = Gm.sample_noise(4, 8, device=meta)
    x = Gm.ring_of_gaussians(4, device=meta)
    assert z.device == meta and x.device == meta and x.shape == (4, 2)
    assert Gm.ring_centers(device=meta).device == meta and Gm.grid_of_gaussians(3, device=meta).device == meta
    with meta:
        G, D = Gm.MLPGenerator(8), Gm.MLPDiscriminator()
        Gc, Dc = Gm.DCGenerator(16, 8), Gm.DCDiscriminator(8)
    assert D(G(z)).shape == (4,) and D(G(z)).device == meta
    assert Dc(Gc(Gm.sample_noise(2, 16, device=meta))).shape == (2,)
    loss_d = Gm.discriminator_loss(D(x), D(G(z)))
    assert loss_d.device == meta and loss_d.shape == ()
    for kind in Gm.KINDS:
        assert Gm.generator_loss(D(G(z)), kind).device == meta
    loss_d.backward()
    assert all(p.grad is not None and p.grad.device == meta for p in D.parameters())
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    with pytest.raises(RuntimeError, match="meta"):  # both updates run on meta; only the returned floats cannot
        Gm.train_step(G, D, opt_g, opt_d, x, z)
    assert len(opt_d.state) == len(list(D.parameters())) and len(opt_g.state) == len(list(G.parameters()))
    assert all(p.grad is not None and p.grad.device == meta for p in G.parameters())


def test_reference_keeps_float64():
    G, D, real, z = _sgd_game(torch.float64)
    assert Gm.sample_noise(3, 2, dtype=torch.float64).dtype == torch.float64
    assert Gm.ring_of_gaussians(5, dtype=torch.float64).dtype == torch.float64
    assert Gm.ring_centers(dtype=torch.float64).dtype == torch.float64
    assert Gm.discriminator_loss(D(real), D(G(z))).dtype == torch.float64
    opt_g, opt_d = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    Gm.train_step(G, D, opt_g, opt_d, real, z)
    assert all(p.dtype == torch.float64 for p in list(G.parameters()) + list(D.parameters()))
    Gc, Dc = Gm.DCGenerator(8, 4).double(), Gm.DCDiscriminator(4).double()
    assert Dc(Gc(Gm.sample_noise(2, 8, dtype=torch.float64))).dtype == torch.float64
    assert Gm.mode_coverage(Gm.ring_of_gaussians(100, dtype=torch.float64)).total == 8


# ----------------------------------------------------------------------------- the game on the ring
def _ring_coverage(kind: str):
    G, D, history = Gm.train_ring(steps=Gm.RING_FAST_STEPS, kind=kind, seed=0, device="cpu")
    assert len(history["loss_d"]) == Gm.RING_FAST_STEPS and all(math.isfinite(v) for v in history["loss_d"])
    with torch.no_grad():
        x = G(Gm.sample_noise(2000, G.z_dim, generator=torch.Generator().manual_seed(0)))
    return Gm.mode_coverage(x)


def test_nonsaturating_gan_covers_the_ring_in_the_fast_budget():
    """Seeded: the reference non-saturating GAN covers ≥ 6 of 8 modes in the lab's fast budget."""
    cov = _ring_coverage("nonsaturating")
    assert cov.modes >= 6, cov
    assert cov.high_quality > 0.15, cov
    torch.manual_seed(0)  # the untrained generator covers nothing: the assertion above can fail
    with torch.no_grad():
        assert Gm.mode_coverage(Gm.MLPGenerator(8)(torch.randn(2000, 8))).modes == 0


def test_minimax_matches_on_the_balanced_ring_but_saturates_when_d_leads():
    """Measured statement (bench/bench_gan.py, seeds 0–4, 800 steps: non-saturating 8,8,7,7,6 modes,
    minimax 8,8,8,8,8): when both players start together, D(G(z)) stays near ½ and the minimax loss
    covers the ring as well as the non-saturating one. Give D a head start (100 D-only steps against
    a frozen G): D(G(z)) → 0 and the minimax gradient reaching θ_G is > 20× smaller."""
    assert _ring_coverage("minimax").modes >= 6
    cfg = Gm.GANConfig()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    G, D, _, opt_d = Gm.make_ring_game(cfg)
    for _ in range(100):
        with torch.no_grad():
            fake = G(Gm.sample_noise(cfg.batch_size, cfg.z_dim, generator=gen))
        opt_d.zero_grad()
        Gm.discriminator_loss(D(Gm.ring_of_gaussians(cfg.batch_size, generator=gen)), D(fake)).backward()
        opt_d.step()
    z = Gm.sample_noise(1024, cfg.z_dim, generator=gen)
    assert torch.sigmoid(D(G(z))).mean() < 0.05  # D is sure the fakes are fake
    norms = {}
    for kind in Gm.KINDS:
        grads = torch.autograd.grad(Gm.generator_loss(D(G(z)), kind), list(G.parameters()))
        norms[kind] = torch.sqrt(sum((g ** 2).sum() for g in grads)).item()
    assert norms["nonsaturating"] > 20 * norms["minimax"], norms


# ----------------------------------------------------------------------------- checks: correct answers pass
def good_noise(n, dim):
    return torch.randn(n, dim)


def good_d_loss(real_logits, fake_logits):
    return 0.5 * F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) \
        + 0.5 * F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def good_g_loss(fake_logits, kind="nonsaturating"):
    if kind == "nonsaturating":
        return -F.logsigmoid(fake_logits).mean()
    return -F.softplus(fake_logits).mean()


def good_step(G, D, opt_g, opt_d, real, z, kind="nonsaturating"):
    fake = G(z)
    opt_d.zero_grad()
    loss_d = good_d_loss(D(real), D(fake.detach()))
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    loss_g = good_g_loss(D(fake), kind)
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()


CHECKS = [(C.check_sample_noise, good_noise), (C.check_discriminator_loss, good_d_loss),
          (C.check_generator_loss, good_g_loss), (C.check_train_step, good_step)]


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("check,fn", CHECKS)
def test_correct_solutions_pass_with_one_line_and_clean_stderr(check, fn, hidden, capsys):
    before = torch.random.get_rng_state()
    check(fn, hidden=hidden)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("\n") == 1 and out.out.startswith("\u2714")
    assert torch.equal(before, torch.random.get_rng_state())  # the notebook's RNG is untouched


# ----------------------------------------------------------------------------- checks: named mistakes
def _sp(x):
    return F.softplus(x)


def _fixed_noise(n, dim):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(0))


NOISE_MISTAKES = {
    "transposed": (lambda n, d: torch.randn(d, n), "rows and columns are swapped"),
    "uniform01": (lambda n, d: torch.rand(n, d), r"uniform on \[0, 1\)"),
    "uniform11": (lambda n, d: 2 * torch.rand(n, d) - 1, r"uniform on \[−1, 1\]"),
    "scaled": (lambda n, d: 0.5 * torch.randn(n, d), "standard deviation 0.5"),
    "shifted": (lambda n, d: torch.randn(n, d) + 0.5, r"has mean 0\.[45]"),
    "uniform_std1": (lambda n, d: (torch.rand(n, d) - 0.5) * math.sqrt(12), "not Gaussian"),
    "same_each_call": (_fixed_noise, "same numbers on two calls"),
    "one_row": (lambda n, d: torch.randn(1, d).expand(n, d), "every row is the same"),
    "stub": (lambda n, d: (_ for _ in ()).throw(NotImplementedError), "not implemented yet"),
}

D_MISTAKES = {
    "labels_swapped": (lambda r, f: 0.5 * _sp(r).mean() + 0.5 * _sp(-f).mean(), "labels are swapped"),
    "sigmoid_twice": (lambda r, f: good_d_loss(torch.sigmoid(r), torch.sigmoid(f)), "sigmoid applied twice"),
    "sum": (lambda r, f: 0.5 * _sp(-r).sum() + 0.5 * _sp(f).sum(), "mean vs sum"),
    "no_half": (lambda r, f: _sp(-r).mean() + _sp(f).mean(), "½ factors are missing"),
    "sign": (lambda r, f: -good_d_loss(r, f), "sign is flipped"),
    "cat_mean": (lambda r, f: F.binary_cross_entropy_with_logits(
        torch.cat([r, f]), torch.cat([torch.ones_like(r), torch.zeros_like(f)])), "torch.cat"),
    "only_real": (lambda r, f: 0.5 * _sp(-r).mean(), "only the real term"),
    "naive_log": (lambda r, f: -0.5 * torch.log(torch.sigmoid(r)).mean() - 0.5 * torch.log(1 - torch.sigmoid(f)).mean(),
                  "numerically unstable"),
    "bce_on_sigmoid": (lambda r, f: 0.5 * F.binary_cross_entropy(torch.sigmoid(r), torch.ones_like(r))
                       + 0.5 * F.binary_cross_entropy(torch.sigmoid(f), torch.zeros_like(f)), "numerically unstable"),
    "bce_on_logits": (lambda r, f: 0.5 * F.binary_cross_entropy(r, torch.ones_like(r))
                      + 0.5 * F.binary_cross_entropy(f, torch.zeros_like(f)), "expects probabilities"),
    "item": (lambda r, f: good_d_loss(r, f).item(), "Python float loses the graph"),
    "detached": (lambda r, f: good_d_loss(r, f).detach(), "not connected to the logits"),
}


def _g(ns, mm):
    return lambda l, kind="nonsaturating": ns(l) if kind == "nonsaturating" else mm(l)


_NS, _MM = (lambda l: _sp(-l).mean()), (lambda l: -_sp(l).mean())
G_MISTAKES = {
    "ns_as_minimax": (_g(_MM, _MM), "kind='nonsaturating' you implemented the minimax"),
    "minimax_as_ns": (_g(_NS, _NS), "kind='minimax' you implemented the non-saturating"),
    "swapped_kinds": (_g(_MM, _NS), "kind='nonsaturating' you implemented the minimax"),
    "minimax_sign": (_g(_NS, lambda l: _sp(l).mean()), "wrong sign of the minimax loss"),
    "ns_sign": (_g(lambda l: -_sp(-l).mean(), _MM), "wrong sign: the non-saturating"),
    "sigmoid_twice": (_g(lambda l: _NS(torch.sigmoid(l)), _MM), "sigmoid applied twice"),
    "sum": (_g(lambda l: _sp(-l).sum(), lambda l: -_sp(l).sum()), "mean vs sum"),
    "half": (_g(lambda l: 0.5 * _NS(l), _MM), "half the expected"),
    "naive_minimax": (_g(_NS, lambda l: torch.log(1 - torch.sigmoid(l)).mean()), "numerically unstable"),
    "ns_uses_d_label": (_g(lambda l: _sp(l).mean(), _MM), "fake-label term"),
}


def _step(detach=True, recompute=False, d_first=True, zero_d=True, zero_g=True, g_detach=False,
          extra_d_step=False, use_kind=True, swap_return=False, stale_logits=False):
    """A train_step with one configurable mistake."""
    def step(G, D, opt_g, opt_d, real, z, kind="nonsaturating"):
        k = kind if use_kind else "nonsaturating" if kind == "minimax" else "minimax"
        fake = G(z)

        def d_part():
            if zero_d:
                opt_d.zero_grad()
            loss_d = good_d_loss(D(real), D(fake.detach() if detach else fake))
            loss_d.backward()
            return loss_d

        def g_part(logits=None):
            if zero_g:
                opt_g.zero_grad()
            f = G(z) if recompute else fake
            loss_g = good_g_loss(logits if logits is not None else D(f.detach() if g_detach else f), k)
            loss_g.backward()
            opt_g.step()
            if extra_d_step:
                opt_d.step()
            return loss_g

        if not d_first:
            loss_g = g_part()
            loss_d = d_part()
            opt_d.step()
        else:
            loss_d = d_part()
            old = D(fake) if stale_logits else None
            opt_d.step()
            loss_g = g_part(old)
        out = (loss_d.item(), loss_g.item())
        return out[::-1] if swap_return else out
    return step


STEP_MISTAKES = {
    "no_detach_recompute": (_step(detach=False, recompute=True), "received gradient from the discriminator loss"),
    "no_detach_single_graph": (_step(detach=False), "missing detach"),
    "g_step_updates_d": (_step(extra_d_step=True), "generator step updated D's parameters"),
    "g_before_d": (_step(d_first=False), "updated G before D"),
    "no_zero_grad_d": (_step(zero_d=False), "call opt_d.zero_grad"),
    "no_zero_grad_g": (_step(zero_g=False), "call opt_g.zero_grad"),
    "detached_g_step": (_step(g_detach=True), "G's parameters did not change"),
    "kind_ignored": (_step(use_kind=False), "`kind` argument is ignored"),
    "swapped_return": (_step(swap_return=True), "wrong order"),
    "stale_d_logits": (_step(stale_logits=True), "BEFORE opt_d.step"),
}

MISTAKE_CASES = (
    [pytest.param(C.check_sample_noise, fn, msg, id=f"noise-{k}") for k, (fn, msg) in NOISE_MISTAKES.items()]
    + [pytest.param(C.check_discriminator_loss, fn, msg, id=f"d-{k}") for k, (fn, msg) in D_MISTAKES.items()]
    + [pytest.param(C.check_generator_loss, fn, msg, id=f"g-{k}") for k, (fn, msg) in G_MISTAKES.items()]
    + [pytest.param(C.check_train_step, fn, msg, id=f"step-{k}") for k, (fn, msg) in STEP_MISTAKES.items()]
)


@pytest.mark.parametrize("check,fn,message", MISTAKE_CASES)
def test_each_known_mistake_is_named(check, fn, message, capsys):
    hidden_ok = not message.startswith("kind='nonsaturating'")  # the hidden train_step plays minimax
    for hidden in ([False, True] if hidden_ok else [False]):
        with pytest.raises(Mistake, match=message):
            check(fn, hidden=hidden)
    assert capsys.readouterr().err == ""


def test_hidden_generator_check_requires_nonsaturating_default():
    with pytest.raises(Mistake, match="default to the non-saturating"):
        C.check_generator_loss(lambda l, kind="minimax": good_g_loss(l, kind), hidden=True)


# ----------------------------------------------------------------------------- checks: shortcut guard
def test_reference_calls_are_rejected_even_under_another_name():
    from dgm.gan import discriminator_loss as my_loss
    from dgm.gan import generator_loss as g_alias
    from dgm.gan import sample_noise as noise_alias
    from dgm.gan import train_step as step_alias

    cases = [
        (C.check_discriminator_loss, lambda r, f: my_loss(r, f)),
        (C.check_discriminator_loss, Gm.discriminator_loss),
        (C.check_generator_loss, lambda l, kind="nonsaturating": g_alias(l, kind)),
        (C.check_sample_noise, lambda n, d: noise_alias(n, d)),
        (C.check_train_step, lambda *a, **k: step_alias(*a, **k)),
        (C.check_train_step, dgm.gan.train_step),
    ]
    for check, fn in cases:
        with pytest.raises(Mistake, match="reference implementation"):
            check(fn)
