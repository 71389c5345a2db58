r"""Lab-5 widget: scrub through the layers of a 2-D flow and move a point z, watching x = f(z) move.

Kept out of :mod:`dgm.widgets` (shared by every lab); it reuses that module's PNG helpers. The picture
is drawn with a pyplot-free matplotlib ``Figure`` into PNG bytes, so it renders in JupyterLab and Colab
and can be tested headless (set ``box.z1.value`` … from Python and read ``box.point()``).
"""
from __future__ import annotations

import io
import time

import torch

from .widgets import image_widget, png_to_tensor, tensor_to_png  # noqa: F401  (shared image helpers)

__all__ = ["flow_explorer", "push_forward"]


@torch.no_grad()
def push_forward(flow, z: torch.Tensor, k: int) -> torch.Tensor:
    r"""Apply the first ``k`` generative steps x = f(z) to z (N, 2): the inverses of the last k layers, last first."""
    layers = list(flow.layers)
    h = z
    for layer in reversed(layers[len(layers) - k:] if k > 0 else []):
        h = layer.inverse(h)
    return h  # (N, 2)


def _render(cloud: torch.Tensor, point: torch.Tensor, title: str, lim: float) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 4), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    c = cloud.detach().float().cpu()
    ax.scatter(c[:, 0], c[:, 1], s=3, alpha=0.35, color="tab:blue")
    p = point.detach().float().cpu()
    ax.scatter(p[:, 0], p[:, 1], s=80, color="tab:red", edgecolor="k", zorder=3)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def flow_explorer(flow, n: int = 1500, span: float = 3.0, lim: float = 3.5, seed: int = 0):
    r"""Sliders z₁, z₂ (a point in the latent plane) and k (how many layers of x = f(z) are applied).

    At k = 0 the picture shows samples z ~ N(0, I) and your point; at k = K the same samples pushed
    through the whole flow (the model's samples) and x = f(z). ``box.z1``, ``box.z2``, ``box.layers``,
    ``box.image``, ``box.point()`` (the red point, (1, 2)) and ``box.last_update_ms`` serve headless tests.
    """
    import ipywidgets as W

    p = next(flow.parameters())
    flow.eval()
    z_cloud = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)).to(p.device, p.dtype)  # (n, 2)
    n_layers = len(flow.layers)
    z1 = W.FloatSlider(value=0.5, min=-span, max=span, step=0.05, description="z₁", continuous_update=True)
    z2 = W.FloatSlider(value=-0.5, min=-span, max=span, step=0.05, description="z₂", continuous_update=True)
    k = W.IntSlider(value=n_layers, min=0, max=n_layers, description="layers", continuous_update=True)
    image = W.Image(format="png")

    def point() -> torch.Tensor:
        z = torch.tensor([[z1.value, z2.value]], device=p.device, dtype=p.dtype)  # (1, 2)
        return push_forward(flow, z, k.value)

    def update(change=None):
        t = time.perf_counter()
        x = point()
        title = (f"after {k.value} of {n_layers} layers: "
                 f"z = ({z1.value:.2f}, {z2.value:.2f}) → ({float(x[0, 0]):.2f}, {float(x[0, 1]):.2f})")
        image.value = _render(push_forward(flow, z_cloud, k.value), x, title, lim)
        box.last_update_ms = 1000 * (time.perf_counter() - t)

    for s in (z1, z2, k):
        s.observe(update, names="value")
    box = W.HBox([W.VBox([z1, z2, k, W.Label("blue: samples z ~ N(0, I) pushed through k layers")]), image])
    box.z1, box.z2, box.layers, box.image, box.point, box.update = z1, z2, k, image, point, update
    update()
    return box
