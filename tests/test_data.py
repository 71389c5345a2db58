"""dgm.data: the real torchvision code path on tiny IDX files, the digits set, the offline fallback."""
import struct
import warnings

import pytest
import torch

import dgm.data
from dgm.data import DatasetFallbackWarning, load


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

    def no_network(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", no_network)


def test_offline_falls_back_to_digits_with_a_visible_warning(tmp_path, monkeypatch, capsys):
    _offline(monkeypatch)
    with pytest.warns(DatasetFallbackWarning):
        x, y = load("mnist", root=tmp_path)
    assert x.shape[1:] == (1, 28, 28) and len(x) == len(load("digits", root=tmp_path)[0])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "Could not load 'mnist'" in out and "digits" in out


def test_offline_without_fallback_raises_what_to_do(tmp_path, monkeypatch):
    _offline(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="internet"):
            load("fashion_mnist", root=tmp_path, fallback=False)


def test_bad_names_and_splits_error_clearly():
    with pytest.raises(ValueError, match="mnist, fashion_mnist, digits"):
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


def test_default_name_is_digits_in_fast_mode(monkeypatch):
    monkeypatch.setenv("DGM_FAST", "1")
    monkeypatch.delenv("DGM_DATASET", raising=False)
    assert dgm.data.default_name() == "digits"
    monkeypatch.setenv("DGM_FAST", "0")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert dgm.data.default_name() == "mnist"
