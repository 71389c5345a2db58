#!/usr/bin/env python
"""Benchmark `dgm-grade`: seconds per submission, 1 worker vs N workers, and the grader's overhead.

    .venv/bin/python bench/bench_grade.py                 # 20 lab-1 submissions, 1 vs 2 workers
    .venv/bin/python bench/bench_grade.py -n 40 -j 4

1. Throughput: N generated lab-1 submissions (the whole notebook, fast mode as nbgrader runs it;
   every other one with a typical mistake) graded with 1 worker, then with ``-j`` workers.
   Goal: >= 1.6x with 2 workers on 2 free cores.
2. Overhead: a notebook that only imports torch, executed bare with nbclient, vs the same notebook
   graded as a one-test-cell lab through dgm-grade (collect, sanitize, guarded execution, gradebook,
   feedback HTML). Goal: <= 1.3x.
The machine's load average is printed: on a shared machine the figures move with it.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
LAB = "01_autoencoder"
HIDDEN = re.compile(r"^\s*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\s*$\n?", re.S | re.M)
MISTAKE = "def reconstruction_loss(x, x_hat):\n    return ((x - x_hat) ** 2).mean()\n"


def env() -> dict:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                DGM_FAST="1")


def course_with(tmp: Path, lab: str, nb=None) -> Path:
    course = tmp / f"course-{lab}"
    (course / "source" / lab).mkdir(parents=True)
    shutil.copy(ROOT / "course" / "nbgrader_config.py", course)
    if nb is None:
        shutil.copy(ROOT / "course" / "source" / lab / f"{lab}.ipynb", course / "source" / lab)
    else:
        nbformat.write(nb, course / "source" / lab / f"{lab}.ipynb")
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", lab, "--force"], cwd=course,
                   env=env(), check=True, capture_output=True)
    return course


def grade(course: Path, lab: str, subs: Path, workers: int) -> tuple[float, float]:
    """(wall seconds, mean seconds per notebook inside a worker)."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dgm.grade", lab, str(subs), "--course", str(course),
                          "-j", str(workers), "-q"], env=env(), capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t
    m = re.search(r"; ([\d.]+) s each on average", out)
    return wall, float(m.group(1)) if m else float("nan")


def lab1_submissions(folder: Path, n: int) -> None:
    nb = nbformat.read(ROOT / "course" / "source" / LAB / f"{LAB}.ipynb", as_version=4)
    for c in nb.cells:
        c.source = HIDDEN.sub("", c.source)
    folder.mkdir()
    for i in range(n):
        sub = nbformat.from_dict(nb)
        if i % 2:
            next(c for c in sub.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "reconstruction_loss"
                 ).source = MISTAKE
        nbformat.write(sub, folder / f"student{i:03d}.ipynb")


def bare_lab() -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell("import torch"), new_code_cell(
        "assert torch.ones(1).item() == 1", metadata={"nbgrader": {
            "grade": True, "solution": False, "locked": True, "points": 1, "grade_id": "test_torch",
            "schema_version": 3}})])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def bare_nbclient(nb, repeats: int) -> float:
    from nbclient import NotebookClient

    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        NotebookClient(nbformat.from_dict(nb), kernel_name="python3", timeout=120).execute()
        times.append(time.perf_counter() - t)
    return sum(times) / len(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="submissions (default 20)")
    ap.add_argument("-j", type=int, default=2, help="workers for the parallel run (default 2)")
    ap.add_argument("--bare", type=int, default=8, help="bare notebooks for the overhead figure (default 8)")
    args = ap.parse_args(argv)
    os.environ.update(env())
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        course = course_with(tmp, LAB)
        lab1_submissions(tmp / "subs", args.n)
        seq, seq_each = grade(course, LAB, tmp / "subs", 1)
        par, par_each = grade(course, LAB, tmp / "subs", args.j)
        print(f"{LAB}, {args.n} submissions: 1 worker {seq:.1f} s ({seq / args.n:.2f} s/submission, "
              f"{seq_each:.2f} s inside the worker) | {args.j} workers {par:.1f} s ({par / args.n:.2f} s/submission)"
              f" → throughput x{seq / par:.2f}   (load average now {os.getloadavg()[0]:.1f})")
        nb = bare_lab()
        bare = bare_nbclient(nb, args.bare)
        bcourse = course_with(tmp, "00_bare", nb)
        (tmp / "bare").mkdir()
        for i in range(args.bare):
            nbformat.write(nb, tmp / "bare" / f"student{i:03d}.ipynb")
        wall, each = grade(bcourse, "00_bare", tmp / "bare", 1)
        print(f"bare notebook (import torch): nbclient {bare:.2f} s | dgm-grade {each:.2f} s per notebook inside "
              f"the worker (x{each / bare:.2f}), {wall / args.bare:.2f} s per notebook including the "
              f"command's start-up (x{wall / args.bare / bare:.2f})   (load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
