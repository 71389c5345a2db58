r"""Checks for Lab 1 (autoencoder). Each one names the mistake it recognises, with a stable id.

Error carried forward: every part is graded on its own. ``check_train_step`` runs the student's step on a
tiny fixed model with a loss function the check passes in (the student's ``Autoencoder`` and
``reconstruction_loss`` are not involved), so a bug in an earlier part costs that part's cell only. ``check_anomaly_score`` scores with the check's own
tiny model and ``check_pick_threshold`` gets the scores directly (:mod:`._ae_anomaly`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import ae as ref
from .. import train as _train
from ._ae_anomaly import AnomalyScore, PickThreshold
from ._ae_model import AutoencoderCheck, guarded_call, images
from ._check import VISIBLE, Check, tensor_evidence
from ._core import Mistake, close, compare, fixed_normal

__all__ = ["check_autoencoder", "check_reconstruction_loss", "check_train_step", "check_anomaly_score",
           "check_pick_threshold", "CELLS"]

check_autoencoder = AutoencoderCheck()


def _loss_mistakes(x: torch.Tensor, x_hat: torch.Tensor) -> dict:
    err = (x - x_hat)  # (B, 1, 28, 28)
    return {
        ("mean-over-pixels", "wrong reduction — it averages over every pixel (like F.mse_loss's default). "
         "Sum the squared error over the 784 pixels of each image, then average over the batch."): err.pow(2).mean(),
        ("sum-over-batch", "wrong reduction — it sums over the batch too. Average the per-image errors over "
         "the batch."): err.pow(2).sum(),
        ("missing-square", "missing square — it sums |x − x̂|. The loss is the squared error ‖x − x̂‖²."):
            err.abs().flatten(1).sum(1).mean(),
        ("norm-not-squared", "it takes the square root (the norm ‖x − x̂‖). The loss is its square ‖x − x̂‖²."):
            err.flatten(1).norm(dim=1).mean(),
        ("sum-last-dim-only", "wrong reduction — it averages over the batch AND the pixels of one dimension "
         "only. Sum over all 784 pixels (flatten(1).sum(1)), then average over the batch."): err.pow(2).sum(-1).mean(),
    }


class ReconstructionLoss(Check):
    r"""``reconstruction_loss(x, x_hat)`` = ‖x − x̂‖² summed over pixels, averaged over the batch."""
    name = "ae.reconstruction_loss"
    student = "reconstruction_loss"
    passed = "‖x − x̂‖² summed over pixels, averaged over the batch — matches the reference."
    n_hidden = 3

    def inputs(self, seed: int, case: str) -> dict:
        b = 4 if case == VISIBLE else 1 + seed % 7                           # hidden: batch 1..7
        dtype = torch.float64 if case != VISIBLE and seed % 2 else torch.float32
        return {"x": images(b, seed, dtype), "x_hat": images(b, seed + 100, dtype)}  # (B, 1, 28, 28)

    def run(self, fn, inputs: dict) -> dict:
        x, x_hat = inputs["x"], inputs["x_hat"].requires_grad_(True)
        out = guarded_call(fn, x, x_hat, name=self.student, forbidden=[ref.reconstruction_loss])
        if not isinstance(out, torch.Tensor):
            return {"type": type(out).__name__}
        grad = None  # d out / d x_hat, computed here so the judge sees where gradients flow
        if out.requires_grad and out.dim() == 0:
            (grad,) = torch.autograd.grad(out, x_hat, allow_unused=True)
        return {"type": "Tensor", "out": out.detach(), "requires_grad": out.requires_grad,
                "grad": grad if grad is not None else None}

    def judge(self, inputs: dict, ev: dict) -> None:
        x, x_hat = inputs["x"], inputs["x_hat"].requires_grad_(True)
        name, b = self.student, x.shape[0]
        out = tensor_evidence(ev, name)
        if out.dim() > 0:
            if tuple(out.shape) == tuple(x.shape):
                raise Mistake(f"`{name}` returns a per-pixel tensor of shape {tuple(out.shape)}. Reduce it to "
                              "one number: sum over the pixels, then average over the batch.", id="no-reduction")
            if tuple(out.shape) == (b,) and b > 1:
                raise Mistake(f"`{name}` returns one loss per image (shape (B,)). Average over the batch to get "
                              "one number.", id="no-batch-mean")
        if out.dim() != 0:
            raise Mistake(f"`{name}` should return a single number (a 0-dim tensor), got shape {tuple(out.shape)}. "
                          "Sum over the pixels and average over the batch.", id="not-scalar")
        if not bool(torch.isfinite(out)):
            raise Mistake(f"`{name}` returned NaN or inf: check for log(0) or division by zero.", id="not-finite")
        expected = ref.reconstruction_loss(x, x_hat)
        with torch.no_grad():
            compare(out, expected, name, _loss_mistakes(x, x_hat), rtol=1e-5, atol=1e-4, what=f" (batch of {b})")
        # where gradients flow: d loss / d x_hat must be the reference's, not merely "some graph"
        (g_ref,) = torch.autograd.grad(expected, x_hat)
        grad = ev.get("grad")
        if ev.get("requires_grad") is not True or not isinstance(grad, torch.Tensor) \
                or not close(grad, g_ref, 1e-4, 1e-6):
            raise Mistake(f"`{name}` returned the right number but no gradient reaches x_hat: build it from "
                          "torch operations on x_hat (no .item(), .detach(), numpy or torch.tensor(...)).",
                          id="no-gradient")


check_reconstruction_loss = ReconstructionLoss()


class _Tiny(nn.Module):
    """A 784 → k → 784 autoencoder built from given weights (no RNG), so a step's result is known exactly."""

    def __init__(self, params: list):
        super().__init__()
        self.w1, self.b1, self.w2, self.b2 = (nn.Parameter(p.detach().clone()) for p in params)

    def forward(self, x):
        h = F.linear(x.flatten(1), self.w1, self.b1)                          # (B, k)
        return torch.sigmoid(F.linear(h, self.w2, self.b2)).view(-1, 1, 28, 28)  # (B, 1, 28, 28)


def _sq_error(x, x_hat):
    return (x - x_hat).pow(2).flatten(1).sum(1).mean()  # ‖x − x̂‖², averaged over the batch


class TrainStep(Check):
    r"""``train_step(model, optimizer, x, loss_fn)``: one exact step θ ← θ − η ∇_θ loss_fn(x, model(x))."""
    name = "ae.train_step"
    student = "train_step"
    passed = "one exact optimizer step on loss_fn(x, model(x)) with fresh gradients; returns the loss before it."
    n_hidden = 2

    def inputs(self, seed: int, case: str) -> dict:
        if case == VISIBLE:
            b, k, lr, dtype = 4, 3, 0.2, torch.float32
        else:  # hidden: batch 1..6, code size 2..4, learning rate and dtype from the seed
            b, k = 1 + seed % 6, 2 + (seed // 6) % 3
            lr = (0.1, 0.3, 0.5)[(seed // 18) % 3]
            dtype = torch.float64 if (seed // 54) % 2 else torch.float32
        shapes = [(k, 784), (k,), (784, k), (784,)]
        return {"x": images(b, seed + 21, dtype), "lr": lr,
                "params": [0.05 * fixed_normal(*s, seed=seed + i, dtype=dtype) for i, s in enumerate(shapes)],
                # gradients left over from an earlier step: they must not leak into this one
                "stale": [0.3 * fixed_normal(*s, seed=seed + 40 + i, dtype=dtype) for i, s in enumerate(shapes)]}

    def run(self, fn, inputs: dict) -> dict:
        model = _Tiny(inputs["params"])
        for p, g in zip(model.parameters(), inputs["stale"]):
            p.grad = g.clone()
        opt = torch.optim.SGD(model.parameters(), lr=inputs["lr"])
        calls: list[dict] = []

        def loss_fn(x, x_hat):  # the parameter names are part of the task text
            calls.append({k: v.detach().clone() if isinstance(v, torch.Tensor) else type(v).__name__
                          for k, v in (("x", x), ("x_hat", x_hat))} if len(calls) < 2 else {})
            return _sq_error(x, x_hat)

        out = guarded_call(fn, model, opt, inputs["x"], loss_fn, name=self.student,
                           forbidden=[ref.train_step, _train.fit])
        ev = {"calls": len(calls), "args": calls[:2], "params": [p.detach().clone() for p in model.parameters()],
              "loss_type": type(out).__name__}
        if isinstance(out, torch.Tensor):
            ev["loss"] = out.detach()
        elif isinstance(out, (int, float)) and not isinstance(out, bool):
            ev["loss"] = float(out)
        return ev

    def judge(self, inputs: dict, ev: dict) -> None:
        name, x, lr = self.student, inputs["x"], inputs["lr"]
        calls, args = ev.get("calls"), ev.get("args")
        if not isinstance(calls, int) or isinstance(calls, bool) or calls < 1:
            raise Mistake(f"`{name}` never called its `loss_fn` argument: compute the loss with "
                          "loss_fn(x, model(x)).", id="loss-fn-not-called")
        model = _Tiny(inputs["params"])
        x_hat0 = model(x)                                       # (B, 1, 28, 28) before the step
        loss0 = _sq_error(x, x_hat0)
        grads = torch.autograd.grad(loss0, list(model.parameters()))
        first = args[0] if isinstance(args, list) and args and isinstance(args[0], dict) else {}
        got_x, got_x_hat = first.get("x"), first.get("x_hat")
        if not (isinstance(got_x, torch.Tensor) and close(got_x, x)
                and isinstance(got_x_hat, torch.Tensor) and close(got_x_hat, x_hat0.detach())):
            swapped = isinstance(got_x, torch.Tensor) and close(got_x, x_hat0.detach())
            raise Mistake(f"`{name}` called loss_fn with other arguments than (x, model(x))"
                          f"{' — in the opposite order' if swapped else ''}. Call loss_fn(x, model(x)): "
                          "first the batch, then its reconstruction (keywords: x=…, x_hat=…).",
                          id="loss-fn-arguments")
        after = ev.get("params")
        if not isinstance(after, list) or len(after) != 4 or not all(
                isinstance(a, torch.Tensor) and a.shape == p.shape for a, p in zip(after, inputs["params"])):
            raise Mistake(f"`{name}`: the check's parameter evidence is malformed.", id="malformed-evidence")
        before, stale = inputs["params"], inputs["stale"]

        def moved_to(new):
            return all(close(a, n, rtol=1e-5, atol=1e-7) for a, n in zip(after, new))

        if not moved_to([p - lr * g for p, g in zip(before, grads)]):
            known = [
                ("no-step", "the parameters did not change: call optimizer.step() after loss.backward() "
                 "(and clear the gradients before backward, not between backward and step).", before),
                ("stale-gradients", "old gradients were added to the new ones: clear them with "
                 "optimizer.zero_grad() before loss.backward() — PyTorch accumulates gradients.",
                 [p - lr * (g + s) for p, g, s in zip(before, grads, stale)]),
                ("uphill", "the parameters moved uphill: minimise the loss (don't negate it).",
                 [p + lr * g for p, g in zip(before, grads)]),
                ("two-steps", "the parameters moved twice as far: call optimizer.step() once.",
                 [p - 2 * lr * g for p, g in zip(before, grads)]),
            ]
            for mistake_id, message, value in known:
                if moved_to(value):
                    raise Mistake(f"`{name}`: {message}", id=mistake_id)
            raise Mistake(f"`{name}`: after your step the parameters differ from one optimizer step on this batch. "
                          "One step: clear the gradients, loss = loss_fn(x, model(x)), loss.backward(), "
                          "optimizer.step().", id="wrong-step")
        loss = ev.get("loss")
        if isinstance(loss, torch.Tensor):
            loss = loss.double().item() if loss.numel() == 1 and loss.dim() == 0 else None
        if not isinstance(loss, (int, float)) or isinstance(loss, bool):
            raise Mistake(f"`{name}` should return the loss as a number (loss.item()), got "
                          f"{ev.get('loss_type', type(loss).__name__)}.", id="wrong-return")
        if not abs(loss - loss0.item()) <= 1e-4 * max(1.0, abs(loss0.item())):
            raise Mistake(f"`{name}` returned {loss:.6g}, but the loss on this batch before the update is "
                          f"{loss0.item():.6g}. Return the loss you called backward() on.", id="wrong-return")


check_train_step = TrainStep()
check_anomaly_score = AnomalyScore()
check_pick_threshold = PickThreshold()

#: test cell grade_id → the checks it runs (visible case, then the hidden cases)
CELLS = {
    "test_autoencoder": (check_autoencoder,),
    "test_reconstruction_loss": (check_reconstruction_loss,),
    "test_train_step": (check_train_step,),
    "test_anomaly_score": (check_anomaly_score,),
    "test_pick_threshold": (check_pick_threshold,),
}
