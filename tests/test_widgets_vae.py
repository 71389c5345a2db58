"""Headless tests of the lab-2 widgets: set sliders from Python, compare the shown image with the decoder."""
from __future__ import annotations

import statistics
import time

import pytest
import torch

import dgm.vae as V
from dgm.widgets import interpolation_widget, latent_explorer, png_to_tensor, tensor_to_png


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = V.VAE(latent_dim=12)  # the default architecture, untrained: the widgets only need encode/decode
    return m.eval()


def decoded(model, z: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.sigmoid(model.decode(z))[0]  # (1, 28, 28)


def assert_shows(widget_image, model, z, scale=6):
    """The widget's PNG is exactly the decoder's output for z (and decodes back to it within 1/255)."""
    expected = decoded(model, z)
    assert widget_image.value == tensor_to_png(expected, scale=scale)
    shown = png_to_tensor(widget_image.value, scale=scale)
    assert shown.shape == expected.shape
    assert (shown - expected).abs().max() <= 0.5 / 255 + 1e-6


def test_latent_explorer_sliders_drive_the_decoder(model):
    box = latent_explorer(model, max_sliders=12)
    assert len(box.sliders) == 12 and box.dims == list(range(12))
    assert_shows(box.image, model, torch.zeros(1, 12))  # starts at the prior's centre
    box.sliders[3].value = 1.5
    box.sliders[7].value = -2.25
    z = torch.zeros(1, 12)
    z[0, 3], z[0, 7] = 1.5, -2.25
    torch.testing.assert_close(box.z(), z)
    assert_shows(box.image, model, z)
    box.reset()
    assert [s.value for s in box.sliders] == [0.0] * 12
    assert_shows(box.image, model, torch.zeros(1, 12))


def test_latent_explorer_starts_from_an_encoded_digit_and_reset_button(model):
    x = torch.rand(1, 28, 28)
    with torch.no_grad():
        mu = model.encode(x[None])[0]  # (1, 12)
    box = latent_explorer(model, x=x, max_sliders=12)
    torch.testing.assert_close(box.z(), mu)
    assert_shows(box.image, model, mu)
    box.sliders[0].value = box.sliders[0].value + 1.0
    assert not torch.allclose(box.z(), mu)
    box.reset_button.click()  # the real button callback
    torch.testing.assert_close(box.z(), mu)
    assert_shows(box.image, model, mu)


def test_large_latent_dim_shows_the_most_informative_dims_by_kl(model):
    data = torch.rand(64, 1, 28, 28)
    kl = V.kl_per_dim(model, data)
    box = latent_explorer(model, x=data[0], data=data, max_sliders=4)
    assert box.dims == torch.argsort(kl, descending=True)[:4].tolist()
    assert latent_explorer(model, data=data).dims == torch.argsort(kl, descending=True)[:8].tolist()
    assert sorted(latent_explorer(model, data=data, max_sliders=12).dims) == list(range(12))
    with torch.no_grad():
        mu = model.encode(data[:1])[0]
    j = box.dims[1]
    box.sliders[1].value = 2.0
    z = mu.clone()
    z[0, j] = 2.0  # only that latent variable moves, all others stay at μ(x)
    torch.testing.assert_close(box.z(), z)
    assert_shows(box.image, model, z)


def test_interpolation_widget_walks_the_line_between_two_digits(model):
    x_a, x_b = torch.rand(1, 28, 28), torch.rand(1, 1, 28, 28)
    with torch.no_grad():
        mu_a, mu_b = model.encode(x_a[None])[0], model.encode(x_b)[0]
    box = interpolation_widget(model, x_a, x_b)
    assert_shows(box.image, model, mu_a)
    for t in (0.25, 0.5, 1.0):
        box.slider.value = t
        z = (1 - t) * mu_a + t * mu_b
        torch.testing.assert_close(box.z(), z)
        assert_shows(box.image, model, z)


def test_updates_take_under_100_ms_on_cpu(model):
    box = latent_explorer(model, x=torch.rand(1, 28, 28), max_sliders=12)
    times = []
    for i in range(30):  # warm-up included: every update must stay fast, we assert on the median and worst
        start = time.perf_counter()
        box.sliders[i % 12].value = float((i % 7) - 3) * 0.5
        times.append(1000 * (time.perf_counter() - start))
    inter = interpolation_widget(model, torch.rand(1, 28, 28), torch.rand(1, 28, 28))
    inter_times = []
    for i in range(20):
        start = time.perf_counter()
        inter.slider.value = (i % 10) / 10 + 0.05
        inter_times.append(1000 * (time.perf_counter() - start))
    med, med_i = statistics.median(times), statistics.median(inter_times)
    print(f"latent_explorer update: median {med:.1f} ms, max {max(times):.1f} ms; "
          f"interpolation: median {med_i:.1f} ms")
    assert med < 100 and med_i < 100
    assert box.last_update_ms < 100


def test_widget_rejects_models_without_the_vae_api():
    with pytest.raises(TypeError, match="encode"):
        latent_explorer(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="max_sliders"):
        latent_explorer(V.VAE(latent_dim=2, channels=4, hidden=8), max_sliders=0)
