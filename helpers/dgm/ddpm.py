r"""Denoising diffusion probabilistic models (Ho et al., 2020): Algorithms 1 and 2.

Forward (data → noise), a fixed Markov chain with variance schedule β_1..β_T:

    q(x_t | x_{t-1}) = N(√(1 − β_t) x_{t-1}, β_t I),   q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I),
    α_t = 1 − β_t,   ᾱ_t = ∏_{s=1}^t α_s.

Reverse (noise → data), learned: p_θ(x_{t-1} | x_t) = N(μ_θ(x_t, t), σ_t² I) with
μ_θ = 1/√α_t · (x_t − β_t/√(1 − ᾱ_t) · ε_θ(x_t, t)).

**Indexing convention (the one place it is defined; every function here follows it).**
Time steps are the slides' t = 1..T, used *as tensor indices*: every buffer of
:class:`DiffusionSchedule` has length T + 1 and ``sched.alpha_bar[t]`` *is* ᾱ_t. Index 0 is the
clean data x_0 (β_0 = 0, α_0 = ᾱ_0 = 1), so ``q_sample(x0, 0, eps) == x0`` and the slide's
product ∏_{s=0}^t α_s gives the same ᾱ_t. The schedule functions return the T values
β_1..β_T as a (T,) tensor (0-based: ``beta[0]`` is β_1); :class:`DiffusionSchedule` pads them.
Training draws t ~ Uniform{1..T}; sampling runs t = T, …, 1 and adds no noise at t = 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DDPMConfig", "scaled_linear_betas", "linear_beta_schedule", "cosine_beta_schedule", "make_schedule",
    "DiffusionSchedule", "q_sample", "q_posterior", "ddpm_loss", "p_sample", "sample", "to_unit", "UNet",
]


@dataclass
class DDPMConfig:
    """CPU-friendly defaults (lab 4's full budget on a CPU; on a GPU use channels=64, batch_size=128).

    With T = 1000 Ho et al. use beta_1=1e-4, beta_T=0.02; a short chain must add more noise per step,
    so the linear end points are scaled by 1000/T (see :func:`scaled_linear_betas`)."""
    T: int = 200
    schedule: str = "linear"           # "linear" | "cosine"
    beta_1: float = 1e-4 * 1000 / 200  # = 5e-4
    beta_T: float = 0.02 * 1000 / 200  # = 0.1
    channels: int = 16                 # U-Net width (channels at the top level)
    time_dim: int = 64                 # size of the time embedding
    patch: int = 1                     # 2: fold 2×2 pixels into channels (cheaper, coarser)
    lr: float = 2e-3
    batch_size: int = 32
    steps: int = 2000
    variance: str = "beta"             # σ_t² = β_t ("beta") or β̃_t ("beta_tilde")


def scaled_linear_betas(T: int) -> tuple[float, float]:
    """(beta_1, beta_T) of Ho et al.'s linear schedule rescaled to a chain of T steps (β_T capped at 0.5)."""
    return 1e-4 * 1000 / T, min(0.02 * 1000 / T, 0.5)


# ----------------------------------------------------------------------------- schedules
def linear_beta_schedule(T: int, beta_1: float = 1e-4, beta_T: float = 0.02, *,
                         dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    r"""β_1..β_T evenly spaced from beta_1 to beta_T; returns a (T,) tensor (``beta[0]`` is β_1)."""
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")
    if not 0 < beta_1 <= beta_T < 1:
        raise ValueError(f"need 0 < beta_1 <= beta_T < 1, got beta_1={beta_1}, beta_T={beta_T}")
    return torch.linspace(beta_1, beta_T, T, dtype=torch.float64).to(device=device, dtype=dtype)  # (T,)


def cosine_beta_schedule(T: int, s: float = 0.008, *, max_beta: float = 0.999,
                         dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    r"""Nichol & Dhariwal (2021): ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2),
    β_t = 1 − ᾱ_t/ᾱ_{t−1} clipped to ``max_beta``; returns a (T,) tensor."""
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")
    t = torch.arange(T + 1, dtype=torch.float64)                          # 0..T
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2               # f(t)
    alpha_bar = f / f[0]                                                  # ᾱ_t, ᾱ_0 = 1
    beta = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)       # β_t = 1 − ᾱ_t/ᾱ_{t−1}
    return beta.to(device=device, dtype=dtype)                            # (T,)


def make_schedule(T: int, kind: str = "linear", **kwargs) -> "DiffusionSchedule":
    """``DiffusionSchedule`` from a schedule name ("linear" or "cosine")."""
    if kind == "linear":
        return DiffusionSchedule(linear_beta_schedule(T, **kwargs))
    if kind == "cosine":
        return DiffusionSchedule(cosine_beta_schedule(T, **kwargs))
    raise ValueError(f"unknown schedule {kind!r}; use 'linear' or 'cosine'")


class DiffusionSchedule(nn.Module):
    r"""All constants of the chain as registered buffers of length T + 1, indexed by t = 0..T
    (see the module docstring): β_t, α_t = 1 − β_t, ᾱ_t = ∏ α_s, ᾱ_{t−1}, the posterior variance
    β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) · β_t and the posterior-mean coefficients of
    μ̃_t = coef_x0 · x_0 + coef_xt · x_t. ``.to(device)`` / ``.double()`` move them all.
    """

    def __init__(self, beta: torch.Tensor):
        super().__init__()
        if not isinstance(beta, torch.Tensor) or beta.dim() != 1 or beta.numel() < 1:
            raise ValueError("DiffusionSchedule expects beta as a 1-D tensor (T,) holding β_1..β_T")
        if beta.device.type != "meta" and not bool(((beta > 0) & (beta < 1)).all()):
            raise ValueError("every β_t must lie in (0, 1)")
        one = beta.new_ones(1)
        beta = torch.cat([beta.new_zeros(1), beta])                      # (T+1,) β_0 = 0
        alpha = 1 - beta                                                  # α_t = 1 − β_t
        alpha_bar = torch.cumprod(alpha, dim=0)                           # ᾱ_t = ∏_{s≤t} α_s
        alpha_bar_prev = torch.cat([one, alpha_bar[:-1]])                 # ᾱ_{t−1} (ᾱ_{−1} := 1)
        denom = (1 - alpha_bar).clamp_min(torch.finfo(beta.dtype).tiny)   # 1 − ᾱ_t (0 at t = 0)
        beta_tilde = (1 - alpha_bar_prev) / denom * beta                  # β̃_t
        coef_x0 = alpha_bar_prev.sqrt() * beta / denom                    # √ᾱ_{t−1} β_t/(1 − ᾱ_t)
        coef_xt = alpha.sqrt() * (1 - alpha_bar_prev) / denom             # √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t)
        coef_x0 = torch.cat([one, coef_x0[1:]])                           # t = 0: the "posterior" is x_0 itself
        for name, buf in dict(beta=beta, alpha=alpha, alpha_bar=alpha_bar, alpha_bar_prev=alpha_bar_prev,
                              beta_tilde=beta_tilde, coef_x0=coef_x0, coef_xt=coef_xt).items():
            self.register_buffer(name, buf)

    @property
    def T(self) -> int:
        return self.beta.shape[0] - 1

    def extra_repr(self) -> str:
        return f"T={self.T}"


# ----------------------------------------------------------------------------- helpers
def _check_image(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor of shape (B, C, H, W) (or (B, D)), got "
                         f"{type(x).__name__ if not isinstance(x, torch.Tensor) else tuple(x.shape)}")


def _time(t, x: torch.Tensor, sched: DiffusionSchedule) -> torch.Tensor:
    """t as a (B,) long tensor on the schedule's device; an int means the same t for the batch."""
    if isinstance(t, int):
        t = torch.full((x.shape[0],), t, dtype=torch.long, device=sched.beta.device)
    if not isinstance(t, torch.Tensor) or t.dtype not in (torch.int32, torch.int64) or t.shape != (x.shape[0],):
        raise ValueError(f"t must be an int or a (B,) = ({x.shape[0]},) integer tensor, got "
                         f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    if t.device.type != "meta" and bool(((t < 0) | (t > sched.T)).any()):
        raise ValueError(f"t must lie in 0..T = 0..{sched.T} (t = 1..T as on the slides, 0 = clean data)")
    return t.to(sched.beta.device).long()


def _at(buf: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """buf[t] reshaped to (B, 1, 1, 1) so each image in the batch uses its own t."""
    return buf[t].to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model range [−1, 1] → image range [0, 1] for plotting."""
    return ((x + 1) / 2).clamp(0, 1)


# ----------------------------------------------------------------------------- forward process
def q_sample(x0: torch.Tensor, t, eps: torch.Tensor | None, sched: DiffusionSchedule) -> torch.Tensor:
    r"""x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε — a sample of q(x_t | x_0), one t per image.

    x0: (B, C, H, W); t: (B,) long in 0..T (or an int); eps: like x0, or None to draw ε ~ N(0, I).
    """
    _check_image(x0, "x0")
    t = _time(t, x0, sched)
    if eps is None:
        eps = torch.randn_like(x0)                                        # ε ~ N(0, I)
    elif eps.shape != x0.shape:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    alpha_bar = _at(sched.alpha_bar, t, x0)                               # (B, 1, 1, 1)
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps          # (B, C, H, W)


def q_posterior(x0: torch.Tensor, xt: torch.Tensor, t, sched: DiffusionSchedule):
    r"""Mean and variance of q(x_{t−1} | x_t, x_0) = N(μ̃_t, β̃_t I):
    μ̃_t = √ᾱ_{t−1} β_t/(1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) · x_t.

    Returns ``(mean, var)``: mean like x0, var of shape (B, 1, 1, 1). Needs t ≥ 1.
    """
    _check_image(x0, "x0")
    if xt.shape != x0.shape:
        raise ValueError(f"xt must have the shape of x0 {tuple(x0.shape)}, got {tuple(xt.shape)}")
    t = _time(t, x0, sched)
    mean = _at(sched.coef_x0, t, x0) * x0 + _at(sched.coef_xt, t, x0) * xt  # μ̃_t(x_t, x_0)
    return mean, _at(sched.beta_tilde, t, x0)                             # β̃_t


# ----------------------------------------------------------------------------- Algorithm 1
def ddpm_loss(model: Callable, x0: torch.Tensor, sched: DiffusionSchedule,
              t: torch.Tensor | None = None, eps: torch.Tensor | None = None) -> torch.Tensor:
    r"""Algorithm 1: t ~ Uniform{1..T}, ε ~ N(0, I), loss ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖².

    The squared error is averaged over all elements, as in the DDPM papers. The mean instead of the sum over
    pixels rescales the loss by a constant, which Adam (used here) nearly ignores — it divides each step by the
    gradient's running RMS; the reduction would matter for plain SGD, or when this loss is weighted against
    another term. Pass ``t``/``eps`` to make it deterministic.
    """
    _check_image(x0, "x0")
    if t is None:
        t = torch.randint(1, sched.T + 1, (x0.shape[0],), device=x0.device)  # t ~ U{1..T}, one per image
    if eps is None:
        eps = torch.randn_like(x0)                                        # ε ~ N(0, I)
    xt = q_sample(x0, t, eps, sched)                                      # x_t ~ q(x_t | x_0)
    eps_theta = model(xt, t.to(x0.device))                                # ε_θ(x_t, t)
    return F.mse_loss(eps_theta, eps)                                     # ‖ε − ε_θ‖² (mean)


# ----------------------------------------------------------------------------- Algorithm 2
def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


@torch.no_grad()
def p_sample(model: Callable, xt: torch.Tensor, t, sched: DiffusionSchedule, z: torch.Tensor | None = None,
             variance: str = "beta", generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Algorithm 2, line 4: x_{t−1} = 1/√α_t · (x_t − (1 − α_t)/√(1 − ᾱ_t) · ε_θ(x_t, t)) + σ_t z,
    z ~ N(0, I) for t > 1 and z = 0 at t = 1; σ_t² = β_t (``variance="beta"``) or β̃_t ("beta_tilde").

    (The slide writes √(1 − α_t) in the denominator; the correct factor is √(1 − ᾱ_t).)
    t: an int in 1..T or a (B,) tensor. z: the noise (like xt), or None to draw it.
    """
    _check_image(xt, "xt")
    t = _time(t, xt, sched)
    if variance not in ("beta", "beta_tilde"):
        raise ValueError(f"variance must be 'beta' or 'beta_tilde', got {variance!r}")
    if z is None:
        z = _noise(xt, generator)                                         # z ~ N(0, I)
    alpha = _at(sched.alpha, t, xt)                                       # α_t
    alpha_bar = _at(sched.alpha_bar, t, xt)                               # ᾱ_t
    eps_theta = model(xt, t.to(xt.device))                                # ε_θ(x_t, t)
    mean = (xt - (1 - alpha) / (1 - alpha_bar).sqrt() * eps_theta) / alpha.sqrt()  # μ_θ(x_t, t)
    sigma = _at(sched.beta if variance == "beta" else sched.beta_tilde, t, xt).sqrt()  # σ_t
    not_last = (t > 1).to(xt.dtype).to(xt.device).reshape(sigma.shape)    # z = 0 at t = 1
    return mean + not_last * sigma * z                                    # x_{t−1}


@torch.no_grad()
def _skip_step(model, x, t: int, s: int, sched, eta: float, clip_x0: bool, generator):
    r"""One generalised (DDIM, Song et al. 2021) step from t to s < t:
    x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ)/√ᾱ_t, σ = η √((1 − ᾱ_s)/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_s)),
    x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε_θ + σ z. η = 0 is DDIM. η = 1 is the strided DDPM (ancestral) step: its
    σ² = (1 − ᾱ_s)/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_s) is β̃ *of the jump* t → s (the variance of q(x_s | x_t, x_0)), and
    for s = t − 1 it is β̃_t — not Algorithm 2's σ_t² = β_t."""
    tb = _time(t, x, sched)
    ab_t = sched.alpha_bar[t].to(x)                                       # ᾱ_t
    ab_s = sched.alpha_bar[s].to(x)                                       # ᾱ_s
    eps_theta = model(x, tb.to(x.device))                                 # ε_θ(x_t, t)
    x0_hat = (x - (1 - ab_t).sqrt() * eps_theta) / ab_t.sqrt()            # predicted x_0
    if clip_x0:
        x0_hat = x0_hat.clamp(-1, 1)
        eps_theta = (x - ab_t.sqrt() * x0_hat) / (1 - ab_t).sqrt()        # ε consistent with the clipped x̂_0
    sigma = eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)).clamp_min(0).sqrt()
    x = ab_s.sqrt() * x0_hat + (1 - ab_s - sigma ** 2).clamp_min(0).sqrt() * eps_theta
    return x + sigma * _noise(x, generator) if s > 0 else x


@torch.no_grad()
def sample(model: Callable, shape, sched: DiffusionSchedule, *, steps: int | None = None, method: str = "ddpm",
           eta: float | None = None, variance: str = "beta", clip_x0: bool = False,
           generator: torch.Generator | None = None, return_trajectory: bool = False, progress: bool = True,
           device=None, dtype: torch.dtype | None = None):
    r"""The reverse chain: x_T ~ N(0, I), then x_{t−1} ~ p_θ(x_{t−1} | x_t) for t = T, …, 1.

    ``steps=None`` with ``method="ddpm"`` runs Algorithm 2 exactly (T calls of :func:`p_sample`, σ_t² from
    ``variance``: β_t by default).
    ``steps=k < T`` visits k evenly spaced time steps: ``method="ddpm"`` takes strided ancestral
    steps (η = 1), ``method="ddim"`` deterministic DDIM steps (η = 0 unless ``eta`` is given).
    **The strided DDPM step is not Algorithm 2's step with a bigger gap**: it samples the posterior
    q(x_s | x_t, x̂_0), whose variance is β̃ of the jump, (1 − ᾱ_s)/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_s), where
    Algorithm 2 uses σ_t² = β_t; comparing the two changes the number of steps *and* the variance. For a
    like-for-like baseline compare with ``variance="beta_tilde"`` (all T steps, σ_t² = β̃_t).
    ``clip_x0=True`` clamps the predicted x̂_0 to the data range [−1, 1] before each step (as Ho et al.'s
    code does). With all T steps it then also switches the variance: it takes the posterior step
    q(x_{t−1} | x_t, x̂_0) with σ_t² = β̃_t, whatever ``variance`` says. It helps a briefly trained model a lot.
    ``return_trajectory=True`` also returns the list [x_T, …, x_0] (on the CPU).
    """
    if method not in ("ddpm", "ddim"):
        raise ValueError(f"method must be 'ddpm' or 'ddim', got {method!r}")
    T = sched.T
    steps = T if steps is None else int(steps)
    if not 1 <= steps <= T:
        raise ValueError(f"steps must lie in 1..T = 1..{T}, got {steps}")
    device = torch.device(device) if device is not None else sched.beta.device
    dtype = dtype or sched.beta.dtype
    if generator is None:
        x = torch.randn(tuple(shape), device=device, dtype=dtype)         # x_T ~ N(0, I)
    else:
        x = torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=dtype).to(device)
    ts = torch.linspace(T, 1, steps).round().long().tolist() if steps < T else list(range(T, 0, -1))
    if method == "ddpm" and steps == T and not clip_x0:
        pairs = [(t, t - 1) for t in ts]
    else:
        pairs = list(zip(ts, ts[1:] + [0]))
    eta = (1.0 if method == "ddpm" else 0.0) if eta is None else eta
    trajectory = [x.detach().cpu()] if return_trajectory else None
    if progress:
        from tqdm.auto import tqdm
        pairs = tqdm(pairs, desc=f"sampling ({method}, {steps} steps)", leave=False)
    for t, s in pairs:
        if method == "ddpm" and steps == T and not clip_x0:
            x = p_sample(model, x, t, sched, variance=variance, generator=generator)  # Algorithm 2
        else:
            x = _skip_step(model, x, t, s, sched, eta, clip_x0, generator)
        if return_trajectory:
            trajectory.append(x.detach().cpu())
    return (x, trajectory) if return_trajectory else x


from .unet import UNet  # noqa: E402  (the ε_θ network lives in its own module)
from .ddpm_train import EMA, LAB_RECIPE, lr_at  # noqa: E402,F401  (lab 4's recipe)
