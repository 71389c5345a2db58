"""`dgm-grade` on a batch of hostile submissions: the batch keeps going, every student gets the right
score and a readable reason, and three runs give identical grades (hidden inputs come from HMAC seeds
of the submission: re-grading is deterministic).

To add a case, add a row to :func:`students`: (notebook or raw text, expected {test: score}, a phrase
of the reason). Hostile *evidence* is unit-tested in test_grading_judge.py; one grading path and
sanitised feedback in test_grading_paths.py.

One batch (an LMS-style zip export) holds 16 students, graded with 2 workers, three times. For speed
the submissions stop after the last test cell (students may delete the experiments; it does not
change their grade) and the cell time limit is small, so the infinite loop costs seconds, not minutes.
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import zipfile

import nbformat
import pytest

from dgm.course import Course, generate_assignment
from nbgrader_utils import env, scores, source_notebook, with_cell

LAB = "01_autoencoder"
TESTS = ("test_autoencoder", "test_reconstruction_loss", "test_train_step")
HIDDEN = re.compile(r"^\s*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\s*$\n?", re.S | re.M)
FULL = {t: 2.0 for t in TESTS}
CELL_TIMEOUT = 25


def keep(cells):
    """The cells a submission keeps: up to the last of TESTS (without data loading) and the written answers.
    The later graded parts (anomaly score, threshold) need a trained model: this batch is about robustness,
    so its course is lab 1 cut to these cells (a student who deletes graded cells gets them put back at 0:
    test_grading_paths.py)."""
    last = max(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("grade_id") in TESTS)
    written = [c for c in cells[last + 1:] if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")]
    return [c for c in cells[:last + 1] if "dgm.data.load" not in c.source] + written


def base():
    """What a student hands in: the (cut) lab with solutions and no hidden tests."""
    nb = source_notebook(LAB)
    nb.cells = keep(nb.cells)
    for c in nb.cells:
        c.source = HIDDEN.sub("", c.source)
    return nb


def cut_course(tmp):
    """A scratch course whose lab 1 holds only :func:`keep`'s cells (hidden tests included)."""
    course = Course.repo().scratch_copy(tmp / "course", [LAB])
    path = course.root / "source" / LAB / f"{LAB}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells = keep(nb.cells)
    nbformat.write(nb, path)
    generate_assignment(course, LAB)
    return course.root


def fn(name, body):
    args = {"reconstruction_loss": "x, x_hat", "train_step": "model, optimizer, x, loss_fn=None"}[name]
    return f"import os, sys, warnings, torch\ndef {name}({args}):\n" + "".join(f"    {ln}\n" for ln in body.splitlines())


GOOD_LOSS = "return ((x - x_hat) ** 2).flatten(1).sum(1).mean()"


def cell_index(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def colab(nb) -> str:
    d = json.loads(nbformat.writes(nb))
    d["nbformat_minor"] = 0
    d["metadata"] = {"colab": {"provenance": [], "name": f"{LAB}.ipynb"}, "accelerator": "GPU",
                     "kernelspec": {"name": "python3", "display_name": "Python 3"}, "language_info": {"name": "python"}}
    for i, c in enumerate(d["cells"]):
        c.pop("id", None)
        c["metadata"].update({"id": f"colab{i:03d}", "colab": {"base_uri": "https://localhost:8080/"}})
    return json.dumps(d, indent=2)


def students(course) -> dict:
    """{student: notebook (or raw text)} and the expected {test: score} and reason fragment."""
    nb = base()
    deleted = base()
    del deleted.cells[cell_index(deleted, "test_reconstruction_loss")]
    edited = with_cell(base(), "train_step", "def train_step(model, optimizer, x, loss_fn=None):\n"
                                            "    raise NotImplementedError()")
    edited.cells[cell_index(edited, "test_train_step")].source = "print('all good')"
    dup = base()
    i = cell_index(dup, "test_reconstruction_loss")
    dup.cells.insert(i + 1, nbformat.from_dict({**dup.cells[i], "id": "dup-cell"}))
    patched = with_cell(base(), "reconstruction_loss", (
        "import torch, dgm.checks, dgm.checks._core as core\n"
        "torch.allclose = lambda *a, **k: True\n"
        "core.close = lambda *a, **k: True\n"
        "checks.check_reconstruction_loss = lambda *a, **k: print('passed!')\n"
        "dgm.checks.ae.check_reconstruction_loss = lambda *a, **k: None\n"
        "def reconstruction_loss(x, x_hat):\n    return ((x - x_hat) ** 2).mean()\n"))
    other = base()
    for c in other.cells:
        if "nbgrader" in c.metadata:
            c.metadata.nbgrader["grade_id"] = "other_" + c.metadata.nbgrader["grade_id"]
    (course / "source" / "02_other").mkdir()
    nbformat.write(other, course / "source" / "02_other" / "02_other.ipynb")
    loss = "test_reconstruction_loss"
    return {
        "good": (nb, FULL, None),
        "mistake": (with_cell(nb, "reconstruction_loss", fn("reconstruction_loss", "return ((x - x_hat) ** 2).mean()")),
                    {**FULL, loss: 0}, "wrong reduction"),
        "loop": (with_cell(nb, "reconstruction_loss", fn("reconstruction_loss", "while True:\n    pass")),
                 {**FULL, loss: 0}, f"longer than {CELL_TIMEOUT} s"),
        "killed": (with_cell(nb, "reconstruction_loss", fn("reconstruction_loss", "os._exit(3)")),
                   {**FULL, loss: 0}, "kernel died"),
        "memory": (with_cell(nb, "reconstruction_loss", fn("reconstruction_loss", (
            "chunks = []\nwhile True:\n    chunks.append(torch.ones(2 ** 27))"))), {**FULL, loss: 0},
            "allocate memory"),
        "deleted": (deleted, FULL, "was deleted"),
        "edited": (edited, {**FULL, "test_train_step": 0}, "not implemented yet"),
        "duplicate": (dup, FULL, "appears 2 times"),
        "colab": (colab(nb), FULL, "Colab"),
        "stderr": (with_cell(nb, "reconstruction_loss", "import warnings\nwarnings.warn('top-level warning')\n" + fn(
            "reconstruction_loss", "warnings.warn('this is deprecated', DeprecationWarning)\n"
            "print('debug: computing the loss', file=sys.stderr)\n" + GOOD_LOSS)), FULL, "stderr"),
        # the kernel's checks only report evidence; the grader judges: patching them yields no evidence
        "monkeypatch": (patched, {**FULL, loss: 0}, "produced no result"),
        "reference": (with_cell(nb, "reconstruction_loss", fn("reconstruction_loss", (
            "from dgm.ae import reconstruction_loss as r\nreturn r(x, x_hat)"))), {**FULL, loss: 0},
            "write your own implementation"),
        "invalidjson": (nbformat.writes(nb)[:-200], {t: 0 for t in TESTS}, "not valid JSON"),
        "empty": ("", {t: 0 for t in TESTS}, "empty"),
        "wronglab": (other, {t: 0 for t in TESTS}, "notebook of 02_other"),
        "bigprint": (with_cell(nb, "reconstruction_loss", "print('y' * 10_000_000)\n" + fn(
            "reconstruction_loss", "print('x' * 10_000_000)\n" + GOOD_LOSS)), FULL, None),
    }


def export_zip(path, cases):
    """Canvas-style names: <login>_<userid>_<submissionid>_<original name>."""
    with zipfile.ZipFile(path, "w") as z:
        for k, (name, (nb, _, _)) in enumerate(sorted(cases.items())):
            text = nb if isinstance(nb, str) else nbformat.writes(nb)
            z.writestr(f"{name}_{1000 + k}_{5000 + k}_{LAB}.ipynb", text)
        z.writestr("readme.txt", "not a submission")
        z.writestr(f"{LAB}.ipynb", nbformat.writes(base()))  # no student name in it


def dgm_grade(course, src, *extra):
    cmd = [sys.executable, "-m", "dgm.grade", LAB, str(src), "--course", str(course), "-j", "2",
           "--cell-timeout", str(CELL_TIMEOUT), "--timeout", "240", "--memory", "2500", "-q", *extra]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adversarial")
    course = cut_course(tmp)
    cases = students(course)
    export_zip(tmp / "export.zip", cases)
    out = []
    for k in range(3):  # re-runs regrade everything (--force): hidden seeds are HMACs, so grades repeat
        stdout = dgm_grade(course, tmp / "export.zip", *(["--force"] if k else []))
        rows = list(csv.DictReader(open(course / "exports" / f"{LAB}_grades.csv")))
        out.append((stdout, scores(course, LAB), {r["student_id"]: r for r in rows}))
    return course, cases, out


def test_every_student_gets_the_right_score_and_a_reason(runs):
    course, cases, out = runs
    _, got, rows = out[0]
    assert set(got) == set(cases), "every student is in the gradebook, no one else"
    wrong = {s: ({t: got[s][t] for t in TESTS}, want) for s, (_, want, _) in cases.items()
             if {t: got[s][t] for t in TESTS} != want}
    assert not wrong, wrong
    for s, (_, _, why) in cases.items():
        if why:
            assert why.lower() in rows[s]["reason"].lower(), (s, rows[s]["reason"])


def test_summary_lists_failures_and_unmatched_files(runs):
    _, cases, out = runs
    stdout = out[0][0]
    assert "UNMATCHED readme.txt" in stdout and f"UNMATCHED {LAB}.ipynb" in stdout
    for s, (_, want, _) in cases.items():
        assert (f"  {s}: " in stdout) == (want != FULL), s
    assert "test_reconstruction_loss" in stdout and "s/notebook" in stdout


def test_three_runs_give_identical_grades(runs):
    _, _, out = runs
    assert out[0][1] == out[1][1] == out[2][1]
    assert out[0][2] == out[1][2] == out[2][2]


def test_outputs_feedback_and_histograms(runs):
    course, cases, _ = runs
    assert len(list((course / "exports").glob(f"{LAB}_test_*_hist.png"))) == len(TESTS)
    for s in ("good", "mistake", "monkeypatch"):
        html = (course / "feedback" / s / LAB / f"{LAB}.html").read_text()
        assert "hidden=True" not in html and "BEGIN HIDDEN TESTS" not in html
    assert "wrong reduction" in (course / "feedback" / "mistake" / LAB / f"{LAB}.html").read_text()
    big = course / "autograded" / "bigprint" / LAB / f"{LAB}.ipynb"
    assert big.stat().st_size < 2_000_000, "a 10 MB print is truncated"


def test_one_gradebook_entry_per_student_and_cell(runs):
    """Workers grade in scratch copies; the parent imports: each (student, cell) is there exactly once."""
    from nbgrader.api import Gradebook

    course, cases, _ = runs
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        subs = gb.assignment_submissions(LAB)
        assert sorted(s.student_id for s in subs) == sorted(cases)
        for s in subs:
            names = [g.name for nb in s.notebooks for g in nb.grades]
            assert sorted(names) == sorted([*TESTS, "written_bottleneck", "written_linear_pca"]), (s.student_id, names)
