r"""Lab 1 reference: the autoencoder and its bottleneck.

An encoder maps an image to a short code and a decoder maps the code back:

    z = e(x) ∈ R^d,   x̂ = d(z),   L(x, x̂) = ‖x − x̂‖²

With d ≪ 784 the network cannot copy its input; it must keep only what it needs to rebuild
the digit. Autoencoding is compression, and the bottleneck size d sets how lossy it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["AEConfig", "Autoencoder", "reconstruction_loss", "train_step", "check_images"]

IMAGE_SHAPE = (1, 28, 28)


@dataclass
class AEConfig:
    """CPU-friendly defaults; a lab overrides them in one cell."""
    latent_dim: int = 2      # d, the bottleneck
    hidden: int = 256        # width of the MLP's hidden layer
    conv: bool = False       # a small conv encoder/decoder instead of the MLP
    lr: float = 1e-3
    batch_size: int = 128
    steps: int = 1500


def check_images(x, name: str = "x") -> torch.Tensor:
    """Raise a clear error unless ``x`` is a batch of images (B, 1, 28, 28)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, 1, 28, 28), got {type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"{name} must have shape (B, 1, 28, 28), got {tuple(x.shape)}. "
                         "Add the channel dimension with x.unsqueeze(1) or reshape with x.view(-1, 1, 28, 28).")
    return x


class Autoencoder(nn.Module):
    r"""x (B, 1, 28, 28) → z = encode(x) (B, d) → x̂ = decode(z) (B, 1, 28, 28), x̂ ∈ [0, 1]."""

    def __init__(self, latent_dim: int | AEConfig = 2, hidden: int = 256, conv: bool = False):
        super().__init__()
        cfg = latent_dim if isinstance(latent_dim, AEConfig) else AEConfig(latent_dim, hidden, conv)
        if not isinstance(cfg.latent_dim, int) or cfg.latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive int, got {cfg.latent_dim!r}")
        self.config, self.latent_dim = cfg, cfg.latent_dim
        d, h = cfg.latent_dim, cfg.hidden
        if cfg.conv:
            self.encoder = nn.Sequential(
                nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(),   # (B, 32, 14, 14)
                nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),  # (B, 64, 7, 7)
                nn.Flatten(), nn.Linear(64 * 7 * 7, d),                # (B, d)  the bottleneck
            )
            self.decoder = nn.Sequential(
                nn.Linear(d, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
                nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # (B, 32, 14, 14)
                nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1),              # (B, 1, 28, 28) logits
            )
        else:
            self.encoder = nn.Sequential(
                nn.Flatten(), nn.Linear(784, h), nn.ReLU(),
                nn.Linear(h, h // 2), nn.ReLU(), nn.Linear(h // 2, d),  # (B, d)  the bottleneck
            )
            self.decoder = nn.Sequential(
                nn.Linear(d, h // 2), nn.ReLU(), nn.Linear(h // 2, h), nn.ReLU(),
                nn.Linear(h, 784), nn.Unflatten(1, IMAGE_SHAPE),         # (B, 1, 28, 28) logits
            )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = e(x): (B, 1, 28, 28) → (B, d)."""
        return self.encoder(check_images(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x̂ = d(z): (B, d) → (B, 1, 28, 28) in [0, 1] (a sigmoid on the last layer)."""
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got "
                             f"{tuple(getattr(z, 'shape', ())) or type(z).__name__}")
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))  # x̂ = d(e(x))


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    r"""L(x, x̂) = ‖x − x̂‖², summed over the 784 pixels of each image and averaged over the batch.

    Units: squared error per image (not per pixel). Summing over pixels keeps the loss of one
    image independent of the batch size; averaging over the batch keeps the learning rate
    independent of it too. Returns a 0-dim tensor.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(x_hat, torch.Tensor):
        raise TypeError("reconstruction_loss(x, x_hat) expects two tensors of the same shape (B, 1, 28, 28)")
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat must have the same shape, got {tuple(x.shape)} and {tuple(x_hat.shape)}")
    per_image = (x - x_hat).pow(2).flatten(1).sum(dim=1)  # (B,)  ‖x − x̂‖² per image
    return per_image.mean()                               # average over the batch


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               loss_fn=reconstruction_loss) -> float:
    """One gradient step on a batch: zero the gradients, forward, loss, backward, step. Returns the loss."""
    optimizer.zero_grad()
    loss = loss_fn(x, model(x))  # L(x, d(e(x)))
    loss.backward()
    optimizer.step()
    return loss.item()
