r"""Checks for lab 3 (GANs): noise, the discriminator loss, both generator losses, the training step.

Every check uses fixed inputs (no RNG stream) except :func:`check_sample_noise`, which judges the
student's random numbers by statistics over 32 000 draws taken inside a forked, seeded RNG (the
notebook's own RNG state is left untouched).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import gan as ref
from ._core import Mistake, close, compare, expect_tensor, fixed_normal, fmt, ok, run_student
from ._gan_step import check_train_step  # noqa: F401  (the training-step check lives next door)

__all__ = ["check_sample_noise", "check_discriminator_loss", "check_generator_loss", "check_train_step"]

_sp, _sig = F.softplus, torch.sigmoid
_STABLE_HINT = ("Compute it from the logits with F.softplus / F.logsigmoid or "
                "F.binary_cross_entropy_with_logits: −log σ(ℓ) = softplus(−ℓ), −log(1 − σ(ℓ)) = softplus(ℓ).")


def _scalar(fn, args, name, forbidden, kwargs=None):
    try:
        out = run_student(fn, *args, name=name, forbidden=forbidden, **(kwargs or {}))
    except Mistake as err:
        cause = str(err.__cause__ or "")
        if "between 0 and 1" in cause:
            raise Mistake(f"`{name}` passed logits to F.binary_cross_entropy, which expects probabilities. "
                          "The discriminator outputs logits: use F.binary_cross_entropy_with_logits.") from None
        raise
    return expect_tensor(out, name, scalar=True)


def _grad_of(fn, args, kwargs, name, forbidden):
    """Run fn on leaf copies of ``args``; return (value, grads) or name the broken graph."""
    leaves = [a.detach().clone().requires_grad_(True) for a in args]
    out = _scalar(fn, leaves, name, forbidden, kwargs)
    if not out.requires_grad:
        raise Mistake(f"`{name}` returned a value that is not connected to the logits (no gradient can flow). "
                      "Don't use .item(), .detach(), numpy or torch.tensor(...) inside the loss.")
    grads = torch.autograd.grad(out, leaves, allow_unused=True)
    return out, [torch.zeros_like(a) if g is None else g for a, g in zip(leaves, grads)]


def _stable(fn, args, kwargs, expected, name, forbidden, mistakes):
    out = run_student(fn, *args, name=name, forbidden=forbidden, **(kwargs or {}))
    finite = isinstance(out, torch.Tensor) and bool(torch.isfinite(out.detach()).all())
    if finite and any(close(out, v, 1e-3, 1e-3) for v in mistakes.values()):  # a known mistake, seen only here
        compare(out, expected, name, mistakes, rtol=1e-3, atol=1e-3)
    if not isinstance(out, torch.Tensor) or not bool(torch.isfinite(out.detach()).all()) \
            or not close(out, expected, rtol=1e-3, atol=1e-3):
        shown = fmt(out) if isinstance(out, torch.Tensor) else repr(out)
        raise Mistake(f"`{name}` is right for moderate logits but numerically unstable for confident ones: "
                      f"with logits like ±40 it gives {shown}, expected {fmt(expected)} (σ(40) rounds to 1, so "
                      f"log(1 − σ) = −inf, and BCE on probabilities clamps). {_STABLE_HINT}")


# ----------------------------------------------------------------------------- noise
def check_sample_noise(sample_noise, hidden: bool = False) -> None:
    r"""z ~ N(0, I) of shape (n, dim): shape, independence and Gaussian statistics."""
    name = "sample_noise"
    forbidden = [ref.sample_noise]
    n, dim = (3000, 20) if hidden else (4000, 8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        shapes = [(1, 3), (5, 1)] if hidden else [(2, 3)]
        for a, b in shapes:
            small = run_student(sample_noise, a, b, name=name, forbidden=forbidden)
            if isinstance(small, torch.Tensor) and tuple(small.shape) == (b, a) and a != b:
                raise Mistake(f"`{name}({a}, {b})` returned shape {tuple(small.shape)}: rows and columns are "
                              f"swapped. One noise vector per row: shape (n, dim) = ({a}, {b}).")
            expect_tensor(small, f"{name}({a}, {b})", shape=(a, b))
        z = expect_tensor(run_student(sample_noise, n, dim, name=name, forbidden=forbidden), name, shape=(n, dim))
        z2 = run_student(sample_noise, n, dim, name=name, forbidden=forbidden)
    if not z.is_floating_point():
        raise Mistake(f"`{name}` should return floating-point noise, got {z.dtype}.")
    z = z.detach().double().cpu()
    if isinstance(z2, torch.Tensor) and close(z, z2):
        raise Mistake(f"`{name}` returned the same numbers on two calls: draw fresh noise every call "
                      "(no fixed tensor, no manual_seed inside the function).")
    if close(z, z[:1].expand_as(z)):
        raise Mistake(f"`{name}`: every row is the same vector. Draw all n·dim numbers independently "
                      "(torch.randn(n, dim)), not one vector repeated.")
    mean, std = z.mean().item(), z.std().item()
    if z.min() >= 0 and z.max() <= 1:
        raise Mistake(f"`{name}` looks uniform on [0, 1) (mean {mean:.2f}, std {std:.2f}): torch.rand draws "
                      "uniform numbers. This lab's prior is p_z = N(0, I): use torch.randn.")
    if z.abs().max() <= 1.0 + 1e-9:
        raise Mistake(f"`{name}` looks uniform on [−1, 1] (std {std:.2f}): the prior is the standard normal "
                      "N(0, I), so use torch.randn.")
    if abs(mean) > 0.05:
        raise Mistake(f"`{name}` has mean {mean:.3f}; N(0, I) noise has mean 0.")
    if abs(std - 1) > 0.05:
        raise Mistake(f"`{name}` has standard deviation {std:.3f}; N(0, I) noise has standard deviation 1 "
                      "(don't scale it).")
    kurt = (((z - mean) / std) ** 4).mean().item()
    if abs(kurt - 3) > 0.3:
        raise Mistake(f"`{name}` has mean 0 and std 1 but is not Gaussian (kurtosis {kurt:.2f}, a normal "
                      "distribution has 3): use torch.randn.")
    col_mean, col_std = z.mean(0), z.std(0)
    if col_mean.abs().max() > 0.12 or (col_std - 1).abs().max() > 0.12:
        raise Mistake(f"`{name}`: some dimensions have the wrong mean/std ({fmt(col_mean)} / {fmt(col_std)}); "
                      "every coordinate should be N(0, 1).")
    corr = torch.corrcoef(z.T) - torch.eye(dim, dtype=z.dtype)
    if corr.abs().max() > 0.15:
        raise Mistake(f"`{name}`: the {dim} coordinates are correlated (|corr| up to {corr.abs().max():.2f}); "
                      "N(0, I) has independent coordinates.")
    ok(f"sample_noise{' (hidden)' if hidden else ''}: shape (n, dim), mean {mean:+.3f}, std {std:.3f}, "
       f"kurtosis {kurt:.2f} — looks like N(0, I).")


# ----------------------------------------------------------------------------- discriminator loss
def _d_mistakes(r, f):
    return {
        "real/fake labels are swapped — real samples get label 1, i.e. BCE(D(x), 1) = −log D(x), and "
        "fakes get label 0, i.e. BCE(D(G(z)), 0) = −log(1 − D(G(z))).": 0.5 * _sp(r).mean() + 0.5 * _sp(-f).mean(),
        "sigmoid applied twice: the inputs are already logits, and F.binary_cross_entropy_with_logits applies "
        "σ itself — don't pass torch.sigmoid(logits) to it.":
            0.5 * _sp(-_sig(r)).mean() + 0.5 * _sp(_sig(f)).mean(),
        "you summed over the batch; each expectation E[·] is a batch MEAN (mean vs sum).":
            0.5 * _sp(-r).sum() + 0.5 * _sp(f).sum(),
        "the ½ factors are missing: J_D = ½·BCE(D(x), 1) + ½·BCE(D(G(z)), 0).": _sp(-r).mean() + _sp(f).mean(),
        "the sign is flipped: you returned what D maximises (½·V(D, G)); the loss to MINIMISE is its negative.":
            -(0.5 * _sp(-r).mean() + 0.5 * _sp(f).mean()),
        "you averaged over real and fake samples together (one mean over torch.cat); the two terms are separate "
        "batch means, each weighted ½, whatever the batch sizes.": torch.cat([_sp(-r), _sp(f)]).mean(),
        "only the real term is there: add ½·BCE(D(G(z)), 0) for the fakes.": 0.5 * _sp(-r).mean(),
        "only the fake term is there: add ½·BCE(D(x), 1) for the real samples.": 0.5 * _sp(f).mean(),
    }


def check_discriminator_loss(discriminator_loss, hidden: bool = False) -> None:
    r"""J_D = ½·BCE(D(x), 1) + ½·BCE(D(G(z)), 0) from logits: value, gradient, stability."""
    name = "discriminator_loss"
    forbidden = [ref.discriminator_loss]
    dtype = torch.float64 if hidden else torch.float32
    nr, nf = (1, 5) if hidden else (6, 10)
    r = 2.0 * fixed_normal(nr, seed=31 if hidden else 1, dtype=dtype) + 0.3  # real logits (B_r,)
    f = 2.0 * fixed_normal(nf, seed=32 if hidden else 2, dtype=dtype) - 0.5  # fake logits (B_f,)
    out, (g_r, g_f) = _grad_of(discriminator_loss, (r, f), None, name, forbidden)
    expected = ref.discriminator_loss(r, f)
    compare(out, expected, name, _d_mistakes(r, f))
    compare(g_r, 0.5 * (_sig(r) - 1) / nr, name, what=" (gradient w.r.t. real_logits)")
    compare(g_f, 0.5 * _sig(f) / nf, name, what=" (gradient w.r.t. fake_logits)")
    r_big = torch.tensor([30.0, -120.0, 4.0], dtype=dtype)
    f_big = torch.tensor([-30.0, 40.0, 120.0, 0.5], dtype=dtype)
    _stable(discriminator_loss, (r_big, f_big), None, ref.discriminator_loss(r_big, f_big), name, forbidden,
            _d_mistakes(r_big, f_big))
    ok(f"discriminator_loss{' (hidden)' if hidden else ''}: matches ½·BCE(D(x),1) + ½·BCE(D(G(z)),0) "
       f"(J_D = {out.item():.4f}), its gradient, and stays finite for confident logits.")


# ----------------------------------------------------------------------------- generator losses
def _g_mistakes(l, kind):
    ns, mm = _sp(-l).mean(), -_sp(l).mean()  # −log D,  log(1 − D)
    if kind == "nonsaturating":
        return {
            "for kind='nonsaturating' you implemented the minimax loss log(1 − D(G(z))). The non-saturating "
            "generator minimises −log D(G(z)) instead.": mm,
            "wrong sign: the non-saturating loss is −log D(G(z)) (≥ 0); you returned log D(G(z)).": -ns,
            "you returned −log(1 − D(G(z))), the discriminator's fake-label term. The generator wants D to say "
            "'real': −log D(G(z)).": -mm,
            "sigmoid applied twice: the input is already a logit.": _sp(-_sig(l)).mean(),
            "you summed over the batch; E_z[·] is a batch MEAN (mean vs sum).": _sp(-l).sum(),
            "your loss is half the expected one: this lab uses J_G = −E_z[log D(G(z))] without the ½ "
            "(a slide writes ½; a constant only rescales the gradient, but the check needs one convention).":
                0.5 * ns,
        }
    return {
        "for kind='minimax' you implemented the non-saturating loss −log D(G(z)). The minimax generator "
        "minimises E_z[log(1 − D(G(z)))], i.e. −J_D up to a factor and a constant.": ns,
        "wrong sign of the minimax loss: the generator MINIMISES log(1 − D(G(z))) (a value ≤ 0); you returned "
        "−log(1 − D(G(z))), which the discriminator minimises.": -mm,
        "you returned log D(G(z)); the minimax loss is log(1 − D(G(z))).": -ns,
        "sigmoid applied twice: the input is already a logit.": -_sp(_sig(l)).mean(),
        "you summed over the batch; E_z[·] is a batch MEAN (mean vs sum).": -_sp(l).sum(),
        "your loss is half the expected one: use J_G = E_z[log(1 − D(G(z)))] without the ½ "
        "(−J_D has a ½ in front; this lab drops the constant factor).": 0.5 * mm,
    }


def check_generator_loss(generator_loss, hidden: bool = False) -> None:
    r"""Both generator losses from logits: minimax log(1 − D) and non-saturating −log D."""
    name = "generator_loss"
    forbidden = [ref.generator_loss]
    dtype = torch.float64 if hidden else torch.float32
    n = 3 if hidden else 8
    l = 2.0 * fixed_normal(n, seed=41 if hidden else 3, dtype=dtype) - 1.0  # fake logits (B,)
    sig = _sig(l)
    for kind, grad in (("nonsaturating", -(1 - sig) / n), ("minimax", -sig / n)):
        label = f"{name}(…, kind={kind!r})"
        out, (g,) = _grad_of(generator_loss, (l,), {"kind": kind}, label, forbidden)
        compare(out, ref.generator_loss(l, kind), label, _g_mistakes(l, kind))
        compare(g, grad, label, what=" (gradient w.r.t. the logits)")
        big = torch.tensor([-120.0, 40.0, 0.0], dtype=dtype)
        _stable(generator_loss, (big,), {"kind": kind}, ref.generator_loss(big, kind), label, forbidden,
                _g_mistakes(big, kind))
    if hidden:
        default = _scalar(generator_loss, (l,), name, forbidden)
        if not close(default, ref.generator_loss(l)):
            raise Mistake(f"`{name}(fake_logits)` without `kind` should default to the non-saturating loss.")
    ok(f"generator_loss{' (hidden)' if hidden else ''}: minimax E[log(1 − D(G(z)))] and non-saturating "
       "−E[log D(G(z))] both match, with the right gradients and stable for confident logits.")
