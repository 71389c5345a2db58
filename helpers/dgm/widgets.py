r"""Interactive ipywidgets (7.7+ and 8.x: what Colab ships works) for the labs; they work in JupyterLab and Colab.

Every widget shows images through :func:`image_widget`, a plain ``ipywidgets.Image`` holding a
PNG, so it renders without a matplotlib round-trip (fast enough for live sliders) and can be
tested headless: set a slider's ``.value`` from Python and read the image back with
:func:`png_to_tensor`.
"""
from __future__ import annotations

import io

import numpy as np
import torch

__all__ = ["tensor_to_png", "png_to_tensor", "image_widget", "reconstruction_slider"]


def _as_grid(img: torch.Tensor, nrow: int = 8, pad: int = 2) -> torch.Tensor:
    """(H, W), (C, H, W) or (B, C, H, W) → one (C, H', W') image in [0, 1]."""
    img = img.detach().float().cpu()
    if img.dim() == 2:
        img = img[None]  # (1, H, W)
    if img.dim() == 4:
        from .plot import grid

        img = grid(img, nrow=nrow, padding=pad)  # (C, H', W')
    if img.dim() != 3:
        raise ValueError(f"expected an image of shape (H, W), (C, H, W) or (B, C, H, W); got {tuple(img.shape)}")
    return img.clamp(0, 1)


def tensor_to_png(img: torch.Tensor, scale: int = 4, nrow: int = 8) -> bytes:
    """Encode an image (or a batch, as a grid) with values in [0, 1] as PNG bytes, upscaled ``scale``×."""
    from PIL import Image

    grid = _as_grid(img, nrow=nrow)  # (C, H, W)
    arr = (grid.numpy() * 255).round().astype(np.uint8)
    arr = arr[0] if arr.shape[0] == 1 else np.transpose(arr[:3], (1, 2, 0))
    pil = Image.fromarray(arr)
    if scale != 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def png_to_tensor(png: bytes, scale: int = 4) -> torch.Tensor:
    """Inverse of :func:`tensor_to_png` for tests: PNG bytes → (C, H, W) float in [0, 1]."""
    from PIL import Image

    pil = Image.open(io.BytesIO(png))
    if scale != 1:
        pil = pil.resize((pil.width // scale, pil.height // scale), Image.NEAREST)
    arr = np.asarray(pil, dtype=np.float32) / 255.0
    t = torch.from_numpy(arr)
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1)


def image_widget(img: torch.Tensor | None = None, scale: int = 4, nrow: int = 8):
    """An ``ipywidgets.Image`` showing ``img``; update it with ``w.value = tensor_to_png(...)``."""
    import ipywidgets as W

    w = W.Image(format="png")
    if img is not None:
        w.value = tensor_to_png(img, scale=scale, nrow=nrow)
    return w


def reconstruction_slider(reconstructions: dict, originals: torch.Tensor | None = None, scale: int = 3):
    """Lab 1: a slider over trained latent sizes showing the same digits reconstructed.

    ``reconstructions`` maps latent size → reconstructed batch (B, 1, 28, 28); ``originals`` (same
    shape) is shown above for comparison. Returns the widget box; ``box.slider`` and ``box.image``
    are exposed for headless tests.
    """
    import ipywidgets as W

    if not reconstructions:
        raise ValueError("reconstruction_slider needs at least one {latent_size: images} entry — train a model first.")
    sizes = sorted(reconstructions)
    slider = W.SelectionSlider(options=sizes, value=sizes[0], description="latent size", continuous_update=True)
    image = image_widget(reconstructions[sizes[0]], scale=scale)
    rows = []
    if originals is not None:
        rows += [W.Label("original digits"), image_widget(originals, scale=scale), W.Label("reconstructed")]

    def update(change=None):
        image.value = tensor_to_png(reconstructions[slider.value], scale=scale)

    slider.observe(update, names="value")
    box = W.VBox([slider, *rows, image])
    box.slider, box.image = slider, image
    return box


# ----------------------------------------------------------------------------- lab 2 (VAE)
import time  # noqa: E402  (used by the lab-2 widgets to measure update latency)


def _latent_model(model):
    """A VAE-like model: ``encode(x) -> (mu, logvar)``, ``decode(z) -> logits``, ``latent_dim``."""
    for attr in ("encode", "decode", "latent_dim"):
        if not hasattr(model, attr):
            raise TypeError(f"the model needs encode(x) -> (mu, logvar), decode(z) -> logits and latent_dim; "
                            f"{type(model).__name__} has no {attr!r}")
    p = next(model.parameters(), None)
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)


def _as_image_batch(x: torch.Tensor, device, dtype) -> torch.Tensor:
    x = torch.as_tensor(x)
    x = x.reshape(1, 1, *x.shape) if x.dim() == 2 else (x[None] if x.dim() == 3 else x)  # (B, C, H, W)
    if x.dim() != 4:
        raise ValueError(f"expected an image (H, W), (C, H, W) or a batch (B, C, H, W); got {tuple(x.shape)}")
    return x.to(device=device, dtype=dtype)


@torch.no_grad()
def _decode_png(model, z: torch.Tensor, scale: int) -> bytes:
    return tensor_to_png(torch.sigmoid(model.decode(z))[0], scale=scale)  # z: (1, k) → image in [0, 1]


def latent_explorer(model, x=None, data=None, max_sliders: int = 8, span: float = 3.0, scale: int = 6):
    r"""Latent perturbation: one slider per latent variable z_j, the decoded image updates live.

    Move one slider and keep the others fixed to see what a single latent variable encodes.
    Sliders start at 0 (the centre of the prior N(0, I)) or, when ``x`` (an image) is given, at
    μ(x). Given ``data`` (or ``x``), the sliders are ordered by information, largest average
    KL(q(z_j|x) ‖ N(0, 1)) first, and with more than ``max_sliders`` latent dims only those get a
    slider; the rest stay at their start value. The image shows sigmoid(decoder(z)).

    Returns the widget box; ``box.sliders``, ``box.dims``, ``box.image``, ``box.reset_button``,
    ``box.z()`` (the current (1, k) latent) and ``box.last_update_ms`` serve headless tests.
    """
    import ipywidgets as W

    device, dtype = _latent_model(model)
    k = int(model.latent_dim)
    if max_sliders < 1:
        raise ValueError(f"max_sliders must be >= 1, got {max_sliders}")
    model.eval()
    with torch.no_grad():
        x = None if x is None else _as_image_batch(x, device, dtype)[:1]  # (1, C, H, W)
        z0 = model.encode(x)[0][0] if x is not None else torch.zeros(k, device=device, dtype=dtype)  # (k,)
        ref = data if data is not None else x
        if ref is None:
            dims = list(range(min(k, max_sliders)))
        else:  # most informative first: largest average KL(q(z_j|x) ‖ N(0, 1))
            mu, logvar = model.encode(_as_image_batch(ref, device, dtype))
            kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean(0)  # KL per latent dim, (k,)
            dims = torch.argsort(kl, descending=True)[:max_sliders].tolist()
    z0 = z0.detach().clone()
    sliders = []
    for j in dims:
        v = float(z0[j])
        sliders.append(W.FloatSlider(value=v, min=min(-span, v), max=max(span, v), step=0.05,
                                     description=f"z[{j}]", continuous_update=True, readout_format=".2f"))
    image = W.Image(format="png")
    reset = W.Button(description="reset", tooltip="back to the start point", icon="undo")
    state = {"hold": False}

    def current() -> torch.Tensor:
        z = z0.clone()
        for j, s in zip(dims, sliders):
            z[j] = s.value  # only the slider dims move, all others stay fixed
        return z[None]  # (1, k)

    def update(change=None):
        if state["hold"]:
            return
        t = time.perf_counter()
        image.value = _decode_png(model, current(), scale)
        box.last_update_ms = 1000 * (time.perf_counter() - t)

    def on_reset(_=None):
        state["hold"] = True
        for j, s in zip(dims, sliders):
            s.value = float(z0[j])
        state["hold"] = False
        update()

    for s in sliders:
        s.observe(update, names="value")
    reset.on_click(on_reset)
    note = f"{len(dims)} of {k} latent dims" + (" (largest KL first)" if ref is not None else "")
    box = W.VBox([W.HBox([W.VBox(sliders), image]), W.HBox([reset, W.Label(note)])])
    box.sliders, box.dims, box.image, box.reset_button, box.z, box.update = sliders, dims, image, reset, current, update
    box.reset = on_reset
    update()
    return box


def interpolation_widget(model, x_a, x_b, scale: int = 6, steps: int = 50):
    r"""A slider t ∈ [0, 1] that walks the straight line z(t) = (1 − t)·μ(x_a) + t·μ(x_b) in latent space.

    Shows x_a, the decoded sigmoid(decoder(z(t))) and x_b side by side. ``box.slider``, ``box.image``,
    ``box.z()`` and ``box.last_update_ms`` serve headless tests.
    """
    import ipywidgets as W

    device, dtype = _latent_model(model)
    model.eval()
    x_a, x_b = (_as_image_batch(x, device, dtype)[:1] for x in (x_a, x_b))
    with torch.no_grad():
        z_a, z_b = model.encode(x_a)[0], model.encode(x_b)[0]  # μ(x_a), μ(x_b): (1, k)
    slider = W.FloatSlider(value=0.0, min=0.0, max=1.0, step=1.0 / steps, description="t",
                           continuous_update=True, readout_format=".2f")
    image = W.Image(format="png")

    def current() -> torch.Tensor:
        t = slider.value
        return (1 - t) * z_a + t * z_b  # z(t) = (1 − t) μ_a + t μ_b

    def update(change=None):
        t0 = time.perf_counter()
        image.value = _decode_png(model, current(), scale)
        box.last_update_ms = 1000 * (time.perf_counter() - t0)

    slider.observe(update, names="value")
    box = W.VBox([slider, W.HBox([W.VBox([W.Label("x_a"), image_widget(x_a[0], scale=scale)]),
                                  W.VBox([W.Label("decoded z(t)"), image]),
                                  W.VBox([W.Label("x_b"), image_widget(x_b[0], scale=scale)])])])
    box.slider, box.image, box.z, box.update = slider, image, current, update
    update()
    return box


__all__ += ["latent_explorer", "interpolation_widget"]


# ----------------------------------------------------------------------------- lab 3 (GAN)
def slerp(z_a: torch.Tensor, z_b: torch.Tensor, t: float) -> torch.Tensor:
    r"""z(t) = sin((1 − t)Ω)/sin Ω · z_a + sin(tΩ)/sin Ω · z_b, cos Ω = ⟨z_a, z_b⟩/(‖z_a‖‖z_b‖), row-wise.

    Stays near the shell ‖z‖ ≈ √k where N(0, I) noise lives (the straight line cuts inside it).
    """
    cos = (z_a * z_b).sum(-1, keepdim=True) / (z_a.norm(dim=-1, keepdim=True) * z_b.norm(dim=-1, keepdim=True))
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))  # (B, 1) angle between the endpoints
    s = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / s) * z_a + (torch.sin(t * omega) / s) * z_b


def latent_walk(G, z_a: torch.Tensor | None = None, z_b: torch.Tensor | None = None, n: int = 8,
                path: str = "slerp", scale: int = 3, steps: int = 50, seed: int = 0):
    r"""Lab 3: walk from noise z_a to z_b with a slider t ∈ [0, 1]; the images G(z(t)) update live.

    ``G`` maps noise (B, k) to images (B, C, H, W) in [0, 1] and has ``z_dim``. ``z_a``/``z_b`` are
    (B, k) or (k,); by default ``n`` pairs are drawn from N(0, I). ``path`` is "slerp" (great circle)
    or "lerp" (z(t) = (1 − t)·z_a + t·z_b). The "new endpoints" button draws fresh pairs.
    ``box.slider``, ``box.image``, ``box.z()`` (current (B, k) noise), ``box.new_button`` and
    ``box.last_update_ms`` serve headless tests.
    """
    import ipywidgets as W

    if path not in ("slerp", "lerp"):
        raise ValueError(f"path must be 'slerp' or 'lerp', got {path!r}")
    if not hasattr(G, "z_dim"):
        raise TypeError(f"G needs a z_dim attribute (the noise size); {type(G).__name__} has none")
    p = next(G.parameters(), None)
    device, dtype = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
    k = int(G.z_dim)
    gen = torch.Generator().manual_seed(seed)

    def draw(z):
        z = torch.randn(n, k, generator=gen) if z is None else torch.as_tensor(z)
        z = z[None] if z.dim() == 1 else z  # (B, k)
        if z.dim() != 2 or z.shape[1] != k:
            raise ValueError(f"noise must have shape (B, {k}) or ({k},), got {tuple(z.shape)}")
        return z.to(device=device, dtype=dtype)

    ends = {"a": draw(z_a), "b": draw(z_b)}
    if ends["a"].shape != ends["b"].shape:
        raise ValueError(f"z_a and z_b must have the same shape, got {tuple(ends['a'].shape)} and {tuple(ends['b'].shape)}")
    G.eval()
    slider = W.FloatSlider(value=0.0, min=0.0, max=1.0, step=1.0 / steps, description="t",
                           continuous_update=True, readout_format=".2f")
    image = W.Image(format="png")
    new = W.Button(description="new endpoints", icon="random")

    def current() -> torch.Tensor:
        t, a, b = slider.value, ends["a"], ends["b"]
        return slerp(a, b, t) if path == "slerp" else (1 - t) * a + t * b  # (B, k)

    def update(change=None):
        t0 = time.perf_counter()
        with torch.no_grad():
            image.value = tensor_to_png(G(current()).clamp(0, 1), scale=scale, nrow=len(ends["a"]))
        box.last_update_ms = 1000 * (time.perf_counter() - t0)

    def on_new(_=None):
        ends["a"] = draw(torch.randn(len(ends["a"]), k, generator=gen))
        ends["b"] = draw(torch.randn(len(ends["a"]), k, generator=gen))
        update()

    slider.observe(update, names="value")
    new.on_click(on_new)
    box = W.VBox([W.HBox([slider, new, W.Label(f"{path} from z_a (t = 0) to z_b (t = 1)")]), image])
    box.slider, box.image, box.z, box.update, box.new_button = slider, image, current, update, new
    update()
    return box


__all__ += ["slerp", "latent_walk"]


def noising_scrubber(x0: torch.Tensor, sched, q_sample=None, eps: torch.Tensor | None = None, scale: int = 3,
                     t: int = 0):
    r"""Lab 4: a slider over t = 0..T showing x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for the images ``x0``.

    ``x0``: (B, C, H, W) in the model range [−1, 1]; ``sched``: a :class:`dgm.ddpm.DiffusionSchedule`;
    ``q_sample(x0, t, eps, sched)`` defaults to the reference (pass your own to see it). One fixed ε
    is drawn once, so scrubbing shows the same noise fading in. ``box.slider``, ``box.image`` and
    ``box.label`` are exposed for headless tests.
    """
    import ipywidgets as W

    from . import ddpm

    if not isinstance(x0, torch.Tensor) or x0.dim() != 4:
        raise ValueError("x0 must be a batch of images (B, C, H, W), got "
                         f"{getattr(x0, 'shape', type(x0).__name__)}")
    q_sample = q_sample or ddpm.q_sample
    x0 = x0.detach().float().cpu()
    eps = torch.randn_like(x0) if eps is None else eps.detach().float().cpu()   # one ε for every t
    if eps.shape != x0.shape:
        raise ValueError(f"eps must have the shape of x0 {tuple(x0.shape)}, got {tuple(eps.shape)}")
    import copy

    sched = copy.deepcopy(sched).to("cpu").float()                          # a CPU copy: the caller's stays put
    T = sched.T
    slider = W.IntSlider(value=int(t), min=0, max=T, step=1, description="t", continuous_update=True)
    label, image = W.Label(), image_widget(scale=scale)

    def update(change=None):
        tt = torch.full((x0.shape[0],), slider.value, dtype=torch.long)
        with torch.no_grad():
            xt = q_sample(x0, tt, eps, sched)                                 # (B, C, H, W)
        image.value = tensor_to_png(((xt + 1) / 2).clamp(0, 1), scale=scale)
        ab = float(sched.alpha_bar[slider.value])
        label.value = (f"t = {slider.value}/{T}:  √ᾱ_t = {ab ** 0.5:.3f} (signal),  "
                       f"√(1 − ᾱ_t) = {(1 - ab) ** 0.5:.3f} (noise)")

    slider.observe(update, names="value")
    update()
    box = W.VBox([slider, label, image])
    box.slider, box.image, box.label = slider, image, label
    return box


__all__ += ["noising_scrubber"]
