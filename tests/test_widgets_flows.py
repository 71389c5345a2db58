"""Headless test of the lab-5 widget: move the sliders from Python and read the point and the picture back."""
import torch

import dgm.flows as F
from dgm.widgets import png_to_tensor
from dgm.widgets_flows import flow_explorer, push_forward


def test_flow_explorer_moves_the_point_through_the_layers():
    torch.manual_seed(0)
    flow = F.moons_flow(4, 16)
    for p in flow.parameters():  # a non-trivial flow
        torch.nn.init.normal_(p, std=0.3)
    box = flow_explorer(flow, n=200)
    before = box.image.value
    box.z1.value, box.z2.value = 1.0, -2.0
    z = torch.tensor([[1.0, -2.0]])
    assert torch.allclose(box.point(), flow.inverse(z), atol=1e-5)     # all layers: x = f(z)
    box.layers.value = 0
    assert torch.allclose(box.point(), z)                               # no layer: the point itself
    box.layers.value = 3
    assert torch.allclose(box.point(), push_forward(flow, z, 3))
    assert box.image.value != before and png_to_tensor(box.image.value, scale=1).shape[0] in (3, 4)
    assert box.last_update_ms < 2000
