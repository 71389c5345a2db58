"""Headless test of the lab-1 widget: move the threshold from Python and read the rates and the picture back."""
import pytest
import torch

from dgm.widgets import png_to_tensor
from dgm.widgets_ae import rates, threshold_explorer


def test_rates_count_the_scores_above_t():
    assert rates(torch.tensor([1.0, 2, 3, 4]), torch.tensor([3.0, 5, 6]), 3.0) == (0.25, 2 / 3)


def test_threshold_explorer_follows_the_slider():
    g = torch.Generator().manual_seed(0)
    normal, odd = 20 + 5 * torch.rand(200, generator=g), 30 + 20 * torch.rand(100, generator=g)
    box = threshold_explorer(normal, odd, t=22.0)
    assert box.threshold.value == pytest.approx(22.0)
    before = box.image.value
    box.threshold.value = 26.0
    assert box.rates() == (0.0, rates(normal, odd, 26.0)[1]) and box.rates()[1] == 1.0
    box.threshold.value = 21.0
    fpr, tpr = box.rates()
    assert 0.6 < fpr < 1.0 and tpr == 1.0 and "false alarms" in box.label.value
    assert box.image.value != before and png_to_tensor(box.image.value, scale=1).shape[0] in (3, 4)
    assert box.last_update_ms < 3000
    box = threshold_explorer(normal, odd)  # default: the median normal score
    assert box.rates()[0] == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError):
        threshold_explorer(torch.tensor([]), odd)
