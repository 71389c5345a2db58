r"""Checks for lab 3 (GANs): noise, the discriminator loss, both generator losses, the training step.

Every check uses fixed inputs (no RNG stream) except :func:`check_sample_noise`, which judges the
student's random numbers by statistics over 32 000 draws taken inside a forked, seeded RNG (the
notebook's own RNG state is left untouched).
"""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from .. import gan as ref
from ._core import Mistake, close, compare, expect_tensor, fixed_normal, fmt, ok, run_student

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
        "minimises E_z[log(1 − D(G(z)))], i.e. −J_D up to a constant.": ns,
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


# ----------------------------------------------------------------------------- training step
class _SpySGD(torch.optim.SGD):
    """Plain SGD that logs zero_grad/step calls (and snapshots D right after its step)."""

    def __init__(self, params, lr, log, tag, after_step=None):
        super().__init__(params, lr=lr)
        self._log, self._tag, self._after = log, tag, after_step

    def zero_grad(self, set_to_none: bool = True):
        self._log.append(f"{self._tag}.zero_grad")
        return super().zero_grad(set_to_none)

    def step(self, closure=None):
        self._log.append(f"{self._tag}.step")
        out = super().step(closure)
        if self._after is not None:
            self._after()
        return out


def _flat(module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def _game(hidden: bool):
    dtype = torch.float64 if hidden else torch.float32
    z_dim, b = (3, 1) if hidden else (4, 6)
    with torch.random.fork_rng(devices=[]):  # default init draws from the RNG: leave the notebook's stream alone
        G, D = ref.MLPGenerator(z_dim, 2, hidden=8).to(dtype), ref.MLPDiscriminator(2, hidden=8).to(dtype)
    for i, p in enumerate(list(G.parameters()) + list(D.parameters())):
        with torch.no_grad():
            p.copy_(0.6 * fixed_normal(*p.shape, seed=60 + i, dtype=dtype))
            p.grad = 0.3 * fixed_normal(*p.shape, seed=90 + i, dtype=dtype)  # stale gradient of a previous step
    real = 1.5 * fixed_normal(b, 2, seed=70, dtype=dtype)  # (B, 2)
    z = fixed_normal(b, z_dim, seed=71, dtype=dtype)  # (B, z_dim)
    return G, D, real, z


def _variant(hidden, kind, *, zero_d=True, zero_g=True, g_kind=None, lr=0.1):
    """The reference step or one known mistake, on a fresh copy of the fixed game."""
    G, D, real, z = _game(hidden)
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=lr), torch.optim.SGD(D.parameters(), lr=lr)
    fake = G(z)
    if zero_d:
        opt_d.zero_grad()
    loss_d = ref.discriminator_loss(D(real), D(fake.detach()))
    loss_d.backward()
    opt_d.step()
    if zero_g:
        opt_g.zero_grad()
    loss_g = ref.generator_loss(D(fake), g_kind or kind)
    loss_g.backward()
    opt_g.step()
    return _flat(G), _flat(D), torch.tensor([loss_d.item(), loss_g.item()], dtype=torch.float64)


def _loss_kwargs(fn) -> dict:
    """Pass the reference losses when train_step takes d_loss/g_loss, so this part is graded on its own."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in (("d_loss", ref.discriminator_loss), ("g_loss", ref.generator_loss)) if k in params}


def check_train_step(train_step, hidden: bool = False) -> None:
    r"""One alternating round: D step on real + detached fakes, then a G step that only moves θ_G."""
    name = "train_step"
    forbidden = [ref.train_step, ref.train_ring]
    kind = "minimax" if hidden else "nonsaturating"
    lr = 0.1
    G, D, real, z = _game(hidden)
    log: list[str] = []
    d_after: list[torch.Tensor] = []
    opt_g = _SpySGD(G.parameters(), lr, log, "opt_g")
    opt_d = _SpySGD(D.parameters(), lr, log, "opt_d", after_step=lambda: d_after.append(_flat(D)))
    hooks = [p.register_hook(lambda g: log.append("G.grad")) for p in G.parameters()]
    try:
        out = run_student(train_step, G, D, opt_g, opt_d, real, z, name=name, forbidden=forbidden, kind=kind,
                          **_loss_kwargs(train_step))
    except Mistake as err:
        if "backward through the graph a second time" in str(err.__cause__ or ""):
            raise Mistake(f"`{name}`: backward went through G's graph twice. The D step must use "
                          "D(fake.detach()) so J_D does not reach G (missing detach in the discriminator step)."
                          ) from None
        if "modified by an inplace operation" in str(err.__cause__ or ""):
            raise Mistake(f"`{name}`: the G step backpropagated through D's output computed BEFORE opt_d.step() "
                          "changed D's weights. Alternate: after opt_d.step(), recompute D(fake) with the "
                          "updated D for the generator loss.") from None
        raise
    finally:
        for h in hooks:
            h.remove()
    steps = [e for e in log if e.endswith(".step")]
    if "opt_d.step" not in steps:
        raise Mistake(f"`{name}` never called opt_d.step(): the discriminator was not updated.")
    if "opt_g.step" not in steps:
        raise Mistake(f"`{name}` never called opt_g.step(): the generator was not updated.")
    if steps.index("opt_g.step") < steps.index("opt_d.step"):
        raise Mistake(f"`{name}` updated G before D. This lab alternates D first (on real and detached fakes), "
                      "then G against the updated D.")
    if "G.grad" in log[:log.index("opt_d.step")]:
        raise Mistake(f"`{name}`: the generator's parameters received gradient from the discriminator loss "
                      "(missing detach in the discriminator step). Use D(fake.detach()) inside J_D.")
    g_ref, d_ref, losses_ref = _variant(hidden, kind, lr=lr)
    if steps.count("opt_d.step") > 1 or not close(_flat(D), d_after[0]):
        raise Mistake(f"`{name}`: the generator step updated D's parameters (D changed after its own step — "
                      "e.g. opt_d.step() after the generator loss's backward). Only opt_g may step in the G step.")
    if not close(_flat(D), d_ref):
        if close(_flat(D), _variant(hidden, kind, zero_d=False, lr=lr)[1]):
            raise Mistake(f"`{name}`: D's update used stale gradients — call opt_d.zero_grad() before J_D's "
                          "backward (the previous G step left gradients in D's parameters).")
        raise Mistake(f"`{name}`: D's parameters after the step differ from the reference. Check the D half: "
                      "J_D = discriminator_loss(D(real), D(fake.detach())), backward, opt_d.step().")
    if not close(_flat(G), g_ref):
        if close(_flat(G), _flat(_game(hidden)[0])):
            raise Mistake(f"`{name}`: G's parameters did not change. The G step must backpropagate through "
                          "D(G(z)) — don't detach the fakes there — and call opt_g.step().")
        known = {
            "G's update used stale gradients — call opt_g.zero_grad() before the generator loss's backward.":
                _variant(hidden, kind, zero_g=False, lr=lr)[0],
            f"the `kind` argument is ignored: called with kind={kind!r}, your G step used the other loss.":
                _variant(hidden, kind, g_kind=("nonsaturating" if kind == "minimax" else "minimax"), lr=lr)[0],
        }
        compare(_flat(G), g_ref, name, known, what=" (G's parameters after the step)")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise Mistake(f"`{name}` should return the two losses (loss_d, loss_g), got {type(out).__name__}.")
    try:
        got = torch.tensor([float(out[0]), float(out[1])], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise Mistake(f"`{name}` should return two numbers (loss_d, loss_g), e.g. loss_d.item(), loss_g.item().") from None
    compare(got, losses_ref, name, {"the two losses are returned in the wrong order: return (loss_d, loss_g).":
                                    losses_ref.flip(0)}, what=" (returned losses)")
    ok(f"train_step{' (hidden)' if hidden else ''}: D then G, fakes detached for D, only θ_G moves in the G step "
       f"(kind={kind!r}, loss_d = {got[0]:.4f}, loss_g = {got[1]:.4f}).")
