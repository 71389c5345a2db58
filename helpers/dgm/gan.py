r"""GANs: a generator turns noise into data, a discriminator tells real from fake (lab 3).

The two-player game of Goodfellow et al. (2014), with D(x) = σ(ℓ(x)) the probability "real":

    min_G max_D V(D, G) = E_{x~p_data}[log D(x)] + E_{z~p_z}[log(1 − D(G(z)))]

Every discriminator here returns the *logit* ℓ; losses use the stable identities
−log σ(ℓ) = softplus(−ℓ) and −log(1 − σ(ℓ)) = softplus(ℓ), finite for any ℓ.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from . import device as _device
from .train import EMA  # noqa: F401  (re-exported: the DCGAN samples from dgm.gan.EMA)

__all__ = [
    "GANConfig", "DCGANConfig", "sample_noise", "ring_centers", "ring_of_gaussians", "grid_of_gaussians",
    "MLPGenerator", "MLPDiscriminator", "DCGenerator", "DCDiscriminator", "discriminator_loss",
    "generator_loss", "train_step", "Coverage", "count_modes", "mode_coverage", "make_ring_game",
    "make_image_game", "train_ring", "EMA",
]

KINDS = ("nonsaturating", "minimax")
RING_FAST_STEPS = 20  # the lab's fast-mode budget for the ring (autograding only checks it runs)
IMAGE_FAST_STEPS = 3  # the lab's fast-mode budget for the DCGAN (autograding only checks it runs)


@dataclass
class GANConfig:
    """The 2-D game on a ring of Gaussians: trains in seconds on a CPU."""
    z_dim: int = 8
    x_dim: int = 2
    hidden: int = 128
    modes: int = 8
    radius: float = 2.0
    std: float = 0.05
    batch_size: int = 256
    steps: int = 2000
    lr: float = 1e-3
    lr_d: float | None = None  # D's learning rate (None: same as lr); a slow D invites mode collapse
    betas: tuple = (0.5, 0.999)
    kind: str = "nonsaturating"


@dataclass
class DCGANConfig:
    """A small DCGAN for 1×28×28 images in [0, 1] (no resize, so a CPU copes); lab 3 trains it for 8000 rounds."""
    z_dim: int = 32
    channels: int = 32
    batch_size: int = 32  # measured: at equal CPU time, more rounds of batch 32 beat fewer of batch 64
    lr: float = 8e-4  # measured: 4e-4 reaches 0.40 confident in 4000 rounds, 8e-4 about 0.5 (bench/bench_gan.py)
    betas: tuple = (0.5, 0.999)
    kind: str = "nonsaturating"
    ema_decay: float = 0.999  # sample from an EMA of G's weights (see :class:`EMA`)


# ----------------------------------------------------------------------------- noise and toy data
def sample_noise(n: int, dim: int, *, device=None, dtype=None, generator=None) -> torch.Tensor:
    r"""z ~ p_z = N(0, I): ``n`` independent noise vectors, shape (n, dim)."""
    if not all(isinstance(v, numbers.Integral) and v >= 1 for v in (n, dim)):  # also numpy ints, never floats
        raise ValueError(f"sample_noise(n, dim) needs positive ints for the shape (n, dim), got n={n!r}, dim={dim!r}")
    n, dim = int(n), int(dim)
    return torch.randn(n, dim, device=device, dtype=dtype, generator=generator)  # (n, dim)


def ring_centers(modes: int = 8, radius: float = 2.0, *, device=None, dtype=None) -> torch.Tensor:
    r"""c_k = r·(cos 2πk/K, sin 2πk/K), k = 0..K−1: shape (K, 2)."""
    angle = torch.arange(modes, device=device, dtype=dtype or torch.get_default_dtype()) * (2 * math.pi / modes)
    return radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)  # (K, 2)


def ring_of_gaussians(n: int, modes: int = 8, radius: float = 2.0, std: float = 0.05, *,
                      device=None, dtype=None, generator=None) -> torch.Tensor:
    r"""x = c_k + std·ε with k ~ Uniform{0..K−1}, ε ~ N(0, I): shape (n, 2)."""
    if n < 1 or modes < 1:
        raise ValueError(f"ring_of_gaussians needs n >= 1 and modes >= 1, got n={n}, modes={modes}")
    centers = ring_centers(modes, radius, device=device, dtype=dtype)  # (K, 2)
    k = torch.randint(modes, (n,), device=device, generator=generator)  # (n,)
    eps = torch.randn(n, 2, device=device, dtype=centers.dtype, generator=generator)  # (n, 2)
    return centers[k] + std * eps  # (n, 2)


def grid_centers(side: int = 5, spacing: float = 1.0, *, device=None, dtype=None) -> torch.Tensor:
    """Centres of a side×side grid around the origin: shape (side², 2)."""
    a = (torch.arange(side, device=device, dtype=dtype or torch.get_default_dtype()) - (side - 1) / 2) * spacing
    return torch.cartesian_prod(a, a)  # (side², 2)


def grid_of_gaussians(n: int, side: int = 5, spacing: float = 1.0, std: float = 0.05, *,
                      device=None, dtype=None, generator=None) -> torch.Tensor:
    r"""x = c_k + std·ε on a side×side grid of centres: shape (n, 2)."""
    centers = grid_centers(side, spacing, device=device, dtype=dtype)  # (K, 2)
    k = torch.randint(len(centers), (n,), device=device, generator=generator)  # (n,)
    return centers[k] + std * torch.randn(n, 2, device=device, dtype=centers.dtype, generator=generator)


# ----------------------------------------------------------------------------- networks
class MLPGenerator(nn.Module):
    r"""G(z; θ_G): R^{z_dim} → R^{x_dim}, a small MLP (the "distribution transformer")."""

    def __init__(self, z_dim: int = 8, x_dim: int = 2, hidden: int = 128):
        super().__init__()
        self.z_dim, self.x_dim = z_dim, x_dim
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, x_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"G expects z of shape (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(z)  # (B, x_dim)


class MLPDiscriminator(nn.Module):
    r"""ℓ = D_logit(x; θ_D) with D(x) = σ(ℓ): returns logits of shape (B,)."""

    def __init__(self, x_dim: int = 2, hidden: int = 128):
        super().__init__()
        self.x_dim = x_dim
        self.net = nn.Sequential(nn.Linear(x_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.x_dim:
            raise ValueError(f"D expects x of shape (B, {self.x_dim}), got {tuple(x.shape)}")
        return self.net(x).squeeze(1)  # (B,) logits


class DCGenerator(nn.Module):
    r"""DCGAN-style G: z (B, z_dim) → image (B, 1, 28, 28) in [0, 1] via 7×7 → 14×14 → 28×28, with one 3×3 conv
    at 7×7 and at 14×14 besides the upsampling (measured: 0.54 → 0.62 confident digits at the lab's budget)."""

    def __init__(self, z_dim: int = 32, channels: int = 32):
        super().__init__()
        self.z_dim, c = z_dim, channels
        self.fc = nn.Sequential(nn.Linear(z_dim, 2 * c * 7 * 7), nn.BatchNorm1d(2 * c * 7 * 7), nn.ReLU())
        self.net = nn.Sequential(
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),  # (B, 2c, 7, 7)
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(),  # (B, c, 14, 14)
            nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),  # (B, c, 14, 14)
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1), nn.Sigmoid(),  # (B, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"G expects z of shape (B, {self.z_dim}), got {tuple(z.shape)}")
        h = self.fc(z).view(len(z), -1, 7, 7)  # (B, 2c, 7, 7)
        return self.net(h)  # (B, 1, 28, 28)


class DCDiscriminator(nn.Module):
    r"""DCGAN-style D: image (B, 1, 28, 28) → logit (B,), strided convs, LeakyReLU, no batch norm."""

    def __init__(self, channels: int = 32):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, c, 14, 14)
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, 2c, 7, 7)
            nn.Flatten(), nn.Linear(2 * c * 7 * 7, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"D expects images of shape (B, 1, 28, 28), got {tuple(x.shape)}")
        return self.net(x).squeeze(1)  # (B,) logits


# ----------------------------------------------------------------------------- losses
def _logits(t, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"{name} must be a float tensor of logits, shape (B,), got {type(t).__name__}")
    return t


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    r"""J_D = ½·BCE(D(x), 1) + ½·BCE(D(G(z)), 0)
           = −½ E_x[log D(x)] − ½ E_z[log(1 − D(G(z)))]   (each expectation a batch mean).
    """
    real_logits, fake_logits = _logits(real_logits, "real_logits"), _logits(fake_logits, "fake_logits")
    real_term = F.softplus(-real_logits).mean()  # −log σ(ℓ_real)      = BCE(D(x), 1)
    fake_term = F.softplus(fake_logits).mean()  # −log(1 − σ(ℓ_fake)) = BCE(D(G(z)), 0)
    return 0.5 * real_term + 0.5 * fake_term


def generator_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    r"""The generator's loss from the logits ℓ of D(G(z)) = σ(ℓ).

    minimax:        J_G = E_z[log(1 − D(G(z)))]  (= −J_D up to a constant; saturates when D(G(z)) → 0)
    nonsaturating:  J_G = −E_z[log D(G(z))]      (same fixed point, strong gradient when D(G(z)) → 0)
    """
    fake_logits = _logits(fake_logits, "fake_logits")
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()  # −log σ(ℓ)
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()  # log(1 − σ(ℓ)) = −softplus(ℓ)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def train_step(G: nn.Module, D: nn.Module, opt_g, opt_d, real: torch.Tensor, z: torch.Tensor,
               kind: str = "nonsaturating", d_loss=discriminator_loss, g_loss=generator_loss) -> tuple[float, float]:
    r"""One round of the alternating game; returns (J_D, J_G) as floats.

    1. D step: minimise J_D on real x and *detached* fakes G(z) (θ_G gets no gradient from J_D).
    2. G step: minimise J_G(ℓ) with ℓ = D(G(z)) from the updated D; only opt_g steps.
    """
    fake = G(z)  # (B, ...) — keeps the graph to θ_G for step 2
    opt_d.zero_grad()
    loss_d = d_loss(D(real), D(fake.detach()))  # detach: J_D must not reach θ_G
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    loss_g = g_loss(D(fake), kind)  # D(G(z)) with the freshly updated D
    loss_g.backward()  # also fills D's .grad, which the next D step zeroes
    opt_g.step()
    return loss_d.item(), loss_g.item()


# ----------------------------------------------------------------------------- evaluation
@dataclass
class Coverage:
    """How well samples cover a ring: ``modes`` covered out of ``total``, ``high_quality`` fraction."""
    modes: int
    total: int
    high_quality: float
    counts: list

    def __str__(self) -> str:
        return f"{self.modes}/{self.total} modes covered, {100 * self.high_quality:.1f}% high-quality samples"


def _mode_counts(x: torch.Tensor, centers: torch.Tensor, std: float, quality: float):
    """High-quality samples per mode (K,) and the high-quality mask (N,): nearest centre, within quality·std."""
    d_min, k = torch.cdist(x, centers).min(dim=1)  # (N,), (N,) distance to and index of the nearest centre
    good = d_min <= quality * std  # (N,)
    return torch.bincount(k[good], minlength=len(centers)), good  # (K,), (N,)


def count_modes(x: torch.Tensor, centers: torch.Tensor, std: float, quality: float = 3.0,
                min_share: float = 0.1) -> tuple[int, float]:
    r"""(modes covered, high-quality fraction) of samples ``x`` (N, 2) around mode centres ``centers`` (K, 2).

    Each sample belongs to its nearest centre c_k and is *high quality* when ‖x − c_k‖ ≤ quality·std. Mode k
    is *covered* when at least min_share·N/K high-quality samples belong to it: a tenth (min_share) of the
    fair share N/K of ALL N samples, not of the high-quality ones. The fraction is over all N samples.
    """
    x = x.detach()
    counts, good = _mode_counts(x, centers.to(x), std, quality)
    covered = int((counts * len(centers) >= min_share * len(x)).sum())  # counts ≥ min_share·N/K, no rounding
    return covered, float(good.double().mean())


def mode_coverage(x: torch.Tensor, modes: int = 8, radius: float = 2.0, std: float = 0.05, *,
                  quality: float = 3.0, min_share: float = 0.1) -> Coverage:
    r"""Mode coverage of 2-D samples ``x`` (N, 2) on the ring: :func:`count_modes` with the ring's centres,
    plus the high-quality count of every mode.

    A sample is *high quality* when ‖x − c_k‖ ≤ quality·std for its nearest centre c_k; mode k is *covered*
    when it holds at least min_share·N/K high-quality samples, N counting ALL samples (a tenth of the fair
    share N/K).
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"mode_coverage expects samples of shape (N, 2), got {getattr(x, 'shape', type(x))}")
    x = x.detach()
    centers = ring_centers(modes, radius, device=x.device, dtype=x.dtype)  # (K, 2)
    counts, good = _mode_counts(x, centers, std, quality)
    covered = int((counts * modes >= min_share * len(x)).sum())
    return Coverage(covered, modes, float(good.double().mean()), counts.tolist())


# ----------------------------------------------------------------------------- the 2-D game
def make_ring_game(cfg: GANConfig | None = None, *, device=None):
    """G, D and their Adam optimisers for the ring (β₁ = 0.5 as in DCGAN)."""
    cfg = cfg or GANConfig()
    G = MLPGenerator(cfg.z_dim, cfg.x_dim, cfg.hidden).to(device)
    D = MLPDiscriminator(cfg.x_dim, cfg.hidden).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr if cfg.lr_d is None else cfg.lr_d, betas=cfg.betas)
    return G, D, opt_g, opt_d


def make_image_game(cfg: DCGANConfig | None = None, *, device=None):
    """The DCGAN pair for 28×28 images and their Adam optimisers."""
    cfg = cfg or DCGANConfig()
    G = DCGenerator(cfg.z_dim, cfg.channels).to(device)
    D = DCDiscriminator(cfg.channels).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)
    return G, D, opt_g, opt_d


def train_ring(cfg: GANConfig | None = None, *, steps: int | None = None, kind: str | None = None,
               seed: int = 0, step_fn=None, callback=None, callback_every: int = 100, device=None):
    """Play the game on the ring for ``steps`` rounds; returns (G, D, history).

    ``step_fn`` (default :func:`train_step`) has train_step's signature, so a lab can pass its own;
    ``callback(step, G, D)`` is called every ``callback_every`` rounds (e.g. for snapshots).
    """
    cfg = cfg or GANConfig()
    steps = cfg.steps if steps is None else steps
    kind = kind or cfg.kind
    step_fn = step_fn or train_step
    device = _device() if device is None else torch.device(device)
    gen = torch.Generator().manual_seed(seed)  # CPU stream: same data on every device
    torch.manual_seed(seed)  # network initialisation
    G, D, opt_g, opt_d = make_ring_game(cfg, device=device)
    history = {"loss_d": [], "loss_g": []}
    for step in range(1, steps + 1):
        real = ring_of_gaussians(cfg.batch_size, cfg.modes, cfg.radius, cfg.std, generator=gen).to(device)
        z = sample_noise(cfg.batch_size, cfg.z_dim, generator=gen).to(device)
        loss_d, loss_g = step_fn(G, D, opt_g, opt_d, real, z, kind=kind)
        history["loss_d"].append(float(loss_d))
        history["loss_g"].append(float(loss_g))
        if callback is not None and (step % callback_every == 0 or step == steps):
            callback(step, G, D)
    return G, D, history


# ----------------------------------------------------------------------------- the image recipe: saving
