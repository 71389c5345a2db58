r"""The one real gradebook: make sure the lab is in it, import workers' grades, export, plot.

The gradebook is any SQLAlchemy URL nbgrader supports (:func:`db_url`: ``--db-url``, else
``$DGM_DB_URL``, else the course config's ``CourseDirectory.db_url``, else ``course/gradebook.db``).
Beside nbgrader's tables it holds one table of ours, ``dgm_grading_state``: per (lab, student) the
hash of the graded file, the release fingerprint (:func:`fingerprint`) and the result as JSON,
written in the same transaction as the grades (:func:`import_result`), so a crash never leaves a
student graded but unrecorded, and a re-run skips what is unchanged (:func:`graded_state`).
"""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
import time
from pathlib import Path

from ..course import Course, generate_assignment, strip_hidden
from .result import NOT_GRADED, GradeResult

DB_ENV = "DGM_DB_URL"
STATE_TABLE = "dgm_grading_state"
_URLS: dict = {}


def db_url(course: Path, override: str | None = None) -> str:
    """The gradebook URL of ``course`` (``override`` > ``$DGM_DB_URL`` > the config's > gradebook.db)."""
    course = Path(course)
    if override:
        return override
    if os.environ.get(DB_ENV):
        return os.environ[DB_ENV]
    key = str(course.resolve())
    if key not in _URLS:
        url = None
        try:
            from traitlets.config.loader import PyFileConfigLoader

            cfg = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
            url = cfg.CourseDirectory.get("db_url")
        except Exception:  # noqa: BLE001 - no readable config: the default gradebook
            url = None
        if not url or url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url[len("sqlite:///"):] if url else "gradebook.db"
            url = f"sqlite:///{(course / rel).resolve()}"  # relative to the course root, not the cwd
        _URLS[key] = str(url)
    return _URLS[key]


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def ensure_assignment(course: Path, lab: str) -> None:
    """Run ``nbgrader generate_assignment`` once if the gradebook does not know ``lab`` yet."""
    from nbgrader.api import Gradebook, MissingEntry

    url = db_url(course)
    if not is_sqlite(url) or Path(url[len("sqlite:///"):]).exists():
        with Gradebook(url) as gb:
            try:
                if gb.find_assignment(lab).notebooks:
                    return
            except MissingEntry:
                pass
    try:
        generate_assignment(Course(course), lab)
    except RuntimeError as err:
        raise SystemExit(str(err)) from None


def lab_info(course: Path, lab: str) -> dict:
    """What the grader needs to know about ``lab``, read from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url(course)) as gb:
        a = gb.find_assignment(lab)
        cells = {c.name for nb in a.notebooks for c in nb.source_cells}
        tests = {c.name: strip_hidden(c.source) for nb in a.notebooks for c in nb.source_cells
                 if c.locked and c.cell_type == "code"
                 and c.name in {g.name for g in nb.grade_cells}}
        graded = [(c.name, c.max_score, c.cell_type) for nb in a.notebooks for c in nb.grade_cells]
    return {"cells": cells, "tests": tests, "graded": graded}


def other_labs(course: Path, lab: str) -> dict:
    import nbformat

    out = {}
    for path in sorted((course / "source").glob("*/*.ipynb")):
        if path.parent.name == lab or path.stem != path.parent.name:
            continue
        nb = nbformat.read(path, as_version=4)
        out[path.stem] = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
                          if c.metadata.get("nbgrader", {}).get("grade_id")}
    return out


def template_gradebook(course: Path, lab: str, dest: Path) -> Path:
    """A new sqlite gradebook at ``dest`` that knows only ``lab`` (its notebooks and cells), copied
    from the course's gradebook through nbgrader's API: what a worker's scratch course needs, small
    however many students the course has, and whatever database the course uses."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url(course)) as src, Gradebook(f"sqlite:///{dest}") as gb:
        a = src.find_assignment(lab)
        gb.update_or_create_assignment(lab, duedate=a.duedate)
        for nb in a.notebooks:
            gb.update_or_create_notebook(nb.name, lab, kernelspec=nb.kernelspec)
            for c in nb.grade_cells:
                gb.update_or_create_grade_cell(c.name, nb.name, lab, max_score=c.max_score, cell_type=c.cell_type)
            for c in nb.solution_cells:
                gb.update_or_create_solution_cell(c.name, nb.name, lab)
            for c in nb.task_cells:
                gb.update_or_create_task_cell(c.name, nb.name, lab, max_score=c.max_score, cell_type=c.cell_type)
            for c in nb.source_cells:
                gb.update_or_create_source_cell(c.name, nb.name, lab, cell_type=c.cell_type, locked=c.locked,
                                                source=c.source, checksum=c.checksum)
    return dest


# ----------------------------------------------------------------------------- resumable batches
def fingerprint(course: Path, lab: str) -> str:
    """The release fingerprint: the lab's source notebook, dgm's version and the checks' sources."""
    from importlib import metadata

    from .. import checks

    h = hashlib.sha256(Course(course).source(lab).read_bytes())
    try:
        h.update(metadata.version("dgm-course").encode())
    except metadata.PackageNotFoundError:
        h.update(b"dgm-unknown")
    for p in sorted(Path(checks.__file__).parent.rglob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _state_table(gb) -> None:
    from sqlalchemy import text

    gb.db.execute(text(f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (lab VARCHAR(128) NOT NULL, "
                       "student VARCHAR(128) NOT NULL, submission_sha VARCHAR(64) NOT NULL, "
                       "fingerprint VARCHAR(64) NOT NULL, status VARCHAR(32) NOT NULL, result TEXT, "
                       "graded_at DOUBLE PRECISION, PRIMARY KEY (lab, student))"))
    gb.db.commit()


def graded_state(gb, lab: str) -> dict:
    """{student: (submission_sha, fingerprint, GradeResult JSON)} recorded for ``lab``."""
    from sqlalchemy import text

    _state_table(gb)
    rows = gb.db.execute(text(f"SELECT student, submission_sha, fingerprint, result FROM {STATE_TABLE} "
                              "WHERE lab = :lab"), {"lab": lab})
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _record(gb, lab: str, res: GradeResult, sha: str, fp: str) -> None:
    from sqlalchemy import text

    gb.db.execute(text(f"DELETE FROM {STATE_TABLE} WHERE lab = :lab AND student = :s"), {"lab": lab, "s": res.student})
    gb.db.execute(text(f"INSERT INTO {STATE_TABLE} (lab, student, submission_sha, fingerprint, status, result, "
                       "graded_at) VALUES (:lab, :s, :sha, :fp, :st, :res, :t)"),
                  {"lab": lab, "s": res.student, "sha": sha, "fp": fp, "st": res.status, "res": res.to_json(),
                   "t": time.time()})


def import_result(course: Path, lab: str, res: GradeResult, gb=None, state: tuple | None = None) -> None:
    """Write one student's grades (or zeros when the notebook could not be graded) to the gradebook.

    Pass an open ``Gradebook`` as ``gb`` to import many students without reopening it each time.
    ``state = (submission sha, fingerprint)`` records the result for resumed runs, in the same
    transaction as the grades. The autograded notebook and feedback are written first (from the
    result's files, or its paths), so a committed student always has them.
    """
    import warnings

    from nbgrader.api import Gradebook

    if gb is None:
        with Gradebook(db_url(course)) as gb:
            return import_result(course, lab, res, gb, state)
    student = res.student
    c = Course(course)
    for key, src, dest, name in (("autograded", res.autograded, c.autograded(student, lab), f"{lab}.ipynb"),
                                 ("feedback", res.feedback, c.feedback(student, lab), f"{lab}.html")):
        shutil.rmtree(dest, ignore_errors=True)
        if key in res.files:
            dest.mkdir(parents=True)
            (dest / name).write_bytes(res.files[key])
        elif src and Path(src).exists():
            dest.mkdir(parents=True)
            shutil.copy(src, dest / name)
    failed = res.reason if res.status == NOT_GRADED else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy autoflush warnings
        gb.update_or_create_student(student)
        sub = gb.update_or_create_submission(lab, student)
        given = {(g.notebook, g.name): g for g in res.grades}
        comments = {(c.notebook, c.name): c for c in res.comments}
        for nb in sub.notebooks:
            for grade in nb.grades:
                g = given.get((nb.name, grade.name))
                grade.auto_score = g.auto_score if g else 0.0
                grade.needs_manual_grade = g.needs_manual if g else False
                if grade.manual_score is not None and not g:
                    grade.needs_manual_grade = True
            for comment in nb.comments:
                c = comments.get((nb.name, comment.name))
                comment.auto_comment = c.auto_comment if c else failed
        if state is not None:
            _record(gb, lab, res, *state)
        gb.db.commit()


def scores(course: Path, lab: str, students) -> dict:
    """{student: {grade_id: auto_score}} read back from the gradebook."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(db_url(course)) as gb:
        for s in students:
            sub = gb.find_submission(lab, s)
            out[s] = {g.name: g.auto_score for nb in sub.notebooks for g in nb.grades}
    return out


def export(out_dir: Path, lab: str, graded: list, table: dict, status: dict,
           results: dict | None = None) -> tuple[Path, list[Path]]:
    """grades CSV + one histogram PNG per autograded test cell.

    ``results``: {student: GradeResult} for the columns ``mistakes`` (the judge's mistake ids per test
    cell), ``integrity`` (the integrity scan's flags; never changes a score) and ``sandboxed``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = results or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    tests = [(n, m) for n, m, t in graded if t == "code"]
    manual = [n for n, m, t in graded if t != "code"]
    path = out_dir / f"{lab}_grades.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", *[n for n, _ in tests], "autograded", "autograded_max", *manual, "status", "reason",
                    "mistakes", "integrity", "sandboxed"])
        for s in sorted(table):
            row = table[s]
            auto = sum(row.get(n) or 0 for n, _ in tests)
            res = results.get(s)
            mistakes = "; ".join(f"{cell}: {', '.join(ids)}" for cell, ids in sorted(res.mistakes().items())) \
                if res else ""
            flags = (res.integrity or {}).get("summary", "") if res else ""
            boxed = "" if res is None or res.sandboxed is None else ("yes" if res.sandboxed else "no")
            w.writerow([s, *[row.get(n) for n, _ in tests], auto, sum(m for _, m in tests),
                        *["pending" if row.get(n) is None else row.get(n) for n in manual], *status[s],
                        mistakes, flags, boxed])
    pngs = []
    for n, m in tests:
        fig, ax = plt.subplots(figsize=(4, 3))
        vals = [table[s].get(n) or 0 for s in table]
        ax.hist(vals, bins=[x - 0.5 for x in range(int(m) + 2)] if m == int(m) else 10, rwidth=0.8)
        ax.set_xlabel(f"score (max {m:g})")
        ax.set_ylabel("students")
        ax.set_title(f"{lab}: {n}")
        fig.tight_layout()
        pngs.append(out_dir / f"{lab}_{n}_hist.png")
        fig.savefig(pngs[-1], dpi=80)
        plt.close(fig)
    return path, pngs
