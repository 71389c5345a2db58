r"""Grade-import CSVs for learning management systems (``dgm-grade --lms canvas|moodle``).

* **Canvas** (Grades → Import): columns ``Student, ID, SIS User ID, SIS Login ID, Section`` then one
  assignment column ``<lab> (<assignment id>)``. Canvas matches a row by ``ID`` (its numeric user id,
  which a Canvas submissions export carries in each file name: ``login_<user id>_<submission id>_…``),
  else ``SIS User ID``/``SIS Login ID``; we put the student id the collect step recognised in
  ``Student`` and ``SIS Login ID``. The assignment id is the number in the assignment's URL
  (``…/courses/123/assignments/<id>``); without it the column is just ``<lab>`` and Canvas asks
  whether to create a new assignment.
* **Moodle** (Grades → Import → CSV file): an identifier column (``ID number``, ``Username`` or
  ``Email address``, chosen with ``--moodle-id``; pick the same field under "Map from"/"Map to" in the
  import form) and one grade column ``<lab>`` (map it to the grade item).

The grade is the autograded total plus any manual scores entered so far; a student who could not be
graded gets 0.
"""
from __future__ import annotations

import csv
from pathlib import Path

CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_ID = {"idnumber": "ID number", "username": "Username", "email": "Email address"}


def totals(table: dict, graded: list) -> dict:
    """{student: points} — every graded cell (autograded and manual) that has a score."""
    names = [n for n, _, _ in graded]
    return {s: round(sum(row.get(n) or 0 for n in names), 4) for s, row in table.items()}


def canvas_rows(lab: str, table: dict, graded: list, results: dict, assignment_id: str | None = None) -> list[list]:
    column = f"{lab} ({assignment_id})" if assignment_id else lab
    rows = [[*CANVAS_HEADER, column]]
    for s, pts in sorted(totals(table, graded).items()):
        res = results.get(s)
        rows.append([s, getattr(res, "lms_id", "") or "", "", s, "", f"{pts:g}"])
    return rows


def moodle_rows(lab: str, table: dict, graded: list, id_field: str = "idnumber") -> list[list]:
    rows = [[MOODLE_ID[id_field], lab]]
    rows += [[s, f"{pts:g}"] for s, pts in sorted(totals(table, graded).items())]
    return rows


def write(system: str, out_dir: Path, lab: str, table: dict, graded: list, results: dict,
          canvas_assignment_id: str | None = None, moodle_id: str = "idnumber") -> Path:
    """Write ``<out_dir>/<lab>_<system>.csv``; returns its path."""
    if system == "canvas":
        rows = canvas_rows(lab, table, graded, results, canvas_assignment_id)
    elif system == "moodle":
        rows = moodle_rows(lab, table, graded, moodle_id)
    else:
        raise ValueError(f"unknown LMS {system!r} (canvas or moodle)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{lab}_{system}.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path
