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


def test_labels_reach_the_step_function_with_their_own_images():
    """fit(labels=y): step_fn(x, step, y) gets each batch's labels, row for row, so y[i] stays with x[i]."""
    x = torch.arange(40.0).reshape(40, 1)                     # example i holds the value i
    y = torch.arange(40) * 3                                  # its label: 3 i
    seen = []

    def step_fn(xb, step, yb):
        seen.append((xb.squeeze(1).long(), yb))
        return torch.tensor(0.0)

    fit({"model": nn.Linear(1, 1)}, x, step_fn=step_fn, optimizer=torch.optim.SGD(nn.Linear(1, 1).parameters(), 0.1),
        steps=12, batch_size=8, progress=False, labels=y)
    assert len(seen) == 12 and all(torch.equal(3 * xb, yb) for xb, yb in seen)
    assert len(torch.cat([xb for xb, _ in seen[:5]]).unique()) == 40   # one epoch = 5 batches of 8 covers all
    with pytest.raises(ValueError, match="one label per example"):
        fit({"model": nn.Linear(1, 1)}, x, step_fn=step_fn, optimizer=torch.optim.SGD(nn.Linear(1, 1).parameters(), 0.1),
            steps=1, progress=False, labels=y[:10])
    with pytest.raises(ValueError, match="step_fn"):
        fit(nn.Linear(1, 1), x, lambda m, xb: m(xb).mean(), steps=1, progress=False, labels=y)


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


# ----------------------------------------------------------------------------- checkpoints cannot go stale
class Net(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, x):
        return self.body(x)


def plain_loss(model, x):
    return ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()


def run(ckpt, width=16, loss=plain_loss, steps=6, batch_size=16, **kw):
    torch.manual_seed(0)
    return fit(Net(width), DATA, loss, steps=steps, batch_size=batch_size, progress=False, checkpoint=ckpt, **kw)


def test_unchanged_rerun_resumes(tmp_path, capsys):
    ckpt = tmp_path / "run.pt"
    h = run(ckpt)
    capsys.readouterr()
    assert run(ckpt)["loss"] == h["loss"]
    out = capsys.readouterr().out
    assert "Resumed" in out and "starts over" not in out and not (tmp_path / "run.pt.old").exists()
    longer = run(ckpt, steps=9)  # more steps continue the same run
    assert longer["loss"][:6] == h["loss"] and len(longer["loss"]) == 9


@pytest.mark.parametrize("change", ["width", "beta", "source", "optimizer", "batch_size", "config"])
def test_a_changed_configuration_retrains_and_keeps_the_old_file(tmp_path, capsys, change):
    ckpt = tmp_path / "run.pt"
    beta = 1.0

    def loss_with_beta(model, x):  # a hyperparameter read from the closure, as notebooks do
        return plain_loss(model, x) + beta * 0.0

    run(ckpt, loss=loss_with_beta)
    first = torch.load(ckpt, weights_only=False)
    kw = {}
    if change == "width":
        kw["width"] = 32
    elif change == "beta":
        beta = 4.0
        kw["loss"] = loss_with_beta
    elif change == "source":  # the same name, another body
        def loss_with_beta(model, x):
            return plain_loss(model, x) + beta * 1e-3
        kw["loss"] = loss_with_beta
    elif change == "optimizer":
        kw = {"loss": loss_with_beta, "lr": 3e-3}
    elif change == "batch_size":
        kw = {"loss": loss_with_beta, "batch_size": 8}
    elif change == "config":
        kw = {"loss": loss_with_beta, "config": {"beta": 4}}
    kw.setdefault("loss", loss_with_beta)
    capsys.readouterr()
    h = run(ckpt, **kw)
    assert len(h["loss"]) == 6
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "training starts over" in out and "run.pt.old" in out, out
    assert "Resumed" not in out
    kept = torch.load(tmp_path / "run.pt.old", weights_only=False)
    assert kept["history"] == first["history"]  # the old run is kept untouched
    assert torch.load(ckpt, weights_only=False)["fingerprint"] != first["fingerprint"]


def test_a_checkpoint_without_fingerprint_is_not_trusted(tmp_path, capsys):
    ckpt = tmp_path / "run.pt"
    run(ckpt)
    state = torch.load(ckpt, weights_only=False)
    del state["fingerprint"]
    torch.save(state, ckpt)
    run(ckpt)
    assert "no fingerprint" in capsys.readouterr().out and (tmp_path / "run.pt.old").exists()


def test_fingerprint_of_code_without_source_uses_the_bytecode():
    from dgm.train import _function

    ns_a, ns_b = {}, {}
    exec(compile("def f(model, x):\n    return (model(x) ** 2).mean()\n", "<cell-a>", "exec"), ns_a)
    exec(compile("def f(model, x):\n    return (model(x) ** 3).mean()\n", "<cell-b>", "exec"), ns_b)
    assert _function(ns_a["f"]) != _function(ns_b["f"])
    ns_c = {}
    exec(compile("def f(model, x):\n    return (model(x) ** 2).mean()\n", "<cell-c>", "exec"), ns_c)
    assert _function(ns_a["f"]).splitlines()[1:] == _function(ns_c["f"]).splitlines()[1:]


def test_progress_bar_has_a_total_and_an_eta(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    fit(Net(), DATA, plain_loss, steps=5, batch_size=16, progress=True)
    err = capsys.readouterr().err
    assert "/5 [" in err and "<" in err, err  # n/total [elapsed<remaining, rate]
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    fit(Net(), DATA, plain_loss, steps=5, batch_size=16)
    assert capsys.readouterr().err == ""


def test_thread_policy(monkeypatch):
    monkeypatch.setenv("DGM_FAST", "0")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert dgm.default_threads(1) == dgm.default_threads(2) == 1  # 2 cores: a busy neighbour costs ≤ 2× only with 1
    assert dgm.default_threads(4) == 2 and dgm.default_threads(64) == 8
    monkeypatch.setenv("DGM_FAST", "1")
    assert dgm.default_threads(64) == 1
    previous = torch.get_num_threads()
    try:
        monkeypatch.setenv("DGM_THREADS", "3")
        dgm._limit_threads()  # what `import dgm` runs
        assert torch.get_num_threads() == 3
        monkeypatch.delenv("DGM_THREADS")
        dgm._limit_threads()
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("DGM_THREADS", "many")
        with pytest.raises(ValueError, match="DGM_THREADS must be a whole number"):
            dgm._limit_threads()
    finally:
        torch.set_num_threads(previous)


def test_fingerprint_of_notebook_code_sees_source_and_globals():
    """In IPython (what Jupyter runs), functions have sources via linecache; classes fall back to their methods."""
    IPython = pytest.importorskip("IPython")
    from dgm.train import _class_source, _function

    shell = IPython.core.interactiveshell.InteractiveShell.instance()
    try:
        _notebook_checks(shell, shell.user_ns, _function, _class_source)
    finally:
        IPython.core.interactiveshell.InteractiveShell.clear_instance()  # later tests see no IPython


def _notebook_checks(shell, ns, _function, _class_source):
    shell.run_cell("import torch\nBETA = 1.0\ndef loss(m, x):\n    return (m(x) ** 2).mean() * BETA\n"
                   "class Net(torch.nn.Module):\n    def forward(self, x):\n        return x * 2\n")
    before, net = _function(ns["loss"]), _class_source(ns["Net"])
    assert "return (m(x) ** 2).mean() * BETA" in before and "return x * 2" in net
    shell.run_cell("BETA = 4.0")
    assert _function(ns["loss"]) != before  # a changed hyperparameter in a notebook global
    shell.run_cell("BETA = 1.0\ndef loss(m, x):\n    return (m(x) ** 2).mean() * BETA\n")
    assert _function(ns["loss"]) == before  # re-running the same cell changes nothing
    shell.run_cell("class Net(torch.nn.Module):\n    def forward(self, x):\n        return x * 3\n")
    assert _class_source(ns["Net"]) != net


def test_a_changed_noise_schedule_in_the_closure_retrains(tmp_path, capsys):
    """Lab 4 passes `lambda model, x: ddpm_loss(model, x, sched)`: sched holds no parameters, only constants."""
    import dgm.ddpm

    ckpt = tmp_path / "ddpm.pt"
    for T in (10, 10, 20):
        sched = dgm.ddpm.make_schedule(T)
        run(ckpt, loss=lambda model, x: plain_loss(model, x) + 0 * sched.alpha_bar.sum())
    out = capsys.readouterr().out
    assert out.count("Resumed") == 1 and out.count("training starts over") == 1, out
