"""Headless tests of the lab-3 latent walk: move the slider from Python, compare the image with G's output."""
from __future__ import annotations

import math

import pytest
import torch

import dgm.gan as Gm
from dgm.widgets import latent_walk, png_to_tensor, slerp, tensor_to_png


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    g = Gm.DCGenerator(z_dim=16, channels=8)  # untrained: the widget only needs z → image
    with torch.no_grad():  # give BatchNorm non-trivial running statistics, then switch to eval
        g.train()(torch.randn(64, 16))
    return g.eval()


def shows(image, G, z, scale=3):
    with torch.no_grad():
        expected = G(z).clamp(0, 1)  # (B, 1, 28, 28)
    assert image.value == tensor_to_png(expected, scale=scale, nrow=len(z))
    shown = png_to_tensor(image.value, scale=scale)
    assert shown.shape[-2:] == (28 + 4, len(z) * 30 + 2) if len(z) > 1 else shown.shape[-2:] == (28, 28)
    return shown


def test_slider_drives_the_generator_along_the_line(G):
    z_a, z_b = torch.randn(3, 16), torch.randn(3, 16)
    box = latent_walk(G, z_a, z_b, path="lerp")
    shows(box.image, G, z_a)  # t = 0
    box.slider.value = 0.3
    z = 0.7 * z_a + 0.3 * z_b  # z(t) = (1 − t) z_a + t z_b
    torch.testing.assert_close(box.z(), z)
    shows(box.image, G, z)
    box.slider.value = 1.0
    shows(box.image, G, z_b)
    assert box.last_update_ms >= 0


def test_slerp_walk_stays_on_the_noise_shell(G):
    z_a, z_b = torch.randn(16), torch.randn(16)
    box = latent_walk(G, z_a, z_b)  # slerp by default, single vectors accepted
    box.slider.value = 0.5
    z = box.z()
    assert z.shape == (1, 16)
    shows(box.image, G, z)
    torch.testing.assert_close(z, slerp(z_a[None], z_b[None], 0.5))
    # slerp between equal-norm endpoints keeps the norm; lerp's midpoint shrinks by cos(Ω/2)
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    for t in (0.0, 0.25, 0.5, 1.0):
        assert math.isclose(slerp(a, b, t).norm().item(), 3.0, rel_tol=1e-5)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    assert math.isclose((0.5 * a + 0.5 * b).norm().item(), 3.0 * math.cos(math.pi / 4), rel_tol=1e-6)


def test_new_endpoints_button_and_default_noise(G):
    box = latent_walk(G, n=4, seed=1)
    z0 = box.z().clone()
    assert z0.shape == (4, 16)
    box.new_button.click()
    assert not torch.equal(z0, box.z())
    shows(box.image, G, box.z())


def test_bad_inputs_name_the_expected_shape(G):
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        latent_walk(G, torch.randn(2, 5), torch.randn(2, 5))
    with pytest.raises(ValueError, match="same shape"):
        latent_walk(G, torch.randn(2, 16), torch.randn(3, 16))
    with pytest.raises(ValueError, match="slerp"):
        latent_walk(G, path="spline")
    with pytest.raises(TypeError, match="z_dim"):
        latent_walk(torch.nn.Linear(2, 2))
