"""Lab 4's recipe parts: the EMA and learning-rate schedule, saving samples, the class-conditional U-Net and
classifier-free guidance."""
from __future__ import annotations

import torch

from dgm import ddpm
from dgm.ddpm_cfg import NULL_CLASS, ConditionalUNet, Conditioned, cfg_loss, guided, train_conditional


def test_ema_averages_with_a_warm_up_and_keeps_a_frozen_copy():
    net = torch.nn.Linear(2, 1)
    ema = ddpm.EMA(net, decay=0.9)
    assert all(not p.requires_grad for p in ema.model.parameters()) and not ema.model.training
    w0 = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net, step=0)                                  # d = min(0.9, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.model.weight, d * w0 + (1 - d) * (w0 + 1))
    for step in range(1, 200):
        ema.update(net, step)
    assert torch.allclose(ema.model.weight, net.weight, atol=1e-6)  # converges to a constant θ


def test_lr_schedule_warms_up_and_decays_to_zero():
    lrs = [ddpm.lr_at(s, 1000, 1e-3, warmup=100) for s in range(1000)]
    assert lrs[0] == 1e-5 and max(lrs) == 1e-3 and lrs[99] == 1e-3
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:])) and ddpm.lr_at(1000, 1000, 1e-3) == 0


def test_save_samples_writes_images_and_plain_metrics(tmp_path):
    import dgm.metrics as M
    x = torch.rand(100, 1, 28, 28)
    q = M.SampleQuality(confident=0.5, n_classes=9, class_entropy=0.9, fid=12.0, n=100)
    path = M.save_samples("04_ddpm", x, q, folder=tmp_path / "samples")
    d = torch.load(path, weights_only=True)
    assert path.name == "04_ddpm.pt" and torch.equal(d["images"], x)
    assert d["confident"] == 0.5 and d["n_classes"] == 9 and type(d["n_classes"]) is int and type(d["fid"]) is float
    d = torch.load(M.save_samples("04_ddpm", x, None, folder=tmp_path), weights_only=True)
    assert set(d) == {"images"}
    for bad in (x * 2 - 1, x[:, :, :27], x.flatten(1)):
        try:
            M.save_samples("04_ddpm", bad, folder=tmp_path)
        except ValueError:
            continue
        raise AssertionError("bad images were saved")


def test_conditional_unet_uses_the_label_and_guidance_mixes_the_two_predictions():
    torch.manual_seed(0)
    net = ConditionalUNet(channels=8)
    torch.nn.init.normal_(net.out[-1].weight, std=0.1)            # the zero-initialised head would hide the label
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([1, 5, 9])
    c = torch.tensor([0, 3, 7])
    e_c, e_null = net(x, t, c), net(x, t, torch.full_like(c, NULL_CLASS))
    assert e_c.shape == x.shape and not torch.allclose(e_c, e_null)
    assert torch.allclose(guided(net, c, 0.0)(x, t), e_c)
    assert torch.allclose(guided(net, c, 2.0)(x, t), 3 * e_c - 2 * e_null, atol=1e-5)


def test_cfg_loss_drops_labels_to_the_null_class():
    seen = []

    class Spy(ConditionalUNet):
        def forward(self, x, t, c):
            seen.append(c.clone())
            return super().forward(x, t, c)
    net, sched = Spy(channels=8), ddpm.make_schedule(10)
    c = torch.arange(10).repeat(40)
    torch.manual_seed(0)
    cfg_loss(net, torch.zeros(400, 1, 28, 28), c, sched, p_uncond=0.25).backward()
    dropped = (seen[0] == NULL_CLASS).float().mean().item()
    assert 0.15 < dropped < 0.35 and torch.equal(seen[0][seen[0] != NULL_CLASS], c[seen[0] != NULL_CLASS])


def test_train_conditional_runs_and_returns_the_ema_model():
    x, y = torch.rand(64, 1, 28, 28) * 2 - 1, torch.arange(64) % 10
    sched = ddpm.make_schedule(10)
    model, hist = train_conditional(x, y, sched, steps=3, batch_size=8, channels=8)
    assert len(hist["loss"]) == 3 and isinstance(model, ConditionalUNet) and not model.training
    xs = ddpm.sample(guided(model, torch.arange(4), 1.5), (4, 1, 28, 28), sched, steps=3, clip_x0=True,
                     progress=False)
    assert xs.shape == (4, 1, 28, 28) and torch.isfinite(xs).all()


def test_conditioned_and_guided_are_modules_a_plain_unet_loop_can_use():
    """Code written for UNet(x, t) — keyword calls, .parameters() for the device, .eval() — runs on both wrappers."""
    torch.manual_seed(0)
    net = ConditionalUNet(channels=8).eval()
    x, t, c = torch.randn(3, 1, 28, 28), torch.tensor([1, 5, 9]), torch.tensor([2, 7, NULL_CLASS])
    for wrapped in (Conditioned(net, c), guided(net, c, 1.5)):
        assert isinstance(wrapped, torch.nn.Module)
        assert {id(p) for p in wrapped.parameters()} == {id(p) for p in net.parameters()}
        assert next(wrapped.parameters()).device == x.device
        assert torch.allclose(wrapped(x=x, t=t), wrapped(x, t))
    with torch.no_grad():
        assert torch.allclose(Conditioned(net, c)(x, t), net(x, t, c))
        assert torch.allclose(guided(net, c, 0.0)(x, t), net(x, t, c))
        u = net(x, t, torch.full_like(c, NULL_CLASS))
        assert torch.allclose(guided(net, c, 1.5)(x, t), 2.5 * net(x, t, c) - 1.5 * u, atol=1e-5)
    for m in net.modules():                                           # the zero-initialised output layer would
        if isinstance(m, torch.nn.Conv2d) and not m.weight.abs().sum():  # block every gradient upstream
            torch.nn.init.normal_(m.weight, std=0.1)
    loss = ddpm.ddpm_loss(Conditioned(net.train(), c), x.clamp(-1, 1), ddpm.make_schedule(10))
    loss.backward()
    assert net.label.weight.grad[c].abs().sum() > 0                   # the labels reach the embedding
