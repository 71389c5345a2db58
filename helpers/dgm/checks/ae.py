r"""Checks for Lab 1 (autoencoder). Each one names the mistake it recognises."""
from __future__ import annotations

import torch
from torch import nn

from .. import ae as ref
from .. import train as _train
from ._check import VISIBLE, Check, tensor_evidence
from ._core import Mistake, close, compare, expect_tensor, fixed_normal, fixed_uniform, ok, run_student

__all__ = ["check_autoencoder", "check_reconstruction_loss", "check_train_step"]


def _images(b: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    return fixed_uniform(b, 1, 28, 28, seed=seed, dtype=dtype)  # (B, 1, 28, 28) in [0, 1)


def check_autoencoder(Autoencoder, hidden: bool = False) -> None:
    """The student's class: ``Autoencoder(latent_dim)`` with ``encode``, ``decode`` and ``forward``."""
    sizes = (3, 32) if hidden else (2, 5)
    for d in sizes:
        model = run_student(Autoencoder, d, name=f"Autoencoder({d})", forbidden=[ref.Autoencoder])
        if isinstance(model, ref.Autoencoder) or any(isinstance(m, ref.Autoencoder) for m in model.modules()):
            raise Mistake("`Autoencoder` uses dgm.ae.Autoencoder — write your own encoder and decoder.")
        if not isinstance(model, nn.Module):
            raise Mistake(f"`Autoencoder({d})` should create an nn.Module, got {type(model).__name__}.")
        if not any(True for _ in model.parameters()):
            raise Mistake("`Autoencoder` has no parameters: build the encoder and decoder from nn.Linear layers.")
        for method in ("encode", "decode"):
            if not callable(getattr(model, method, None)):
                raise Mistake(f"`Autoencoder` needs a method `{method}`.")
        model.eval()
        x = _images(4, seed=d)  # (B, 1, 28, 28)
        z = expect_tensor(run_student(model.encode, x, name="encode", forbidden=[ref.Autoencoder]), "encode")
        if z.dim() != 2 or z.shape[0] != 4:
            raise Mistake(f"`encode` should return codes of shape (B, latent_dim) = (4, {d}), got {tuple(z.shape)}. "
                          "Flatten the image before the first nn.Linear.")
        if z.shape[1] != d:
            raise Mistake(f"Wrong bottleneck size: with latent_dim={d}, `encode` returned codes of size "
                          f"{z.shape[1]}. The encoder's last layer must output latent_dim numbers.")
        x_hat = run_student(model, x, name="Autoencoder.forward", forbidden=[ref.Autoencoder])
        x_hat = expect_tensor(x_hat, "forward")
        if tuple(x_hat.shape) != (4, 1, 28, 28):
            hint = " Reshape the decoder's output with .view(-1, 1, 28, 28)." if x_hat.numel() == 4 * 784 else ""
            raise Mistake(f"Wrong output shape: forward returned {tuple(x_hat.shape)}, expected (4, 1, 28, 28) "
                          f"like its input.{hint}")
        if x_hat.min() < 0 or x_hat.max() > 1:
            raise Mistake(f"Wrong output range: x̂ has values in [{x_hat.min():.3g}, {x_hat.max():.3g}], but pixels "
                          "lie in [0, 1]. End the decoder with a sigmoid.")
        x_dec = expect_tensor(run_student(model.decode, z, name="decode", forbidden=[ref.Autoencoder]), "decode")
        if not close(x_dec, x_hat, rtol=1e-4, atol=1e-5):
            raise Mistake("`forward(x)` should be `decode(encode(x))`: the image must pass through the bottleneck.")
        model.zero_grad()
        model.train()
        run_student(lambda: model(x).sum().backward(), name="backward through your model")
        if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()):
            raise Mistake("No gradient reaches your parameters: avoid .detach(), .item() or numpy in forward.")
    ok(f"Autoencoder: encode → (B, d), decode → (B, 1, 28, 28) in [0, 1] for latent sizes {sizes}.")


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
        return {"x": _images(b, seed, dtype), "x_hat": _images(b, seed + 100, dtype)}  # (B, 1, 28, 28)

    def run(self, fn, inputs: dict) -> dict:
        x, x_hat = inputs["x"], inputs["x_hat"].requires_grad_(True)
        out = run_student(fn, x, x_hat, name=self.student, forbidden=[ref.reconstruction_loss])
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
        out = expect_tensor(out, name, scalar=True)
        expected = ref.reconstruction_loss(x, x_hat)
        with torch.no_grad():
            compare(out, expected, name, _loss_mistakes(x, x_hat), rtol=1e-5, atol=1e-4, what=f" (batch of {b})")
        # where gradients flow: d loss / d x_hat must be the reference's, not merely "some graph"
        (g_ref,) = torch.autograd.grad(expected, x_hat)
        if not ev.get("requires_grad") or ev.get("grad") is None or not close(ev["grad"], g_ref, 1e-4, 1e-6):
            raise Mistake(f"`{name}` returned the right number but no gradient reaches x_hat: build it from "
                          "torch operations on x_hat (no .item(), .detach(), numpy or torch.tensor(...)).",
                          id="no-gradient")


check_reconstruction_loss = ReconstructionLoss()


class _Tiny(nn.Module):
    """A 784 → 3 → 784 autoencoder with fixed weights, so a step's result is known exactly."""

    def __init__(self, seed: int, dtype=torch.float32):
        super().__init__()
        self.enc = nn.Linear(784, 3).to(dtype)
        self.dec = nn.Linear(3, 784).to(dtype)
        with torch.no_grad():
            for i, p in enumerate(self.parameters()):
                p.copy_(0.05 * fixed_normal(*p.shape, seed=seed + i, dtype=dtype))

    def forward(self, x):
        return torch.sigmoid(self.dec(self.enc(x.flatten(1)))).view(-1, 1, 28, 28)


def check_train_step(train_step, hidden: bool = False) -> None:
    """``train_step(model, optimizer, x, loss_fn)``: zero_grad → loss → backward → step; returns the loss."""
    lr = 0.5 if hidden else 0.2
    dtype = torch.float64 if hidden else torch.float32
    x = _images(5 if hidden else 4, seed=21 + hidden, dtype=dtype)
    calls = []

    def loss_fn(x_, x_hat_):  # the reference loss, counting its calls
        calls.append(1)
        return ref.reconstruction_loss(x_, x_hat_)

    student, expected = _Tiny(7, dtype), _Tiny(7, dtype)
    before = [p.detach().clone() for p in student.parameters()]
    stale = [0.3 * fixed_normal(*p.shape, seed=40 + i, dtype=dtype) for i, p in enumerate(student.parameters())]
    for p, g in zip(student.parameters(), stale):
        p.grad = g.clone()  # gradients left over from an earlier step
    opt = torch.optim.SGD(student.parameters(), lr=lr)
    out = run_student(train_step, student, opt, x, loss_fn, name="train_step",
                      forbidden=[ref.train_step, _train.fit])
    if not calls:
        raise Mistake("`train_step` never called its `loss_fn` argument: compute the loss with "
                      "loss_fn(x, model(x)).")
    loss0 = ref.reconstruction_loss(x, expected(x))
    loss0.backward()
    grads = [p.grad.detach().clone() for p in expected.parameters()]
    after = [p.detach() for p in student.parameters()]
    if isinstance(out, torch.Tensor):
        if out.dim() != 0:
            raise Mistake(f"`train_step` should return the loss as a number, got a tensor of shape {tuple(out.shape)}.")
        out = out.item()
    if not isinstance(out, (int, float)):
        raise Mistake(f"`train_step` should return the loss (loss.item()), got {type(out).__name__}.")
    if abs(out - loss0.item()) > 1e-4 * max(1.0, abs(loss0.item())):
        raise Mistake(f"`train_step` returned {out:.6g}, but the loss on this batch before the update is "
                      f"{loss0.item():.6g}. Return the loss you called backward() on.")

    def moved_to(new):
        return all(close(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(after, new))

    if moved_to(before):
        raise Mistake("The parameters did not change: call optimizer.step() after loss.backward() "
                      "(and zero the gradients before backward, not after).")
    if moved_to([p - lr * (g + s) for p, g, s in zip(before, grads, stale)]):
        raise Mistake("Old gradients were added to the new ones: call optimizer.zero_grad() before "
                      "loss.backward() — PyTorch accumulates gradients.")
    if moved_to([p + lr * g for p, g in zip(before, grads)]):
        raise Mistake("The parameters moved uphill: minimise the loss (don't negate it).")
    if not moved_to([p - lr * g for p, g in zip(before, grads)]):
        raise Mistake("After your step the parameters differ from one SGD step on this batch. "
                      "The order is: optimizer.zero_grad(); loss = loss_fn(x, model(x)); loss.backward(); "
                      "optimizer.step().")
    ok("train_step: zero_grad → loss → backward → step, returns the loss — one exact SGD step.")
