"""Headless test of the lab-4 noising scrubber: move the slider from Python, read the image back."""
from __future__ import annotations

import pytest
import torch

from dgm import ddpm
from dgm.widgets import noising_scrubber, png_to_tensor, tensor_to_png


@pytest.fixture
def setup():
    sched = ddpm.DiffusionSchedule(torch.linspace(0.05, 0.5, 10))
    x0 = torch.linspace(-1, 1, 2 * 28 * 28).reshape(2, 1, 28, 28)
    eps = torch.linspace(1, -1, x0.numel()).reshape(x0.shape).roll(7)
    return sched, x0, eps


def expected_png(x0, eps, sched, t, scale):
    xt = ddpm.q_sample(x0, torch.full((2,), t), eps, sched)
    return tensor_to_png(((xt + 1) / 2).clamp(0, 1), scale=scale)


def test_scrubber_shows_q_sample_at_every_t(setup):
    sched, x0, eps = setup
    box = noising_scrubber(x0, sched, eps=eps, scale=2, t=3)
    assert (box.slider.min, box.slider.max, box.slider.value) == (0, 10, 3)
    assert box.image.value == expected_png(x0, eps, sched, 3, 2)
    box.slider.value = 0                                             # t = 0: the clean digits
    shown = png_to_tensor(box.image.value, scale=2)
    assert box.image.value == tensor_to_png((x0 + 1) / 2, scale=2)
    first = shown[0, 2:30, 2:30]                                     # the grid's first image (2-pixel padding)
    assert (first - (x0[0, 0] + 1) / 2).abs().max() <= 0.5 / 255 + 1e-6
    assert "t = 0/10" in box.label.value
    for t in (5, 10):
        box.slider.value = t
        assert box.image.value == expected_png(x0, eps, sched, t, 2)
        ab = sched.alpha_bar[t].item()
        assert f"{ab ** 0.5:.3f}" in box.label.value and f"{(1 - ab) ** 0.5:.3f}" in box.label.value


def test_scrubber_uses_the_students_q_sample_and_leaves_the_schedule_alone(setup):
    sched, x0, eps = setup
    calls = []

    def my_q_sample(x0_, t, eps_, s):
        calls.append(t.clone())
        return ddpm.q_sample(x0_, t, eps_, s)
    sched64 = sched.double()
    box = noising_scrubber(x0, sched64, q_sample=my_q_sample, eps=eps)
    box.slider.value = 7
    assert [int(c[0]) for c in calls] == [0, 7] and all(c.shape == (2,) for c in calls)
    assert sched64.beta.dtype == torch.float64                        # the caller's schedule is not converted


def test_scrubber_rejects_bad_input(setup):
    sched, x0, eps = setup
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        noising_scrubber(x0[0], sched)
    with pytest.raises(ValueError, match="shape of x0"):
        noising_scrubber(x0, sched, eps=eps[:1])


def test_guidance_widget_redraws_for_each_w_with_the_same_noise():
    from dgm.ddpm_cfg import ConditionalUNet
    from dgm.widgets_ddpm import guidance_widget

    torch.manual_seed(0)
    net = ConditionalUNet(channels=8).eval()
    torch.nn.init.normal_(net.out[-1].weight, std=0.1)
    sched = ddpm.make_schedule(8)
    box = guidance_widget(net, sched, w=0.0, n_per_class=2, classes=[1, 7], steps=2, scale=1)
    assert box.image.value == tensor_to_png(box.images(0.0), scale=1, nrow=2) and "w = 0" in box.label.value
    grid = png_to_tensor(box.image.value, scale=1)
    assert grid.shape[-2:] == (2 + 2 * 30, 2 + 2 * 30)              # 2 rows × 2 classes
    box.slider.value = 3.0
    assert "w = 3" in box.label.value and box.image.value == tensor_to_png(box.images(3.0), scale=1, nrow=2)
    assert not torch.equal(box.images(0.0), box.images(3.0))
    again = guidance_widget(net, sched, w=0.0, n_per_class=2, classes=[1, 7], steps=2, scale=1)
    assert torch.equal(again.images(0.0), box.images(0.0))          # same seed: same starting noise
    with pytest.raises(ValueError, match="digits"):
        guidance_widget(net, sched, classes=[11])
