r"""Lab 4's going-further widget: classifier-free guidance, one slider for the guidance scale w.

Kept apart from :mod:`dgm.widgets` (the widgets of the graded parts)."""
from __future__ import annotations

import torch

from .widgets import image_widget, tensor_to_png

__all__ = ["guidance_widget"]


def guidance_widget(model, sched, w: float = 2.0, n_per_class: int = 4, classes=range(10), steps: int | None = None,
                    seed: int = 0, scale: int = 2, w_max: float = 6.0):
    r"""A slider over the guidance scale w showing ``n_per_class`` samples of each class (one column per class),
    drawn by :func:`dgm.ddpm.sample` from ε̂ = (1 + w) ε_θ(x_t, t, c) − w ε_θ(x_t, t, ∅) with the same starting
    noise for every w (``seed``), so only the guidance changes. ``model`` is a
    :class:`dgm.ddpm_cfg.ConditionalUNet`; ``steps`` strided steps (default T/4) with x̂_0 clipped. Images are
    cached per w. ``box.slider``, ``box.image`` and ``box.label`` are exposed for headless tests.
    """
    import ipywidgets as W

    from .ddpm import sample, to_unit
    from .ddpm_cfg import guided

    classes = [int(c) for c in classes]
    if not classes or any(not 0 <= c <= 9 for c in classes):
        raise ValueError(f"classes must be digits 0..9, got {classes}")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be ≥ 1, got {n_per_class}")
    steps = steps or max(sched.T // 4, 1)
    labels = torch.tensor(classes).repeat(n_per_class)                     # row r, column j: class classes[j]
    device = next(model.parameters()).device
    slider = W.FloatSlider(value=float(w), min=0.0, max=float(w_max), step=0.5, description="w",
                           continuous_update=False)
    label, image = W.Label(), image_widget(scale=scale)
    cache: dict[float, torch.Tensor] = {}

    def images(wv: float) -> torch.Tensor:
        if wv not in cache:
            g = torch.Generator().manual_seed(seed)
            x = sample(guided(model, labels, wv), (len(labels), 1, 28, 28), sched, steps=steps, clip_x0=True,
                       generator=g, progress=False, device=device)
            cache[wv] = to_unit(x).cpu()
        return cache[wv]

    def update(change=None):
        wv = float(slider.value)
        image.value = tensor_to_png(images(wv), scale=scale, nrow=len(classes))
        label.value = (f"w = {wv:g}: ε̂ = {1 + wv:g}·ε(x, t, c) − {wv:g}·ε(x, t, ∅); columns: classes "
                       f"{', '.join(map(str, classes))}")

    slider.observe(update, names="value")
    update()
    box = W.VBox([slider, label, image])
    box.slider, box.image, box.label, box.images = slider, image, label, images
    return box
