r"""Grade one submission in a scratch copy of the course (run inside a worker process).

Each job gets its own folder, copied from the batch's **kit** (the lab's source folder, its release,
the course config and a gradebook that knows only this lab — built once by the parent,
:func:`dgm.grading.engine.build_kit`), so workers never write to the same sqlite file and need no
access to the course: nbgrader autogrades and writes feedback there with **the course's own
config** (``course/nbgrader_config.py``: the same preprocessors as a plain ``nbgrader autograde``),
and the parent imports the grades into the one real gradebook, one at a time.

The job carries the submission's bytes and its **grading plan** (the hidden cases' seeds), computed
by the parent from the grading secret (:func:`dgm.grading.engine.plan`): the secret never leaves the
instructor's machine. :class:`PlannedExecute` (a :class:`GradingExecute` that takes the shipped plan
instead of reading the secret) is swapped into the course's pipeline for that. Only limits given
on the command line are set on top of the config. The autograded notebook and the feedback HTML
come back inside the result (``GradeResult.files``); the job folder is deleted.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from traitlets import Unicode

from ..course import Course, venv_env
from .execute import GradingExecute
from .result import GRADED, CellComment, CellGrade, GradeResult

PLAN_JOB_FILE = ".dgm_job_plan.json"


class PlannedExecute(GradingExecute):
    """:class:`GradingExecute` with the plan computed by the parent (``plan_file``: {"sha", "cases"}).

    The plan must belong to this notebook as nbgrader sanitised it (the same submission hash); a
    mismatch fails the notebook (with a reason) unless ``fallback_secret`` names the grading secret
    on this machine (the local engines), then the plan is computed here as usual.
    """

    plan_file = Unicode("", help="JSON plan shipped with the job").tag(config=True)
    fallback_secret = Unicode("", help="the grading secret's path when it is on this machine").tag(config=True)

    def _prepare(self, nb, resources) -> None:
        from ..checks import evidence
        from . import judge
        from .execute import PLAN_FILE, sandbox_status, state

        if not self.plan_file:
            return super()._prepare(nb, resources)
        shipped = json.loads(Path(self.plan_file).read_text())
        sha = judge.submission_sha256(nb)
        if shipped.get("error") or shipped.get("sha") not in (None, sha):
            if self.fallback_secret and Path(self.fallback_secret).is_file():
                self.secret_file = self.fallback_secret
                return super()._prepare(nb, resources)
            if shipped.get("error"):
                raise RuntimeError(shipped["error"])
            raise RuntimeError("the grading plan does not match the notebook nbgrader prepared "
                               f"(hash {sha[:12]} vs {str(shipped.get('sha'))[:12]}); regrade with --engine pool")
        st = state(resources)
        info = resources.get("nbgrader", {})
        st.lab, st.student = info.get("assignment", ""), info.get("student", "")
        self._scratch = self._make_scratch(Path(resources.get("metadata", {}).get("path") or Path.cwd()))
        self._env = {"DGM_GRADE_MEMORY_MB": str(self.memory_mb),
                     "DGM_GRADE_CPU_S": str(int(self.notebook_timeout * 2 + 60))}
        st.declared = judge.declared_cells(st.lab) if st.lab else None
        if st.declared is not None:
            st.plan = [evidence.PlannedCase(**c) for c in shipped.get("cases") or []]
            plan_path = self._scratch / PLAN_FILE
            evidence.write_plan(plan_path, st.plan)
            self._env[evidence.PLAN_ENV] = str(plan_path)
        ok, why = sandbox_status() if self.sandbox != "off" else (False, "disabled in the config")
        if self.sandbox == "require" and not ok:
            raise RuntimeError(f"GradingExecute.sandbox = 'require' but the sandbox is unavailable: {why}")
        st.sandboxed, st.sandbox_reason = ok, why

    def create_kernel_manager(self):
        from ..checks import evidence
        from .execute import LimitedKernelManager

        if self._state.sandboxed:
            from . import sandbox

            plan = self._env.get(evidence.PLAN_ENV)
            # the plan lies in the writable scratch folder: bound read-only, the kernel cannot rewrite it
            self.km = sandbox.kernel_manager(self._scratch, self._kernel_env(), readonly=[Path(plan)] if plan else [])
        else:
            km = LimitedKernelManager(kernel_name="python3", config=self.config)
            km.extra_env = dict(self._env)
            self.km = km
        return self.km


def setup_process(settings: dict) -> None:
    """Once per worker: quiet logs, the venv's bin/ first on PATH, no gradebook credentials."""
    ws = Path(settings["workspace"])
    ws.mkdir(parents=True, exist_ok=True)
    log = open(ws / f"worker-{os.getpid()}.log", "ab", buffering=0)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    os.environ["PATH"] = venv_env()["PATH"]
    os.environ.pop("DGM_DB_URL", None)  # DGM_* variables reach the kernel: never a database URL


def config(course: Course, settings: dict, plan_path: Path | None = None):
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
    if settings.get("secret_file"):
        g.secret_file = str(settings["secret_file"])  # the real course's secret, not the scratch copy's
    if plan_path is not None:
        pre = list(cfg.Autograde.autograde_preprocessors)
        cfg.Autograde.autograde_preprocessors = [PlannedExecute if p is GradingExecute else p for p in pre]
        cfg.PlannedExecute.plan_file = str(plan_path)
        cfg.PlannedExecute.fallback_secret = str(settings.get("secret_file") or "")
    cfg.Application.log_level = "WARNING"
    return cfg


def grade_one(job: dict, settings: dict, kit: Path | None = None) -> GradeResult:
    """Autograde + feedback for ``job = {student, nb (bytes), plan}`` in a copy of the ``kit`` folder."""
    import nbformat
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI

    t0 = time.perf_counter()
    lab, student = settings["lab"], job["student"]
    kit = Path(kit or settings["kit"])
    jobs = Path(settings.get("workspace") or tempfile.gettempdir()) / "jobs"
    course = Course(jobs / student / "course")
    shutil.rmtree(course.root.parent, ignore_errors=True)
    try:
        shutil.copytree(kit, course.root)
        course.submitted(student, lab).mkdir(parents=True)
        (course.submitted(student, lab) / f"{lab}.ipynb").write_bytes(job["nb"])
        plan_path = None
        if job.get("plan") is not None:
            plan_path = course.root / PLAN_JOB_FILE
            plan_path.write_text(json.dumps(job["plan"]))
        api = NbGraderAPI(config=config(course, settings, plan_path))
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
                out.grades += [CellGrade(nb.name, g.name, g.auto_score, bool(g.needs_manual_grade))
                               for g in nb.grades]
                out.comments += [CellComment(nb.name, c.name, c.auto_comment) for c in nb.comments]
        autograded = course.autograded(student, lab) / f"{lab}.ipynb"
        read(nbformat.read(autograded, as_version=4), out)
        out.files["autograded"] = autograded.read_bytes()
        feedback = course.feedback(student, lab) / f"{lab}.html"
        if feedback.is_file():
            out.files["feedback"] = feedback.read_bytes()
        out.seconds = time.perf_counter() - t0
        return out
    finally:
        shutil.rmtree(course.root.parent, ignore_errors=True)


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
