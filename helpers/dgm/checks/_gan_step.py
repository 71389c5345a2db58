r"""The lab-3 check of one alternating GAN round (re-exported by :mod:`dgm.checks.gan`).

The student's ``train_step`` runs on tiny MLPs with fixed weights and fixed stale gradients, with
spy SGD optimisers that log every ``zero_grad``/``step`` and hooks that log when θ_G receives a
gradient, so the order of the updates — not only the result — can be judged.
"""
from __future__ import annotations

import inspect

import torch

from .. import gan as ref
from ._core import Mistake, close, compare, fixed_normal, ok, run_student

__all__ = ["check_train_step"]


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
        raise Mistake(f"`{name}` should return two numbers (loss_d, loss_g), e.g. loss_d.item(), "
                      "loss_g.item().") from None
    compare(got, losses_ref, name, {"the two losses are returned in the wrong order: return (loss_d, loss_g).":
                                    losses_ref.flip(0)}, what=" (returned losses)")
    ok(f"train_step{' (hidden)' if hidden else ''}: D then G, fakes detached for D, only θ_G moves in the G step "
       f"(kind={kind!r}, loss_d = {got[0]:.4f}, loss_g = {got[1]:.4f}).")
