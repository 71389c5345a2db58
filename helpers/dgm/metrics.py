r"""Sample quality of generated digits in seconds: confidence, class coverage and a Fréchet distance.

    q = dgm.metrics.sample_quality(samples)   # samples (N, 1, 28, 28) in [0, 1]
    print(q)   # confident 0.93 (p_max ≥ 0.9) · 10/10 classes · entropy 0.99 · FID 0.31 · n=1000

All three numbers come from one small CNN digit classifier :math:`p_\psi(c \mid x)` trained on the
training split of the loaded dataset (default :func:`dgm.data.default_name`) the first time it is
needed (≤ 60 s on one CPU thread), then cached beside the data (``$DGM_DATA``), keyed by the dataset
name, a hash of the training set and :data:`VERSION`.

* **confident** — the share of samples with :math:`\max_c p_\psi(c \mid x) \ge \tau`, :math:`\tau` =
  :data:`THRESHOLD` = 0.9. The classifier is trained with *outlier exposure* (Hendrycks et al., 2019):
  besides the cross-entropy on real digits, junk (uniform noise, Gaussian blobs, random strokes, averages
  of two digits, inverted digits, shuffled pixels, digits buried in noise) is pushed towards the uniform
  distribution, so noise and blends score low and a high share means *recognisable* digits.
* **n_classes** — distinct classes among the confident samples that hold at least a tenth of the fair
  share (count :math:`\ge 0.1 \cdot n_\text{conf} / 10`), and **class_entropy** — the entropy of their class
  histogram :math:`h`, normalised: :math:`H(h) / \log 10 \in [0, 1]`. Mode collapse shows as few classes and
  a low entropy.
* **fid** — the Fréchet distance between Gaussians fitted to the classifier's penultimate features
  :math:`\phi(x)` of the samples and of the test split (an FID for digits):

  .. math:: d^2 = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr}\bigl(\Sigma_1 + \Sigma_2
            - 2 (\Sigma_2^{1/2} \Sigma_1 \Sigma_2^{1/2})^{1/2}\bigr)

  computed in float64 with symmetric eigen-decompositions. Like every FID it is biased upwards for small
  N: compare runs at the same N (≥ 500 recommended).
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SampleQuality", "sample_quality", "DigitClassifier", "classifier", "features", "frechet_distance",
           "junk", "save_samples", "THRESHOLD", "VERSION"]

THRESHOLD = 0.9  # τ: a sample is "confident" when max_c p(c | x) ≥ τ
VERSION = 1  # bump when the classifier, its training or the junk changes: old caches are ignored
STEPS = 1500  # training steps of the classifier (~30 s on one quiet CPU thread; fast mode: FAST_STEPS)
FAST_STEPS = 500
_memo: dict = {}


@dataclass
class SampleQuality:
    """What :func:`sample_quality` measures; ``str(q)`` is a one-line summary."""

    confident: float  # share of samples with max_c p(c|x) ≥ threshold
    n_classes: int  # classes holding ≥ a tenth of the fair share of the confident samples
    class_entropy: float  # H(class histogram of confident samples) / log 10, in [0, 1]
    fid: float  # Fréchet distance to the test split in the classifier's feature space
    n: int  # number of samples
    threshold: float = THRESHOLD

    def __str__(self) -> str:
        return (f"confident {self.confident:.2f} (p_max ≥ {self.threshold:g}) · {self.n_classes}/10 classes · "
                f"entropy {self.class_entropy:.2f} · FID {self.fid:.3g} · n={self.n}")


class DigitClassifier(nn.Module):
    r"""A small CNN :math:`p_\psi(c \mid x)`; :meth:`features` is the penultimate layer :math:`\phi(x)`."""

    def __init__(self, width: int = 16, feature_dim: int = 128):
        super().__init__()
        c = width
        self.body = nn.Sequential(  # strided 5×5 convolutions: ~20 ms per training step on one CPU thread
            nn.Conv2d(1, c, 5, 2, 2), nn.ReLU(),                                # (B, c, 14, 14)
            nn.Conv2d(c, 2 * c, 5, 2, 2), nn.ReLU(),                            # (B, 2c, 7, 7)
            nn.Flatten(), nn.Linear(2 * c * 49, feature_dim), nn.ReLU(),        # (B, F)  φ(x)
        )
        self.head = nn.Linear(feature_dim, 10)                                  # (B, 10) logits
        self.register_buffer("mu_ref", torch.zeros(feature_dim, dtype=torch.float64))  # test-split statistics
        self.register_buffer("sigma_ref", torch.zeros(feature_dim, feature_dim, dtype=torch.float64))
        self.register_buffer("test_accuracy", torch.zeros((), dtype=torch.float64))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x - 0.5)  # (B, 1, 28, 28) in [0, 1] → (B, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# ----------------------------------------------------------------------------- outlier exposure
def _strokes(n: int, g: torch.Generator) -> torch.Tensor:
    """Scribbles: 3–6 random thick line segments per image, (n, 1, 28, 28) in [0, 1]."""
    k = 6
    grid = torch.stack(torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij"), -1)  # (28, 28, 2)
    a = 4 + 20 * torch.rand(n, k, 1, 1, 2, generator=g)  # segment ends (n, k, 1, 1, 2)
    b = 4 + 20 * torch.rand(n, k, 1, 1, 2, generator=g)
    ab = b - a
    t = (((grid - a) * ab).sum(-1, keepdim=True) / (ab * ab).sum(-1, keepdim=True).clamp_min(1e-6)).clamp(0, 1)
    d = (grid - (a + t * ab)).norm(dim=-1)  # (n, k, 28, 28) distance to each segment
    ink = (1.5 - d).clamp(0, 1)
    keep = torch.arange(k) < torch.randint(3, k + 1, (n, 1), generator=g)  # (n, k)
    return (ink * keep[..., None, None]).amax(1, keepdim=True)


def _blobs(n: int, g: torch.Generator) -> torch.Tensor:
    """1–4 Gaussian blobs per image, (n, 1, 28, 28) in [0, 1]."""
    k = 4
    grid = torch.stack(torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij"), -1)
    c = 4 + 20 * torch.rand(n, k, 1, 1, 2, generator=g)
    s = 1.5 + 4 * torch.rand(n, k, 1, 1, generator=g)
    keep = torch.arange(k) < torch.randint(1, k + 1, (n, 1), generator=g)
    img = (torch.exp(-((grid - c) ** 2).sum(-1) / (2 * s**2)) * keep[..., None, None]).sum(1, keepdim=True)
    return img / img.amax((2, 3), keepdim=True).clamp_min(1e-6)


def junk(x: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """``n`` outliers (n, 1, 28, 28) in [0, 1] made from the digits ``x``: noise, blobs, strokes, blends,
    inverted and pixel-shuffled digits, digits buried in noise — the classifier learns "none of the ten"."""
    m = -(-n // 7)
    pick = lambda: x[torch.randint(0, len(x), (m,), generator=g)]  # noqa: E731
    lam = 0.5 + 0.4 * torch.rand(m, 1, 1, 1, generator=g)
    perm = torch.argsort(torch.rand(m, 784, generator=g), dim=1)
    parts = [
        torch.rand(m, 1, 28, 28, generator=g) ** (0.5 + 2 * torch.rand(m, 1, 1, 1, generator=g)),  # uniform-ish noise
        _blobs(m, g),
        _strokes(m, g),
        0.5 * (pick() + pick()),  # the average of two digits
        1 - pick(),  # inverted
        pick().flatten(1).gather(1, perm).view(m, 1, 28, 28),  # shuffled pixels: same histogram, no shape
        (lam * torch.rand(m, 1, 28, 28, generator=g) + (1 - lam) * pick()),  # a digit buried in noise
    ]
    return torch.cat(parts)[:n].to(x)


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Small random rotations (±10°), scalings (±10 %) and shifts (±2 px): generated digits are never centred
    exactly like MNIST's."""
    B = len(x)
    angle = (torch.rand(B, generator=g) - 0.5) * math.radians(20)
    scale = 1 + (torch.rand(B, generator=g) - 0.5) * 0.2
    shift = (torch.rand(B, 2, generator=g) - 0.5) * (4 / 14)  # ±2 px in [-1, 1] coordinates
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def _train(x: torch.Tensor, y: torch.Tensor, steps: int, seed: int = 0, batch_size: int = 128,
           oe_weight: float = 0.3) -> DigitClassifier:
    r"""Cross-entropy on (augmented) digits + outlier exposure:
    :math:`\mathcal{L} = \mathrm{CE}(p_\psi(\cdot\mid x), y) + \lambda\,\mathbb{E}_{\tilde x \sim \text{junk}}
    [-\tfrac{1}{10}\sum_c \log p_\psi(c \mid \tilde x)]` (the cross-entropy to the uniform distribution)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    lr = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps, pct_start=0.15)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch_size,), generator=g)
        xb = _augment(x[idx], g)  # (B, 1, 28, 28)
        out = junk(x, batch_size // 2, g)  # (B/2, 1, 28, 28)
        logits = model(torch.cat([xb, out]))  # (3B/2, 10)
        loss = F.cross_entropy(logits[:batch_size], y[idx]) \
            + oe_weight * (-F.log_softmax(logits[batch_size:], dim=1).mean(1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr.step()
    return model.eval()


# ----------------------------------------------------------------------------- statistics
def frechet_distance(mu_1, sigma_1, mu_2, sigma_2) -> float:
    r""":math:`\lVert \mu_1-\mu_2\rVert^2 + \operatorname{tr}(\Sigma_1+\Sigma_2-2(\Sigma_2^{1/2}\Sigma_1\Sigma_2^{1/2})^{1/2})`
    in float64; the matrix square roots via eigh (both matrices are symmetric PSD), eigenvalues clipped at 0."""
    mu_1, mu_2 = (np.asarray(torch.as_tensor(m).detach().cpu(), dtype=np.float64) for m in (mu_1, mu_2))
    s_1, s_2 = (np.asarray(torch.as_tensor(s).detach().cpu(), dtype=np.float64) for s in (sigma_1, sigma_2))
    w, v = np.linalg.eigh((s_2 + s_2.T) / 2)
    root_2 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # Σ_2^{1/2}
    m = root_2 @ s_1 @ root_2
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()  # tr (Σ_2^{1/2} Σ_1 Σ_2^{1/2})^{1/2}
    return float(((mu_1 - mu_2) ** 2).sum() + np.trace(s_1) + np.trace(s_2) - 2 * cross)


def _gaussian(phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (F,) and covariance (F, F) of features (N, F), float64."""
    phi = phi.double()
    mu = phi.mean(0)
    d = phi - mu
    return mu, d.T @ d / max(len(phi) - 1, 1)


@torch.no_grad()
def _apply(model: DigitClassifier, x: torch.Tensor, batch_size: int = 500):
    """Features (N, F) and class probabilities (N, 10), in batches, on x's device."""
    phi = torch.cat([model.features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    return phi, F.softmax(model.head(phi), dim=1)


# ----------------------------------------------------------------------------- the cached classifier
def _fingerprint(x: torch.Tensor, y: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update((x * 255).round().to(torch.uint8).cpu().numpy().tobytes())
    h.update(y.to(torch.int64).cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def classifier(dataset: str | None = None, root=None, steps: int | None = None, device=None) -> DigitClassifier:
    """The digit classifier for ``dataset`` (default :func:`dgm.data.default_name`), trained on the CPU on first
    use on its training split (``steps`` default: :data:`STEPS`, :data:`FAST_STEPS` in fast mode) and cached in
    ``dgm.data.data_root(root)``. The test split's feature statistics ride along as buffers."""
    from . import budget
    from . import data as D

    name = dataset or D.default_name()
    steps = steps if steps is not None else budget(STEPS, FAST_STEPS)
    x, y = D.load(name, "train", root=root)
    x_test, y_test = D.load(name, "test", root=root)
    path = D.data_root(root) / f"dgm_metrics_{name}_{_fingerprint(x, y)}_v{VERSION}_s{steps}.pt"
    key = (str(path), str(device))
    if key in _memo:
        return _memo[key]
    model = DigitClassifier()
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception:  # missing or corrupt cache: train (again)
        start = time.perf_counter()
        print(f"dgm.metrics: training the digit classifier on {name} ({steps} steps, once; cached in {path.parent})",
              flush=True)
        model = _train(x, y, steps)
        phi, p = _apply(model, x_test)
        mu, sigma = _gaussian(phi.cpu())  # float64 on the CPU (mps has no float64)
        model.mu_ref.copy_(mu)
        model.sigma_ref.copy_(sigma)
        model.test_accuracy.fill_((p.argmax(1) == y_test).double().mean())
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)  # atomic: a parallel reader never sees half a file
        print(f"dgm.metrics: done in {time.perf_counter() - start:.0f} s, test accuracy "
              f"{model.test_accuracy.item():.3f}", flush=True)
    model = model.eval().requires_grad_(False)
    if device is not None:  # the layers move; the float64 reference statistics stay on the CPU (mps has no float64)
        model.body.to(device)
        model.head.to(device)
    _memo[key] = model
    return model


# ----------------------------------------------------------------------------- the entry point
def _check_images(images) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        else:
            raise TypeError(f"images must be a torch.Tensor (N, 1, 28, 28) in [0, 1], got {type(images).__name__}")
    if images.dim() == 2 and images.shape[1] == 784 or images.dim() == 3 and images.shape[1:] == (28, 28):
        images = images.reshape(-1, 1, 28, 28)  # (N, 784) or (N, 28, 28) → (N, 1, 28, 28)
    if images.dim() != 4 or images.shape[1:] != (1, 28, 28) or len(images) == 0:
        raise ValueError(f"images must have shape (N, 1, 28, 28) with N ≥ 1, got {tuple(images.shape)}. "
                         "Reshape with x.view(-1, 1, 28, 28).")
    if not images.is_floating_point():
        raise TypeError(f"images must be floats in [0, 1], got {images.dtype}: use x.float() / 255 for bytes.")
    images = images.detach().float()
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or inf: the model producing them has diverged (lower the learning "
                         "rate) or a division by zero slipped in.")
    lo, hi = images.min().item(), images.max().item()
    tol = 1e-3
    if lo < -tol and lo >= -1 - tol and hi <= 1 + tol:
        raise ValueError(f"images range over [{lo:.2f}, {hi:.2f}], which looks like [-1, 1]: map them to [0, 1] "
                         "first with (x + 1) / 2 (dgm.ddpm.to_unit does it).")
    if lo < -tol or hi > 1 + tol:
        hint = "divide by 255" if lo >= 0 and hi <= 255 else "apply torch.sigmoid to logits"
        raise ValueError(f"images must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]: {hint}.")
    return images.clamp(0, 1)


def sample_quality(images, *, threshold: float = THRESHOLD, dataset: str | None = None, root=None) -> SampleQuality:
    """Rate ``images`` (N, 1, 28, 28) in [0, 1] (e.g. samples of a generative model); see the module docstring.

    Runs on the images' device. The classifier is trained once per dataset and cached (see :func:`classifier`).
    """
    x = _check_images(images)
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    model = classifier(dataset, root, device=x.device)
    phi, p = _apply(model, x)  # (N, F), (N, 10)
    conf, cls = p.max(1)
    sure = cls[conf >= threshold]
    counts = torch.bincount(sure, minlength=10).double().cpu()  # (10,)
    n_sure = int(counts.sum())
    n_classes = int((counts >= max(0.1 * n_sure / 10, 1)).sum()) if n_sure else 0
    h = counts[counts > 0] / max(n_sure, 1)
    entropy = float(-(h * h.log()).sum() / math.log(10)) + 0.0 if n_sure else 0.0  # + 0.0: no "-0.00"
    if len(x) >= 2:
        mu, sigma = _gaussian(phi.cpu())  # float64 on the CPU (mps has no float64)
        fid = frechet_distance(mu, sigma, model.mu_ref, model.sigma_ref)
    else:
        fid = float("nan")  # a covariance needs two samples
    return SampleQuality(confident=n_sure / len(x), n_classes=n_classes, class_entropy=abs(entropy),
                         fid=max(fid, 0.0) if fid == fid else fid, n=len(x), threshold=threshold)


def save_samples(lab: str, images, quality=None, folder="samples", **extra) -> Path:
    r"""``torch.save`` ``{"images": (N, 1, 28, 28) floats in [0, 1], **asdict(quality), **extra}`` to
    ``<folder>/<lab>.pt`` and return the path: what a lab leaves for the closing notebook (06_compare).

    ``quality`` is a :class:`SampleQuality` (or a dict, or None in fast mode), stored as plain floats/ints.
    In ``extra`` 0-dim tensors become Python numbers (e.g. ``nelbo_test``), other tensors (e.g. ``labels``) go
    to the CPU. The one home of this format: every lab notebook calls it, 06_compare reads what it wrote.
    """
    import dataclasses

    x = images.detach().float().cpu() if isinstance(images, torch.Tensor) else images
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28) \
            or not bool(torch.isfinite(x).all()) or x.min() < 0 or x.max() > 1:
        raise ValueError(f"images must be (N, 1, 28, 28) floats in [0, 1], got {tuple(getattr(x, 'shape', ()))}")
    record = {"images": x}
    if quality is not None:
        q = dataclasses.asdict(quality) if dataclasses.is_dataclass(quality) else dict(quality)
        record.update({k: (int(v) if isinstance(v, (bool, int)) else float(v)) for k, v in q.items()})
    for k, v in extra.items():
        if isinstance(v, torch.Tensor):
            v = v.item() if v.dim() == 0 else v.detach().cpu()
        record[k] = v
    path = Path(folder) / f"{lab}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(record, path)
    return path


def features(images, dataset: str | None = None, root=None) -> torch.Tensor:
    """The classifier's penultimate features φ(x), (N, F), of images (N, 1, 28, 28) in [0, 1]."""
    x = _check_images(images)
    return _apply(classifier(dataset, root, device=x.device), x)[0]
