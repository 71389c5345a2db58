r"""The lab-3 check of one alternating GAN round (re-exported by :mod:`dgm.checks.gan`).

The student's ``train_step`` runs on tiny MLPs with fixed weights and fixed stale gradients, with
spy SGD optimisers that log every ``zero_grad``/``step`` and spy losses (the reference J_D and J_G,
passed as ``d_loss``/``g_loss``: error carried forward — a bug in the student's losses costs their
own cells, not this one). Evidence: the parameters of G and D after the step, D right after its
own step, the returned losses, the order of the calls, and what each loss was handed (its logits,
the ``kind``, and whether those logits carry a graph back to θ_G). The judge replays the reference
step on the same networks, regenerated from the seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import gan as ref
from ._check import VISIBLE, Check
from ._core import Mistake, close, fixed_normal, run_student

__all__ = ["TrainStep", "check_train_step"]

KINDS = ("nonsaturating", "minimax")
_MAX_LOG, _MAX_CALLS = 200, 8


@dataclass(frozen=True)
class Game:
    """The hyper-parameters of one case: tiny G: R^z_dim → R², D: R² → logit, one SGD round."""
    z_dim: int
    batch: int
    width: int
    lr: float
    kind: str
    dtype: torch.dtype
    s: int  # seed offset of the fixed weights


@dataclass(frozen=True)
class StepResult:
    """One round of the reference (or of a known mistake) on the case's networks."""
    G: torch.Tensor            # θ_G after the round, flat
    D: torch.Tensor            # θ_D after the round, flat
    losses: torch.Tensor       # (J_D, J_G) before each update, float64 (2,)
    real_logits: torch.Tensor  # D₀(x)          (B,)
    fake_logits: torch.Tensor  # D₀(G₀(z))      (B,)  — also the stale logits of the G step
    g_logits: torch.Tensor     # D₁(G₀(z))      (B,)  — the updated D judging the same fakes


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


def nets(inputs: dict):
    """Fresh G and D with the case's fixed weights and stale gradients of 'a previous step'."""
    g = inputs["game"]
    with torch.random.fork_rng(devices=[]):  # default init draws from the RNG: leave the notebook's stream alone
        G = ref.MLPGenerator(g.z_dim, 2, hidden=g.width).to(g.dtype)
        D = ref.MLPDiscriminator(2, hidden=g.width).to(g.dtype)
    for i, p in enumerate(list(G.parameters()) + list(D.parameters())):
        with torch.no_grad():
            p.copy_(0.6 * fixed_normal(*p.shape, seed=100 * g.s + i, dtype=g.dtype))
        p.grad = 0.3 * fixed_normal(*p.shape, seed=100 * g.s + 50 + i, dtype=g.dtype)
    return G, D


def _zero_grad(net) -> None:
    """What ``torch.optim.SGD.zero_grad()`` does (set_to_none)."""
    for p in net.parameters():
        p.grad = None


@torch.no_grad()
def _sgd_step(net, lr: float) -> None:
    r"""θ ← θ − lr·∇θ, as plain ``torch.optim.SGD.step()``: the grader's judge stays free of torch.optim, whose
    first step imports torch._dynamo (≈ 2 s in every fresh grading process)."""
    for p in net.parameters():
        if p.grad is not None:
            p.add_(p.grad, alpha=-lr)


def reference_step(inputs: dict, *, zero_d=True, zero_g=True, g_kind=None) -> StepResult:
    """The reference round (or a known mistake) on a fresh copy of the case's networks."""
    game, real, z = inputs["game"], inputs["real"], inputs["z"]
    G, D = nets(inputs)
    fake = G(z)  # (B, 2)
    if zero_d:
        _zero_grad(D)
    real_logits, fake_logits = D(real), D(fake.detach())  # (B,), (B,)
    loss_d = ref.discriminator_loss(real_logits, fake_logits)
    loss_d.backward()
    _sgd_step(D, game.lr)
    if zero_g:
        _zero_grad(G)
    g_logits = D(fake)  # (B,) the updated D
    loss_g = ref.generator_loss(g_logits, g_kind or game.kind)
    loss_g.backward()
    _sgd_step(G, game.lr)
    return StepResult(_flat(G), _flat(D), torch.tensor([loss_d.item(), loss_g.item()], dtype=torch.float64),
                      real_logits.detach(), fake_logits.detach(), g_logits.detach())


def _snap(t):
    return t.detach().clone() if isinstance(t, torch.Tensor) and t.numel() <= 4096 else None


def _reaches(t, params) -> bool | None:
    """Does ``t`` carry a graph back to ``params``? (None: its graph was already freed or modified.)"""
    if not isinstance(t, torch.Tensor) or not t.requires_grad or t.grad_fn is None:
        return False
    try:
        with torch.enable_grad():
            gs = torch.autograd.grad(t.sum(), params, retain_graph=True, allow_unused=True)
    except RuntimeError:
        return None
    return any(g is not None for g in gs)


class TrainStep(Check):
    r"""``train_step(G, D, opt_g, opt_d, real, z, kind, d_loss, g_loss)``: a D step, then a G step."""
    name = "gan.train_step"
    student = "train_step"
    passed = "D then G, fakes detached for D, only θ_G moves in the G step — one exact SGD round."

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            game = Game(4, 6, 8, 0.1, "nonsaturating", torch.float32, 0)
        else:  # hidden: sizes, learning rate and dtype from the seed; hidden-1 always plays minimax
            kind = "minimax" if case == "hidden-1" else KINDS[(seed // 7) % 2]
            game = Game(2 + seed % 4, 2 + (seed // 4) % 6, 4 + (seed // 24) % 9, (0.05, 0.1, 0.2)[seed % 3], kind,
                        torch.float64 if (seed // 5) % 2 else torch.float32, 1 + seed % 10_000)
        real = 1.5 * fixed_normal(game.batch, 2, seed=100 * game.s + 90, dtype=game.dtype)  # (B, 2)
        z = fixed_normal(game.batch, game.z_dim, seed=100 * game.s + 91, dtype=game.dtype)  # (B, z_dim)
        return {"game": game, "real": real, "z": z}

    def run(self, fn, inputs: dict) -> dict:
        game = inputs["game"]
        G, D = nets(inputs)
        theta_g = list(G.parameters())
        log: list[str] = []
        calls: list[dict] = []
        d_after: list[torch.Tensor] = []
        opt_g = _SpySGD(G.parameters(), game.lr, log, "opt_g")
        opt_d = _SpySGD(D.parameters(), game.lr, log, "opt_d", after_step=lambda: d_after.append(_flat(D)))

        def d_loss(real_logits, fake_logits):  # the reference J_D, recording what it was handed
            log.append("d_loss")
            if len(calls) < _MAX_CALLS:
                calls.append({"fn": "d_loss", "args": [_snap(real_logits), _snap(fake_logits)],
                              "reaches_g": [_reaches(real_logits, theta_g), _reaches(fake_logits, theta_g)]})
            return ref.discriminator_loss(real_logits, fake_logits)

        def g_loss(fake_logits, kind="nonsaturating"):  # the reference J_G, recording what it was handed
            log.append("g_loss")
            if len(calls) < _MAX_CALLS:
                calls.append({"fn": "g_loss", "args": [_snap(fake_logits)],
                              "reaches_g": [_reaches(fake_logits, theta_g)],
                              "kind": kind if isinstance(kind, str) else repr(kind)[:40]})
            return ref.generator_loss(fake_logits, kind)

        ev: dict = {}
        try:
            out = run_student(fn, G, D, opt_g, opt_d, inputs["real"], inputs["z"], name=self.student,
                              forbidden=[ref.train_step, ref.train_ring], kind=game.kind, d_loss=d_loss, g_loss=g_loss)
        except Mistake as m:
            if m.id != "crash":
                raise
            ev["crash"], out = str(m)[:2000], None
        ev.update({"log": log[:_MAX_LOG], "calls": calls, "G": _flat(G), "D": _flat(D),
                   "d_after_step": d_after[0] if d_after else None, "return_type": type(out).__name__})
        if isinstance(out, (tuple, list)) and len(out) == 2:
            try:
                ev["losses"] = [float(out[0]), float(out[1])]
            except (TypeError, ValueError, RuntimeError):
                pass
        return ev

    def judge(self, inputs: dict, ev: dict) -> None:
        name, game = self.student, inputs["game"]
        want = reference_step(inputs)
        G0, _ = nets(inputs)
        log, calls = ev.get("log"), ev.get("calls")
        if not isinstance(log, list) or not all(isinstance(e, str) for e in log) or not isinstance(calls, list) \
                or not all(isinstance(c, dict) for c in calls):
            raise Mistake(f"`{name}`: its result could not be judged.", id="malformed-evidence")
        d_calls = [c for c in calls if c.get("fn") == "d_loss"]
        g_calls = [c for c in calls if c.get("fn") == "g_loss"]
        if any(True in (c.get("reaches_g") or []) for c in d_calls):
            raise Mistake(f"`{name}`: the fake logits handed to d_loss carry a graph back to the generator "
                          "(missing detach in the discriminator step), so J_D's backward also reaches θ_G. "
                          "Use D(fake.detach()) inside J_D.", id="missing-detach")
        if g_calls and "opt_d.step" in log and "g_loss" in log and log.index("g_loss") > log.index("opt_d.step") \
                and _close_arg(g_calls[0], 0, want.fake_logits) and not _close_arg(g_calls[0], 0, want.g_logits):
            raise Mistake(f"`{name}`: the G step scored the fakes with D's output computed BEFORE opt_d.step() "
                          "changed D's weights. Alternate: after opt_d.step(), recompute D(fake) with the updated D "
                          "for the generator loss.", id="stale-d-logits")
        if "crash" in ev:
            raise Mistake(str(ev["crash"])[:2000], id="crash")
        if not d_calls:
            raise Mistake(f"`{name}` never called its `d_loss` argument: compute J_D with "
                          "d_loss(real_logits, fake_logits).", id="d-loss-unused")
        if not g_calls:
            raise Mistake(f"`{name}` never called its `g_loss` argument: compute J_G with "
                          "g_loss(fake_logits, kind=kind).", id="g-loss-unused")
        _judge_order(name, log)
        if any(c.get("kind") != game.kind for c in g_calls):
            raise Mistake(f"`{name}`: the `kind` argument is ignored: called with kind={game.kind!r}, your G step "
                          f"called g_loss with kind={g_calls[0].get('kind')!r}. Pass it on: "
                          "g_loss(fake_logits, kind=kind).", id="kind-ignored")
        if _close_arg(d_calls[0], 0, want.fake_logits) and _close_arg(d_calls[0], 1, want.real_logits):
            raise Mistake(f"`{name}` handed d_loss the fake logits first: the order is "
                          "d_loss(D(real), D(fake.detach())).", id="d-loss-args-swapped")
        _judge_params(name, inputs, ev, want, G0)
        _judge_losses(name, ev, want)


def _close_arg(call: dict, i: int, expected: torch.Tensor) -> bool:
    args = call.get("args")
    a = args[i] if isinstance(args, list) and len(args) > i else None
    return isinstance(a, torch.Tensor) and close(a, expected, 1e-4, 1e-5)


def _judge_order(name: str, log: list) -> None:
    steps = [e for e in log if e.endswith(".step")]
    if "opt_d.step" not in steps:
        raise Mistake(f"`{name}` never called opt_d.step(): the discriminator was not updated.", id="no-d-step")
    if "opt_g.step" not in steps:
        raise Mistake(f"`{name}` never called opt_g.step(): the generator was not updated.", id="no-g-step")
    if steps.index("opt_g.step") < steps.index("opt_d.step"):
        raise Mistake(f"`{name}` updated G before D. This lab alternates D first (on real and detached fakes), "
                      "then G against the updated D.", id="g-before-d")
    if steps.count("opt_d.step") > 1:
        raise Mistake(f"`{name}` called opt_d.step() more than once: the generator step updated D's parameters. "
                      "Only opt_g may step in the G step.", id="g-step-updates-d")


def _judge_params(name: str, inputs: dict, ev: dict, want: StepResult, G0) -> None:
    g_after, d_after, d_mid = ev.get("G"), ev.get("D"), ev.get("d_after_step")
    for t in (g_after, d_after, d_mid):
        if not isinstance(t, torch.Tensor):
            raise Mistake(f"`{name}`: its result could not be judged.", id="malformed-evidence")
    if g_after.shape != want.G.shape or d_after.shape != want.D.shape:
        raise Mistake(f"`{name}` changed the networks' parameter shapes.", id="malformed-evidence")
    if not close(d_after, d_mid):
        raise Mistake(f"`{name}`: the generator step updated D's parameters (D changed after its own step — "
                      "e.g. opt_d.step() after the generator loss's backward). Only opt_g may step in the G step.",
                      id="g-step-updates-d")
    if not close(d_after, want.D):
        if close(d_after, reference_step(inputs, zero_d=False).D):
            raise Mistake(f"`{name}`: D's update used stale gradients — call opt_d.zero_grad() before J_D's "
                          "backward (the previous G step left gradients in D's parameters).", id="stale-grad-d")
        raise Mistake(f"`{name}`: D's parameters after the step differ from the reference. Check the D half: "
                      "J_D = d_loss(D(real), D(fake.detach())), backward, opt_d.step().", id="wrong-d-update")
    if not close(g_after, want.G):
        if close(g_after, _flat(G0)):
            raise Mistake(f"`{name}`: G's parameters did not change. The G step must backpropagate through "
                          "D(G(z)) — don't detach the fakes there — and call opt_g.step().", id="g-not-updated")
        other = "nonsaturating" if inputs["game"].kind == "minimax" else "minimax"
        if close(g_after, reference_step(inputs, zero_g=False).G):
            raise Mistake(f"`{name}`: G's update used stale gradients — call opt_g.zero_grad() before the "
                          "generator loss's backward.", id="stale-grad-g")
        if close(g_after, reference_step(inputs, g_kind=other).G):
            raise Mistake(f"`{name}`: the `kind` argument is ignored: called with kind={inputs['game'].kind!r}, "
                          "your G step used the other loss.", id="kind-ignored")
        raise Mistake(f"`{name}`: G's parameters after the step differ from the reference. Check the G half: "
                      "J_G = g_loss(D(fake), kind=kind) with the updated D, backward, opt_g.step().",
                      id="wrong-g-update")


def _judge_losses(name: str, ev: dict, want: StepResult) -> None:
    got = ev.get("losses")
    if not (isinstance(got, list) and len(got) == 2 and all(isinstance(v, (int, float)) for v in got)):
        raise Mistake(f"`{name}` should return the two losses as numbers (loss_d, loss_g), e.g. loss_d.item(), "
                      f"loss_g.item(); got {ev.get('return_type', '?')}.", id="wrong-return")
    got = torch.tensor([float(v) for v in got], dtype=torch.float64)
    if close(got, want.losses.flip(0)) and not close(got, want.losses):
        raise Mistake(f"`{name}`: the two losses are returned in the wrong order: return (loss_d, loss_g).",
                      id="losses-swapped")
    if not bool(torch.isfinite(got).all()) or not close(got, want.losses):
        raise Mistake(f"`{name}` returned the losses {got.tolist()}, expected {want.losses.tolist()}: return "
                      "J_D and J_G as computed in this round (before each update), as Python numbers.",
                      id="wrong-losses")


check_train_step = TrainStep()
