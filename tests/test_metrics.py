"""dgm.metrics: the digit classifier's anchors (real digits score high, noise low), coverage, the Fréchet
distance, input validation, the cache, and a fast-mode quality smoke test of a reference model on mnist5k.

The classifier trains once per module in fast mode (dgm.metrics.FAST_STEPS) into a private DGM_DATA.
Levels measured with bench/bench_quality.py are asserted with a margin (see the numbers in each test).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import dgm
import dgm.data
import dgm.metrics as M


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("metrics_data")
        mp.setenv("DGM_DATA", str(path))
        mp.setenv("DGM_FAST", "1")
        mp.delenv("DGM_DATASET", raising=False)
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        M._memo.clear()
        M.classifier()  # trains once (fast mode) and caches
        yield path
        M._memo.clear()
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def test_digits(root):
    return dgm.data.load("mnist5k", "test")


def noise(n=500, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_classifier_is_accurate_and_cached(root, capsys):
    model = M.classifier()
    assert model.test_accuracy.item() >= 0.95  # measured 0.977 (fast mode)
    files = list(root.glob("dgm_metrics_mnist5k_*_v*_s*.pt"))
    assert len(files) == 1
    M._memo.clear()
    again = M.classifier()  # from the file, not retrained
    assert "training" not in capsys.readouterr().out
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_corrupt_cache_is_retrained(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DGM_DATA", str(tmp_path))
    (tmp_path / "x").touch()
    x, y = dgm.data.load("mnist5k")
    name = f"dgm_metrics_mnist5k_{M._fingerprint(x, y)}_v{M.VERSION}_s3.pt"
    (tmp_path / name).write_bytes(b"garbage")
    model = M.classifier(steps=3)
    assert "training the digit classifier" in capsys.readouterr().out
    assert torch.load(tmp_path / name, weights_only=True)["mu_ref"].shape == (128,)
    assert model.sigma_ref.dtype == torch.float64
    M._memo.clear()


def test_real_test_digits_score_at_the_ceiling(test_digits):
    x_test, _ = test_digits
    q = M.sample_quality(x_test)
    # measured (fast mode): confident 0.86, 10 classes, entropy 1.00, FID 0 (the reference itself)
    assert q.n == 1000 and q.confident >= 0.75 and q.n_classes == 10 and q.class_entropy >= 0.97, q
    assert abs(q.fid) <= 1e-6 * M.classifier().sigma_ref.trace().item(), q  # FID(test, test) = 0
    assert "10/10 classes" in str(q) and "\n" not in str(q)


def test_held_out_train_digits_are_close_and_noise_is_far(root):
    x, _ = dgm.data.load("mnist5k", "train", limit=1000)
    real, fake = M.sample_quality(x), M.sample_quality(noise(1000))
    assert real.confident >= 0.75 and real.n_classes == 10, real
    assert fake.confident <= 0.1 and fake.n_classes <= 1, fake  # measured: 0.0
    assert fake.fid >= 20 * real.fid, (real, fake)


@pytest.mark.parametrize("kind", range(7))
def test_every_kind_of_junk_is_rejected(test_digits, kind):
    x_test, _ = test_digits
    parts = M.junk(x_test, 700, torch.Generator().manual_seed(7)).view(7, 100, 1, 28, 28)  # fresh junk
    assert M.sample_quality(parts[kind]).confident <= 0.2  # measured ≤ 0.07


def test_coverage_sees_mode_collapse(root):
    x, y = dgm.data.load("mnist5k", "train")
    one = M.sample_quality(x[y == 3])  # 400 threes
    assert one.n_classes == 1 and one.class_entropy < 0.1, one
    two = M.sample_quality(torch.cat([x[y == 0], x[y == 1]]))  # two modes, equal mass
    assert two.n_classes == 2 and abs(two.class_entropy - math.log(2) / math.log(10)) < 0.05, two
    x_test, _ = dgm.data.load("mnist5k", "test")
    assert two.fid > 5 * M.sample_quality(x_test[:400]).fid  # a collapsed set is far from the test set


def test_frechet_distance_matches_the_closed_form():
    g = np.random.default_rng(0)
    mu_1, mu_2 = g.normal(size=5), g.normal(size=5)
    s_1, s_2 = g.uniform(0.5, 2, 5), g.uniform(0.5, 2, 5)
    # diagonal covariances: d² = ‖μ₁ − μ₂‖² + Σ (s₁ − s₂)²
    expected = ((mu_1 - mu_2) ** 2).sum() + ((s_1 - s_2) ** 2).sum()
    got = M.frechet_distance(mu_1, np.diag(s_1**2), mu_2, np.diag(s_2**2))
    assert got == pytest.approx(expected, rel=1e-10)
    a = g.normal(size=(5, 5))
    sigma = a @ a.T  # a full covariance, rotated: the distance to itself is 0, and it is symmetric
    assert M.frechet_distance(mu_1, sigma, mu_1, sigma) == pytest.approx(0, abs=1e-9)
    b = g.normal(size=(5, 5))
    assert M.frechet_distance(mu_1, sigma, mu_2, b @ b.T) == pytest.approx(
        M.frechet_distance(mu_2, b @ b.T, mu_1, sigma), rel=1e-9)


def test_bad_input_gets_a_message_that_says_what_to_do(root):
    x = noise(8)
    with pytest.raises(ValueError, match=r"\[-1, 1\].*\(x \+ 1\) / 2"):
        M.sample_quality(2 * x - 1)
    with pytest.raises(ValueError, match="NaN"):
        M.sample_quality(torch.full((4, 1, 28, 28), float("nan")))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        M.sample_quality(torch.rand(4, 3, 28, 28))
    with pytest.raises(ValueError, match="divide by 255"):
        M.sample_quality(x * 255)
    with pytest.raises(TypeError, match="/ 255"):
        M.sample_quality((x * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        M.sample_quality([[0.0]])
    with pytest.raises(ValueError, match="threshold"):
        M.sample_quality(x, threshold=1.5)
    flat = M.sample_quality(x.view(8, 784))  # (N, 784) and (N, 28, 28) are reshaped
    assert flat.n == 8 and flat == M.sample_quality(x.view(8, 28, 28))
    assert math.isnan(M.sample_quality(x[:1]).fid)  # one image: no covariance


def test_fast_mode_reference_autoencoder_reconstructs_recognisable_digits(root):
    """A smoke test of the whole chain on real digits: dgm.ae's reference AE, 300 steps on mnist5k."""
    x, _ = dgm.data.load("mnist5k", "train")
    x_test, _ = dgm.data.load("mnist5k", "test")
    dgm.seed_everything(0)
    model = dgm.ae.Autoencoder(16)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    dgm.train.fit(model, x, step_fn=lambda xb, s: dgm.ae.train_step(model, opt, xb), optimizer=opt,
                  steps=300, batch_size=128, device="cpu", progress=False)
    with torch.no_grad():
        recon = model(x_test)  # (N, 1, 28, 28) in [0, 1]
    q, floor = M.sample_quality(recon), M.sample_quality(noise(1000))
    # measured: recon confident ≈ 0.5, 10 classes; noise 0.0
    assert q.confident >= 0.25 and q.n_classes >= 8 and q.fid < 0.2 * floor.fid, (q, floor)
