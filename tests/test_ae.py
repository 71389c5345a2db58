"""dgm.ae against the math, on every device/dtype, and the lab-1 checks' diagnoses."""
import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dgm
from dgm.ae import AEConfig, Autoencoder, reconstruction_loss, train_step
from dgm.checks import ae as checks
from dgm.checks import evidence
from dgm.checks._check import Verdict
from dgm.checks._core import Mistake


def test_reconstruction_loss_is_squared_error_summed_over_pixels_averaged_over_batch():
    x, x_hat = torch.rand(5, 1, 28, 28, dtype=torch.float64), torch.rand(5, 1, 28, 28, dtype=torch.float64)
    expected = sum(((x[i] - x_hat[i]) ** 2).sum() for i in range(5)) / 5
    assert torch.allclose(reconstruction_loss(x, x_hat), expected)
    # batch-size invariant: a batch of copies has the loss of one image
    assert torch.allclose(reconstruction_loss(x[:1].repeat(7, 1, 1, 1), x_hat[:1].repeat(7, 1, 1, 1)),
                          reconstruction_loss(x[:1], x_hat[:1]))


def test_reconstruction_loss_gradient_is_closed_form():
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    x_hat = torch.rand(3, 1, 28, 28, dtype=torch.float64, requires_grad=True)
    reconstruction_loss(x, x_hat).backward()
    assert torch.allclose(x_hat.grad, -2 * (x - x_hat.detach()) / 3)  # dL/dx̂ = −2(x − x̂)/B


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("device,dtype", [("meta", torch.float32), ("cpu", torch.float64)])
def test_reference_stays_on_the_input_device_and_dtype(conv, device, dtype):
    model = Autoencoder(AEConfig(latent_dim=3, conv=conv)).to(device=device, dtype=dtype)
    x = torch.rand(2, 1, 28, 28, dtype=dtype).to(device)
    z = model.encode(x)
    x_hat = model(x)
    loss = reconstruction_loss(x, x_hat)
    for t in (z, x_hat, loss):
        assert t.device.type == device and t.dtype == dtype
    assert z.shape == (2, 3) and x_hat.shape == (2, 1, 28, 28) and loss.shape == ()


def test_decoder_output_is_an_image_in_unit_interval():
    x_hat = Autoencoder(4)(torch.rand(6, 1, 28, 28))
    assert x_hat.shape == (6, 1, 28, 28) and 0 <= x_hat.min() and x_hat.max() <= 1


def test_bad_input_gets_a_clear_error():
    model = Autoencoder(2)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model(torch.rand(4, 784))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        model.decode(torch.rand(4, 3))
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_loss(torch.rand(2, 1, 28, 28), torch.rand(3, 1, 28, 28))
    with pytest.raises(TypeError):
        reconstruction_loss([1.0], torch.rand(1))
    with pytest.raises(ValueError, match="latent_dim"):
        Autoencoder(0)


def test_larger_bottleneck_reconstructs_better():
    x, _ = dgm.data.load("digits", "train")
    x_test, _ = dgm.data.load("digits", "test")
    errors = {}
    for d in (2, 32):
        dgm.seed_everything(0)
        model = Autoencoder(d)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        before = reconstruction_loss(x_test, model(x_test)).item()
        dgm.train.fit(model, x, step_fn=lambda xb, s: train_step(model, opt, xb), optimizer=opt,
                      steps=300, batch_size=128, progress=False)
        with torch.no_grad():
            errors[d] = reconstruction_loss(x_test, model(x_test)).item()
        assert errors[d] < 0.5 * before  # it learned
    assert errors[32] < 0.8 * errors[2]  # the bottleneck trade-off


# ----------------------------------------------------------------------------- checks: the answers
# Every answer is judged twice: in the kernel (judge(run)) and by the grader from JSON evidence (verdict);
# both must agree on pass/fail and on the mistake's id.
SEEDS = {"visible": (0,), "hidden-1": (3, 1234567), "hidden-2": (98765, 2**31 - 5)}


def _in_kernel(check, fn, case, seed):
    try:
        check.judge(check.inputs(seed, case), check.run(fn, check.inputs(seed, case)))
    except Mistake as m:
        return False, m.id
    return True, None


def _via_record(check, fn, case, seed):
    rec = check.record(fn, "test_cell", case, seed)
    v = check.verdict(case, seed, evidence.parse(json.dumps(evidence.to_json(rec))))
    return v.passed, v.mistake


def outcome(check, fn, case="visible", seed=0):
    """(passed, mistake id), asserting that the in-kernel judge and the grader's verdict agree."""
    got = _in_kernel(check, fn, case, seed)
    assert _via_record(check, fn, case, seed) == got, (case, seed)
    return got


def _not_implemented(*args, **kwargs):
    raise NotImplementedError()


class Good(nn.Module):  # the smallest correct answer: one linear layer each way
    def __init__(self, latent_dim):
        super().__init__()
        self.e = nn.Linear(784, latent_dim)
        self.d = nn.Linear(latent_dim, 784)

    def encode(self, x):
        return self.e(x.flatten(1))

    def decode(self, z):
        return torch.sigmoid(self.d(z)).view(-1, 1, 28, 28)

    def forward(self, x):
        return self.decode(self.encode(x))


class Solution(nn.Module):  # the notebook's solution: nn.Sequential, ReLU hidden layers
    def __init__(self, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                                     nn.Linear(128, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 128), nn.ReLU(), nn.Linear(128, 256), nn.ReLU(),
                                     nn.Linear(256, 784), nn.Sigmoid())

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z).view(-1, 1, 28, 28)

    def forward(self, x):
        return self.decode(self.encode(x))


class TanhMLP(Solution):  # Tanh hidden layers, other widths
    def __init__(self, latent_dim):
        super().__init__(latent_dim)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.Tanh(), nn.Linear(300, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 300), nn.Tanh(), nn.Linear(300, 784), nn.Sigmoid())


class Conv(Solution):  # conv encoder, transposed-conv decoder
    def __init__(self, latent_dim):
        super().__init__(latent_dim)
        self.encoder = nn.Sequential(nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),
                                     nn.Flatten(), nn.Linear(32 * 49, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 32 * 49), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
                                     nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Sigmoid())


class Explicit(nn.Module):  # explicit layers and F.*, LeakyReLU, narrow, dropout + batch norm, reshape
    def __init__(self, latent_dim):
        super().__init__()
        self.fc1, self.bn, self.drop = nn.Linear(784, 64), nn.BatchNorm1d(64), nn.Dropout(0.2)
        self.fc2 = nn.Linear(64, latent_dim)
        self.fc3, self.fc4 = nn.Linear(latent_dim, 64), nn.Linear(64, 784)

    def encode(self, x):
        h = self.drop(F.leaky_relu(self.bn(self.fc1(x.view(x.size(0), -1)))))
        return self.fc2(h)

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.elu(self.fc3(z)))).reshape(z.shape[0], 1, 28, 28)

    def forward(self, x):
        z = self.encode(x)
        return self.decode(z)


class WideNoBias(Solution):  # wide, SiLU hidden layers, a bias-free linear code layer
    def __init__(self, latent_dim):
        super().__init__(latent_dim)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.SiLU(), nn.Linear(1024, latent_dim, bias=False))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 1024), nn.ReLU(), nn.Linear(1024, 784, bias=False), nn.Sigmoid())


AE_GOOD = {"linear": Good, "solution": Solution, "tanh-mlp": TanhMLP, "conv": Conv, "explicit": Explicit,
           "wide-no-bias": WideNoBias}


def _ae_variant(**over):
    class Variant(Solution):
        pass
    for name, fn in over.items():
        setattr(Variant, name, fn)
    return Variant


class _Stub(nn.Module):  # the release's stub: every method raises NotImplementedError
    def __init__(self, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim
        raise NotImplementedError()


AE_MISTAKES = {
    "relu-on-code": (_ae_variant(encode=lambda self, x: torch.relu(self.encoder(x))), "code-activation"),
    "sigmoid-on-code": (_ae_variant(encode=lambda self, x: torch.sigmoid(self.encoder(x))), "code-activation"),
    "tanh-on-code": (_ae_variant(encode=lambda self, x: torch.tanh(self.encoder(x))), "code-activation"),
    "double-sigmoid": (_ae_variant(decode=lambda self, z: torch.sigmoid(self.decoder(z)).view(-1, 1, 28, 28)),
                       "decoder-range-limited"),
    "no-sigmoid": (_ae_variant(decode=lambda self, z: self.decoder[:-1](z).view(-1, 1, 28, 28)), "output-range"),
    "latent-doubled": (_ae_variant(encode=lambda self, x: torch.cat([self.encoder(x)] * 2, 1)), "wrong-latent-size"),
    "flat-output": (_ae_variant(decode=lambda self, z: self.decoder(z)), "output-shape"),
    "forward-skips-bottleneck": (_ae_variant(forward=lambda self, x: x.clamp(0, 1)), "forward-not-decode-encode"),
    "detached-code": (_ae_variant(forward=lambda self, x: self.decode(self.encode(x).detach())),
                      "no-gradient-to-encoder"),
    "not-implemented": (_Stub, "not-implemented"),
    "not-a-module": (lambda d: object(), "not-a-module"),
}


@pytest.mark.parametrize("cls", AE_GOOD.values(), ids=list(AE_GOOD))
@pytest.mark.parametrize("case", list(SEEDS))
def test_autoencoder_alternatives_pass(cls, case):
    for seed in SEEDS[case]:
        assert outcome(checks.check_autoencoder, cls, case, seed) == (True, None), seed


@pytest.mark.parametrize("cls,mistake", AE_MISTAKES.values(), ids=list(AE_MISTAKES))
def test_autoencoder_mistakes_are_named(cls, mistake):
    assert outcome(checks.check_autoencoder, cls) == (False, mistake)


def test_autoencoder_double_sigmoid_is_caught_on_hidden_cases_too():
    cls, mistake = AE_MISTAKES["double-sigmoid"]
    assert outcome(checks.check_autoencoder, cls, "hidden-1", 77) == (False, mistake)


def test_autoencoder_check_leaves_the_notebook_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    checks.check_autoencoder(Good)
    assert torch.equal(torch.rand(3), expected)


def good_loss(x, x_hat):
    return ((x - x_hat) ** 2).flatten(1).sum(1).mean()


LOSS_GOOD = {
    "flatten-sum-mean": good_loss,
    "mse-sum-over-batch": lambda x, x_hat: F.mse_loss(x_hat, x, reduction="sum") / x.shape[0],
    "sum-dims": lambda x, x_hat: (x - x_hat).pow(2).sum(dim=(1, 2, 3)).mean(),
    "norm-squared": lambda x, x_hat: torch.linalg.vector_norm(x - x_hat, dim=(1, 2, 3)).pow(2).mean(),
    "einsum": lambda x, x_hat: torch.einsum("bchw,bchw->", x - x_hat, x - x_hat) / len(x),
}


def _reference_loss(x, x_hat):
    from dgm.ae import reconstruction_loss as my_loss  # the alias a student might use

    return my_loss(x, x_hat)


LOSS_MISTAKES = {
    "mean-over-pixels": lambda x, xh: ((x - xh) ** 2).mean(),
    "sum-over-batch": lambda x, xh: ((x - xh) ** 2).sum(),
    "missing-square": lambda x, xh: (x - xh).abs().flatten(1).sum(1).mean(),
    "norm-not-squared": lambda x, xh: (x - xh).flatten(1).norm(dim=1).mean(),
    "no-reduction": lambda x, xh: (x - xh) ** 2,
    "no-gradient": lambda x, xh: good_loss(x, xh).detach(),
    "not-a-tensor": lambda x, xh: good_loss(x, xh).item(),
    "not-implemented": _not_implemented,
    "reference-call": _reference_loss,
}


@pytest.mark.parametrize("fn", LOSS_GOOD.values(), ids=list(LOSS_GOOD))
def test_reconstruction_loss_alternatives_pass(fn):
    for case, seeds in SEEDS.items():
        for seed in seeds:
            assert outcome(checks.check_reconstruction_loss, fn, case, seed) == (True, None), (case, seed)
    checks.check_reconstruction_loss(fn, hidden=True)  # hidden-3 too


@pytest.mark.parametrize("mistake", LOSS_MISTAKES)
def test_reconstruction_loss_mistakes_are_named(mistake):
    assert outcome(checks.check_reconstruction_loss, LOSS_MISTAKES[mistake]) == (False, mistake)


def test_one_loss_per_image_is_named():
    fn = lambda x, xh: ((x - xh) ** 2).flatten(1).sum(1)  # noqa: E731
    assert outcome(checks.check_reconstruction_loss, fn, "hidden-1", 3) == (False, "no-batch-mean")  # batch 4


def good_step(model, optimizer, x, loss_fn=good_loss):
    optimizer.zero_grad()
    loss = loss_fn(x, model(x))
    loss.backward()
    optimizer.step()
    return loss.item()


def keyword_step(model, optimizer, x, loss_fn=good_loss):
    optimizer.zero_grad()
    loss = loss_fn(x=x, x_hat=model(x))
    loss.backward()
    optimizer.step()
    return loss.item()


def loss_first_step(model, optimizer, x, loss_fn=good_loss):
    loss = loss_fn(x, x_hat=model(x))
    model.zero_grad()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)
    return float(loss)


def tensor_return_step(model, optimizer, x, loss_fn=good_loss):
    optimizer.zero_grad(set_to_none=False)
    x_hat = model(x)
    loss = loss_fn(x, x_hat)
    loss.backward()
    optimizer.step()
    return loss.detach()


STEP_GOOD = {"canonical": good_step, "keywords": keyword_step, "loss-first": loss_first_step,
             "tensor-return": tensor_return_step}


def no_zero_grad(model, optimizer, x, loss_fn=good_loss):
    loss = loss_fn(x, model(x))
    loss.backward()
    optimizer.step()
    return loss.item()


def no_step(model, optimizer, x, loss_fn=good_loss):
    optimizer.zero_grad()
    loss = loss_fn(x, model(x))
    loss.backward()
    return loss.item()


def zero_grad_before_step(model, optimizer, x, loss_fn=good_loss):
    loss = loss_fn(x, model(x))
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def uphill(model, optimizer, x, loss_fn=good_loss):
    optimizer.zero_grad()
    loss = loss_fn(x, model(x))
    (-loss).backward()
    optimizer.step()
    return loss.item()


def two_steps(model, optimizer, x, loss_fn=good_loss):
    optimizer.zero_grad()
    loss = loss_fn(x, model(x))
    loss.backward()
    optimizer.step()
    optimizer.step()
    return loss.item()


def ignores_loss_fn(model, optimizer, x, loss_fn=None):
    return good_step(model, optimizer, x, good_loss)


def swapped(model, optimizer, x, loss_fn=good_loss):
    optimizer.zero_grad()
    loss = loss_fn(model(x), x)
    loss.backward()
    optimizer.step()
    return loss.item()


def loss_after_step(model, optimizer, x, loss_fn=good_loss):
    good_step(model, optimizer, x, loss_fn)
    return loss_fn(x, model(x)).item()


def returns_nothing(model, optimizer, x, loss_fn=good_loss):
    good_step(model, optimizer, x, loss_fn)


def _reference_step(model, optimizer, x, loss_fn=good_loss):
    from dgm.ae import train_step as my_step

    return my_step(model, optimizer, x, loss_fn)


STEP_MISTAKES = {
    "stale-gradients": no_zero_grad, "no-step": no_step, "uphill": uphill, "two-steps": two_steps,
    "loss-fn-not-called": ignores_loss_fn, "loss-fn-arguments": swapped, "wrong-return": loss_after_step,
    "not-implemented": _not_implemented, "reference-call": _reference_step,
}


@pytest.mark.parametrize("fn", STEP_GOOD.values(), ids=list(STEP_GOOD))
def test_train_step_alternatives_pass(fn):
    for case, seeds in SEEDS.items():
        for seed in seeds:
            assert outcome(checks.check_train_step, fn, case, seed) == (True, None), (case, seed)


@pytest.mark.parametrize("mistake", STEP_MISTAKES)
def test_train_step_mistakes_are_named(mistake):
    assert outcome(checks.check_train_step, STEP_MISTAKES[mistake]) == (False, mistake)


@pytest.mark.parametrize("fn,mistake", [(zero_grad_before_step, "no-step"), (returns_nothing, "wrong-return")])
def test_more_train_step_mistakes_are_named(fn, mistake):
    assert outcome(checks.check_train_step, fn, "hidden-2", 98765) == (False, mistake)


def test_hidden_cases_vary_with_the_seed():
    shapes = {tuple(checks.check_train_step.inputs(s, "hidden-1")["params"][0].shape) for s in range(30)}
    batches = {checks.check_train_step.inputs(s, "hidden-1")["x"].shape[0] for s in range(30)}
    dims = {tuple(m["d"] for m in checks.check_autoencoder.inputs(s, "hidden-1")["models"]) for s in range(30)}
    assert len(shapes) > 1 and len(batches) > 1 and len(dims) > 1
    for check in (checks.check_autoencoder, checks.check_reconstruction_loss, checks.check_train_step):
        a, b = check.inputs(5, "hidden-1"), check.inputs(5, "hidden-1")
        assert json.dumps(evidence.to_json(evidence.Record("c", check.name, "h", 5, a))) == \
            json.dumps(evidence.to_json(evidence.Record("c", check.name, "h", 5, b)))  # pure


def test_checks_pass_the_correct_solution_in_the_notebook_api(capfd):
    for hidden in (False, True):
        checks.check_autoencoder(Solution, hidden=hidden)
        checks.check_reconstruction_loss(good_loss, hidden=hidden)
        checks.check_train_step(good_step, hidden=hidden)
    out, err = capfd.readouterr()
    assert out.count("\u2714") == 6 and err == ""


def test_reference_call_is_rejected_even_under_another_name():
    from dgm.ae import Autoencoder as MyAE

    class Wrapped(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.inner = MyAE(d)

        def encode(self, x):
            return self.inner.encode(x)

        def decode(self, z):
            return self.inner.decode(z)

        def forward(self, x):
            return self.decode(self.encode(x))

    class Subclass(MyAE):
        pass

    for fn in (lambda d: MyAE(d), Wrapped, Subclass):
        assert outcome(checks.check_autoencoder, fn) == (False, "reference-call")
    with pytest.raises(Mistake, match="(?i)write your own implementation"):
        checks.check_autoencoder(Subclass)


def test_cells_cover_every_autograded_test_cell():
    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "course/source/01_autoencoder/01_autoencoder.ipynb",
                       as_version=4)
    graded = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.cell_type == "code"
              and c.metadata.get("nbgrader", {}).get("grade")}
    assert set(checks.CELLS) == graded
    assert dgm.checks.cells("01_autoencoder") is checks.CELLS


# ----------------------------------------------------------------------------- checks: forged evidence
def _leaves(v, path=()):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _leaves(x, path + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _leaves(x, path + (i,))
    else:
        yield path, v


_DELETE = object()


def _replaced(values, path, new):
    out = copy.deepcopy(values)
    node = out
    for p in path[:-1]:
        node = node[p]
    if new is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = new
    return out


FORGERY = {  # the check, a passing answer, evidence a pass needs (forging any of it must fail)
    "autoencoder": (checks.check_autoencoder, Good,
                    [("models", i, k) for i in (0, 1) for k in ("z", "x_hat", "enc_grad", "fwd_grad")]
                    + [("models", 0, "z_fit"), ("models", 0, "x_fit")]),
    "loss": (checks.check_reconstruction_loss, good_loss, [("out",), ("grad",), ("requires_grad",)]),
    "train_step": (checks.check_train_step, good_step,
                   [("calls",), ("args", 0, "x"), ("args", 0, "x_hat"), ("loss",)] + [("params", i) for i in range(4)]),
}


@pytest.mark.parametrize("which", FORGERY)
def test_forged_evidence_gives_a_failed_verdict_never_an_exception(which):
    check, fn, essential = FORGERY[which]
    seed, case = 11, "hidden-1"
    rec = evidence.parse(json.dumps(evidence.to_json(check.record(fn, "cell", case, seed))))
    assert check.verdict(case, seed, rec).passed

    def verdict(values):
        return check.verdict(case, seed, evidence.Record(rec.cell, rec.check, case, seed, values, None))

    for path, leaf in _leaves(rec.values):  # every leaf: no exception, whatever it becomes
        forged = [_DELETE, "a string", float("nan"), None, [1, 2], {"x": 1}]
        if isinstance(leaf, torch.Tensor):
            forged += [torch.full_like(leaf.double(), float("nan")), leaf.reshape(-1)[:1].repeat(3),
                       leaf.double()[..., :1] if leaf.dim() else leaf + 1]
        for new in forged:
            v = verdict(_replaced(rec.values, path, new))
            assert isinstance(v, Verdict)
            if path in essential:
                assert not v.passed, (path, new)
    for key in rec.values:  # a missing top-level key
        v = verdict({k: x for k, x in rec.values.items() if k != key})
        assert isinstance(v, Verdict)
        if any(p[0] == key for p in essential):
            assert not v.passed, key
    assert not check.verdict(case, seed, None).passed
    bad = evidence.Record(rec.cell, rec.check, case, seed, {}, {"id": "crash", "message": "boom"})
    assert check.verdict(case, seed, bad).mistake == "crash"


# ----------------------------------------------------------------------------- checks: robustness
def test_checks_stay_silent_on_stderr_when_student_code_warns(capfd):
    import warnings

    def noisy(x, x_hat):
        warnings.warn("student warning")
        return good_loss(x, x_hat)

    checks.check_reconstruction_loss(noisy)
    assert capfd.readouterr().err == ""


def test_checks_survive_monkeypatched_allclose(monkeypatch):
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    with pytest.raises(Mistake):
        checks.check_reconstruction_loss(LOSS_MISTAKES["mean-over-pixels"])


def test_the_watcher_starts_after_torch_dynamo_is_imported():
    """torch.optim imports torch._dynamo on first use; under the watcher's profile hook that import took 2.6 s
    instead of 1.2 s. Entering the guard imports it first; the guard still records a reference call."""
    import subprocess
    import sys

    code = ("import sys, torch, dgm.ae\nfrom dgm.checks._core import reference_guard\n"
            "assert 'torch._dynamo' not in sys.modules\n"
            "with reference_guard([dgm.ae.reconstruction_loss]) as hits:\n"
            "    assert 'torch._dynamo' in sys.modules\n"
            "    dgm.ae.reconstruction_loss(torch.zeros(2, 1, 28, 28), torch.ones(2, 1, 28, 28))\n"
            "print(hits)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['reconstruction_loss']"
