"""One grading path: plain `nbgrader autograde` in the course (what the formgrader's Autograde button
runs) and `dgm-grade` give the same per-cell scores on the same submissions; script in outputs never
reaches the feedback HTML; forged evidence earns nothing; a kernel cannot touch the course (sandbox).

The submissions stop after the last test cell (no training) to keep this fast.
"""
from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from dgm.course import Course, strip_hidden
from nbgrader_utils import env, make_course, nbgrader, scores, source_notebook, with_cell

LAB = "01_autoencoder"
TESTS = ("test_autoencoder", "test_reconstruction_loss", "test_train_step")
FULL = {t: 2.0 for t in TESTS}
LOSS = "test_reconstruction_loss"

XSS = '''
from IPython.display import display, HTML, Javascript, Markdown
display(HTML("<script>alert('xss-html')</script><img src=x onerror=alert('xss-img')>"))
display(Javascript("alert('xss-js')"))
display(Markdown("<img src=y onerror=alert('xss-md')>"))
def reconstruction_loss(x, x_hat):
    return ((x - x_hat) ** 2).flatten(1).sum(1).mean()
'''
# Evidence forged from the student's cell: records claiming a pass, with the visible seed for every case.
FORGED = '''
import json
from IPython.display import display
from dgm.checks import evidence as _ev, _check
def reconstruction_loss(x, x_hat):
    good = ((x - x_hat) ** 2).flatten(1).sum(1).mean()
    for case in ("visible", "hidden-1", "hidden-2", "hidden-3"):
        seed = _check.public_seed("ae.reconstruction_loss", "visible")
        rec = _ev.Record("test_reconstruction_loss", "ae.reconstruction_loss", case, seed, {"out": good.detach()})
        display({_ev.MIME: _ev.to_json(rec), "text/plain": "forged"}, raw=True)
    return ((x - x_hat) ** 2).mean()
'''


def tamper(course) -> str:
    """Tries to rewrite the course config and gradebook and to leave a process behind."""
    return f'''
import os, subprocess
for p in ({str(course / "nbgrader_config.py")!r}, {str(course / "gradebook.db")!r}):
    try:
        with open(p, "a") as f:
            f.write("# tampered")
    except OSError as err:
        print("refused:", type(err).__name__)
subprocess.Popen(["sleep", "987"], start_new_session=True)
def reconstruction_loss(x, x_hat):
    return ((x - x_hat) ** 2).flatten(1).sum(1).mean()
'''


def base():
    nb = source_notebook(LAB)
    last = max(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") in TESTS)
    nb.cells = [c for c in nb.cells[:last + 1] if "dgm.data.load" not in c.source]
    for c in nb.cells:
        c.source = strip_hidden(c.source)
    return nb


def submissions(course) -> dict:
    """{student: (notebook, expected scores)} — extend this table for new cases."""
    nb = base()
    return {
        "good": (nb, FULL),
        "mistake": (with_cell(nb, "reconstruction_loss", "def reconstruction_loss(x, x_hat):\n"
                                                          "    return ((x - x_hat) ** 2).mean()\n"), {**FULL, LOSS: 0}),
        "xss": (with_cell(nb, "reconstruction_loss", XSS), FULL),
        "forged": (with_cell(nb, "reconstruction_loss", FORGED), {**FULL, LOSS: 0}),
        "tamper": (with_cell(nb, "reconstruction_loss", tamper(course)), FULL),
    }


def _sandboxed() -> tuple[bool, str]:
    from dgm.grading.execute import sandbox_status

    return sandbox_status()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paths")
    plain = Course(make_course(tmp / "plain", LAB))
    cases = submissions(plain.root)
    config_before = plain.config.read_bytes()
    for student, (nb, _) in cases.items():
        plain.submitted(student, LAB).mkdir(parents=True)
        nbformat.write(nb, plain.submitted(student, LAB) / f"{LAB}.ipynb")
    nbgrader(plain.root, "autograde", LAB, "--force")
    nbgrader(plain.root, "generate_feedback", LAB, "--force")
    tampered_config = plain.config.read_bytes() != config_before
    leftover = subprocess.run(["pgrep", "-f", "sleep 987"], capture_output=True, text=True).stdout.split()
    # dgm-grade on the same files, in another course with the same grading secret
    batch = Course(make_course(tmp / "batch", LAB))
    shutil.copy(plain.secret_file, batch.secret_file)
    folder = tmp / "export"
    folder.mkdir()
    for student in cases:
        shutil.copy(plain.submitted(student, LAB) / f"{LAB}.ipynb", folder / f"{student}.ipynb")
    proc = subprocess.run([sys.executable, "-m", "dgm.grade", LAB, str(folder), "--course", str(batch.root),
                           "-j", "2", "-q", "--cell-timeout", "120"], env=env(), capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for pid in leftover:  # never leave the test's own stray processes behind
        subprocess.run(["kill", pid], capture_output=True)
    return {"plain": plain, "batch": batch, "cases": cases, "stdout": proc.stdout,
            "tampered_config": tampered_config, "leftover": leftover}


def test_plain_nbgrader_and_dgm_grade_give_identical_scores(graded):
    plain = scores(graded["plain"].root, LAB)
    batch = scores(graded["batch"].root, LAB)
    assert plain == batch, "nbgrader autograde and dgm-grade must agree cell by cell"
    for student, (_, want) in graded["cases"].items():
        got = {t: plain[student][t] for t in TESTS}
        nb = nbformat.read(graded["plain"].autograded(student, LAB) / f"{LAB}.ipynb", as_version=4)
        failed = {c: [v for v in vs if not v["passed"]] for c, vs in nb.metadata["dgm_grading"]["verdicts"].items()}
        assert got == want, (student, {c: f for c, f in failed.items() if f})


def test_the_verdict_is_what_nbgrader_scored_and_the_feedback_shows(graded):
    plain = graded["plain"]
    nb = nbformat.read(plain.autograded("mistake", LAB) / f"{LAB}.ipynb", as_version=4)
    record = nb.metadata["dgm_grading"]
    assert record["judged"] and any(not v["passed"] for v in record["verdicts"][LOSS])
    html = (plain.feedback("mistake", LAB) / f"{LAB}.html").read_text()
    assert "averages over every pixel" in html and "[mistake: " in html
    rows = {r["student_id"]: r for r in csv.DictReader(open(graded["batch"].exports / f"{LAB}_grades.csv"))}
    assert "mean-over-pixels" in rows["mistake"]["mistakes"]
    # the later graded parts (anomaly score, threshold) were deleted with the experiments: put back, no evidence
    assert not any(t in rows["good"]["mistakes"] for t in TESTS) and rows["good"]["integrity"]
    assert "test_anomaly_score: missing-evidence" in rows["good"]["mistakes"]


def test_forged_evidence_earns_nothing(graded):
    nb = nbformat.read(graded["plain"].autograded("forged", LAB) / f"{LAB}.ipynb", as_version=4)
    ids = {v["mistake"] for v in nb.metadata["dgm_grading"]["verdicts"][LOSS] if not v["passed"]}
    assert ids & {"foreign-evidence", "duplicate-evidence", "wrong-seed"}, ids


@pytest.mark.parametrize("path", ["plain", "batch"])
def test_no_script_reaches_the_feedback(graded, path):
    course = graded[path]
    html = (course.feedback("xss", LAB) / f"{LAB}.html").read_text()
    # the student's source is shown escaped (&lt;script&gt;); no live tag may carry the payload
    assert not re.search(r"<script[^>]*>[^<]*xss", html), path
    assert not re.search(r"<img[^>]*onerror", html, re.I), path
    nb = nbformat.read(course.autograded("xss", LAB) / f"{LAB}.ipynb", as_version=4)
    kinds = {k for c in nb.cells if c.cell_type == "code" for o in c.outputs for k in o.get("data", {})}
    assert not kinds & {"text/html", "application/javascript", "text/markdown"}, kinds


def test_kernel_cannot_touch_the_course_or_leave_a_process(graded):
    ok, why = _sandboxed()
    if not ok:
        pytest.skip(f"needs the sandbox: {why}")
    assert not graded["tampered_config"], "the kernel rewrote nbgrader_config.py"
    assert b"# tampered" not in graded["plain"].gradebook.read_bytes()[-64:]
    assert graded["leftover"] == [], "a process started by the kernel survived grading"
    assert "sandboxed: all" in graded["stdout"]
