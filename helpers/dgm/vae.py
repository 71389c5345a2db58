r"""Variational autoencoder (Kingma & Welling, 2014) — the reference implementation of lab 2.

The encoder outputs the parameters of q_φ(z|x) = N(μ, diag σ²) (as μ and log σ²), a sample is
drawn with the reparameterization trick z = μ + σ ⊙ ε, and the decoder outputs Bernoulli pixel
logits of p_θ(x|z). Training maximises the evidence lower bound

    ELBO(x) = E_q[log p_θ(x|z)] − KL(q_φ(z|x) ‖ p(z)),    p(z) = N(0, I),

i.e. minimises −ELBO = reconstruction + β·KL (β = 1 is the VAE, β > 1 the β-VAE).
Units: every loss here is in nats per image (summed over pixels and latent dims, averaged
over the batch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "VAEConfig", "VAE", "reparameterize", "kl_divergence", "elbo_loss", "vae_loss", "train_step",
    "interpolate_latent", "perturbation_grid", "kl_per_dim", "negative_elbo", "active_units", "binarize",
    "bits_per_dim", "LabVAE", "LAB_RECIPE",
]

#: The lab's training recipe (measured against the pytorch/examples VAE in bench/bench_vae.py): Adam, the
#: learning rate decaying linearly from ``lr`` to ``lr · final_lr``, on dynamically binarized digits.
LAB_RECIPE = {"hidden": (512,), "latent_dim": 20, "lr": 2e-3, "final_lr": 0.02, "batch_size": 128, "steps": 3000}


@dataclass
class VAEConfig:
    """Sizes of :class:`VAE` and its training defaults (small enough for a CPU)."""

    latent_dim: int = 16      # k, the number of latent variables z_j
    channels: int = 16        # conv channels of the first layer (the second has 2×)
    hidden: int = 256         # width of the fully connected layer before the μ / log σ² heads
    image_size: int = 28      # H = W, must be divisible by 4
    in_channels: int = 1
    beta: float = 1.0         # weight of the KL term (β-VAE when > 1)
    lr: float = 2e-3
    batch_size: int = 128
    steps: int = 3000


def _check_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> None:
    if not isinstance(mu, torch.Tensor) or not isinstance(logvar, torch.Tensor):
        raise TypeError("mu and logvar must be torch.Tensors of shape (B, latent_dim)")
    if mu.shape != logvar.shape or mu.dim() < 1:
        raise ValueError(f"mu and logvar must have the same shape (B, latent_dim); got "
                         f"{tuple(mu.shape)} and {tuple(logvar.shape)}")


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    r"""Sample z ~ N(μ, diag σ²) in a way gradients can flow through.

        z = μ + σ ⊙ ε,   σ = exp(½ · log σ²),   ε ~ N(0, I)

    The randomness sits in ε, which does not depend on μ or log σ², so ∂z/∂μ = 1 and
    ∂z/∂logσ² = ½ σ ε. Pass ``eps`` (same shape as ``mu``) to make the sample deterministic.
    """
    _check_gaussian(mu, logvar)
    if eps is None:
        eps = torch.randn_like(mu)  # ε ~ N(0, I), fresh for every call, on mu's device/dtype
    elif eps.shape != mu.shape:
        raise ValueError(f"eps must have the shape of mu {tuple(mu.shape)}, got {tuple(eps.shape)}")
    sigma = torch.exp(0.5 * logvar)  # σ = exp(½ log σ²)
    return mu + sigma * eps  # z = μ + σ ⊙ ε


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    r"""Closed-form KL(N(μ, diag σ²) ‖ N(0, I)), one value per sample, in nats.

        KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²)

    Summed over the latent dimensions j (the last axis): ``(B, k) -> (B,)``.
    """
    _check_gaussian(mu, logvar)
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)  # (B,)


def elbo_loss(x_logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Negative (β-)ELBO with a Bernoulli decoder, in nats per image (a true −log-likelihood bound when x is
    binary, e.g. :func:`binarize`; on grey x the BCE is no log-likelihood).

        loss = 1/B Σ_b [ −log p_θ(x_b|z_b) + β · KL(q_φ(z|x_b) ‖ p(z)) ]
        −log p_θ(x|z) = Σ_pixels BCE(sigmoid(x_logits), x)     (summed over the pixels)

    ``x_logits`` are decoder *logits* (before the sigmoid), ``x`` targets in [0, 1] of the same
    shape (B, C, H, W). Returns ``(loss, reconstruction, kl)``: three scalars, each averaged over
    the batch; ``loss = reconstruction + β · kl``.
    """
    if not isinstance(x_logits, torch.Tensor) or not isinstance(x, torch.Tensor):
        raise TypeError("x_logits and x must be torch.Tensors of shape (B, C, H, W)")
    if x_logits.shape != x.shape:
        raise ValueError(f"x_logits {tuple(x_logits.shape)} and x {tuple(x.shape)} must have the same shape (B, C, H, W)")
    _check_gaussian(mu, logvar)
    if mu.shape[0] != x.shape[0]:
        raise ValueError(f"batch sizes differ: x has {x.shape[0]} images, mu has {mu.shape[0]} rows")
    if float(beta) < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    bce = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none")  # (B, C, H, W)
    reconstruction = bce.flatten(1).sum(dim=1)  # −log p(x|z), summed over pixels: (B,)
    kl = kl_divergence(mu, logvar)  # (B,)
    loss = (reconstruction + beta * kl).mean()  # −ELBO_β, averaged over the batch
    return loss, reconstruction.mean(), kl.mean()


class VAE(nn.Module):
    r"""A small convolutional VAE for (C, 28, 28) images.

    encoder:  x → conv(4, s2) → conv(4, s2) → fc → (μ, log σ²)        heads of size k
    decoder:  z → fc → fc → convT(4, s2) → convT(4, s2) → pixel logits
    """

    def __init__(self, config: VAEConfig | None = None, **overrides):
        super().__init__()
        config = replace(config if config is not None else VAEConfig(), **overrides)  # VAE(latent_dim=2) works
        if config.image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {config.image_size}")
        if config.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {config.latent_dim}")
        self.config = config
        c, h, s = config.channels, config.hidden, config.image_size // 4
        self.latent_dim = config.latent_dim
        self.encoder = nn.Sequential(
            nn.Conv2d(config.in_channels, c, 4, 2, 1), nn.SiLU(),  # (B, c, H/2, W/2)
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.SiLU(),  # (B, 2c, H/4, W/4)
            nn.Flatten(), nn.Linear(2 * c * s * s, h), nn.SiLU(),  # (B, h)
        )
        self.mu_head = nn.Linear(h, config.latent_dim)  # μ
        self.logvar_head = nn.Linear(h, config.latent_dim)  # log σ² (any real number)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim, h), nn.SiLU(),
            nn.Linear(h, 2 * c * s * s), nn.SiLU(),
            nn.Unflatten(1, (2 * c, s, s)),  # (B, 2c, H/4, W/4)
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.SiLU(),  # (B, c, H/2, W/2)
            nn.ConvTranspose2d(c, config.in_channels, 4, 2, 1),  # (B, C, H, W)
        )
        size = (config.in_channels, config.image_size, config.image_size)
        self.logit_bias = nn.Parameter(torch.zeros(size))  # per-pixel offset; see init_output_bias

    def _check_x(self, x: torch.Tensor) -> None:
        cfg = self.config
        want = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != want:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected images of shape (B, {want[0]}, {want[1]}, {want[2]}), got {got}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_φ(z|x): ``(B, C, H, W) -> (mu, logvar)``, each ``(B, latent_dim)``."""
        self._check_x(x)
        h = self.encoder(x)  # (B, hidden)
        return self.mu_head(h), self.logvar_head(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """p_θ(x|z): ``(B, latent_dim) -> (B, C, H, W)`` pixel *logits* (apply sigmoid for images)."""
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.latent_dim:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"expected z of shape (B, {self.latent_dim}), got {got}")
        return self.decoder(z) + self.logit_bias  # (B, C, H, W) logits

    @torch.no_grad()
    def init_output_bias(self, x: torch.Tensor) -> "VAE":
        r"""Data-dependent start: logit_bias = logit(mean image), so at step 0 the decoder already
        predicts the average digit and training spends its steps on what varies between digits."""
        self._check_x(x)
        p = x.mean(dim=0).clamp(1e-3, 1 - 1e-3).to(self.logit_bias)  # (C, H, W) mean pixel value
        self.logit_bias.copy_(torch.log(p) - torch.log1p(-p))  # logit(p) = log p − log(1 − p)
        return self

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None):
        """``x -> (x_logits, mu, logvar)`` with z = μ + σ ⊙ ε sampled once per image."""
        mu, logvar = self.encode(x)  # (B, k) each
        z = reparameterize(mu, logvar, eps)  # (B, k)
        return self.decode(z), mu, logvar

    def _param(self) -> torch.Tensor:
        return self.mu_head.weight

    @torch.no_grad()
    def sample(self, n: int, z: torch.Tensor | None = None) -> torch.Tensor:
        """Generate ``n`` images from the prior: z ~ N(0, I), x = sigmoid(decoder(z)) in [0, 1]."""
        w = self._param()
        if z is None:
            z = torch.randn(n, self.latent_dim, device=w.device, dtype=w.dtype)  # z ~ p(z) = N(0, I)
        return torch.sigmoid(self.decode(z))  # (n, C, H, W) Bernoulli means

    @torch.no_grad()
    def encode_mean(self, x: torch.Tensor) -> torch.Tensor:
        """μ(x), the centre of q_φ(z|x): the latent code used for maps and interpolation."""
        return self.encode(x)[0]

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """sigmoid(decoder(μ(x))): the mean reconstruction, without sampling noise."""
        return torch.sigmoid(self.decode(self.encode_mean(x)))

    @torch.no_grad()
    def interpolate(self, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8) -> torch.Tensor:
        """Decode ``steps`` points on the straight line from μ(x_a) to μ(x_b): ``(steps, C, H, W)``."""
        x_a, x_b = (x if x.dim() == 4 else x.unsqueeze(0) for x in (x_a, x_b))
        z = interpolate_latent(self.encode_mean(x_a[:1])[0], self.encode_mean(x_b[:1])[0], steps)
        return torch.sigmoid(self.decode(z))


def interpolate_latent(z_a: torch.Tensor, z_b: torch.Tensor, steps: int = 8) -> torch.Tensor:
    r"""z(t) = (1 − t) · z_a + t · z_b for t = 0, 1/(steps−1), …, 1: ``(k,), (k,) -> (steps, k)``."""
    if z_a.shape != z_b.shape or z_a.dim() != 1:
        raise ValueError(f"z_a and z_b must both have shape (k,), got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    t = torch.linspace(0, 1, steps, device=z_a.device, dtype=z_a.dtype)[:, None]  # (steps, 1)
    return (1 - t) * z_a + t * z_b  # (steps, k)


@torch.no_grad()
def perturbation_grid(model: nn.Module, z0: torch.Tensor, dims, values) -> torch.Tensor:
    r"""Latent perturbation: row i moves only z[dims[i]] through ``values``, all other z_j stay at z0.

    ``z0`` (k,) or (1, k); returns sigmoid(decoder(z)) of shape (len(dims) · len(values), C, H, W),
    row-major, ready for ``show_images(..., nrow=len(values))``.
    """
    z0 = z0.reshape(-1)  # (k,)
    values = torch.as_tensor(values, dtype=z0.dtype, device=z0.device)  # (V,)
    dims = list(dims)
    if any(not 0 <= j < z0.numel() for j in dims):
        raise ValueError(f"dims must be latent indices in [0, {z0.numel()}), got {dims}")
    z = z0.repeat(len(dims), len(values), 1)  # (D, V, k): every row starts at z0
    for row, j in enumerate(dims):
        z[row, :, j] = values  # z_j ← value, the other coordinates fixed
    return torch.sigmoid(model.decode(z.reshape(-1, z0.numel())))


def vae_loss(model: VAE, x: torch.Tensor, beta: float | None = None):
    """``loss_fn`` for :func:`dgm.train.fit`: ``(loss, {"recon": ..., "kl": ...})``."""
    beta = model.config.beta if beta is None else beta
    x_logits, mu, logvar = model(x)
    loss, recon, kl = elbo_loss(x_logits, x, mu, logvar, beta)
    return loss, {"recon": recon.detach(), "kl": kl.detach()}


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, beta: float = 1.0) -> float:
    """One gradient step on −ELBO_β for a batch ``x``; returns the loss (nats/image) before the step."""
    x_logits, mu, logvar = model(x)  # z sampled inside with the reparameterization trick
    loss, _, _ = elbo_loss(x_logits, x, mu, logvar, beta)
    optimizer.zero_grad()
    loss.backward()  # gradients reach the encoder through z = μ + σ ⊙ ε
    optimizer.step()
    return loss.item()


@torch.no_grad()
def kl_per_dim(model: VAE, x: torch.Tensor) -> torch.Tensor:
    r"""Average KL of each latent dimension over the batch: ``(k,)``. A dimension with KL ≈ 0 is an *inactive
    unit* (its q(z_j|x) sits on the prior for every x; see :func:`active_units`); the large ones carry the
    information about x. ("Posterior collapse" is the whole posterior matching the prior, all dims inactive.)"""
    mu, logvar = model.encode(x)
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean(dim=0)  # (k,)


@torch.no_grad()
def negative_elbo(model: nn.Module, x: torch.Tensor, samples: int = 1, batch_size: int = 512) -> float:
    r"""Held-out −ELBO in nats per image (β = 1), averaged over ``samples`` draws of ε per image.

    With a model that has ``encode`` and ``decode``, z = μ + σ ⊙ ε is drawn here (so a ``forward`` that decodes μ
    in eval mode does not shrink the estimate); otherwise ``model(x)`` must return ``(x_logits, mu, logvar)``.
    For BINARY ``x`` (see :func:`binarize`) this is a true bound: −ELBO ≥ −log p_θ(x). For grey x the BCE is
    not a log-likelihood (it cannot fall below the pixels' own entropy) and the number is no bound.
    """
    total, n = 0.0, 0
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size]
        for _ in range(samples):
            if hasattr(model, "encode") and hasattr(model, "decode"):
                mu, logvar = model.encode(xb)
                x_logits = model.decode(reparameterize(mu, logvar))
            else:
                x_logits, mu, logvar = model(xb)
            loss, _, _ = elbo_loss(x_logits.reshape(xb.shape), xb, mu, logvar, 1.0)
            total += loss.item() * xb.shape[0] / samples
        n += xb.shape[0]
    return total / n


@torch.no_grad()
def active_units(mu: torch.Tensor, threshold: float = 0.01) -> torch.Tensor:
    r"""Which latent dimensions are *active* (Burda et al., 2016): the encoder's mean moves with the input.

        A_j = Var_x( E_q[z_j | x] ) = Var over the batch of μ_j(x)   (unbiased, N − 1),   active ⇔ A_j > threshold

    ``mu`` (N, k) holds μ(x) of N ≥ 2 images; returns a bool tensor (k,). An inactive dimension ignores x
    (its q(z_j|x) sits on the prior for every x): it costs no KL and carries no information.
    """
    if not isinstance(mu, torch.Tensor) or mu.dim() != 2 or mu.shape[0] < 2:
        raise ValueError(f"mu must be a (N, k) tensor with N >= 2, got {getattr(mu, 'shape', type(mu).__name__)}")
    return mu.var(dim=0) > threshold  # (k,)


def binarize(x: torch.Tensor, seed: int | None = None) -> torch.Tensor:
    r"""x_i ~ Bernoulli(pixel_i): grey digits in [0, 1] → 0/1 digits of the same shape and dtype.

    Without ``seed`` a fresh draw (dynamic binarization: call it on every training batch); with ``seed`` one
    fixed draw (the test set, so that every model is scored on the same binary images).
    """
    g = torch.Generator(device=x.device).manual_seed(seed) if seed is not None else None
    return torch.bernoulli(x.clamp(0, 1), generator=g)


def bits_per_dim(nats_per_image: float, dims: int = 784) -> float:
    r"""nats per image → bits per dimension: nats / (D · ln 2), D = 784 pixels."""
    return nats_per_image / (dims * math.log(2))


class LabVAE(nn.Module):
    """The notebook's MLP VAE (the solution of lab 2): 784 → hidden… → (μ, log σ²) of size k; k → …hidden → 784."""

    def __init__(self, latent_dim: int, reparameterize=reparameterize, hidden=(512,)):
        super().__init__()
        self.latent_dim, self.reparameterize = latent_dim, reparameterize
        widths = [784, *hidden]
        enc = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*enc)  # (B, hidden[-1])
        self.mu_head, self.logvar_head = nn.Linear(widths[-1], latent_dim), nn.Linear(widths[-1], latent_dim)
        widths = [latent_dim, *reversed(hidden)]
        dec = []
        for a, b in zip(widths[:-1], widths[1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        self.decoder = nn.Sequential(*dec, nn.Linear(widths[-1], 784))  # logits

    def encode(self, x):
        h = self.body(x)  # (B, 128)
        return self.mu_head(h), self.logvar_head(h)

    def decode(self, z):
        return self.decoder(z).view(-1, 1, 28, 28)  # logits

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar
