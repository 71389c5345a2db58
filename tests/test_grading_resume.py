"""dgm-grade is crash-safe and resumable: SIGKILL the grader halfway through a batch, re-run it, and every
student is graded exactly once with the grades of an uninterrupted run; a second run skips what did not
change (file hash + release fingerprint), ``--force`` regrades everything.

Small on purpose: lab 1, 4 students, the submissions cut to the graded cells (no data loading or
experiments), fast mode, 2 local Dask workers.
"""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import nbformat
import pytest

from nbgrader_utils import env, make_course, scores, source_notebook, with_cell

LAB = "01_autoencoder"
HIDDEN = re.compile(r"^\s*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\s*$\n?", re.S | re.M)
MISTAKE_SRC = "def reconstruction_loss(x, x_hat):\n    return ((x - x_hat) ** 2).mean()\n"
MISTAKE = True


def submission(mistake: bool = False):
    """The lab with its solutions and no hidden tests, cut to what the graded cells need: the setup and
    every cell up to the last test of parts 1-3 (no data loading), then only the nbgrader cells."""
    nb = source_notebook(LAB)
    first = ("test_autoencoder", "test_reconstruction_loss", "test_train_step")
    last = max(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") in first)
    keep = [c for c in nb.cells[:last + 1] if "dgm.data.load" not in c.source]
    keep += [c for c in nb.cells[last + 1:] if c.metadata.get("nbgrader", {}).get("grade_id")]
    nb.cells = keep
    for c in nb.cells:
        c.source = HIDDEN.sub("", c.source)
    return with_cell(nb, "reconstruction_loss", MISTAKE_SRC) if mistake else nb


def write_subs(folder, n):
    folder.mkdir(exist_ok=True)
    for i in range(n):
        nbformat.write(submission(i % 2 == 1), folder / f"s{i:02d}.ipynb")


def cmd(course, subs, *extra):
    return [sys.executable, "-m", "dgm.grade", LAB, str(subs), "--course", str(course), "-j", "2",
            "--cell-timeout", "60", "--timeout", "240", "-q", *extra]


def committed(course) -> int:
    db = course / "gradebook.db"
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM dgm_grading_state WHERE lab = ?", (LAB,)).fetchone()[0]
    except sqlite3.Error:
        return 0


def run(course, subs, *extra, timeout=600):
    proc = subprocess.run(cmd(course, subs, *extra), env=env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    course = make_course(tmp, LAB)
    write_subs(tmp / "subs", 4)
    return course, tmp / "subs"


def test_sigkill_halfway_then_resume_grades_everyone_once(batch):
    course, subs = batch
    proc = subprocess.Popen(cmd(course, subs), env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 600  # a loaded 2-core machine: ~1 min per notebook
        while committed(course) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
        n = committed(course)
        assert proc.poll() is None, "the batch finished before it could be interrupted"
        assert 1 <= n < 4, n
        os.kill(proc.pid, signal.SIGKILL)  # the grader dies; its Dask workers go with its session
        proc.wait(10)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    out = run(course, subs)
    m = re.search(r"skipped (\d+) unchanged", out)
    assert m and int(m.group(1)) >= n, out[-2000:]
    got = scores(course, LAB)
    assert sorted(got) == [f"s{i:02d}" for i in range(4)]
    again = run(course, subs)
    assert "skipped 4 unchanged" in again
    assert scores(course, LAB) == got
    forced = run(course, subs, "--force")
    assert "skipped" not in forced
    assert scores(course, LAB) == got, "an uninterrupted run gives the same grades"
    assert got["s00"]["test_reconstruction_loss"] == 2.0 and got["s01"]["test_reconstruction_loss"] == 0.0
    with sqlite3.connect(course / "gradebook.db") as con:
        rows = con.execute("SELECT student, COUNT(*) FROM dgm_grading_state GROUP BY student").fetchall()
        subs_per = con.execute("SELECT COUNT(*) FROM submitted_assignment").fetchone()[0]
    assert all(k == 1 for _, k in rows) and len(rows) == 4 and subs_per == 4


def test_a_changed_submission_is_regraded(batch):
    course, subs = batch
    if committed(course) < 4:
        pytest.skip("needs the batch graded by the previous test")
    nbformat.write(submission(False), subs / "s01.ipynb")  # s01 fixes the mistake
    out = run(course, subs)
    assert "skipped 3 unchanged" in out
    assert scores(course, LAB)["s01"]["test_reconstruction_loss"] == 2.0
