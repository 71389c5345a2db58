"""Benchmark for lab 1 (not a test): autograde cost vs a bare notebook, and the fast-mode wall time.

    DGM_FAST=1 .venv/bin/python bench/bench_lab1.py [--n 3]

Prints autograde seconds per notebook for lab 1 and for a bare notebook that only imports torch,
torchvision, matplotlib and ipywidgets (goal: ratio ≤ 1.3), and the solution notebook's wall time
in fast mode with nbclient (goal: ≤ 3 min on 2 cores).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from nbgrader_utils import make_course, nbgrader, run_notebook, source_notebook, submit  # noqa: E402

LAB = "01_autoencoder"


def bare_notebook():
    imports = new_code_cell("import torch, torchvision, matplotlib.pyplot as plt, ipywidgets")
    test = new_code_cell("assert torch.ones(1).sum() == 1")
    test.metadata = {"nbgrader": {"grade": True, "grade_id": "test_bare", "locked": True, "points": 1,
                                  "schema_version": 3, "solution": False, "task": False}}
    nb = new_notebook(cells=[imports, test])
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    return nb


def autograde_seconds(course: Path, lab: str, nb, n: int) -> float:
    for i in range(n):
        submit(course, lab, f"student{i:02d}", nb)
    nbgrader(course, "autograde", lab, "--force")  # warm-up: caches, first kernel start
    t = time.perf_counter()
    nbgrader(course, "autograde", lab, "--force")
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=3, help="submissions per notebook kind")
    n = ap.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        course = make_course(tmp, LAB)
        (course / "source" / "bare").mkdir()
        nbformat.write(bare_notebook(), course / "source" / "bare" / "bare.ipynb")
        nbgrader(course, "generate_assignment", "bare", "--force")
        bare = autograde_seconds(course, "bare", bare_notebook(), n)
        lab = autograde_seconds(course, LAB, source_notebook(LAB), n)
        t = time.perf_counter()
        run_notebook(ROOT / "solutions" / LAB / f"{LAB}.ipynb", cwd=tmp)
        wall = time.perf_counter() - t
    print(f"autograde per notebook: bare {bare:.1f} s | lab 1 {lab:.1f} s | ratio {lab / bare:.2f} (goal ≤ 1.3)")
    print(f"lab 1 solution notebook, fast mode, nbclient: {wall:.1f} s (goal ≤ 180 s)")


if __name__ == "__main__":
    main()
