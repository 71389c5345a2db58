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

``--scale`` (``make bench-grade``) measures the Dask engine instead, on small bare notebooks:
notebooks/s with 1 and 2 local workers, with a scheduler and two ``dask worker`` processes over TCP
on 127.0.0.1, the old pool (``--engine pool``) at 2 workers (goal: Dask within 5 %), the parent's
peak memory (ru_maxrss of the dgm-grade process alone) for ``--mem`` submissions of a tiny notebook,
and a projection for 25,000 notebooks on N cores; with the load average and a calibration figure.
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


TINY = "x = 1"


def tiny_lab() -> nbformat.NotebookNode:
    nb = bare_lab()
    nb.cells = [new_code_cell(TINY), new_code_cell("assert x == 1", metadata=nb.cells[1].metadata)]
    return nb


def calibration() -> float:
    """Seconds for a fixed pure-Python loop (compare machines and moments)."""
    t = time.perf_counter()
    x = 0
    for i in range(3_000_000):
        x += i % 7
    return time.perf_counter() - t


_MEASURE = ("import resource, runpy, sys; sys.argv = ['dgm-grade'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('dgm.grade', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")


def run_grade(course: Path, lab: str, subs: Path, *extra: str) -> tuple[float, int]:
    """(wall seconds, the parent's peak RSS in kB) of one `dgm-grade` run (forced: nothing skipped)."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _MEASURE, lab, str(subs), "--course", str(course), "-q", "--force",
                           *extra], env=env(), capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    m = re.search(r"PEAK_RSS_KB (\d+)", proc.stdout)
    return wall, int(m.group(1)) if m else -1


def scale(args) -> int:
    import socket

    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}, "
          f"calibration (3M-step Python loop): {calibration():.2f} s")
    n = args.n
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nb = tiny_lab()
        course = course_with(tmp, "00_tiny", nb)
        for k in sorted({n, *args.mem}):
            (tmp / f"subs{k}").mkdir()
            for i in range(k):
                nbformat.write(nb, tmp / f"subs{k}" / f"student{i:04d}.ipynb")
        rate = {}
        for label, extra in (("dask, 1 local worker", ["-j", "1"]), ("dask, 2 local workers", ["-j", "2"]),
                             ("old pool, 2 workers", ["-j", "2", "--engine", "pool"])):
            wall, _ = run_grade(course, "00_tiny", tmp / f"subs{n}", *extra)
            rate[label] = n / wall
            print(f"{label:<34} {n} notebooks in {wall:6.1f} s = {n / wall:.3f} notebooks/s   "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
        with socket.socket() as s_:
            s_.bind(("127.0.0.1", 0))
            port = s_.getsockname()[1]
        addr = f"tcp://127.0.0.1:{port}"
        bindir = Path(sys.executable).parent
        procs = [subprocess.Popen([bindir / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--no-dashboard"], env=env(), stderr=subprocess.DEVNULL)]
        procs += [subprocess.Popen([bindir / "dask", "worker", addr, "--nthreads", "1", "--memory-limit", "0",
                                    "--no-dashboard"], env=env(), stderr=subprocess.DEVNULL) for _ in range(2)]
        try:
            from distributed import Client

            with Client(addr, timeout=60) as c:
                c.wait_for_workers(2, timeout=120)
            wall, _ = run_grade(course, "00_tiny", tmp / f"subs{n}", "--scheduler", addr)
            rate["tcp"] = n / wall
            print(f"{'dask, scheduler + 2 workers (TCP)':<34} {n} notebooks in {wall:6.1f} s = {n / wall:.3f} "
                  f"notebooks/s   (load {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            for p in procs:
                p.kill()
        over = rate["old pool, 2 workers"] / rate["dask, 2 local workers"] - 1
        print(f"Dask overhead vs the old pool at 2 workers: {100 * over:+.1f} % (goal <= 5 %)")
        for k in args.mem:
            wall, kb = run_grade(course, "00_tiny", tmp / f"subs{k}", "-j", "2")
            print(f"parent peak memory, {k} submissions: {kb / 1024:.0f} MB (ru_maxrss; {wall:.0f} s)", flush=True)
        per_worker = rate["dask, 1 local worker"]
        lab1 = args.lab1_seconds
        print(f"projection for 25,000 notebooks: at {lab1:.1f} s per lab-1 notebook per core (docs/grading.md), "
              + ", ".join(f"{c} cores {25000 * lab1 / c / 3600:.1f} h" for c in (2, 16, 64, 256))
              + f"; tiny notebooks at this machine's measured rate ({per_worker:.2f}/s per worker): "
              + ", ".join(f"{c} cores {25000 / (per_worker * c) / 3600:.2f} h" for c in (2, 64)))
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="submissions (default 20)")
    ap.add_argument("-j", type=int, default=2, help="workers for the parallel run (default 2)")
    ap.add_argument("--bare", type=int, default=8, help="bare notebooks for the overhead figure (default 8)")
    ap.add_argument("--scale", action="store_true", help="the Dask engine figures (make bench-grade)")
    ap.add_argument("--mem", type=lambda t: [int(x) for x in t.split(",")], default=[50, 200],
                    help="submission counts for the parent's peak memory (default 50,200)")
    ap.add_argument("--lab1-seconds", type=float, default=5.9,
                    help="seconds per lab-1 notebook per core for the projection (default: the quiet-VM figure)")
    args = ap.parse_args(argv)
    os.environ.update(env())
    if args.scale:
        return scale(args)
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
