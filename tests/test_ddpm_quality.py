"""Sample quality of the reference DDPM in fast mode, rated by a digit classifier trained in the test.

The classifier (the "judge", see ddpm_quality_utils) is trained on the real training digits and must
recognise the real held-out digits and reject pure noise — the two anchors that show the rating can
fail. The fast-mode DDPM must then produce recognisable digits of many different classes, with the
full T-step sampler (Algorithm 2) and with the fewer-step strided sampler. The levels were measured with
bench/bench_ddpm.py (see the numbers below) and are asserted with a margin.
"""
from __future__ import annotations

import pytest
import torch

import dgm
import ddpm_quality_utils as Q

# Measured with bench/bench_ddpm.py (seed 0, 100 samples, judge confidence ≥ 0.7; real digits 0.95, noise 0):
#   Algorithm 2, all T = 100 steps:                confident 0.25, 7 classes
#   20 strided steps, predicted x̂_0 clipped to [−1, 1]: confident 0.47, 9 classes
# asserted with a margin:
MIN_CONFIDENT_FULL, MIN_CLASSES_FULL = 0.15, 5
MIN_CONFIDENT_FEW, MIN_CLASSES_FEW = 0.30, 7


@pytest.fixture(scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # on 2 shared cores one thread is faster for these small convolutions
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def judge(one_thread):
    judge, acc = Q.train_judge()
    assert acc >= 0.9, f"the judge only reaches {acc:.2f} held-out accuracy on real digits"
    x_test, _ = dgm.data.load("digits", "test")
    real = Q.rate(judge, x_test[:200])
    noise = Q.rate(judge, torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    assert real["confident"] >= 0.75 and real["classes"] == 10, real
    assert noise["confident"] <= 0.05, noise
    return judge


@pytest.fixture(scope="module")
def trained(one_thread):
    model, sched, seconds = Q.train_fast()
    return model, sched


def test_fast_mode_ddpm_makes_recognisable_digits(judge, trained):
    model, sched = trained
    quality, _ = Q.sample_and_rate(judge, model, sched, n=100)
    assert quality["confident"] >= MIN_CONFIDENT_FULL and quality["classes"] >= MIN_CLASSES_FULL, quality


def test_fewer_steps_with_clipping_make_better_digits(judge, trained):
    """20 strided steps with x̂_0 clipped to the data range (as in Ho et al.'s code): 5× faster, and better."""
    model, sched = trained
    quality, _ = Q.sample_and_rate(judge, model, sched, n=100, steps=sched.T // 5, clip_x0=True)
    assert quality["confident"] >= MIN_CONFIDENT_FEW and quality["classes"] >= MIN_CLASSES_FEW, quality


def test_an_untrained_network_does_not_pass(judge, trained):
    """The same sampler with the untrained U-Net: the rating must fall far below the asserted level."""
    _, sched = trained
    torch.manual_seed(0)
    untrained = dgm.ddpm.UNet(channels=Q.FAST["channels"], patch=Q.FAST["patch"]).eval()
    quality, _ = Q.sample_and_rate(judge, untrained, sched, n=100, steps=sched.T // 5, clip_x0=True)
    assert quality["confident"] < MIN_CONFIDENT_FULL / 2, quality
