"""dgm.ae against the math, on every device/dtype, and the lab-1 checks' diagnoses."""
import pytest
import torch

import dgm
from dgm.ae import AEConfig, Autoencoder, reconstruction_loss, train_step
from dgm.checks import ae as checks
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


# ----------------------------------------------------------------------------- checks
class Good(torch.nn.Module):
    def __init__(self, latent_dim):
        super().__init__()
        self.e = torch.nn.Linear(784, latent_dim)
        self.d = torch.nn.Linear(latent_dim, 784)

    def encode(self, x):
        return self.e(x.flatten(1))

    def decode(self, z):
        return torch.sigmoid(self.d(z)).view(-1, 1, 28, 28)

    def forward(self, x):
        return self.decode(self.encode(x))


def good_loss(x, x_hat):
    return ((x - x_hat) ** 2).flatten(1).sum(1).mean()


def good_step(model, optimizer, x, loss_fn=good_loss):
    optimizer.zero_grad()
    loss = loss_fn(x, model(x))
    loss.backward()
    optimizer.step()
    return loss.item()


def test_checks_pass_the_correct_solution(capfd):
    for hidden in (False, True):
        checks.check_autoencoder(Good, hidden=hidden)
        checks.check_reconstruction_loss(good_loss, hidden=hidden)
        checks.check_train_step(good_step, hidden=hidden)
    out, err = capfd.readouterr()
    assert out.count("\u2714") == 6 and err == ""


LOSS_MISTAKES = {
    "averages over every pixel": lambda x, xh: ((x - xh) ** 2).mean(),
    "sums over the batch too": lambda x, xh: ((x - xh) ** 2).sum(),
    "missing square": lambda x, xh: (x - xh).abs().flatten(1).sum(1).mean(),
    "square root": lambda x, xh: (x - xh).flatten(1).norm(dim=1).mean(),
    "per-pixel tensor": lambda x, xh: (x - xh) ** 2,
    "one loss per image": lambda x, xh: ((x - xh) ** 2).flatten(1).sum(1),
    "without gradient": lambda x, xh: good_loss(x, xh).detach(),
    "not implemented yet": lambda x, xh: (_ for _ in ()).throw(NotImplementedError()),
}


@pytest.mark.parametrize("message", LOSS_MISTAKES)
def test_reconstruction_loss_mistakes_are_named(message):
    with pytest.raises(Mistake, match=message):
        checks.check_reconstruction_loss(LOSS_MISTAKES[message])


def test_reference_call_is_rejected_even_under_another_name():
    from dgm.ae import reconstruction_loss as my_loss  # the alias a student might use

    with pytest.raises(Mistake, match="(?i)write your own implementation"):
        checks.check_reconstruction_loss(lambda x, xh: my_loss(x, xh))
    with pytest.raises(Mistake, match="(?i)write your own"):
        checks.check_autoencoder(lambda d: Autoencoder(d))
    with pytest.raises(Mistake, match="(?i)write your own"):
        checks.check_train_step(lambda m, o, x, loss_fn: train_step(m, o, x, loss_fn))


def _ae_variant(**over):
    class Variant(Good):
        pass
    for name, fn in over.items():
        setattr(Variant, name, fn)
    return Variant


@pytest.mark.parametrize("cls,message", [
    (_ae_variant(encode=lambda self, x: torch.cat([self.e(x.flatten(1))] * 2, 1)), "Wrong bottleneck size"),
    (_ae_variant(decode=lambda self, z: torch.sigmoid(self.d(z))), "Wrong output shape"),
    (_ae_variant(decode=lambda self, z: self.d(z).view(-1, 1, 28, 28)), "Wrong output range"),
    (_ae_variant(forward=lambda self, x: x.clamp(0, 1)), "decode\\(encode\\(x\\)\\)"),
])
def test_autoencoder_mistakes_are_named(cls, message):
    with pytest.raises(Mistake, match=message):
        checks.check_autoencoder(cls)


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


def uphill(model, optimizer, x, loss_fn=good_loss):
    optimizer.zero_grad()
    loss = loss_fn(x, model(x))
    (-loss).backward()
    optimizer.step()
    return loss.item()


def ignores_loss_fn(model, optimizer, x, loss_fn=None):
    return good_step(model, optimizer, x, good_loss)


@pytest.mark.parametrize("fn,message", [
    (no_zero_grad, "zero_grad"), (no_step, "did not change"), (uphill, "uphill"),
    (ignores_loss_fn, "loss_fn"),
])
def test_train_step_mistakes_are_named(fn, message):
    with pytest.raises(Mistake, match=message):
        checks.check_train_step(fn)


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
        checks.check_reconstruction_loss(LOSS_MISTAKES["averages over every pixel"])
