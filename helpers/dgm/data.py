r"""Datasets for the labs: MNIST, Fashion-MNIST and scikit-learn's handwritten digits.

Every loader returns ``(x, y)``: ``x`` float images in [0, 1] of shape (N, 1, 28, 28) and ``y``
integer labels of shape (N,).

* ``"mnist"`` / ``"fashion_mnist"`` use torchvision's real download code; files are cached under
  ``~/.cache/dgm`` (or ``$DGM_DATA``, or ``root=``).
* ``"digits"`` is scikit-learn's bundled set of 1,797 real handwritten 8×8 digits, upscaled into
  a 20×20 box and centred on a 28×28 canvas like MNIST. It needs no internet, so it is the offline
  fallback and what tests and autograding use.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["load", "loader", "default_name", "DATASETS", "DatasetFallbackWarning"]

DATASETS = ("mnist", "fashion_mnist", "digits")


class DatasetFallbackWarning(UserWarning):
    """The requested dataset could not be downloaded; the offline digits were used instead."""


def data_root(root=None) -> Path:
    """Where datasets are cached: ``root``, else ``$DGM_DATA``, else ``~/.cache/dgm``."""
    path = Path(root or os.environ.get("DGM_DATA") or Path.home() / ".cache" / "dgm").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_name() -> str:
    """The dataset a lab should use: ``$DGM_DATASET``, else "digits" in fast mode, else "mnist"."""
    from . import fast_mode

    return os.environ.get("DGM_DATASET") or ("digits" if fast_mode() else "mnist")


def load(name: str = "mnist", split: str = "train", root=None, download: bool = True,
         fallback: bool = True, limit: int | None = None):
    """Load ``name`` ("mnist", "fashion_mnist" or "digits") as ``(x, y)``; see the module docstring.

    When a download fails (offline), print one line saying so and — unless ``fallback=False`` —
    fall back to "digits" with a :class:`DatasetFallbackWarning`. ``limit`` keeps the first N images.
    """
    if not isinstance(name, str) or name.lower().replace("-", "_") not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}. Valid names: {', '.join(DATASETS)}.")
    name = name.lower().replace("-", "_")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if name == "digits":
        x, y = _digits(split, data_root(root))
    else:
        try:
            x, y = _torchvision(name, split, data_root(root), download)
        except Exception as err:  # offline, blocked mirror, missing files with download=False, corrupt file
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            msg = (f"Could not load {name!r} ({reason}). It needs internet the first time "
                   f"(cache: {data_root(root)}).")
            if not fallback:
                raise RuntimeError(msg + " Connect to the internet, or use dgm.data.load('digits').") from err
            print(msg + " Falling back to the offline 'digits' dataset.")
            warnings.warn(f"dgm.data.load({name!r}) fell back to 'digits' (offline).", DatasetFallbackWarning,
                          stacklevel=2)
            x, y = _digits(split, data_root(root))
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y


def _torchvision(name: str, split: str, root: Path, download: bool):
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST}[name]
    ds = cls(str(root), train=(split == "train"), download=download)
    x = ds.data.unsqueeze(1).float().div(255.0)  # (N, 1, 28, 28) in [0, 1]
    return x, ds.targets.long()


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
        tmp = cache.with_suffix(".tmp")
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
