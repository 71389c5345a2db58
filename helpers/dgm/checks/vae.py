r"""Checks for lab 2 (variational autoencoder).

    from dgm.checks import vae as checks
    checks.check_reparameterize(reparameterize)
    checks.check_kl_divergence(kl_divergence)
    checks.check_elbo_loss(elbo_loss)
    checks.check_vae_model(VAE)
    checks.check_train_step(train_step)

Deterministic parts use a fixed ε passed as an argument; the random part of ``reparameterize``
(ε drawn when ``eps=None``) is checked with statistics over many samples, never against a
seeded random stream (streams differ across devices and torch versions).
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from .. import vae as _ref
from ._core import Mistake, close, compare, expect_tensor, fixed_normal, fixed_uniform, ok, run_student
from ._vae_fixtures import _flat, _gaussian, _kl_mistakes, _kl_terms, _step_result, _tiny_vae

__all__ = ["check_reparameterize", "check_kl_divergence", "check_elbo_loss", "check_vae_model", "check_train_step"]

# Each check forbids the reference of its own part only: a shortcut in the KL cell costs the KL
# part, not also the ELBO and the training step that call the student's KL.
_FORBID_REPARAM = (_ref.reparameterize,)
_FORBID_KL = (_ref.kl_divergence, _ref.kl_per_dim, _ref.elbo_loss)
_FORBID_ELBO = (_ref.elbo_loss, _ref.vae_loss)
_FORBID_STEP = (_ref.train_step, _ref.vae_loss)

_NO_GRAD = ("no gradient reaches μ and log σ²: z must be computed as μ + σ ⊙ ε with ordinary tensor "
            "operations (no .detach(), torch.no_grad(), .item(), torch.normal(...) or Normal(...).sample(), "
            "which all cut the graph — that is the whole point of the reparameterization trick).")


# ----------------------------------------------------------------------------- reparameterize
def check_reparameterize(reparameterize, hidden: bool = False) -> None:
    r"""z = μ + σ ⊙ ε with σ = exp(½ logvar): values (fixed ε), gradients, and ε's statistics."""
    name = "reparameterize"
    b, k, dtype = (1, 7, torch.float64) if hidden else (6, 4, torch.float32)
    mu, logvar = _gaussian(b, k, dtype, seed=11 if hidden else 1)
    eps = fixed_normal(b, k, seed=13 if hidden else 3, dtype=dtype)
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    z = expect_tensor(run_student(reparameterize, mu, logvar, eps, name=name, forbidden=_FORBID_REPARAM),
                      name, shape=(b, k))
    sigma = torch.exp(0.5 * logvar.detach())
    expected = mu.detach() + sigma * eps
    if not close(z, expected):
        if not _deterministic(reparameterize, mu, logvar, eps, z):
            raise Mistake(f"`{name}` ignores the `eps` argument (two calls with the same eps gave different z). "
                          "Use the eps you are given and draw torch.randn_like(mu) only when eps is None.")
        m, lv = mu.detach(), logvar.detach()
        compare(z, expected, name, {
            "σ must be the standard deviation exp(½·logvar); exp(logvar) is the variance σ².": m + lv.exp() * eps,
            "it returns μ without noise: z = μ + σ ⊙ ε.": m,
            "logvar is log σ², not σ: use σ = exp(½·logvar).": m + lv * eps,
            "the exponent has the wrong sign: σ = exp(+½·logvar).": m + torch.exp(-0.5 * lv) * eps,
            "μ is missing: z = μ + σ ⊙ ε.": sigma * eps,
            "ε is missing: z = μ + σ ⊙ ε.": m + sigma,
        }, what=" (with a given eps)")
    if not z.requires_grad:
        raise Mistake(f"`{name}`: {_NO_GRAD}")
    g_mu, g_lv = torch.autograd.grad(z.sum(), [mu, logvar], allow_unused=True)
    if g_mu is None or g_lv is None or not bool(g_mu.abs().sum() > 0):
        raise Mistake(f"`{name}`: {_NO_GRAD}")
    compare(g_mu, torch.ones_like(g_mu), name, what=" (gradient ∂z/∂μ)")
    compare(g_lv, 0.5 * sigma * eps, name, what=" (gradient ∂z/∂logvar)")
    _check_noise(reparameterize, dtype, hidden)
    ok("reparameterize: z = μ + σ ⊙ ε is right, differentiable in μ and log σ², and ε ~ N(0, I).")


def _deterministic(fn, mu, logvar, eps, z) -> bool:
    z2 = run_student(fn, mu, logvar, eps.clone(), name="reparameterize", forbidden=_FORBID_REPARAM)
    return isinstance(z2, torch.Tensor) and close(z, z2, rtol=0, atol=0)


def _check_noise(fn, dtype, hidden: bool) -> None:
    """eps=None: ε = (z − μ)/σ must look like fresh, independent N(0, 1) draws."""
    name, n = "reparameterize", 8000
    mu = torch.tensor([-1.0, 0.5, 2.0], dtype=dtype).expand(n, 3).contiguous()  # (n, 3)
    logvar = torch.tensor([-1.0, 0.0, 1.0], dtype=dtype).expand(n, 3).contiguous()
    sigma = torch.exp(0.5 * logvar)
    z = expect_tensor(run_student(fn, mu, logvar, name=name, forbidden=_FORBID_REPARAM), name, shape=(n, 3),
                      what=" (called without eps)")
    if not z.isfinite().all():
        raise Mistake(f"`{name}` returned NaN/inf when called without eps.")
    z = z.detach().double()
    e = (z - mu.double()) / sigma.double()  # should be ε ~ N(0, I)
    spread = (z - mu.double()).std(dim=0)
    if bool((e.abs().max() < 1e-9)):
        raise Mistake(f"`{name}` returns μ when eps is None: draw eps = torch.randn_like(mu) and return μ + σ ⊙ ε.")
    if bool((e.std(dim=0) < 1e-9).all()):
        raise Mistake(f"`{name}` reuses the same ε for every sample in the batch: draw one ε per entry "
                      "with torch.randn_like(mu).")
    if bool(torch.allclose(spread, logvar[0].double().exp(), rtol=0.07)):
        raise Mistake(f"`{name}` (without eps): σ must be exp(½·logvar); exp(logvar) is the variance.")
    if bool((e.min() >= 0) and (e.max() <= 1)):
        raise Mistake(f"`{name}`: ε looks uniform on [0, 1) — use torch.randn_like (standard normal), "
                      "not torch.rand_like.")
    mean, std = e.mean(dim=0), e.std(dim=0)
    if bool((mean.abs() > 0.07).any() or ((std - 1).abs() > 0.07).any()):
        raise Mistake(f"`{name}`: ε = (z − μ)/σ is not standard normal over {n} samples (mean "
                      f"{[round(v, 3) for v in mean.tolist()]}, std {[round(v, 3) for v in std.tolist()]}; "
                      "expected 0 and 1). Draw eps = torch.randn_like(mu).")
    corr = torch.corrcoef(e.T)
    if bool((corr - torch.eye(3, dtype=corr.dtype)).abs().max() > 0.1):
        raise Mistake(f"`{name}`: the latent dimensions share their noise (ε entries are correlated): "
                      "draw an independent ε for every entry with torch.randn_like(mu).")
    z2 = run_student(fn, mu, logvar, name=name, forbidden=_FORBID_REPARAM)
    if isinstance(z2, torch.Tensor) and close(z2, z, rtol=0, atol=0):
        raise Mistake(f"`{name}` reuses ε between calls (two calls gave the same z): draw fresh noise inside "
                      "the function on every call.")
    if hidden:  # ε must be created where μ lives (GPU-ready): the meta device has no data, only rules
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = fn(mu.to("meta")[:2], logvar.to("meta")[:2])
            bad = isinstance(out, torch.Tensor) and out.device.type != "meta"
        except Exception as err:  # other failures (e.g. value validation) say nothing about devices
            bad = "device" in str(err)
        if bad:
            raise Mistake(f"`{name}` does not create ε on μ's device: use torch.randn_like(mu) "
                          "(torch.randn(shape) always lands on the CPU, which breaks on a GPU).")


# ----------------------------------------------------------------------------- KL
def check_kl_divergence(kl_divergence, hidden: bool = False) -> None:
    r"""KL(N(μ, σ²) ‖ N(0, I)) = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²), one value per sample."""
    name = "kl_divergence"
    cases = [(1, 6, torch.float64, 21), (4, 2, torch.float64, 23)] if hidden else [(5, 3, torch.float32, 5)]
    for b, k, dtype, seed in cases:
        mu, logvar = _gaussian(b, k, dtype, seed)
        mu.requires_grad_(True)
        out = run_student(kl_divergence, mu, logvar, name=name, forbidden=_FORBID_KL)
        mu = mu.detach()
        expected = _kl_terms(mu, logvar).sum(-1)  # (B,)
        if isinstance(out, torch.Tensor) and out.shape != (b,):
            shape_mistakes = {"it averages over the batch; return one KL value per sample, shape (B,).":
                              expected.mean(),
                              "it sums over the batch; return one KL value per sample, shape (B,).": expected.sum(),
                              "it returns the per-dimension terms (B, k): sum them over the latent dims "
                              "(dim=-1) to get shape (B,).": _kl_terms(mu, logvar)}
            for message, value in shape_mistakes.items():
                if close(out.reshape(value.shape) if out.numel() == value.numel() else out, value):
                    raise Mistake(f"`{name}`: {message}")
        out = expect_tensor(out, name, shape=(b,))
        compare(out, expected, name, _kl_mistakes(mu, logvar, lambda v: v))
        if not out.requires_grad:
            raise Mistake(f"`{name}` is detached from μ (no gradient): keep it a torch expression, no .item()/numpy.")
    ok("kl_divergence: the closed-form KL to N(0, I) is right (one value per sample, summed over latent dims).")


# ----------------------------------------------------------------------------- ELBO
def check_elbo_loss(elbo_loss, hidden: bool = False) -> None:
    r"""(loss, reconstruction, kl) with loss = mean_b[ Σ_pixels BCE + β · KL ]."""
    name = "elbo_loss"
    b, dtype, betas, seed = (3, torch.float64, (0.5, 4.0), 31) if hidden else (4, torch.float32, (1.0, 3.0), 7)
    x_logits = (2.5 * fixed_normal(b, 1, 28, 28, seed=seed, dtype=torch.float64)).to(dtype)
    x = fixed_uniform(b, 1, 28, 28, seed=seed + 1, dtype=dtype)
    if hidden:
        x = (x > 0.5).to(dtype)  # binarised digits
    mu, logvar = _gaussian(b, 5, dtype, seed + 2)
    bce = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none")  # (B, 1, 28, 28)
    recon = bce.flatten(1).sum(1)  # (B,)
    kl = _kl_terms(mu, logvar).sum(-1)  # (B,)
    p = torch.sigmoid(x_logits)
    recon_mistakes = {
        "the reconstruction is averaged over the pixels (F.binary_cross_entropy_with_logits averages by "
        "default); −log p(x|z) is a SUM over the pixels: reduction='none', .sum over pixels, then .mean over the "
        "batch — or reduction='sum' divided by the batch size.": bce.mean(),
        "the reconstruction is summed over the batch as well; average it over the batch (nats per image).":
            recon.sum(),
        "probabilities were passed where logits are expected: x_logits are raw decoder outputs; give them "
        "to binary_cross_entropy_with_logits without applying torch.sigmoid first.":
            F.binary_cross_entropy_with_logits(p, x, reduction="none").flatten(1).sum(1).mean(),
        "probabilities were passed where logits are expected (and averaged over pixels): give the raw "
        "x_logits to binary_cross_entropy_with_logits.": F.binary_cross_entropy_with_logits(p, x).mean(),
        "that is a squared error; a Bernoulli decoder's −log p(x|z) is the binary cross-entropy.":
            (p - x).pow(2).flatten(1).sum(1).mean(),
        "that is a squared error on the logits; a Bernoulli decoder's −log p(x|z) is the binary cross-entropy "
        "with logits.": (x_logits - x).pow(2).flatten(1).sum(1).mean(),
        "the reconstruction has the wrong sign: −log p(x|z) = BCE ≥ 0.": -recon.mean(),
    }
    for beta in betas:
        xl, m = x_logits.clone().requires_grad_(True), mu.clone().requires_grad_(True)
        try:
            out = run_student(elbo_loss, xl, x, m, logvar, beta, name=name, forbidden=_FORBID_ELBO)
        except Mistake as err:
            if "between 0 and 1" in str(err):
                raise Mistake(f"`{name}`: logits were passed to F.binary_cross_entropy, which expects "
                              "probabilities; use F.binary_cross_entropy_with_logits(x_logits, x).") from None
            raise
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise Mistake(f"`{name}` should return a tuple (loss, reconstruction, kl), got {type(out).__name__}"
                          + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "") + ".")
        out = [out[0]] + [torch.tensor(v) if isinstance(v, float) else v for v in out[1:]]  # .item() logs are fine
        loss_s, recon_s, kl_s = (expect_tensor(v, name, scalar=True, what=f" ({w})")
                                 for v, w in zip(out, ("loss", "reconstruction", "kl")))
        what = f" (reconstruction, beta={beta:g})"
        compare(recon_s, recon.mean(), name, recon_mistakes, what=what)
        kl_mistakes = {"the returned `kl` already includes β; return the plain KL and use β only in `loss`.":
                       beta * kl.mean(),
                       "the KL is summed over the batch; average it over the batch.": kl.sum()}
        kl_mistakes.update(_kl_mistakes(mu, logvar, lambda v: v.mean()))
        compare(kl_s, kl.mean(), name, kl_mistakes, what=f" (kl, beta={beta:g})")
        r, q = recon.mean(), kl.mean()
        compare(loss_s, r + beta * q, name, {
            "β multiplies the reconstruction; it weights the KL only: loss = reconstruction + β · KL.": beta * r + q,
            "β is ignored: loss = reconstruction + β · KL.": r + q,
            "the KL enters with the wrong sign: −ELBO = reconstruction + β · KL.": r - beta * q,
            "that is the ELBO itself; the loss to minimise is −ELBO = reconstruction + β · KL.": -(r + beta * q),
            "β is applied twice (to kl and again in loss).": r + beta * beta * q,
        }, what=f" (loss, beta={beta:g})")
        if not loss_s.requires_grad:
            raise Mistake(f"`{name}`: the loss is detached (no gradient) — keep it a tensor, no .item().")
    ok("elbo_loss: reconstruction (nats/image, summed over pixels), KL and the β-weighted loss are right.")


# ----------------------------------------------------------------------------- the model
def check_vae_model(VAE, hidden: bool = False) -> None:
    r"""``VAE(latent_dim)``: encode → (μ, log σ²) from two heads, decode → logits, forward samples z."""
    from torch import nn

    sizes = (3, 20) if hidden else (2, 16)
    for k in sizes:
        model = run_student(VAE, k, name=f"VAE({k})", forbidden=[_ref.VAE])
        if not isinstance(model, nn.Module):
            raise Mistake(f"`VAE({k})` should create an nn.Module, got {type(model).__name__}.")
        if any(isinstance(m, _ref.VAE) for m in model.modules()):
            raise Mistake("`VAE` uses dgm.vae.VAE — build your own encoder, heads and decoder.")
        for method in ("encode", "decode"):
            if not callable(getattr(model, method, None)):
                raise Mistake(f"`VAE` needs a method `{method}`.")
        model.eval()
        x = fixed_uniform(5, 1, 28, 28, seed=50 + k)  # (B, 1, 28, 28)
        out = run_student(model.encode, x, name="encode", forbidden=[_ref.VAE])
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise Mistake("`encode` should return a pair (mu, logvar) — one tensor from each head.")
        mu = expect_tensor(out[0], "encode", shape=(5, k), what=" (mu)")
        logvar = expect_tensor(out[1], "encode", shape=(5, k), what=" (logvar)")
        if close(mu, logvar, rtol=0, atol=1e-7):
            raise Mistake("`encode` returns the same tensor as mu and logvar: use two separate heads "
                          "(two nn.Linear layers on the shared features).")
        if bool((logvar >= 0).all()) and k >= 16:  # 16 random-init heads are never all ≥ 0 by chance
            raise Mistake("`encode`: logvar is never negative. log σ² must be free to be any real number "
                          "(σ < 1 ⇔ log σ² < 0): no ReLU / softplus / exp after the logvar head.")
        z = fixed_normal(5, k, seed=60 + k) * 3
        x_logits = expect_tensor(run_student(model.decode, z, name="decode", forbidden=[_ref.VAE]), "decode")
        if tuple(x_logits.shape) != (5, 1, 28, 28):
            hint = " Reshape with .view(-1, 1, 28, 28)." if x_logits.numel() == 5 * 784 else ""
            raise Mistake(f"`decode` returned shape {tuple(x_logits.shape)}, expected (B, 1, 28, 28).{hint}")
        if bool((x_logits >= 0).all() and (x_logits <= 1).all()):
            raise Mistake("`decode` seems to end with a sigmoid (all outputs in [0, 1]): it must return "
                          "logits; elbo_loss applies the sigmoid inside binary_cross_entropy_with_logits.")
        try:
            fwd = run_student(model, x, name="VAE.forward", forbidden=[_ref.VAE])
        except Mistake as err:
            if "not implemented yet" in str(err):
                raise Mistake("`VAE.forward` (or a function it calls, such as your `reparameterize`) is not "
                              "implemented yet: replace `raise NotImplementedError` and re-run its cell.") from None
            raise
        if not isinstance(fwd, (tuple, list)) or len(fwd) != 3:
            raise Mistake("`forward(x)` should return (x_logits, mu, logvar).")
        xl, m, lv = (expect_tensor(t, "forward") for t in fwd)
        if tuple(xl.shape) != (5, 1, 28, 28) or not close(m, mu) or not close(lv, logvar):
            raise Mistake("`forward(x)` should return (decode(z), mu, logvar) with (mu, logvar) = encode(x).")
        if close(xl, run_student(model.decode, mu, name="decode")):
            raise Mistake("`forward` decodes μ: sample z = reparameterize(mu, logvar) and decode z.")
        model.train()
        model.zero_grad()
        run_student(lambda: model(x)[0].sum().backward(), name="backward through your VAE")
        if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()):
            raise Mistake("No gradient reaches your parameters: avoid .detach(), .item() or numpy in forward.")
    ok(f"VAE: encode → (μ, log σ²) of shape (B, k), decode → logits (B, 1, 28, 28), forward samples z "
       f"for latent sizes {sizes}.")


# ----------------------------------------------------------------------------- training step
def check_train_step(train_step, hidden: bool = False) -> None:
    r"""One optimisation step: forward → elbo_loss → zero_grad → backward → step; returns the loss."""
    name = "train_step"
    b, dtype, beta, lr = (1, torch.float64, 2.5, 0.05) if hidden else (3, torch.float32, 3.0, 0.1)
    x = fixed_uniform(b, 1, 28, 28, seed=41 if hidden else 42, dtype=dtype)
    model = _tiny_vae(dtype, b)
    start = _flat(model)
    stale = torch.cat([fixed_normal(p.numel(), seed=200 + i, dtype=dtype) for i, p in enumerate(model.parameters())])
    offset = 0
    for p in model.parameters():  # old gradients left over from a previous step
        p.grad = stale[offset: offset + p.numel()].reshape(p.shape).clone()
        offset += p.numel()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    out = run_student(train_step, model, optimizer, x, beta, name=name, forbidden=_FORBID_STEP)
    expected, loss = _step_result(dtype, b, x, beta, lr, stale)
    after = _flat(model)
    tol = dict(rtol=1e-4, atol=1e-6)
    if close(after, start, rtol=0, atol=0):
        raise Mistake(f"`{name}` did not change the parameters: the order is optimizer.zero_grad() → "
                      "loss.backward() → optimizer.step().")
    compare(after, expected, name, {
        "optimizer.zero_grad() is missing, so old gradients were added to the new ones.":
            lambda: _step_result(dtype, b, x, beta, lr, stale, zero=False)[0],
        "β is not passed on to elbo_loss (the step used β = 1).":
            lambda: _step_result(dtype, b, x, 1.0, lr, stale)[0],
        "probabilities were passed to elbo_loss where logits are expected: model(x) already returns logits.":
            lambda: _step_result(dtype, b, x, beta, lr, stale, sigmoid=True)[0],
        "the step went uphill: minimise the loss (−ELBO), do not negate it.":
            lambda: _step_result(dtype, b, x, beta, lr, stale, sign=-1.0)[0],
    }, what=" (parameters after the step; if elbo_loss failed its check, fix it first)", **tol)
    if isinstance(out, torch.Tensor) and out.numel() == 1:
        out = out.detach().reshape(())
    elif isinstance(out, (int, float)) and not isinstance(out, bool):
        out = torch.tensor(float(out), dtype=torch.float64)
    else:
        raise Mistake(f"`{name}` should return the loss as a Python float (loss.item()), got {type(out).__name__}.")
    if math.isfinite(float(out)):
        compare(out, loss, name, what=" (returned loss: the value before the step)", rtol=1e-4, atol=1e-4)
    else:
        raise Mistake(f"`{name}` returned a non-finite loss {float(out)}.")
    ok("train_step: one gradient step on −ELBO (zero_grad → backward → step) is right.")
