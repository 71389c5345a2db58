r"""Autograde seconds per notebook for every lab, against the floor of a bare notebook, with the overhead of
out-of-kernel verdicts (judge time) and of the sandbox, the machine load and a calibration figure.

    DGM_FAST=1 .venv/bin/python bench/bench_autograde.py [--labs 01_autoencoder 02_vae] [--repeat 1]

For each lab the solution notebook (the source notebook, whole, fast mode) is graded by plain
``nbgrader autograde`` in a scratch course (the course config: GradingExecute → Judge → …), once with the
kernel in the sandbox (``GradingExecute.sandbox=auto``) and once without (``sandbox=off``). The floor is a
notebook holding only ``import torch, dgm``, graded the same way in the same sandbox; every figure includes
nbgrader's own start-up, so the floor is subtracted-free and the ratios compare like with like:

* ``x floor``: lab seconds / bare-notebook seconds (both sandboxed);
* ``judge``: the grader's judging time (``metadata.dgm_grading.judge_seconds``) / the lab's seconds;
* ``sandbox``: sandboxed seconds / unsandboxed seconds.

With ``--repeat N`` every notebook is graded once per round, N rounds, and each notebook's fastest round
counts: interleaving spreads a slow spell of a shared machine over all notebooks. The load average
(before/after) and the steps/s of a fixed tiny torch model (784-128-784 MLP, batch 64,
Adam, one thread) are printed beside the figures to compare runs on busy or other machines.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("DGM_FAST", "1")

from dgm.course import Course, generate_assignment  # noqa: E402
from nbgrader_utils import nbgrader, source_notebook  # noqa: E402

BARE = "00_bare"


def calibration(seconds: float = 2.0) -> float:
    """Steps/s of a fixed tiny model: 784 → 128 → 784 MLP, batch 64, Adam, one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 784))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.rand(64, 784)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        loss = ((net(x) - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += 1
    torch.set_num_threads(threads)
    return n / (time.perf_counter() - t0)


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def course_with(labs: list[str], where: Path) -> Path:
    course = Course.repo().scratch_copy(where / "course", labs)
    bare = course.root / "source" / BARE
    bare.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch, dgm")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, bare / f"{BARE}.ipynb")
    for lab in [*labs, BARE]:
        generate_assignment(course, lab)
    return course.root


def student_for(lab: str, sandbox: str) -> str:
    """One student per notebook and mode: an unsandboxed kernel sees its sibling folders, and 06_compare would
    find the samples the other labs' graded runs saved there and skip the training the sandboxed run does."""
    return f"{'boxed' if sandbox == 'auto' else 'open'}_{lab}"


def autograde(course: Path, lab: str, student: str, sandbox: str) -> tuple[float, float, bool]:
    """(wall seconds, judge seconds, sandboxed) of one ``nbgrader autograde`` of one notebook."""
    t0 = time.perf_counter()
    nbgrader(course, "autograde", lab, "--student", student, "--force",
             f"--GradingExecute.sandbox={sandbox}", timeout=3600)
    wall = time.perf_counter() - t0
    graded = nbformat.read(course / "autograded" / student / lab / f"{lab}.ipynb", as_version=4)
    rec = graded.metadata.get("dgm_grading", {})
    return wall, float(rec.get("judge_seconds", 0.0)), bool(rec.get("sandboxed"))


def main(argv=None) -> None:
    labs_all = sorted(p.name for p in (ROOT / "course" / "source").iterdir() if (p / f"{p.name}.ipynb").exists())
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labs", nargs="*", default=labs_all)
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds over all notebooks (each notebook's fastest round counts)")
    args = ap.parse_args(argv)

    print(f"load average before: {load()} | cores: {os.cpu_count()} | calibration: {calibration():.0f} steps/s "
          "(784-128-784 MLP, batch 64, Adam, 1 thread)")
    with tempfile.TemporaryDirectory(prefix="bench-autograde-") as tmp:
        course = course_with(args.labs, Path(tmp))
        for lab in [BARE, *args.labs]:
            nb = nbformat.read(course / "source" / lab / f"{lab}.ipynb", as_version=4) if lab == BARE \
                else source_notebook(lab)
            for sandbox in ("auto", "off"):
                dest = course / "submitted" / student_for(lab, sandbox) / lab
                dest.mkdir(parents=True, exist_ok=True)
                nbformat.write(nb, dest / f"{lab}.ipynb")

        def once(lab: str, student: str, sandbox: str):
            try:
                return autograde(course, lab, student, sandbox)
            except AssertionError as err:  # the grader failed: say why (last line), keep measuring the rest
                why = [ln for ln in str(err).splitlines() if "Error" in ln][-1:] or ["nbgrader failed"]
                print(f"  {lab} (sandbox={sandbox}) FAILED: {why[0].strip()[:150]}")
                return float("nan"), float("nan"), False

        # Rounds: every notebook once per round, in the same order, and the fastest round counts for each. A slow
        # spell of a shared machine then hits the floor and the labs alike instead of one lab's repeats.
        runs: dict[tuple[str, str], list] = {}
        for _ in range(args.repeat):
            for lab in [BARE, *args.labs]:
                for sandbox in ("auto", "off"):
                    runs.setdefault((lab, sandbox), []).append(once(lab, student_for(lab, sandbox), sandbox))

        def best(lab: str, sandbox: str):
            return min(runs[lab, sandbox], key=lambda r: r[0])

        def spread(lab: str, sandbox: str) -> str:
            walls = sorted(r[0] for r in runs[lab, sandbox])
            return f"{walls[0]:.1f}–{walls[-1]:.1f}"

        floor, _, floor_boxed = best(BARE, "auto")
        floor_open, _, _ = best(BARE, "off")
        print(f"bare notebook (import torch, dgm): {floor:.1f} s sandboxed={floor_boxed}, {floor_open:.1f} s unsandboxed "
              f"→ sandbox x{floor / floor_open:.2f}  (best of {args.repeat} rounds; ranges {spread(BARE, 'auto')} s, "
              f"{spread(BARE, 'off')} s)")
        print(f"{'lab':<16} {'sandboxed s':>11} {'x floor':>8} {'judge s':>8} {'judge':>7} {'unsandboxed s':>14} "
              f"{'sandbox':>8} {'x floor (unsandboxed)':>22}")
        for lab in args.labs:
            wall, judge, boxed = best(lab, "auto")
            wall_open, _, _ = best(lab, "off")
            print(f"{lab:<16} {wall:>11.1f} {wall / floor:>7.2f}x {judge:>8.3f} {judge / wall:>6.1%} "
                  f"{wall_open:>14.1f} {wall / wall_open:>7.2f}x {wall_open / floor_open:>21.2f}x"
                  f"   ranges {spread(lab, 'auto')} / {spread(lab, 'off')} s" + ("" if boxed else "  (NOT sandboxed)"))
    print(f"load average after: {load()} | calibration: {calibration():.0f} steps/s")


if __name__ == "__main__":
    main()
