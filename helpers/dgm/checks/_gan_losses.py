r"""The lab-3 checks of the two losses (re-exported by :mod:`dgm.checks.gan`).

Evidence of a loss: its value on moderate logits, d loss / d logits (the check creates the leaves),
its value on confident logits (±40 … ±150: the stability test) and, when it raised on the logits,
its value on inputs inside (0, 1) — a loss that works there but fails on logits treats them as
probabilities (``F.binary_cross_entropy`` on logits). The judge recomputes everything from logits
it regenerates itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .. import gan as ref
from ._check import VISIBLE, Check, tensor_evidence
from ._core import Mistake, close, compare, fixed_normal, fmt, run_student

__all__ = ["DiscriminatorLoss", "GeneratorLoss", "check_discriminator_loss", "check_generator_loss"]

_sp, _sig = F.softplus, torch.sigmoid
_STABLE_HINT = ("Compute it from the logits with F.softplus / F.logsigmoid or "
                "F.binary_cross_entropy_with_logits: −log σ(ℓ) = softplus(−ℓ), −log(1 − σ(ℓ)) = softplus(ℓ).")
KINDS = ("nonsaturating", "minimax")


# ----------------------------------------------------------------------------- kernel side
def loss_evidence(fn, args: tuple, kwargs: dict, name: str, forbidden, grads: bool = True) -> dict:
    """Call a loss on fresh leaf copies of ``args``: its value, whether it carries a graph, d out / d args.

    A crash is evidence too (its message, for the student); the loss is then called once more on
    inputs squashed into (0, 1), so the judge can see whether it only works on probabilities.
    """
    leaves = [a.detach().clone().requires_grad_(grads) for a in args]
    try:
        out = run_student(fn, *leaves, name=name, forbidden=forbidden, **kwargs)
    except Mistake as m:
        if m.id != "crash":
            raise
        ev = {"crash": str(m)[:2000]}
        try:
            probe = run_student(fn, *[_sig(a.detach()) for a in args], name=name, forbidden=forbidden, **kwargs)
            ev["probe"] = probe.detach() if isinstance(probe, torch.Tensor) and probe.numel() <= 4096 else None
        except Mistake as m2:
            if m2.id != "crash":
                raise
            ev["probe"] = None
        return ev
    if not isinstance(out, torch.Tensor):
        return {"type": type(out).__name__}
    if out.numel() > 2**20:
        return {"type": "Tensor", "shape": list(out.shape)}
    ev = {"type": "Tensor", "out": out.detach(), "requires_grad": bool(out.requires_grad)}
    if grads and out.requires_grad and out.dim() == 0:
        try:
            gs = torch.autograd.grad(out, leaves, allow_unused=True)
        except RuntimeError:  # a graph the student cut in a way autograd rejects: no gradient to report
            gs = [None] * len(leaves)
        ev["grads"] = [None if g is None else g.detach() for g in gs]
    return ev


# ----------------------------------------------------------------------------- grader side
@dataclass
class LossCase:
    """What one loss evaluation should give, computed by the judge from its own inputs."""
    label: str                     # how the student's call is named in messages
    args: tuple                    # the moderate logits
    value: torch.Tensor            # reference value on them
    grads: list                    # reference d value / d args
    mistakes: dict                 # {(id, message): value} of known mistakes on args
    big_value: torch.Tensor        # reference value on confident logits
    big_mistakes: dict = field(default_factory=dict)


def judge_loss(case: LossCase, main, big) -> None:
    """Raise the first mistake the evidence of one loss shows (value, gradient, stability)."""
    name = case.label
    if not isinstance(main, dict) or not isinstance(big, dict):
        raise Mistake(f"`{name}`: its result could not be judged.", id="malformed-evidence")
    if "crash" in main:
        if isinstance(main.get("probe"), torch.Tensor):  # works on numbers in (0, 1), fails on logits
            raise Mistake(f"`{name}` passed logits to F.binary_cross_entropy (or took their log), which only "
                          "works for probabilities in [0, 1]: it ran on inputs in (0, 1) but failed on logits. "
                          "The discriminator outputs logits: use F.binary_cross_entropy_with_logits.",
                          id="bce-on-logits")
        raise Mistake(str(main["crash"])[:2000], id="crash")
    out = tensor_evidence(main, name)
    if out.dim() != 0:
        n = case.args[0].shape[0]
        hint = (" — one loss per sample: average over the batch" if out.dim() == 1 and out.shape[0] == n
                else "")
        raise Mistake(f"`{name}` should return a single number (a 0-dim tensor), got shape "
                      f"{tuple(out.shape)}{hint}.", id="not-scalar")
    if not bool(torch.isfinite(out.double())):
        raise Mistake(f"`{name}` returned {out.item()} on moderate logits: check for log(0).", id="non-finite")
    compare(out, case.value, name, case.mistakes, rtol=1e-4, atol=1e-5)
    grads = main.get("grads")
    if not main.get("requires_grad") or not isinstance(grads, list) or len(grads) != len(case.grads) \
            or all(g is None for g in grads):
        raise Mistake(f"`{name}` returned a value that is not connected to the logits (no gradient can flow). "
                      "Don't use .item(), .detach(), numpy or torch.tensor(...) inside the loss.", id="no-gradient")
    for i, (g, g_ref) in enumerate(zip(grads, case.grads)):
        g = torch.zeros_like(g_ref) if g is None else g
        if not isinstance(g, torch.Tensor) or not close(g, g_ref, 1e-4, 1e-6):
            raise Mistake(f"`{name}` has the right value but the wrong gradient with respect to its argument "
                          f"{i + 1} (yours {fmt(g) if isinstance(g, torch.Tensor) else '?'}, expected "
                          f"{fmt(g_ref)}): compute it with differentiable torch operations on the logits.",
                          id="wrong-gradient")
    _judge_stable(case, big)


def _judge_stable(case: LossCase, big: dict) -> None:
    name, expected = case.label, case.big_value
    out = big.get("out")
    finite = isinstance(out, torch.Tensor) and out.dim() == 0 and bool(torch.isfinite(out.double()))
    if finite and close(out, expected, 1e-3, 1e-3):
        return
    if finite and any(close(out, v, 1e-3, 1e-3) for v in case.big_mistakes.values()):
        compare(out, expected, name, case.big_mistakes, rtol=1e-3, atol=1e-3)  # a mistake seen only here
    shown = fmt(out) if isinstance(out, torch.Tensor) else ("an error" if "crash" in big else big.get("type", "?"))
    raise Mistake(f"`{name}` is right for moderate logits but numerically unstable for confident ones: "
                  f"with logits like ±40 it gives {shown}, expected {fmt(expected)} (σ(40) rounds to 1, so "
                  f"log(1 − σ) = −inf, and BCE on probabilities clamps). {_STABLE_HINT}", id="numerically-unstable")


# ----------------------------------------------------------------------------- discriminator loss
def _d_mistakes(r, f) -> dict:
    return {
        ("labels-swapped", "real/fake labels are swapped — real samples get label 1, i.e. BCE(D(x), 1) = "
         "−log D(x), and fakes get label 0, i.e. BCE(D(G(z)), 0) = −log(1 − D(G(z)))."):
            0.5 * _sp(r).mean() + 0.5 * _sp(-f).mean(),
        ("sigmoid-twice", "sigmoid applied twice: the inputs are already logits, and "
         "F.binary_cross_entropy_with_logits applies σ itself — don't pass torch.sigmoid(logits) to it."):
            0.5 * _sp(-_sig(r)).mean() + 0.5 * _sp(_sig(f)).mean(),
        ("sum-not-mean", "you summed over the batch; each expectation E[·] is a batch MEAN (mean vs sum)."):
            0.5 * _sp(-r).sum() + 0.5 * _sp(f).sum(),
        ("missing-half", "the ½ factors are missing: J_D = ½·BCE(D(x), 1) + ½·BCE(D(G(z)), 0)."):
            _sp(-r).mean() + _sp(f).mean(),
        ("sign-flipped", "the sign is flipped: you returned what D maximises (½·V(D, G)); the loss to MINIMISE "
         "is its negative."): -(0.5 * _sp(-r).mean() + 0.5 * _sp(f).mean()),
        ("pooled-mean", "you averaged over real and fake samples together (one mean over torch.cat); the two "
         "terms are separate batch means, each weighted ½, whatever the batch sizes."):
            torch.cat([_sp(-r), _sp(f)]).mean(),
        ("only-real-term", "only the real term is there: add ½·BCE(D(G(z)), 0) for the fakes."): 0.5 * _sp(-r).mean(),
        ("only-fake-term", "only the fake term is there: add ½·BCE(D(x), 1) for the real samples."):
            0.5 * _sp(f).mean(),
    }


class DiscriminatorLoss(Check):
    r"""``discriminator_loss(real_logits, fake_logits)`` = ½·BCE(D(x), 1) + ½·BCE(D(G(z)), 0) from logits."""
    name = "gan.discriminator_loss"
    student = "discriminator_loss"
    passed = "matches ½·BCE(D(x),1) + ½·BCE(D(G(z)),0), its gradient, and stays finite for confident logits."

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            nr, nf, dtype, a, b, s = 6, 10, torch.float32, 30.0, 120.0, 1
        else:  # hidden: batch sizes (always different), dtype and confident logits from the seed
            nr = 1 + seed % 8
            nf = nr + 1 + (seed // 8) % 9
            dtype = torch.float64 if seed % 2 else torch.float32
            a, b, s = 30.0 + seed % 60, 105.0 + (seed // 3) % 40, 100 + seed % 1000
        r = 2.0 * fixed_normal(nr, seed=s, dtype=dtype) + 0.3  # real logits (B_r,)
        f = 2.0 * fixed_normal(nf, seed=s + 1, dtype=dtype) - 0.5  # fake logits (B_f,)
        r_big = torch.tensor([a, -b, 4.0], dtype=dtype)  # confident logits: σ(±a) rounds to 0 or 1
        f_big = torch.tensor([-a, 40.0 + s % 20, b, 0.5], dtype=dtype)
        return {"r": r, "f": f, "r_big": r_big, "f_big": f_big}

    def run(self, fn, inputs: dict) -> dict:
        forbidden = [ref.discriminator_loss]
        return {"main": loss_evidence(fn, (inputs["r"], inputs["f"]), {}, self.student, forbidden),
                "big": loss_evidence(fn, (inputs["r_big"], inputs["f_big"]), {}, self.student, forbidden,
                                     grads=False)}

    def judge(self, inputs: dict, ev: dict) -> None:
        r, f, rb, fb = inputs["r"], inputs["f"], inputs["r_big"], inputs["f_big"]
        grads = [0.5 * (_sig(r) - 1) / len(r), 0.5 * _sig(f) / len(f)]  # ∂J_D/∂ℓ_real, ∂J_D/∂ℓ_fake
        judge_loss(LossCase(self.student, (r, f), ref.discriminator_loss(r, f), grads, _d_mistakes(r, f),
                            ref.discriminator_loss(rb, fb), _d_mistakes(rb, fb)), ev.get("main"), ev.get("big"))


check_discriminator_loss = DiscriminatorLoss()


# ----------------------------------------------------------------------------- generator losses
def _g_mistakes(l, kind: str) -> dict:
    ns, mm = _sp(-l).mean(), -_sp(l).mean()  # −log D,  log(1 − D)
    if kind == "nonsaturating":
        return {
            ("minimax-for-nonsaturating", "for kind='nonsaturating' you implemented the minimax loss "
             "log(1 − D(G(z))). The non-saturating generator minimises −log D(G(z)) instead."): mm,
            ("wrong-sign", "wrong sign: the non-saturating loss is −log D(G(z)) (≥ 0); you returned "
             "log D(G(z))."): -ns,
            ("fake-label-term", "you returned −log(1 − D(G(z))), the discriminator's fake-label term. The "
             "generator wants D to say 'real': −log D(G(z))."): -mm,
            ("sigmoid-twice", "sigmoid applied twice: the input is already a logit."): _sp(-_sig(l)).mean(),
            ("sum-not-mean", "you summed over the batch; E_z[·] is a batch MEAN (mean vs sum)."): _sp(-l).sum(),
            ("half-factor", "your loss is half the expected one: this lab uses J_G = −E_z[log D(G(z))] without "
             "the ½ (a slide writes ½; a constant only rescales the gradient, but the check needs one "
             "convention)."): 0.5 * ns,
        }
    return {
        ("nonsaturating-for-minimax", "for kind='minimax' you implemented the non-saturating loss −log D(G(z)). "
         "The minimax generator minimises E_z[log(1 − D(G(z)))], i.e. −J_D up to a factor and a constant."): ns,
        ("wrong-sign", "wrong sign of the minimax loss: the generator MINIMISES log(1 − D(G(z))) (a value ≤ 0); "
         "you returned −log(1 − D(G(z))), which the discriminator minimises."): -mm,
        ("log-d-for-minimax", "you returned log D(G(z)); the minimax loss is log(1 − D(G(z)))."): -ns,
        ("sigmoid-twice", "sigmoid applied twice: the input is already a logit."): -_sp(_sig(l)).mean(),
        ("sum-not-mean", "you summed over the batch; E_z[·] is a batch MEAN (mean vs sum)."): -_sp(l).sum(),
        ("half-factor", "your loss is half the expected one: use J_G = E_z[log(1 − D(G(z)))] without the ½ "
         "(−J_D has a ½ in front; this lab drops the constant factor)."): 0.5 * mm,
    }


class GeneratorLoss(Check):
    r"""``generator_loss(fake_logits, kind="nonsaturating")``: minimax log(1 − D) or non-saturating −log D."""
    name = "gan.generator_loss"
    student = "generator_loss"
    passed = ("minimax E[log(1 − D(G(z)))] and non-saturating −E[log D(G(z))] both match, with the right "
              "gradients, stable for confident logits, non-saturating by default.")

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            n, dtype, a, b, s = 8, torch.float32, 40.0, 120.0, 3
        else:
            n, dtype = 2 + seed % 9, (torch.float64 if seed % 2 else torch.float32)
            a, b, s = 40.0 + seed % 20, 105.0 + (seed // 3) % 40, 200 + seed % 1000
        l = 2.0 * fixed_normal(n, seed=s, dtype=dtype) - 1.0  # fake logits (B,)
        return {"l": l, "big": torch.tensor([-b, a, 0.0], dtype=dtype)}

    def run(self, fn, inputs: dict) -> dict:
        forbidden, ev = [ref.generator_loss], {}
        for kind in KINDS:
            label = f"{self.student}(…, kind={kind!r})"
            ev[kind] = {"main": loss_evidence(fn, (inputs["l"],), {"kind": kind}, label, forbidden),
                        "big": loss_evidence(fn, (inputs["big"],), {"kind": kind}, label, forbidden, grads=False)}
        ev["default"] = loss_evidence(fn, (inputs["l"],), {}, f"{self.student}(fake_logits)", forbidden,
                                      grads=False)
        return ev

    def judge(self, inputs: dict, ev: dict) -> None:
        l, big = inputs["l"], inputs["big"]
        grads = {"nonsaturating": -(1 - _sig(l)) / len(l), "minimax": -_sig(l) / len(l)}  # ∂J_G/∂ℓ
        for kind in KINDS:
            part = ev.get(kind)
            if not isinstance(part, dict):
                raise Mistake(f"`{self.student}`: its result could not be judged.", id="malformed-evidence")
            judge_loss(LossCase(f"{self.student}(…, kind={kind!r})", (l,), ref.generator_loss(l, kind),
                                [grads[kind]], _g_mistakes(l, kind), ref.generator_loss(big, kind),
                                _g_mistakes(big, kind)), part.get("main"), part.get("big"))
        default = ev.get("default")
        out = default.get("out") if isinstance(default, dict) else None
        if not isinstance(out, torch.Tensor) or not close(out, ref.generator_loss(l)):
            raise Mistake(f"`{self.student}(fake_logits)` without `kind` should default to the non-saturating "
                          "loss: keep the signature generator_loss(fake_logits, kind=\"nonsaturating\").",
                          id="wrong-default")


check_generator_loss = GeneratorLoss()
