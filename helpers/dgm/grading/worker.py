r"""Grade one submission in a scratch copy of the course (run inside a worker process).

Each job gets its own folder with the lab's source, the course config and a copy of the
gradebook, so workers never write to the same sqlite file: nbgrader autogrades and writes
feedback there with **the course's own config** (``course/nbgrader_config.py``: the same
preprocessors as a plain ``nbgrader autograde``), and the parent imports the grades into the one
real gradebook, one at a time. Only limits given on the command line and the path of the course's
grading secret are set on top of that config.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from ..course import Course, venv_env
from .result import GRADED, CellComment, CellGrade, GradeResult


def setup_process(settings: dict) -> None:
    """Once per worker: quiet logs and the venv's bin/ first on PATH."""
    ws = Path(settings["workspace"])
    log = open(ws / f"worker-{os.getpid()}.log", "ab", buffering=0)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    os.environ["PATH"] = venv_env()["PATH"]


def config(course: Course, settings: dict):
    """The course's nbgrader config for the scratch ``course``, with the command line's limits on top."""
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(course.root)).load_config()
    cfg.CourseDirectory.root = str(course.root)
    cfg.CourseDirectory.db_url = course.db_url
    g = cfg.GradingExecute
    if settings.get("cell_timeout"):
        g.timeout = int(settings["cell_timeout"])
    if settings.get("notebook_timeout"):
        g.notebook_timeout = int(settings["notebook_timeout"])
    if settings.get("memory_mb"):
        g.memory_mb = int(settings["memory_mb"])
    if settings.get("output_limit") is not None:
        cfg.OutputCap.limit = int(settings["output_limit"])
    g.secret_file = str(settings["secret_file"])  # the real course's secret, not the scratch copy's
    cfg.Application.log_level = "WARNING"
    return cfg


def grade_one(job: dict, settings: dict) -> GradeResult:
    """Autograde + feedback for ``job = {student, notebook}``."""
    import nbformat
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI

    t0 = time.perf_counter()
    lab, student = settings["lab"], job["student"]
    course = Course(Path(settings["workspace"]) / "jobs" / student / "course")
    shutil.rmtree(course.root.parent, ignore_errors=True)
    real = Course(Path(settings["course"]))
    real.scratch_copy(course.root, [lab])
    if real.release(lab).is_dir():  # the integrity scan compares with the student version
        shutil.copytree(real.release(lab), course.release(lab))
    shutil.copy(settings["template_db"], course.gradebook)
    course.submitted(student, lab).mkdir(parents=True)
    shutil.copy(job["notebook"], course.submitted(student, lab) / f"{lab}.ipynb")

    api = NbGraderAPI(config=config(course, settings))
    res = api.autograde(lab, student, force=True, create=True)
    if not res["success"]:
        return GradeResult.failed(student, lab, "nbgrader could not grade this notebook: " + _last_line(
            f"{res.get('log', '')}\n{res.get('error', '')}"), time.perf_counter() - t0)
    out = GradeResult(student, lab, GRADED)
    fb = api.generate_feedback(lab, student, force=True)
    if not fb["success"]:
        out.incidents.append("feedback not generated: " + _last_line(fb.get("error")))
    with Gradebook(course.db_url) as gb:
        sub = gb.find_submission(lab, student)
        for nb in sub.notebooks:
            out.grades += [CellGrade(nb.name, g.name, g.auto_score, bool(g.needs_manual_grade)) for g in nb.grades]
            out.comments += [CellComment(nb.name, c.name, c.auto_comment) for c in nb.comments]
    autograded = course.autograded(student, lab) / f"{lab}.ipynb"
    read(nbformat.read(autograded, as_version=4), out)
    out.autograded = str(autograded)
    out.feedback = str(course.feedback(student, lab) / f"{lab}.html")
    out.seconds = time.perf_counter() - t0
    return out


def _last_line(text) -> str:
    """The last non-empty line of nbgrader's log or error (for the report)."""
    lines = [ln.strip() for ln in str(text or "").strip().splitlines() if ln.strip()]
    return (lines or ["unknown error"])[-1][:300]


def read(nb, out: GradeResult) -> GradeResult:
    """Fill ``out`` from an autograded notebook: the grader's record (verdicts, incidents, sandbox,
    integrity; :class:`dgm.grading.judge.GradingRecord`) and, per lost test cell, the reason."""
    from nbgrader import utils

    from ..checks._check import Verdict
    from .judge import read_record

    rec = read_record(nb)
    out.verdicts = {cell: [Verdict(**v) for v in vs] for cell, vs in (rec.get("verdicts") or {}).items()}
    out.incidents = list(dict.fromkeys([*(rec.get("incidents") or []), *out.incidents]))
    out.sandboxed = rec.get("sandboxed")
    out.sandbox_reason = rec.get("sandbox_reason", "")
    out.integrity = rec.get("integrity")
    events = {}
    for e in rec.get("events") or []:
        events.setdefault(e["cell"], e["message"])
    for cell in nb.cells:
        if cell.cell_type != "code" or not utils.is_grade(cell):
            continue
        gid = cell.metadata.nbgrader["grade_id"]
        score, max_score = utils.determine_grade(cell)
        if score is None or score >= max_score:
            continue
        failed = [v for v in out.verdicts.get(gid, []) if not v.passed]
        if failed:
            text = failed[0].message
        elif gid in events:
            text = events[gid]
        else:
            err = next((o for o in cell.outputs if o.output_type == "error"), None)
            text = f"{err.ename}: {err.evalue}" if err is not None else "wrote to stderr"
        out.reasons[gid] = " ".join(str(text).split())[:240]
    return out


def worker_main(conn, settings: dict) -> None:
    """Loop: receive a job, grade it, send the result; ``None`` ends the worker."""
    setup_process(settings)
    while True:
        job = conn.recv()
        if job is None:
            return
        try:
            result = grade_one(job, settings)
        except Exception as err:  # noqa: BLE001 - report, never take the batch down
            result = GradeResult.failed(job["student"], settings["lab"],
                                        f"grader error: {type(err).__name__}: {err}")
        conn.send(result)
