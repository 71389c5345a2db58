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

__all__ = ["AEConfig", "Autoencoder", "reconstruction_loss", "train_step", "check_images", "anomaly_score",
           "pick_threshold", "random_codes", "pca_fit", "pca_reconstruct", "add_noise"]

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

    Units: squared error per image (not per pixel), so the number does not depend on how many images
    a batch holds, and the per-image value is comparable with other per-image terms (lab 2 adds a KL in
    nats per image: the pixel reduction sets the balance between the two). The batch mean keeps the
    gradient's size independent of the batch size, which matters for plain SGD; Adam divides each
    gradient by its running scale, so a constant factor on the loss barely changes its steps.
    Returns a 0-dim tensor.
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


# ----------------------------------------------------------------------------- anomaly detection
@torch.no_grad()
def anomaly_score(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    r"""s(x) = ‖x − d(e(x))‖² per image, (B, 1, 28, 28) → (B,), computed in eval mode without a graph.

    An autoencoder trained on normal data rebuilds normal images well; an image unlike the training data
    comes back worse, so its reconstruction error is large. Leaves the model in eval mode.
    """
    model.eval()
    return (x - model(x)).pow(2).flatten(1).sum(dim=1)  # (B,)


def pick_threshold(normal_scores: torch.Tensor, max_fpr: float) -> float:
    r"""The smallest threshold t with FPR(t) = #{s_i > t} / n ≤ max_fpr on the normal scores s (n,).

    An image is flagged when its score is > t. At most k = ⌊max_fpr · n⌋ normal scores may lie above t,
    so t is the (n − k)-th smallest score: any smaller t flags more than k normal images, any larger one
    misses anomalies for nothing.
    """
    s = torch.as_tensor(normal_scores).detach().flatten().double().sort().values  # (n,) ascending
    n = len(s)
    if n == 0 or not 0 <= max_fpr < 1:
        raise ValueError(f"need at least one normal score and 0 ≤ max_fpr < 1, got n={n}, max_fpr={max_fpr}")
    k = int(max_fpr * n + 1e-9)  # ⌊max_fpr · n⌋ (the epsilon keeps 0.05 · 100 at 5)
    return s[n - k - 1].item()


# ----------------------------------------------------------------------------- sampling and saving
def random_codes(z_train: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    r"""n codes z ~ N(m, Σ), the Gaussian fitted to the training codes z_train (N, d) → (n, d).

    The autoencoder has no prior: this Gaussian is the simplest density that matches the codes' mean and
    covariance. It still puts mass in the gaps between the clusters, where the decoder was never trained.
    """
    z = z_train.detach().double()
    m = z.mean(0)                                                            # (d,)
    cov = torch.atleast_2d(torch.cov(z.T)) + 1e-6 * torch.eye(z.shape[1], dtype=z.dtype)  # (d, d)
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, z.shape[1], generator=g, dtype=z.dtype)             # (n, d) ~ N(0, I)
    return (m + eps @ torch.linalg.cholesky(cov).T).to(z_train.dtype)        # z = m + L ε, L Lᵀ = Σ


# ----------------------------------------------------------------------------- going further: PCA, denoising
def pca_fit(x: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The mean m (784,) and the top-d principal directions U (784, d) of images x (N, 1, 28, 28).

    x̂ = m + U Uᵀ (x − m) is the best rank-d linear reconstruction in squared error (Eckart–Young), the
    subspace a linear autoencoder with a d-dimensional bottleneck also finds.
    """
    flat = x.detach().flatten(1).double()                                   # (N, 784)
    m = flat.mean(0)                                                        # (784,)
    _, _, vh = torch.linalg.svd(flat - m, full_matrices=False)             # rows of vh: principal directions
    return m.to(x.dtype), vh[:d].T.contiguous().to(x.dtype)                # (784,), (784, d)


def pca_reconstruct(x: torch.Tensor, m: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """x̂ = m + U Uᵀ (x − m), clipped to [0, 1]: (B, 1, 28, 28) → (B, 1, 28, 28)."""
    c = x.flatten(1) - m                                                    # (B, 784)
    return (m + (c @ U) @ U.T).clamp(0, 1).view_as(x)


def add_noise(x: torch.Tensor, sigma: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """x̃ = clip(x + σ ε, 0, 1), ε ~ N(0, I): the corrupted input of a denoising autoencoder."""
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return (x + sigma * eps).clamp(0, 1)
