"""dgm.train.fit: learning, exact resume from a checkpoint, interruption, clear errors; dgm core helpers."""
import pytest
import torch
from torch import nn

import dgm
from dgm.train import fit


def make(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))


def noisy_loss(model, x):
    noise = 0.1 * torch.randn_like(x[:, :1])  # randomness inside the loss: RNG state must be restored
    return ((model(x) - x.sum(1, keepdim=True) - noise) ** 2).mean()


DATA = torch.linspace(-1, 1, 4 * 50).reshape(50, 4)


def test_fit_learns():
    model = make()
    history = fit(model, DATA, noisy_loss, steps=300, batch_size=16, lr=1e-2, progress=False)
    assert len(history["loss"]) == 300
    assert sum(history["loss"][-20:]) / 20 < 0.2 * sum(history["loss"][:20]) / 20


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    straight = make()
    h_straight = fit(straight, DATA, noisy_loss, steps=30, batch_size=16, progress=False, seed=3)

    ckpt = tmp_path / "run.pt"
    first = make()
    fit(first, DATA, noisy_loss, steps=12, batch_size=16, progress=False, seed=3, checkpoint=ckpt)
    resumed = make(seed=99)  # a fresh process: other initial weights, a fresh optimizer
    torch.manual_seed(1234)  # and another RNG state
    h_resumed = fit(resumed, DATA, noisy_loss, steps=30, batch_size=16, progress=False, seed=3, checkpoint=ckpt)

    assert h_resumed["loss"] == h_straight["loss"]
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_interrupt_saves_and_a_rerun_continues(tmp_path):
    ckpt = tmp_path / "run.pt"

    def stop_at_10(step, history):
        if step == 10:
            raise KeyboardInterrupt

    model = make()
    h = fit(model, DATA, noisy_loss, steps=25, batch_size=16, progress=False, checkpoint=ckpt,
            callback=stop_at_10, callback_every=1)
    assert len(h["loss"]) == 10
    h = fit(model, DATA, noisy_loss, steps=25, batch_size=16, progress=False, checkpoint=ckpt)
    assert len(h["loss"]) == 25
    h_done = fit(make(), DATA, noisy_loss, steps=25, batch_size=16, progress=False, checkpoint=ckpt)
    assert h_done["loss"] == h["loss"]  # already finished: returns at once with the history


def test_step_fn_with_several_models_checkpoints_all_of_them(tmp_path):
    a, b = nn.Linear(4, 1), nn.Linear(4, 1)
    opts = {"a": torch.optim.SGD(a.parameters(), lr=0.1), "b": torch.optim.SGD(b.parameters(), lr=0.1)}

    def step_fn(x, step):
        losses = {}
        for name, m in (("a", a), ("b", b)):
            opts[name].zero_grad()
            loss = (m(x) ** 2).mean()
            loss.backward()
            opts[name].step()
            losses[f"loss_{name}"] = loss.item()
        return losses

    h = fit({"a": a, "b": b}, DATA, step_fn=step_fn, optimizer=opts, steps=5, batch_size=10,
            progress=False, checkpoint=tmp_path / "ab.pt")
    assert set(h) == {"loss_a", "loss_b"} and len(h["loss_b"]) == 5
    state = torch.load(tmp_path / "ab.pt", weights_only=False)
    assert set(state["models"]) == {"a", "b"} and state["step"] == 5


def test_bad_input_and_divergence_get_clear_errors(tmp_path):
    model = make()
    with pytest.raises(ValueError, match="exactly one"):
        fit(model, DATA)
    with pytest.raises(TypeError, match="tensor"):
        fit(model, [[1, 2]], noisy_loss)
    with pytest.raises(ValueError, match="scalar"):
        fit(model, DATA, lambda m, x: m(x), steps=1, progress=False)
    with pytest.raises(FloatingPointError, match="learning rate"):
        fit(model, DATA, lambda m, x: m(x).sum() * float("nan"), steps=3, progress=False)
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="Delete the file"):
        fit(model, DATA, noisy_loss, steps=3, progress=False, checkpoint=tmp_path / "bad.pt")


def test_core_helpers(monkeypatch):
    monkeypatch.setenv("DGM_DEVICE", "cpu")
    assert dgm.device() == torch.device("cpu")
    monkeypatch.setenv("DGM_DEVICE", "nonsense")
    with pytest.raises(ValueError, match="DGM_DEVICE"):
        dgm.device()
    monkeypatch.delenv("DGM_DEVICE")
    assert dgm.device().type in ("cpu", "cuda", "mps")
    monkeypatch.setenv("DGM_FAST", "0")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert not dgm.fast_mode() and dgm.budget(10, 1) == 10
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert dgm.fast_mode() and dgm.budget(10, 1) == 1
    dgm.seed_everything(5)
    a = torch.rand(3)
    dgm.seed_everything(5)
    assert torch.equal(a, torch.rand(3))
