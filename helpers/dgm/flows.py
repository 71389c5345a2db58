r"""Normalizing flows with affine coupling layers (RealNVP, Dinh et al., 2017) — the reference of lab 5.

Direction. The lecture writes the generative map x = f(z) = f_K ∘ … ∘ f_1(z_0) with z_0 ~ π. Code
works in the *normalizing* direction: ``forward(x)`` returns z = f⁻¹(x) and log|det ∂z/∂x|, and the
change of variables gives the log-likelihood

    log p(x) = log π(f⁻¹(x)) + log|det ∂f⁻¹/∂x| = log π(z_0) − Σ_{i=1..K} log|det ∂f_i/∂z_{i−1}|.

Each layer's ``forward(h) -> (h_next, log_det)`` returns the log-determinant of ITS Jacobian
∂h_next/∂h, so the flow's log|det ∂z/∂x| is the plain sum over layers; ``inverse`` runs the layers
in the reverse order.

Affine coupling with a binary mask b (1 = kept, fed to the conditioner; 0 = transformed):

    ŝ, t = net(b ⊙ x),   s = tanh(ŝ)                     (bounded log-scale: |s| ≤ 1)
    z = b ⊙ x + (1 − b) ⊙ (x ⊙ exp(s) + t),   log|det ∂z/∂x| = Σ_i (1 − b_i) s_i
    x = b ⊙ z + (1 − b) ⊙ ((z − t) ⊙ exp(−s))           (the inverse: ŝ, t from b ⊙ z = b ⊙ x)

The Jacobian is triangular (kept coordinates first): the kept block is the identity, the
transformed block is diag(exp(s)), and ∂z_kept/∂x_transformed = 0.

Pixels. 8-bit pixels k ∈ {0, …, 255} (stored as x = k/255) are dequantized y = (k + u)/256,
u ~ U[0, 1)^D. For a density p on y ∈ [0, 1]^D the discrete model P(k) = ∫ p over the cube of k
satisfies log P(k) ≥ E_u[log p(y)] − D·ln 256, so (in bits per dimension)

    bpd = (−log p(y) + D · ln 256) / (D · ln 2)  =  −log p(y) / (D ln 2) + 8.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "LOG_2PI", "standard_normal_log_prob", "checkerboard_mask", "channel_mask", "alternating_mask",
    "coupling_forward", "coupling_inverse", "AffineCoupling", "ActNorm", "Squeeze", "LogitTransform", "Flow",
    "log_likelihood", "dequantize", "bits_per_dim", "conv_net", "mlp_net", "mlp_image_net", "moons_flow", "realnvp", "bpd_loss",
]

LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    r"""log π(z) for π = N(0, I), summed over every non-batch dim: ``(B, ...) -> (B,)``.

        log π(z) = −½ Σ_i z_i² − (D/2) log 2π
    """
    d = z[0].numel()
    return -0.5 * z.flatten(1).pow(2).sum(1) - 0.5 * d * LOG_2PI


# ----------------------------------------------------------------------------- masks (1 = kept)
def checkerboard_mask(h: int, w: int, parity: int = 0, *, device=None, dtype=torch.float32) -> torch.Tensor:
    r"""b_{ij} = 1 where (i + j + parity) is even: ``(1, h, w)``; parity 1 gives 1 − b."""
    i = torch.arange(h, device=device)[:, None]
    j = torch.arange(w, device=device)[None, :]
    return ((i + j + parity) % 2 == 0).to(dtype)[None]  # (1, h, w)


def channel_mask(c: int, parity: int = 0, *, device=None, dtype=torch.float32) -> torch.Tensor:
    r"""Keep the first half of the channels (parity 0) or the second half (parity 1): ``(c, 1, 1)``."""
    keep = torch.arange(c, device=device) < c // 2
    return (keep if parity == 0 else ~keep).to(dtype)[:, None, None]  # (c, 1, 1)


def alternating_mask(d: int, parity: int = 0, *, device=None, dtype=torch.float32) -> torch.Tensor:
    r"""For vectors: b_i = 1 where (i + parity) is even: ``(d,)``."""
    return ((torch.arange(d, device=device) + parity) % 2 == 0).to(dtype)  # (d,)


# ----------------------------------------------------------------------------- the coupling layer
def coupling_forward(x: torch.Tensor, mask: torch.Tensor, net) -> tuple[torch.Tensor, torch.Tensor]:
    r"""z = b ⊙ x + (1 − b) ⊙ (x ⊙ exp(s) + t),  s = tanh(ŝ),  (ŝ, t) = net(b ⊙ x) split on dim 1.

    ``x``: (B, C, H, W) or (B, D); ``mask`` broadcasts to x; ``net`` maps (B, C, …) → (B, 2C, …).
    Returns ``(z, log_det)`` with z like x and log_det = Σ (1 − b) ⊙ s of shape (B,).
    """
    s_hat, t = net(x * mask).chunk(2, dim=1)  # (B, C, ...) each
    s = torch.tanh(s_hat) * (1 - mask)  # bounded log-scale, 0 on the kept coordinates
    z = x * mask + (1 - mask) * (x * torch.exp(s) + t)
    return z, s.flatten(1).sum(1)  # (B, ...), (B,)


def coupling_inverse(z: torch.Tensor, mask: torch.Tensor, net) -> torch.Tensor:
    r"""x = b ⊙ z + (1 − b) ⊙ ((z − t) ⊙ exp(−s)), with (ŝ, t) = net(b ⊙ z) — b ⊙ z equals b ⊙ x."""
    s_hat, t = net(z * mask).chunk(2, dim=1)
    s = torch.tanh(s_hat) * (1 - mask)
    return z * mask + (1 - mask) * ((z - t) * torch.exp(-s))


class AffineCoupling(nn.Module):
    r"""One affine coupling layer; ``forward_fn`` / ``inverse_fn`` swap in a student's functions."""

    def __init__(self, mask: torch.Tensor, net: nn.Module, forward_fn=None, inverse_fn=None):
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = net
        self.forward_fn, self.inverse_fn = forward_fn or coupling_forward, inverse_fn or coupling_inverse

    def forward(self, x):
        return self.forward_fn(x, self.mask, self.net)

    def inverse(self, z):
        return self.inverse_fn(z, self.mask, self.net)


class ActNorm(nn.Module):
    r"""Per-channel affine z = (x − loc) ⊙ exp(log_scale) (Glow), log|det| = H·W·Σ_c log_scale_c.

    The first training batch sets loc and log_scale so that z has zero mean and unit variance per channel.
    """

    def __init__(self, channels: int, image: bool = True):
        super().__init__()
        shape = (1, channels, 1, 1) if image else (1, channels)
        self.loc = nn.Parameter(torch.zeros(shape))
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.uint8))
        self._ready = False

    def forward(self, x):
        if not self._ready:
            self._ready = self.initialized.is_meta or bool(self.initialized)
            if not self._ready and self.training:
                with torch.no_grad():
                    dims = [0] + list(range(2, x.dim()))
                    self.loc.copy_(x.mean(dims, keepdim=True))
                    self.log_scale.copy_(-torch.log(x.std(dims, keepdim=True) + 1e-6))
                    self.initialized.fill_(1)
                self._ready = True
        pixels = x[0, 0].numel()  # H·W for images, 1 for vectors
        log_det = (pixels * self.log_scale.sum()).expand(x.shape[0])  # (B,)
        return (x - self.loc) * torch.exp(self.log_scale), log_det

    def inverse(self, z):
        return z * torch.exp(-self.log_scale) + self.loc


class Squeeze(nn.Module):
    r"""(B, C, H, W) → (B, 4C, H/2, W/2): each 2×2 block becomes 4 channels; a permutation, log|det| = 0."""

    def forward(self, x):
        b, c, h, w = x.shape
        z = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return z, x.new_zeros(b)

    def inverse(self, z):
        b, c4, h, w = z.shape
        return z.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, 2 * h, 2 * w)


class LogitTransform(nn.Module):
    r"""y ∈ (0, 1)^D → v = logit(α + (1 − 2α) y), with log|det ∂v/∂y| = Σ_i [log(1 − 2α) − log p_i − log(1 − p_i)].

    α keeps the logit away from ±∞ at pixels exactly 0 or 1 (p_i = α + (1 − 2α) y_i).
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        self.alpha = alpha

    def forward(self, y):
        p = self.alpha + (1 - 2 * self.alpha) * y
        v = torch.log(p) - torch.log1p(-p)  # logit(p)
        log_det = (math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
        return v, log_det

    def inverse(self, v):
        return ((torch.sigmoid(v) - self.alpha) / (1 - 2 * self.alpha)).clamp(0, 1)


# ----------------------------------------------------------------------------- the flow
def log_likelihood(x: torch.Tensor, layers, log_prior=standard_normal_log_prob) -> torch.Tensor:
    r"""log p(x) = log π(z) + Σ_k log|det ∂h_k/∂h_{k−1}|, h_0 = x, h_k = layers[k−1](h_{k−1})[0], z = h_K.

    ``layers`` are applied in the given order (data → latent); returns (B,).
    """
    h, total = x, 0.0
    for layer in layers:
        h, log_det = layer(h)  # (B, ...), (B,)
        total = total + log_det
    return log_prior(h) + total


class Flow(nn.Module):
    r"""A stack of invertible layers and the prior π = N(0, I) on the latent of shape ``z_shape``."""

    def __init__(self, layers, z_shape):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.z_shape = tuple(z_shape)

    def forward(self, x):
        """x → (z, log|det ∂z/∂x|): ``(B, ...) -> ((B, ...), (B,))``."""
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z):
        """z → x = f(z): the layers' inverses in the reverse order."""
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def log_prob(self, x):
        """log p(x) by the change of variables, (B,) in nats."""
        z, log_det = self(x)
        return standard_normal_log_prob(z) + log_det

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0):
        """x = f(T·ε), ε ~ N(0, I); T < 1 samples the typical region (sharper, less diverse)."""
        p = next(self.parameters())
        z = temperature * torch.randn(n, *self.z_shape, device=p.device, dtype=p.dtype)
        return self.inverse(z)


def dequantize(x: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
    r"""y = (k + u) / 256 with k = round(255 x) ∈ {0, …, 255} and u ~ U[0, 1)^D (or the given ``u``)."""
    if u is None:
        u = torch.rand_like(x)
    return (torch.round(x * 255) + u) / 256


def bits_per_dim(log_py: torch.Tensor, dim: int) -> torch.Tensor:
    r"""bpd = (−log p(y) + D ln 256) / (D ln 2) for the density of y = (k + u)/256 ∈ [0, 1]^D: (B,) → (B,)."""
    return (-log_py + dim * math.log(256)) / (dim * math.log(2))


def bpd_loss(model: Flow, x: torch.Tensor) -> torch.Tensor:
    """The training loss of :func:`dgm.train.fit`: mean bits/dim of a freshly dequantized batch."""
    return bits_per_dim(model.log_prob(dequantize(x)), x[0].numel()).mean()


# ----------------------------------------------------------------------------- conditioners and builders
def conv_net(c_in: int, hidden: int = 32, c_out: int | None = None) -> nn.Sequential:
    """(B, c_in, H, W) → (B, 2·c_in, H, W); the last conv starts at zero, so each coupling starts as the identity."""
    last = nn.Conv2d(hidden, c_out or 2 * c_in, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Conv2d(c_in, hidden, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(hidden, hidden, 1), nn.ReLU(), last)


def mlp_net(d: int, hidden: int = 64) -> nn.Sequential:
    """(B, d) → (B, 2d), zero-initialised output."""
    last = nn.Linear(hidden, 2 * d)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), last)


def mlp_image_net(c: int, size: int, hidden: int = 256) -> nn.Sequential:
    """(B, c, size, size) → (B, 2c, size, size) through a fully connected net: every output sees the whole image."""
    last = nn.Linear(hidden, 2 * c * size * size)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Flatten(), nn.Linear(c * size * size, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), last, nn.Unflatten(1, (2 * c, size, size)))


def moons_flow(n_layers: int = 8, hidden: int = 64, forward_fn=None, inverse_fn=None) -> Flow:
    """A 2-D flow: ``n_layers`` couplings with alternating masks (and ActNorm), z_shape (2,)."""
    layers = []
    for k in range(n_layers):
        layers += [ActNorm(2, image=False),
                   AffineCoupling(alternating_mask(2, k % 2), mlp_net(2, hidden), forward_fn, inverse_fn)]
    return Flow(layers, (2,))


def realnvp(channels: int = 1, size: int = 28, hidden: int = 32, blocks: tuple = (3, 4, 3),
            alpha: float = 0.05, mlp_hidden: int | None = None) -> Flow:
    r"""A small single-scale RealNVP for (channels, size, size) images in [0, 1].

    logit → ``blocks[0]`` checkerboard couplings → squeeze → ``blocks[1]`` channel couplings →
    ``blocks[2]`` checkerboard couplings, with ActNorm before every coupling. z has the squeezed shape.
    With ``mlp_hidden`` the full-size couplings get fully connected conditioners (global shape, cheap on a
    CPU); the squeezed ones keep small CNNs (local detail).
    """
    layers: list[nn.Module] = [LogitTransform(alpha)]
    c, s = channels, size
    for k in range(blocks[0]):
        net = mlp_image_net(c, s, mlp_hidden) if mlp_hidden else conv_net(c, hidden)
        layers += [ActNorm(c), AffineCoupling(checkerboard_mask(s, s, k % 2), net)]
    layers.append(Squeeze())
    c, s = 4 * c, s // 2
    for k in range(blocks[1]):
        layers += [ActNorm(c), AffineCoupling(channel_mask(c, k % 2), conv_net(c, hidden))]
    for k in range(blocks[2]):
        layers += [ActNorm(c), AffineCoupling(checkerboard_mask(s, s, k % 2), conv_net(c, hidden))]
    return Flow(layers, (c, s, s))
