"""The closing notebook 06_compare: run headless in fast mode in a throw-away workspace, without any lab's samples
(it says which labs are missing and trains small references) and with hand-written samples/<lab>.pt files (the
table shows their values); and dgm.metrics.save_samples, the one home of the samples format."""
import math
import re
from pathlib import Path

import pytest
import torch

from dgm import metrics
from nbgrader_utils import run_notebook

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "06_compare" / "06_compare.ipynb"
FAMILIES = {"01_autoencoder": "autoencoder", "02_vae": "VAE", "03_gan": "GAN", "04_ddpm": "DDPM", "05_flows": "flow"}


def run(workspace: Path):
    """Execute the solution notebook in workspace/06_compare; return (stdout, {family: table row})."""
    here = workspace / "06_compare"
    here.mkdir(parents=True, exist_ok=True)
    nb = run_notebook(SOLUTION, here, timeout=300)
    stdout, tables = [], []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and out.name == "stdout":
                stdout.append(out.text)
            elif "text/markdown" in out.get("data", {}):
                tables.append(out["data"]["text/markdown"])
    assert len(tables) == 1, tables
    rows = {}
    for line in tables[0].splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows[cells[0]] = cells
    assert set(FAMILIES.values()) <= set(rows), rows.keys()
    return "".join(stdout), tables[0], rows


def test_without_any_samples_it_names_the_missing_labs_and_trains_references(tmp_path):
    stdout, table, rows = run(tmp_path)
    for lab, family in FAMILIES.items():
        assert f"lab {lab} is not done yet" in stdout
        assert re.search(rf"{family}\s+reference trained for 3 steps", stdout), stdout
        row = dict(zip(rows["family"], rows[family]))
        assert row["samples"] == "reference, 3 steps, trained here"
        assert re.fullmatch(r"\d+\.\d{3} s", row["s / 100 samples"]), row
        assert re.fullmatch(r"\d+(\.\d)? s", row["training"]), row
        assert row["confident"] == "skipped (fast mode)"  # no classifier training in fast mode
    assert re.fullmatch(r"\d+\.\d{3} \(upper bound, binarized\)", rows["VAE"][5])
    assert re.fullmatch(r"\d+\.\d{3} \(exact, dequantized\)", rows["flow"][5])
    assert rows["GAN"][5].startswith("none") and rows["autoencoder"][5].startswith("none")
    assert "not comparable" in table
    assert "Run All took" in stdout


def test_with_saved_samples_the_table_shows_their_values(tmp_path):
    g = torch.Generator().manual_seed(0)
    q = metrics.SampleQuality(confident=0.61, n_classes=7, class_entropy=0.83, fid=42.5, n=100)
    for lab in FAMILIES:
        extra = {"02_vae": {"nelbo_test": 100.0},  # no bits_per_dim_test: the notebook converts nats → bits/dim
                 "03_gan": {"labels": torch.arange(100) % 10},
                 "05_flows": {"bits_per_dim_test": 1.234}}.get(lab, {})
        # lab 5 in samples/ beside the notebook (as on Colab), the others next to their own lab's notebook
        folder = tmp_path / ("06_compare" if lab == "05_flows" else lab) / "samples"
        metrics.save_samples(lab, torch.rand(100, 1, 28, 28, generator=g), q, folder=folder, **extra)
    stdout, table, rows = run(tmp_path)
    assert "nothing to train" in stdout and "not done yet" not in stdout
    for family in FAMILIES.values():
        row = dict(zip(rows["family"], rows[family]))
        assert row["samples"] == "your lab"
        assert (row["confident"], row["classes (entropy)"], row["FID"]) == ("0.61", "7/10 (0.83)", "42.5 (n=100)")
        assert row["s / 100 samples"] == "not measured" and row["training"] == "—"
    assert rows["VAE"][5] == f"{100 / (784 * math.log(2)):.3f} (upper bound, binarized)"
    assert rows["flow"][5] == "1.234 (exact, dequantized)"
    assert rows["flow"][-1].startswith("yes") and rows["GAN"][-1] == "no"


def test_save_samples_writes_what_each_lab_leaves_for_06_compare(tmp_path):
    q = metrics.SampleQuality(confident=0.5, n_classes=10, class_entropy=0.9, fid=3.0, n=100)
    x = torch.rand(100, 1, 28, 28)
    save = metrics.save_samples  # the one home of the format: every lab notebook calls it
    paths = [save("01_autoencoder", x, q, folder=tmp_path / "samples", latent_dim=5),
             save("02_vae", x, q, folder=tmp_path / "samples", nelbo_test=torch.tensor(99.5)),
             save("03_gan", x, q, folder=tmp_path / "samples", labels=torch.arange(100) % 10),
             save("04_ddpm", x, None, folder=tmp_path / "samples"),
             save("05_flows", x, q, folder=tmp_path / "samples", bits_per_dim_test=torch.tensor(1.5))]
    assert [p.name for p in paths] == [f"{lab}.pt" for lab in FAMILIES] and {p.parent for p in paths} == {tmp_path / "samples"}
    recs = [torch.load(p, weights_only=True) for p in paths]
    assert all(torch.equal(r["images"], x) for r in recs)
    assert recs[1]["nelbo_test"] == 99.5 and recs[4]["bits_per_dim_test"] == 1.5 and recs[0]["n_classes"] == 10
    assert recs[2]["labels"].shape == (100,) and "fid" not in recs[3]
    for bad in (torch.rand(3, 784), 2 * torch.rand(3, 1, 28, 28)):
        with pytest.raises(ValueError):
            save("x", bad, folder=tmp_path)
