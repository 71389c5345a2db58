r"""Lab 4's noise predictor: a class-conditional DDPM with classifier-free guidance (Ho & Salimans, 2022).

One network ε_θ(x_t, t, c) learns both the conditional and the unconditional noise: during training the label
c is replaced by a "null" class ∅ (index 10) with probability ``p_uncond``. At sampling time the two
predictions are mixed with a guidance scale w ≥ 0,

    ε̂ = (1 + w) ε_θ(x_t, t, c) − w ε_θ(x_t, t, ∅),

which pushes x_t towards images the class c explains better than the unconditional model does
(w = 0: plain conditional sampling; larger w: more typical digits, less variety).
:class:`Conditioned` (labels fixed) and :func:`guided` (the mix) are ordinary noise predictors ``model(x, t)``:
modules, so Algorithm 1 and 2 code written for a plain U-Net runs on them unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from .unet import UNet, sinusoidal_embedding

__all__ = ["ConditionalUNet", "NULL_CLASS", "Conditioned", "Guided", "drop_labels", "cfg_loss", "guided",
           "train_conditional"]

NULL_CLASS = 10  # the label that means "no class" (unconditional)


class ConditionalUNet(UNet):
    r"""ε_θ(x_t, t, c): :class:`dgm.ddpm.UNet` with a learned class embedding added to the time embedding.

    ``forward(x, t, c)``: c is a (B,) long tensor in 0..9, or :data:`NULL_CLASS` (10) for unconditional.
    """

    def __init__(self, n_classes: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.n_classes = n_classes
        self.label = nn.Embedding(n_classes + 1, self.time_dim)           # + 1: the null class ∅

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if not isinstance(c, torch.Tensor) or c.shape != (x.shape[0],):
            raise ValueError(f"c must be a (B,) = ({x.shape[0]},) tensor of class labels (10 = no class)")
        emb = self.embed(sinusoidal_embedding(t, self.time_dim).to(x.dtype))  # (B, time_dim)
        return self._body(x, emb + self.label(c.long()).to(x.dtype))


class Conditioned(nn.Module):
    r"""ε(x_t, t) = ε_θ(x_t, t, c) with the labels c (B,) held fixed: a noise predictor ``model(x, t)``."""

    def __init__(self, model: ConditionalUNet, labels: torch.Tensor):
        super().__init__()
        self.model, self.labels = model, labels.long()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model(x, t, self.labels.to(x.device))


class Guided(nn.Module):
    r"""ε̂(x_t, t) = (1 + w) ε_θ(x_t, t, c) − w ε_θ(x_t, t, ∅), one batch of 2B for both predictions."""

    def __init__(self, model: ConditionalUNet, labels: torch.Tensor, w: float):
        super().__init__()
        self.model, self.labels, self.w = model, labels.long(), float(w)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = self.labels.to(x.device)                                      # (B,)
        if self.w == 0:
            return self.model(x, t, c)
        both = self.model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([c, torch.full_like(c, NULL_CLASS)]))
        cond, uncond = both.chunk(2)                                      # ε_θ(x_t, t, c), ε_θ(x_t, t, ∅)
        return (1 + self.w) * cond - self.w * uncond


def drop_labels(c: torch.Tensor, p_uncond: float) -> torch.Tensor:
    """Each label of c (B,) replaced by ∅ (:data:`NULL_CLASS`) with probability ``p_uncond``, independently."""
    drop = torch.rand(c.shape, device=c.device) < p_uncond
    return torch.where(drop, torch.full_like(c, NULL_CLASS), c)           # (B,) a class 0..9 or ∅


def cfg_loss(model: ConditionalUNet, x0: torch.Tensor, c: torch.Tensor, sched, p_uncond: float = 0.1) -> torch.Tensor:
    """Algorithm 1 with labels, each dropped to ∅ with probability ``p_uncond``."""
    from .ddpm import ddpm_loss

    return ddpm_loss(Conditioned(model, drop_labels(c, p_uncond)), x0, sched)


def guided(model: ConditionalUNet, labels: torch.Tensor, w: float) -> Guided:
    r"""The noise predictor (x_t, t) ↦ (1 + w) ε_θ(x_t, t, c) − w ε_θ(x_t, t, ∅) for :func:`dgm.ddpm.sample` (a
    :class:`Guided` module); ``labels`` (N,) fixes the class of each of the N images."""
    return Guided(model, labels, w)


def train_conditional(x0: torch.Tensor, y: torch.Tensor, sched, *, steps: int | None = None,
                      batch_size: int | None = None, channels: int | None = None, device=None, checkpoint=None,
                      seed: int = 0):
    """Train a :class:`ConditionalUNet` on images ``x0`` in [−1, 1] with labels ``y`` (N,) by lab 4's recipe
    (:data:`dgm.ddpm.LAB_RECIPE`: Adam with warm-up and cosine decay, label dropout, EMA; ``steps``,
    ``batch_size`` and ``channels`` override it); returns ``(ema_model, history)``."""
    from . import seed_everything
    from .ddpm_train import EMA, LAB_RECIPE, lr_at
    from .train import fit

    r = LAB_RECIPE
    steps = r["steps"] if steps is None else steps
    seed_everything(seed)
    model = ConditionalUNet(channels=channels or r["channels"], patch=r["patch"], attn=r["attn"])
    if device is not None:
        model.to(device)
    ema = EMA(model, r["ema"])
    opt = torch.optim.Adam(model.parameters(), lr=r["lr"])

    def step_fn(xb: torch.Tensor, step: int, c: torch.Tensor):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, r["lr"], r["warmup"])
        opt.zero_grad(set_to_none=True)
        loss = cfg_loss(model, xb, c, sched, r["p_uncond"])
        loss.backward()
        opt.step()
        ema.update(model, step)
        return loss

    history = fit({"model": model, "ema": ema.model}, x0, step_fn=step_fn, optimizer=opt, steps=steps,
                  batch_size=batch_size or r["batch_size"], device=device, checkpoint=checkpoint, seed=seed,
                  labels=y.long())
    return ema.model.eval(), history
