r"""Lab-1 widget: move an anomaly threshold t and watch the false-alarm and detection rates trade off.

Kept out of :mod:`dgm.widgets` (shared by every lab). The picture is drawn with a pyplot-free matplotlib
``Figure`` into PNG bytes, so it renders in JupyterLab and Colab and can be tested headless (set
``box.threshold.value`` from Python and read ``box.rates()``).
"""
from __future__ import annotations

import io
import time

import torch

__all__ = ["threshold_explorer", "rates"]


def rates(normal_scores: torch.Tensor, odd_scores: torch.Tensor, t: float) -> tuple[float, float]:
    r"""(FPR, detection rate) of "flag when s > t": the share of normal and of unusual scores above t."""
    s0, s1 = (torch.as_tensor(s).detach().double().flatten().cpu() for s in (normal_scores, odd_scores))
    return (s0 > t).double().mean().item(), (s1 > t).double().mean().item()


def _render(s0: torch.Tensor, s1: torch.Tensor, t: float, title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 2.8), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lo, hi = min(s0.min(), s1.min()).item(), max(s0.max(), s1.max()).item()
    bins = torch.logspace(torch.log10(torch.tensor(max(lo, 1e-3))), torch.log10(torch.tensor(hi)), 40).numpy()
    ax.hist(s0.numpy(), bins=bins, alpha=0.6, color="tab:blue", label="normal digits")
    ax.hist(s1.numpy(), bins=bins, alpha=0.6, color="tab:red", label="unusual images")
    ax.axvline(t, color="k", lw=2)
    ax.set_xscale("log")
    ax.set_xlabel("anomaly score s(x) (log scale)")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def threshold_explorer(normal_scores: torch.Tensor, odd_scores: torch.Tensor, t: float | None = None):
    r"""A slider for the threshold t over the range of the scores, the two score histograms and the rates.

    ``normal_scores`` (n,) and ``odd_scores`` (m,) are anomaly scores of normal and unusual images; ``t`` is the
    starting threshold (default: the median normal score). ``box.threshold``, ``box.image``, ``box.label``,
    ``box.rates()`` = (FPR, detection rate) and ``box.last_update_ms`` serve headless tests.
    """
    import ipywidgets as W

    s0, s1 = (torch.as_tensor(s).detach().double().flatten().cpu() for s in (normal_scores, odd_scores))
    if len(s0) == 0 or len(s1) == 0:
        raise ValueError("threshold_explorer needs at least one normal and one unusual score")
    lo, hi = min(s0.min(), s1.min()).item(), max(s0.max(), s1.max()).item()
    start = float(s0.median()) if t is None else min(max(float(t), lo), hi)
    slider = W.FloatSlider(value=start, min=lo, max=hi, step=(hi - lo) / 500 or 1.0, description="t",
                           continuous_update=False, readout_format=".1f", layout=W.Layout(width="480px"))
    image, label = W.Image(format="png"), W.Label()

    def current() -> tuple[float, float]:
        return rates(s0, s1, slider.value)

    def update(change=None):
        start_time = time.perf_counter()
        fpr, tpr = current()
        label.value = f"t = {slider.value:.1f}: false alarms {fpr:.3f} of normal digits, {tpr:.3f} of unusual images flagged"
        image.value = _render(s0, s1, slider.value, "flag when s(x) > t")
        box.last_update_ms = 1000 * (time.perf_counter() - start_time)

    slider.observe(update, names="value")
    box = W.VBox([slider, label, image])
    box.threshold, box.image, box.label, box.rates, box.update = slider, image, label, current, update
    update()
    return box
