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
3. Plain `nbgrader autograde` of one lab-1 notebook (the formgrader's path), and the time the grader
   spends judging evidence outside the kernel (``metadata.dgm_grading.judge_seconds``).
The machine's load average is printed: on a shared machine the figures move with it.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from dgm.course import Course, generate_assignment, nbgrader, strip_hidden, venv_env  # noqa: E402

LAB = "01_autoencoder"
MISTAKE = "def reconstruction_loss(x, x_hat):\n    return ((x - x_hat) ** 2).mean()\n"


def env() -> dict:
    return venv_env(DGM_FAST="1")


def course_with(tmp: Path, lab: str, nb=None) -> Path:
    course = Course.repo().scratch_copy(tmp / f"course-{lab}", [] if nb is not None else [lab])
    if nb is not None:
        course.source(lab).parent.mkdir(parents=True)
        nbformat.write(nb, course.source(lab))
    generate_assignment(course, lab)
    return course.root


def grade(course: Path, lab: str, subs: Path, workers: int) -> tuple[float, float]:
    """(wall seconds, mean seconds per notebook inside a worker)."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dgm.grade", lab, str(subs), "--course", str(course),
                          "-j", str(workers), "-q"], env=env(), capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t
    m = re.search(r"; ([\d.]+) s each on average", out)
    return wall, float(m.group(1)) if m else float("nan")


def lab1_submissions(folder: Path, n: int) -> None:
    nb = nbformat.read(Course.repo().source(LAB), as_version=4)
    for c in nb.cells:
        c.source = strip_hidden(c.source)
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
        judge = [nbformat.read(p, as_version=4).metadata.get("dgm_grading", {}).get("judge_seconds", 0.0)
                 for p in Path(course).glob(f"autograded/*/{LAB}/{LAB}.ipynb")]
        one = Course(Path(course))
        (one.submitted("plain", LAB)).mkdir(parents=True)
        nbformat.write(nbformat.read(tmp / "subs" / "student000.ipynb", as_version=4),
                       one.submitted("plain", LAB) / f"{LAB}.ipynb")
        t = time.perf_counter()
        nbgrader(one, "autograde", LAB, "--student", "plain", "--force", env=env())
        print(f"{LAB}: plain `nbgrader autograde` {time.perf_counter() - t:.2f} s for one notebook; judging outside "
              f"the kernel {1000 * sum(judge) / max(1, len(judge)):.0f} ms per notebook (mean of {len(judge)})")
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
