r"""A small time-conditioned U-Net ε_θ(x_t, t) for 28×28 images (the DDPM noise predictor).

28×28 → 14×14 → 7×7 and back (or 14 → 7 → 4 after a 2×2 pixel fold), with skip connections;
every residual block adds a projection of
the sinusoidal time embedding, so one network denoises at every noise level t. Optional self-attention
at the coarsest level (``attn=True``) lets every position see the whole digit.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["sinusoidal_embedding", "SelfAttention", "UNet"]


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    r"""Transformer-style embedding of the step t: [sin(t ω_k), cos(t ω_k)], ω_k = 10000^{−k/(dim/2)}.

    t: (B,) integer or float tensor → (B, dim).
    """
    if t.dim() != 1:
        raise ValueError(f"t must be a (B,) tensor, got shape {tuple(t.shape)}")
    half = dim // 2
    k = torch.arange(half, device=t.device, dtype=torch.float32)
    omega = torch.exp(-math.log(10000.0) * k / half)                       # ω_k
    angle = t.float()[:, None] * omega[None, :]                            # (B, half)
    return torch.cat([angle.sin(), angle.cos()], dim=1)                   # (B, dim)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, + time projection, GroupNorm → SiLU → conv, plus a skip."""

    def __init__(self, c_in: int, c_out: int, time_dim: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))                             # (B, c_out, H, W)
        h = h + self.time(emb)[:, :, None, None]                          # add the time signal
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Self-attention over the H·W positions of a feature map (GroupNorm → q, k, v → softmax(qkᵀ/√d) v), plus a
    skip: every position sees the whole image, so the coarse level can lay out the digit's global shape."""

    def __init__(self, c: int, heads: int = 4):
        super().__init__()
        self.heads, self.norm = heads, _norm(c)
        self.qkv, self.proj = nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)                                  # start as the identity
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W).transpose(-1, -2).unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)                       # (B, heads, HW, C/heads)
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    r"""ε_θ(x_t, t): (B, C, 28, 28) and (B,) steps → predicted noise (B, C, 28, 28).

    ``channels`` sets the width (C at the top level, 2C below). ``patch=2`` first folds every 2×2
    block of pixels into channels (pixel-unshuffle: 1×28×28 → 4×14×14) and unfolds at the end, so the
    U-Net works at 14×14 and 7×7: about 4× cheaper per step, but in our CPU runs it learned clean
    digits more slowly. ``patch=1`` (default) keeps full resolution (28 → 14 → 7). ``attn=True`` adds
    self-attention after the middle block (the coarsest level).
    """

    def __init__(self, in_channels: int = 1, channels: int = 32, time_dim: int = 64, patch: int = 1,
                 attn: bool = False):
        super().__init__()
        if patch not in (1, 2):
            raise ValueError(f"patch must be 1 or 2, got {patch!r}")
        c, self.time_dim, self.patch = channels, time_dim, patch
        self.embed = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        c_img = in_channels * patch * patch                                # channels after pixel-unshuffle
        self.inp = nn.Conv2d(c_img, c, 3, padding=1)
        self.down1 = ResBlock(c, c, time_dim)                              # top level (H × W)
        self.pool1 = nn.Conv2d(c, c, 3, stride=2, padding=1)               # → H/2
        self.down2 = ResBlock(c, 2 * c, time_dim)
        self.pool2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)       # → H/4
        self.mid = ResBlock(2 * c, 2 * c, time_dim)
        self.attn = SelfAttention(2 * c) if attn else nn.Identity()
        self.up2 = ResBlock(4 * c, 2 * c, time_dim)                        # H/2, with skip
        self.up1 = ResBlock(3 * c, c, time_dim)                            # top level, with skip
        self.out = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, c_img, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)                                # start by predicting ε = 0
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        p = self.patch
        if x.dim() != 4 or x.shape[-1] % p or x.shape[-2] % p:
            raise ValueError(f"UNet expects x of shape (B, C, H, W) with H, W divisible by {p}, "
                             f"got {tuple(x.shape)}")
        if not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],):
            raise ValueError(f"UNet expects t as a (B,) = ({x.shape[0]},) tensor of time steps")
        emb = self.embed(sinusoidal_embedding(t, self.time_dim).to(x.dtype))  # (B, time_dim)
        return self._body(x, emb)

    def _body(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """The U-Net proper, given the conditioning vector ``emb`` (B, time_dim) that every block adds."""
        if self.patch > 1:
            x = F.pixel_unshuffle(x, self.patch)                          # (B, 4C_in, 14, 14)
        h1 = self.down1(self.inp(x), emb)                                 # (B, C, H, W), H = 28 (14 if patch=2)
        h2 = self.down2(self.pool1(h1), emb)                              # (B, 2C, H/2, W/2)
        h = self.attn(self.mid(self.pool2(h2), emb))                      # (B, 2C, H/4, W/4)
        h = F.interpolate(h, size=h2.shape[-2:], mode="nearest")          # (B, 2C, H/2, W/2)
        h = self.up2(torch.cat([h, h2], dim=1), emb)                      # (B, 2C, H/2, W/2)
        h = F.interpolate(h, size=h1.shape[-2:], mode="nearest")          # (B, 2C, H, W)
        h = self.up1(torch.cat([h, h1], dim=1), emb)                      # (B, C, H, W)
        h = self.out(h)                                                   # (B, C_in·patch², ·, ·)
        return F.pixel_shuffle(h, self.patch) if self.patch > 1 else h   # (B, C_in, 28, 28)
