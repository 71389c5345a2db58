r"""Fixed inputs, evidence validators and known-mistake values shared by the lab-2 checks (:mod:`dgm.checks.vae`)."""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from .. import vae as _ref
from ._core import Mistake, close, fixed_normal, fixed_uniform


# ----------------------------------------------------------------------------- inputs from a seed
def _pick(seed: int, salt: int, options):
    """A deterministic choice among ``options`` from the seed (hidden cases draw their shapes this way)."""
    return options[(seed // (salt + 1) + 7 * salt) % len(options)]


def _dtype(seed: int):
    return _pick(seed, 5, (torch.float32, torch.float64))


def _gaussian(b: int, k: int, dtype, seed: int):
    mu = (1.5 * fixed_normal(b, k, seed=seed, dtype=torch.float64)).to(dtype)  # (B, k)
    logvar = fixed_uniform(b, k, seed=seed + 1, low=-2.5, high=1.5, dtype=dtype)  # (B, k)
    return mu, logvar


def _images(b: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    return fixed_uniform(b, 1, 28, 28, seed=seed, dtype=dtype)  # (B, 1, 28, 28) in [0, 1)


def _takes(fn, param: str) -> bool:
    """True when ``fn`` accepts the keyword ``param`` (or when its signature cannot be read)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return param in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _plain(v):
    """Evidence form of a value the student returned: a detached tensor, a number, or its type name."""
    if isinstance(v, torch.Tensor):
        return v.detach().clone()
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return type(v).__name__


# ----------------------------------------------------------------------------- evidence validators
def _tensor(ev: dict, key: str, name: str, shape=None, what: str = "") -> torch.Tensor:
    """``ev[key]`` as a finite floating tensor of ``shape``, or a Mistake naming what is wrong."""
    out = ev.get(key)
    if not isinstance(out, torch.Tensor):
        kind = out if isinstance(out, str) else type(out).__name__
        hint = " (a Python float loses the graph — return the tensor)" if kind == "float" else ""
        raise Mistake(f"`{name}` should return a torch.Tensor{what}, got {kind}{hint}.", id="not-a-tensor")
    if shape is not None and tuple(out.shape) != tuple(shape):
        raise Mistake(f"`{name}` returned shape {tuple(out.shape)}{what}; expected {tuple(shape)}.", id="wrong-shape")
    if not out.is_floating_point():
        raise Mistake(f"`{name}` returned a {out.dtype} tensor{what}; expected floating point values.",
                      id="wrong-dtype")
    if not bool(torch.isfinite(out).all()):
        raise Mistake(f"`{name}` returned NaN or inf values{what}: check for log(0) or division by zero.",
                      id="non-finite")
    return out.double()


def _scalar(v, name: str, what: str) -> torch.Tensor:
    """A number the student returned (a 1-element tensor or a Python float) as a float64 0-dim tensor."""
    if isinstance(v, torch.Tensor) and v.numel() == 1 and v.is_floating_point():
        v = v.reshape(()).double()
    elif isinstance(v, float):
        v = torch.tensor(v, dtype=torch.float64)
    elif isinstance(v, torch.Tensor):
        raise Mistake(f"`{name}` should return a single number{what}, got a tensor of shape {tuple(v.shape)}. "
                      "Did you forget to reduce — sum over the pixels and average over the batch?", id="not-a-scalar")
    else:
        kind = v if isinstance(v, str) else type(v).__name__
        raise Mistake(f"`{name}` should return a number{what}, got {kind}.", id="not-a-number")
    if not bool(torch.isfinite(v)):
        raise Mistake(f"`{name}` returned a non-finite value{what}.", id="non-finite")
    return v


# ----------------------------------------------------------------------------- the KL and its mistakes
def _kl_terms(mu, logvar):  # per-dimension KL terms, (B, k)
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def _kl_mistakes(mu, logvar, reduce) -> dict:
    """Values that the usual wrong KL formulas produce, reduced per sample by ``reduce``."""
    var, std = logvar.exp(), (0.5 * logvar).exp()
    k = mu.shape[-1]
    kl = reduce(_kl_terms(mu, logvar).sum(-1))
    return {
        ("kl-sign-flipped", "the sign is flipped — KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²) is never negative "
         "(the slide writes it with the opposite sign)."): -kl,
        ("kl-missing-half", "the factor ½ is missing: KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²)."): 2 * kl,
        ("kl-extra-half", "there is an extra factor ½ (the ½ appears once, in front of the sum)."): 0.5 * kl,
        ("kl-mean-over-dims", "the terms are averaged over the latent dimensions; the KL of independent "
         "dimensions is their SUM: use .sum(dim=-1), not .mean(dim=-1)."): kl / k if k > 1 else None,
        ("logvar-as-log-sigma", "logvar is log σ², not log σ: σ² = exp(logvar) (you used exp(2·logvar))."):
            reduce(0.5 * (torch.exp(2 * logvar) + mu.pow(2) - 1 - 2 * logvar).sum(-1)),
        ("sigma-for-variance", "σ² (the variance) is needed where you used σ = exp(½·logvar) (the slide's σ "
         "means the variance)."): reduce(0.5 * (std + mu.pow(2) - 1 - 0.5 * logvar).sum(-1)),
        ("kl-missing-mu-term", "the μ_j² term is missing: KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²)."):
            reduce(0.5 * (var - 1 - logvar).sum(-1)),
    }


def _handed_mistake(name: str, callee: str, mu, logvar, mu_h, lv_h) -> None:
    """Name what was handed to ``callee`` instead of (mu, logvar); return quietly when it was right."""
    if close(mu_h, mu) and close(lv_h, logvar):
        return
    wrong = {
        ("sigma-handed-as-logvar", f"it hands σ = exp(½·logvar) to {callee}; pass logvar itself (log σ²) — "
         f"{callee} computes σ from it."): (mu, (0.5 * logvar).exp()),
        ("variance-handed-as-logvar", f"it hands the variance exp(logvar) to {callee}; pass logvar itself "
         "(log σ²)."): (mu, logvar.exp()),
        ("arguments-swapped", f"it hands (logvar, mu) to {callee}; the order is {callee}(mu, logvar)."):
            (logvar, mu),
    }
    for (mistake_id, message), (m, lv) in wrong.items():
        if close(mu_h, m) and close(lv_h, lv):
            raise Mistake(f"`{name}`: {message}", id=mistake_id)
    raise Mistake(f"`{name}` hands {callee} other values than (mu, logvar): pass them exactly as you got them.",
                  id="wrong-arguments-handed")


# ----------------------------------------------------------------------------- the tiny VAE of train_step
class _FixedNoiseVAE(_ref.VAE):
    """A tiny VAE whose forward uses a fixed ε, so one training step is deterministic."""

    def forward(self, x, eps=None):
        mu, logvar = self.encode(x)
        eps = self.fixed_eps[: x.shape[0]] if eps is None else eps
        return self.decode(mu + torch.exp(0.5 * logvar) * eps), mu, logvar


def _tiny_vae(dtype, b: int, seed: int = 0):
    with torch.random.fork_rng(devices=[]):  # default init draws from the RNG: leave the notebook's stream alone
        model = _FixedNoiseVAE(latent_dim=3, channels=2, hidden=8).to(dtype)
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(0.3 * fixed_normal(*p.shape, seed=seed + 100 + i, dtype=dtype))
    model.register_buffer("fixed_eps", fixed_normal(b, 3, seed=seed + 99, dtype=dtype))
    return model


def _flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _step_result(inputs: dict, beta=None, sigmoid=False, sign=1.0, zero=True):
    """Parameters after one SGD step computed here (optionally with a known mistake), and the loss before it."""
    x, lr, stale = inputs["x"], inputs["lr"], inputs["stale"]
    beta = inputs["beta"] if beta is None else beta
    model = _tiny_vae(x.dtype, x.shape[0], inputs["model_seed"])
    x_logits, mu, logvar = model(x)
    x_logits = torch.sigmoid(x_logits) if sigmoid else x_logits
    recon = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").flatten(1).sum(1)
    loss = (recon + beta * _kl_terms(mu, logvar).sum(-1)).mean()
    grads = torch.autograd.grad(sign * loss, list(model.parameters()))
    flat_g = torch.cat([g.reshape(-1) for g in grads]) + (0 if zero else stale)
    return _flat(model) - lr * flat_g, loss.detach()
