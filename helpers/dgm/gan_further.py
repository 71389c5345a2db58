r"""Lab 3, going further (ungraded): the least-squares GAN loss and a class-conditional DCGAN.

* LSGAN (Mao et al., 2017) scores D's raw output ℓ (no sigmoid) with squared errors, targets 1 (real), 0 (fake):

      J_D = ½ E_x[(ℓ(x) − 1)²] + ½ E_z[ℓ(G(z))²],     J_G = ½ E_z[(ℓ(G(z)) − 1)²]

  Both functions have the signatures of :func:`dgm.gan.discriminator_loss` / :func:`dgm.gan.generator_loss`, so
  any ``train_step(..., d_loss=, g_loss=)`` plays the LSGAN game unchanged.
* A conditional GAN: G(z, y) draws a digit of class y; D(x, y) judges (image, label) pairs with a projection
  discriminator (Miyato & Koyama, 2018): ℓ(x, y) = w·φ(x) + b + ⟨embed(y), φ(x)⟩. :func:`train_conditional`
  plays it with any unconditional ``train_step``: in each round the labels of the real batch are also the
  labels asked of G, and thin wrappers hand them to both networks, so G(z) and D(x) keep their one-argument form.
"""
from __future__ import annotations

import torch
from torch import nn

from . import device as _device
from .gan import EMA, DCGANConfig, train_step

__all__ = ["lsgan_d_loss", "lsgan_g_loss", "CondGenerator", "CondDiscriminator", "train_conditional"]


def lsgan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r"""J_D = ½ E_x[(ℓ(x) − 1)²] + ½ E_z[ℓ(G(z))²] on D's raw outputs."""
    return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * (fake_logits ** 2).mean()


def lsgan_g_loss(fake_logits: torch.Tensor, kind: str | None = None) -> torch.Tensor:
    r"""J_G = ½ E_z[(ℓ(G(z)) − 1)²]; ``kind`` is accepted (train_step passes it) and ignored."""
    return 0.5 * ((fake_logits - 1) ** 2).mean()


class CondGenerator(nn.Module):
    r"""G(z, y): noise (B, z_dim) and labels (B,) → images (B, 1, 28, 28) in [0, 1]; y enters as an embedding
    concatenated with z."""

    def __init__(self, z_dim: int = 32, channels: int = 32, classes: int = 10, embed: int = 16):
        super().__init__()
        self.z_dim, c = z_dim, channels
        self.embed = nn.Embedding(classes, embed)
        self.fc = nn.Sequential(nn.Linear(z_dim + embed, 2 * c * 49), nn.BatchNorm1d(2 * c * 49), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(),  # (B, c, 14, 14)
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1), nn.Sigmoid(),  # (B, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(y)], dim=1)).view(len(z), -1, 7, 7)  # (B, 2c, 7, 7)
        return self.net(h)


class CondDiscriminator(nn.Module):
    r"""D(x, y): images (B, 1, 28, 28) and labels (B,) → logits (B,), a projection discriminator."""

    def __init__(self, channels: int = 32, classes: int = 10):
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, c, 14, 14)
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, 2c, 7, 7)
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * c * 49, 1)
        self.embed = nn.Embedding(classes, 2 * c * 49)
        nn.init.normal_(self.embed.weight, std=0.01)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        phi = self.body(x)  # (B, F)
        return self.head(phi).squeeze(1) + (self.embed(y) * phi).sum(1)  # (B,)


class _Labelled(nn.Module):
    """``net(x, self.y)`` as a one-argument module: the labels of the current round are set from outside."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.y = net, None

    def forward(self, x):
        return self.net(x, self.y)


def train_conditional(x: torch.Tensor, y: torch.Tensor, steps: int, cfg: DCGANConfig | None = None, *,
                      device=None, step_fn=None, seed: int = 0):
    """Train a conditional DCGAN on images x (N, 1, 28, 28) with labels y (N,) for ``steps`` rounds of
    ``step_fn`` (default :func:`dgm.gan.train_step`). Returns (the EMA generator in eval mode, D, history)."""
    cfg = cfg or DCGANConfig()
    device = _device() if device is None else torch.device(device)
    step_fn = step_fn or train_step
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G, D = CondGenerator(cfg.z_dim, cfg.channels).to(device), CondDiscriminator(cfg.channels).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)
    ema = EMA(G, cfg.ema_decay)
    Gy, Dy = _Labelled(G), _Labelled(D)
    history = {"loss_d": [], "loss_g": []}
    for step in range(steps):
        idx = torch.randint(0, len(x), (cfg.batch_size,), generator=gen)
        real, labels = x[idx].to(device), y[idx].to(device)
        Gy.y = Dy.y = labels  # G draws the real batch's classes; D judges each image with its label
        z = torch.randn(cfg.batch_size, cfg.z_dim, generator=gen).to(device)
        loss_d, loss_g = step_fn(Gy, Dy, opt_g, opt_d, real, z, kind=cfg.kind)
        ema.update(G, step)
        history["loss_d"].append(float(loss_d))
        history["loss_g"].append(float(loss_g))
    return ema.model.eval(), D.eval(), history
