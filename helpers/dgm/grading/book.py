r"""The one real gradebook: make sure the lab is in it, import workers' grades, export, plot."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

from ..course import Course, generate_assignment, strip_hidden
from .result import NOT_GRADED, GradeResult


def db_url(course: Path) -> str:
    return Course(course).db_url


def ensure_assignment(course: Path, lab: str) -> None:
    """Run ``nbgrader generate_assignment`` once if the gradebook does not know ``lab`` yet."""
    from nbgrader.api import Gradebook, MissingEntry

    if (course / "gradebook.db").exists():
        with Gradebook(db_url(course)) as gb:
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


def import_result(course: Path, lab: str, res: GradeResult, gb=None) -> None:
    """Write one student's grades (or zeros when the notebook could not be graded) to the gradebook.

    Pass an open ``Gradebook`` as ``gb`` to import many students without reopening it each time.
    """
    import warnings

    from nbgrader.api import Gradebook

    if gb is None:
        with Gradebook(db_url(course)) as gb:
            return import_result(course, lab, res, gb)
    student = res.student
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
        gb.db.commit()
    c = Course(course)
    for src, dest, name in ((res.autograded, c.autograded(student, lab), f"{lab}.ipynb"),
                            (res.feedback, c.feedback(student, lab), f"{lab}.html")):
        shutil.rmtree(dest, ignore_errors=True)
        if src and Path(src).exists():
            dest.mkdir(parents=True)
            shutil.copy(src, dest / name)


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
