r"""Grade one submission in a scratch copy of the course (run inside a worker process).

Each job gets its own folder with the lab's source, the course config and a copy of the
gradebook, so workers never write to the same sqlite file: nbgrader autogrades and writes
feedback there, and the parent imports the grades into the one real gradebook, one at a time.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

_KERNEL_JSON = {"display_name": "Python 3 (dgm grading)", "language": "python",
                "argv": [sys.executable, "-m", "dgm.grading.kernel", "-f", "{connection_file}"]}


def setup_process(settings: dict) -> None:
    """Once per worker: quiet logs, the limited kernelspec, and the kernel's environment."""
    ws = Path(settings["workspace"])
    log = open(ws / f"worker-{os.getpid()}.log", "ab", buffering=0)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    spec = ws / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps(_KERNEL_JSON))
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(ws / "jupyter"), os.environ.get("JUPYTER_PATH", "")])
    os.environ["DGM_GRADE_MEMORY_MB"] = str(settings["memory_mb"])
    os.environ["DGM_GRADE_CPU_S"] = str(int(settings["notebook_timeout"] * 2 + 60))
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("PYTHONWARNINGS", "ignore")


def _config(course: Path, settings: dict):
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)
    from traitlets.config.loader import PyFileConfigLoader

    from .execute import GuardedExecute, OutputCap, StderrNotFatal

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    cfg.CourseDirectory.root = str(course)
    cfg.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    cfg.Autograde.autograde_preprocessors = [GuardedExecute, OutputCap, IgnorePattern, StderrNotFatal,
                                             ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
                                             AssignLatePenalties, CheckCellMetadata]
    g = cfg.GuardedExecute
    if settings.get("cell_timeout"):
        g.timeout = int(settings["cell_timeout"])
    g.notebook_timeout = int(settings["notebook_timeout"])
    g.guard_key, g.guard_checks, g.guard_alias = settings["guard_key"], settings["checks"], settings["alias"]
    cfg.OutputCap.limit = int(settings["output_limit"])
    g.iopub_timeout = 10
    cfg.Application.log_level = "WARNING"
    return cfg


def grade_one(job: dict, settings: dict) -> dict:
    """Autograde + feedback for ``job = {student, notebook}``; returns grades, reasons and incidents."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI

    from . import execute

    t0 = time.perf_counter()
    lab, student = settings["lab"], job["student"]
    course = Path(settings["workspace"]) / "jobs" / student / "course"
    shutil.rmtree(course.parent, ignore_errors=True)
    (course / "source").mkdir(parents=True)
    shutil.copytree(settings["source_dir"], course / "source" / lab,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "checkpoints", "__pycache__"))
    shutil.copy(settings["config_file"], course / "nbgrader_config.py")
    shutil.copy(settings["template_db"], course / "gradebook.db")
    (course / "submitted" / student / lab).mkdir(parents=True)
    shutil.copy(job["notebook"], course / "submitted" / student / lab / f"{lab}.ipynb")

    execute.INCIDENTS.clear()
    api = NbGraderAPI(config=_config(course, settings))
    out = {"student": student, "error": None, "grades": [], "comments": [], "reasons": {}}
    res = api.autograde(lab, student, force=True, create=True)
    if not res["success"]:
        out["error"] = "nbgrader could not grade this notebook: " + _last_line(
            f"{res.get('log', '')}\n{res.get('error', '')}")
    else:
        fb = api.generate_feedback(lab, student, force=True)
        if not fb["success"]:
            execute.INCIDENTS.append("feedback not generated: " + _last_line(fb.get("error")))
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            sub = gb.find_submission(lab, student)
            for nb in sub.notebooks:
                out["grades"] += [dict(name=g.name, notebook=nb.name, auto_score=g.auto_score,
                                       needs_manual=bool(g.needs_manual_grade)) for g in nb.grades]
                out["comments"] += [dict(name=c.name, notebook=nb.name, auto_comment=c.auto_comment)
                                    for c in nb.comments]
        autograded = course / "autograded" / student / lab / f"{lab}.ipynb"
        out["reasons"] = reasons(autograded)
        out["autograded"] = str(autograded)
        out["feedback"] = str(course / "feedback" / student / lab / f"{lab}.html")
    out["incidents"] = list(dict.fromkeys(execute.INCIDENTS))
    out["seconds"] = time.perf_counter() - t0
    return out


def _last_line(text) -> str:
    """The most telling line of a traceback/log: the last ``SomethingError: ...`` line."""
    lines = [ln.strip() for ln in str(text or "").strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception|Exit)\b", ln)
              and "Please see the" not in ln]
    return (errors or lines or ["unknown error"])[-1][:300]


def reasons(path: Path) -> dict:
    """{grade_id: first line of what went wrong} for every test cell that did not get full marks."""
    import nbformat
    from nbgrader import utils

    out = {}
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or not utils.is_grade(cell):
            continue
        score, max_score = utils.determine_grade(cell)
        if score is not None and score < max_score:
            errors = [o for o in cell.outputs if o.output_type == "error"]
            mine = [o for o in errors if o.ename in ("TimeLimit", "KernelDied", "KernelHung", "NotRun")]
            err = (mine or errors or [None])[0]
            text = f"{err.ename}: {err.evalue}" if err is not None else "wrote to stderr"
            out[cell.metadata.nbgrader["grade_id"]] = " ".join(text.split())[:240]
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
            result = {"student": job["student"], "error": f"grader error: {type(err).__name__}: {err}",
                      "incidents": [], "grades": [], "comments": [], "reasons": {}, "seconds": 0.0}
        conn.send(result)
