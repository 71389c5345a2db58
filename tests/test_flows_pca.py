"""dgm.flows_pca, lab 5's digit flow: the PCA rotation is orthogonal with log-det 0, the whole flow's log p(y) is the
change of variables (checked against autograd's Jacobian), sampling inverts it, shifts move whole images."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import dgm.flows as F
from dgm import flows_pca as P


def _digits(n=64, size=6, seed=0):
    """Blurry bars on an empty border: images with a dominant direction of variance, 8-bit values."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, size, size, dtype=torch.float64)
    col = torch.randint(1, size - 1, (n,), generator=g)
    x[torch.arange(n), 0, 1:-1, col] = (torch.rand(n, generator=g, dtype=torch.float64) * 0.5 + 0.5)[:, None]
    return torch.round(x * 255) / 255


def test_pca_rotation_is_orthogonal_sorted_by_variance_and_inverts():
    torch.manual_seed(0)
    v = torch.randn(500, 1, 3, 3, dtype=torch.float64) * torch.arange(1.0, 10.0, dtype=torch.float64).view(1, 1, 3, 3)
    rot = P.PCARotation((1, 3, 3)).double().fit(v)
    assert torch.allclose(rot.U.T @ rot.U, torch.eye(9, dtype=torch.float64), atol=1e-10)
    u, log_det = rot(v)
    var = u.var(0)
    assert (var[:-1] >= var[1:] - 1e-9).all()                       # descending variance
    assert torch.allclose(var, (v.flatten(1).var(0)).sort(descending=True).values, rtol=0.05)  # axis-aligned data
    assert torch.equal(log_det, torch.zeros(500, dtype=torch.float64))
    assert torch.allclose(rot.inverse(u), v, atol=1e-10)


def test_head_acts_on_the_first_k_coordinates_only():
    torch.manual_seed(0)
    head = P.Head(3, [F.AffineCoupling(F.alternating_mask(3, 0), F.mlp_net(3, 8))]).double()
    for m in head.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.5)
    x = torch.randn(4, 7, dtype=torch.float64)
    z, log_det = head(x)
    assert torch.equal(z[:, 3:], x[:, 3:]) and not torch.allclose(z[:, :3], x[:, :3])
    assert torch.allclose(head.inverse(z), x, atol=1e-12)
    jac = torch.autograd.functional.jacobian(lambda v: head(v[None])[0][0], x[0])
    assert torch.allclose(torch.linalg.slogdet(jac)[1], log_det[0], atol=1e-10)


def test_the_whole_flow_is_an_exact_change_of_variables_and_sampling_inverts():
    torch.manual_seed(0)
    x = _digits()
    flow = P.pca_realnvp(x.float(), k=4, n_head=2, n_tail=1, hidden=8, alpha=0.01).double()
    for m in flow.modules():                                          # non-zero conditioners: a real test
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.2)
    y = F.dequantize(x[:3])
    flow.train()
    flow(y)                                                           # ActNorm's first-batch initialisation
    flow.eval()
    z, log_det = flow(y)
    assert z.shape == (3, 36)
    jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], y[0]).reshape(36, 36)
    assert torch.allclose(torch.linalg.slogdet(jac)[1], log_det[0], atol=1e-7)
    expected = -0.5 * z.pow(2).sum(1) - 18 * math.log(2 * math.pi) + log_det
    assert torch.allclose(flow.log_prob(y), expected)
    assert torch.allclose(flow.inverse(z), y, atol=1e-8)
    xs = flow.sample(5)
    assert xs.shape == (5, 1, 6, 6) and xs.min() >= 0 and xs.max() <= 1


def test_training_lowers_the_test_bpd_of_held_out_images():
    torch.manual_seed(0)
    x = _digits(300).float()
    flow = P.pca_realnvp(x[:200], k=4, n_head=2, n_tail=1, hidden=16, alpha=0.01)
    test_bpd = lambda: F.bits_per_dim(flow.log_prob(F.dequantize(x[200:])), 36).mean().item()  # noqa: E731
    flow.train()
    flow(F.dequantize(x[:64]))
    before = test_bpd()
    opt = torch.optim.Adam(flow.parameters(), 3e-3)
    for i in range(150):
        loss = F.bpd_loss(flow, x[:200][torch.randint(0, 200, (32,))])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert test_bpd() < before - 0.1


def test_random_shift_moves_each_image_by_at_most_max_shift_pixels():
    torch.manual_seed(0)
    x = torch.zeros(200, 1, 9, 9)
    x[:, 0, 4, 4] = 1                                                 # one lit pixel in the centre
    y = P.random_shift(x, 2)
    pos = y[:, 0].flatten(1).argmax(1)
    dy, dx = pos // 9 - 4, pos % 9 - 4
    assert torch.equal(y.sum((1, 2, 3)), x.sum((1, 2, 3)))           # nothing lost, nothing added
    assert dy.abs().max() == 2 and dx.abs().max() == 2 and len(set(zip(dy.tolist(), dx.tolist()))) == 25


def test_meta_device_and_bad_k():
    x = torch.rand(16, 1, 4, 4)
    flow = P.pca_realnvp(x, k=4, n_head=1, n_tail=1, hidden=4).to("meta")
    z, ld = flow(torch.rand(2, 1, 4, 4, device="meta"))
    assert z.is_meta and ld.shape == (2,) and flow.sample(3).is_meta
    with pytest.raises(ValueError, match="k must be"):
        P.pca_realnvp(x, k=16)
