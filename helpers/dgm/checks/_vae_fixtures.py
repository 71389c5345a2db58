r"""Fixed inputs and known-mistake values shared by the lab-2 checks (:mod:`dgm.checks.vae`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import vae as _ref
from ._core import fixed_normal, fixed_uniform


def _gaussian(b: int, k: int, dtype, seed: int):
    mu = (1.5 * fixed_normal(b, k, seed=seed, dtype=torch.float64)).to(dtype)
    logvar = fixed_uniform(b, k, seed=seed + 1, low=-2.5, high=1.5, dtype=dtype)
    return mu, logvar


def _kl_terms(mu, logvar):  # per-dimension KL terms, (B, k)
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def _kl_mistakes(mu, logvar, reduce):
    """Values that the usual wrong KL formulas produce, reduced per sample by ``reduce``."""
    var, std = logvar.exp(), (0.5 * logvar).exp()
    k = mu.shape[-1]
    kl = reduce(_kl_terms(mu, logvar).sum(-1))
    return {
        "the sign is flipped — KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²) is never negative "
        "(the slide writes it with the opposite sign).": -kl,
        "the factor ½ is missing: KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²).": 2 * kl,
        "there is an extra factor ½ (the ½ appears once, in front of the sum).": 0.5 * kl,
        "the terms are averaged over the latent dimensions; the KL of independent dimensions is "
        "their SUM: use .sum(dim=-1), not .mean(dim=-1).": kl / k,
        "logvar is log σ², not log σ: σ² = exp(logvar) (you used exp(2·logvar)).":
            reduce(0.5 * (torch.exp(2 * logvar) + mu.pow(2) - 1 - 2 * logvar).sum(-1)),
        "σ² (the variance) is needed where you used σ = exp(½·logvar) (the slide's σ means the variance).":
            reduce(0.5 * (std + mu.pow(2) - 1 - 0.5 * logvar).sum(-1)),
        "the μ_j² term is missing: KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²).":
            reduce(0.5 * (var - 1 - logvar).sum(-1)),
    }


class _FixedNoiseVAE(_ref.VAE):
    """A tiny VAE whose forward uses a fixed ε, so one training step is deterministic."""

    def forward(self, x, eps=None):
        mu, logvar = self.encode(x)
        eps = self.fixed_eps[: x.shape[0]] if eps is None else eps
        return self.decode(mu + torch.exp(0.5 * logvar) * eps), mu, logvar


def _tiny_vae(dtype, b):
    model = _FixedNoiseVAE(latent_dim=3, channels=2, hidden=8).to(dtype)
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(0.3 * fixed_normal(*p.shape, seed=100 + i, dtype=dtype))
    model.register_buffer("fixed_eps", fixed_normal(b, 3, seed=99, dtype=dtype))
    return model


def _flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _step_result(dtype, b, x, beta, lr, stale, sigmoid=False, sign=1.0, zero=True):
    """Parameters after one SGD step computed here (optionally with a known mistake)."""
    model = _tiny_vae(dtype, b)
    x_logits, mu, logvar = model(x)
    x_logits = torch.sigmoid(x_logits) if sigmoid else x_logits
    recon = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").flatten(1).sum(1)
    loss = (recon + beta * _kl_terms(mu, logvar).sum(-1)).mean()
    grads = torch.autograd.grad(sign * loss, list(model.parameters()))
    flat_g = torch.cat([g.reshape(-1) for g in grads]) + (0 if zero else stale)
    return _flat(model) - lr * flat_g, loss.detach()
