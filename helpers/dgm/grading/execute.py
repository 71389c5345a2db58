r"""The kernel side of grading: :class:`GradingExecute` replaces nbgrader's ``Execute``.

Wired in ``course/nbgrader_config.py``, so ``nbgrader autograde``, the formgrader's Autograde
button and ``dgm-grade`` run the same code. Before the kernel starts it

* computes the **plan** of the submission (:mod:`dgm.grading.judge`): for every declared test cell
  of the lab (``dgm.checks.cells(lab)``), every check and case, the seed of its inputs — public for
  the visible case, HMAC(secret, student/lab/cell/check/case/submission hash) for hidden ones — and
  writes it into the notebook's scratch folder; the kernel gets its path in ``DGM_GRADE_PLAN`` and
  its checks then only *display evidence*; :class:`dgm.grading.judge.Judge` decides afterwards;
* starts the kernel under the sandbox's kernel manager when one is available
  (:mod:`dgm.grading.sandbox`), else under resource limits only (:mod:`dgm.grading.kernel`) — the
  report says "unsandboxed: <reason>".

While the notebook runs it enforces a wall-clock budget per notebook on top of nbgrader's per-cell
timeout, and when the kernel dies (``os._exit``, a crash, the memory limit) or hangs, the cell gets a
readable error, a fresh kernel is started and the earlier non-test cells are replayed, so later test
cells are still graded. What happened is recorded as typed events on ``resources["dgm"]``
(:class:`GradingState`), never in a module global and never by reading output text.

:class:`OutputCap` truncates huge prints; :class:`StderrNotFatal` keeps stderr in a test cell from
costing points.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Enum, Integer, Unicode

from ..checks import evidence
from .kernel import argv as kernel_argv

PLAN_FILE = ".dgm_plan.json"


# ----------------------------------------------------------------------------- state shared by the preprocessors
@dataclass(frozen=True)
class CellEvent:
    """Something the grader did to one cell (typed: the judge and the report never parse messages)."""
    cell: str
    kind: str      # "time-limit" | "kernel-died" | "kernel-hung" | "not-run" | "truncated" | "stderr"
    message: str


@dataclass
class GradingState:
    """Per-notebook state, kept in ``resources["dgm"]`` and shared by the autograde preprocessors."""
    lab: str = ""
    student: str = ""
    declared: dict | None = None          # {grade_id: (Check, ...)} or None: the lab is graded in-kernel
    plan: list | None = None              # [evidence.PlannedCase] when declared
    events: list = field(default_factory=list)      # [CellEvent]
    incidents: list = field(default_factory=list)   # [str] for the report
    verdicts: dict = field(default_factory=dict)    # {grade_id: [Verdict]}
    sandboxed: bool = False
    sandbox_reason: str = ""
    integrity: dict | None = None          # {"flags": [...], "summary": "..."} from the integrity scan
    judge_seconds: float = 0.0             # time the grader spent judging (the overhead of judging outside)

    def incident(self, text: str) -> None:
        if text not in self.incidents:
            self.incidents.append(text)

    def event(self, cell: str, kind: str, message: str) -> None:
        self.events.append(CellEvent(cell, kind, message))

    def event_of(self, cell: str) -> CellEvent | None:
        """The grader's own reason a cell produced nothing (time limit, dead kernel, not run)."""
        for e in self.events:
            if e.cell == cell and e.kind in ("time-limit", "kernel-died", "kernel-hung", "not-run"):
                return e
        return None


def state(resources: dict) -> GradingState:
    if not isinstance(resources.get("dgm"), GradingState):
        resources["dgm"] = GradingState()
    return resources["dgm"]


def _error(ename: str, evalue: str):
    return new_output("error", ename=ename, evalue=evalue, traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


def cell_name(cell, index) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id") or f"#{index}"


# ----------------------------------------------------------------------------- the sandbox (adapter)
def sandbox_status() -> tuple[bool, str]:
    """(available, reason) of :mod:`dgm.grading.sandbox`; (False, why) while it is not installed."""
    try:
        from . import sandbox
    except ImportError as err:
        return False, f"no sandbox module ({err})"
    try:
        st = sandbox.status()
        return bool(st.available), str(st.reason)
    except Exception as err:  # noqa: BLE001 - a broken sandbox check means: not sandboxed, and say why
        return False, f"sandbox status failed: {type(err).__name__}: {err}"


# ``python -c <launcher>``, not ``-m``: with -m, a dgm/ folder the submission wrote into its working
# directory would be imported instead of the launcher, before any limit applies.
_KERNEL_ARGV = kernel_argv(sys.executable)


class LimitedKernelManager(AsyncKernelManager):
    """An IPython kernel started through :mod:`dgm.grading.kernel` (rlimits), with extra environment."""

    extra_env: dict = {}

    @property
    def kernel_spec(self):
        if self._kernel_spec is None:
            self._kernel_spec = KernelSpec(argv=list(_KERNEL_ARGV), display_name="Python 3 (dgm grading)",
                                           language="python", env=dict(self.extra_env))
        return self._kernel_spec


# ----------------------------------------------------------------------------- Execute
class GradingExecute(Execute):
    notebook_timeout = Integer(1800, help="Wall-clock seconds for the whole notebook.").tag(config=True)
    max_restarts = Integer(3, help="kernel restarts per notebook before giving up.").tag(config=True)
    memory_mb = Integer(4096, help="heap limit of the kernel (RLIMIT_DATA) in MB; 0: none").tag(config=True)
    secret_file = Unicode(".dgm_grading_secret", help=(
        "HMAC key of the hidden cases' seeds; relative paths are relative to the course root. "
        "Created (mode 600) on first use. Keep it out of the kernel's reach.")).tag(config=True)
    sandbox = Enum(["auto", "off", "require"], "auto", help=(
        "run the kernel under dgm.grading.sandbox: when available (auto), never (off), or fail "
        "the notebook when it is not available (require).")).tag(config=True)

    # ------------------------------------------------------------------ plan and kernel environment
    def _course_root(self) -> Path:
        root = self.config.get("CourseDirectory", {}).get("root")
        return Path(root) if root else Path.cwd()

    def _secret_path(self) -> Path:
        p = Path(self.secret_file)
        return p if p.is_absolute() else self._course_root() / p

    def _prepare(self, nb, resources) -> None:
        """Plan (when the lab declares its cells), sandbox decision, kernel environment."""
        from . import judge

        st = state(resources)
        info = resources.get("nbgrader", {})
        st.lab, st.student = info.get("assignment", ""), info.get("student", "")
        self._scratch = self._make_scratch(Path(resources.get("metadata", {}).get("path") or Path.cwd()))
        self._env = {"DGM_GRADE_MEMORY_MB": str(self.memory_mb),
                     "DGM_GRADE_CPU_S": str(int(self.notebook_timeout * 2 + 60))}
        st.declared = judge.declared_cells(st.lab) if st.lab else None
        if st.declared is not None:
            from ..course import Course

            secret = Course(self._course_root()).secret(self._secret_path())
            st.plan = judge.make_plan(st.declared, secret, st.student, st.lab, judge.submission_sha256(nb))


            plan_path = self._scratch / PLAN_FILE
            evidence.write_plan(plan_path, st.plan)
            self._env[evidence.PLAN_ENV] = str(plan_path)
        ok, why = sandbox_status() if self.sandbox != "off" else (False, "disabled in the config")
        if self.sandbox == "require" and not ok:
            raise RuntimeError(f"GradingExecute.sandbox = 'require' but the sandbox is unavailable: {why}")
        st.sandboxed, st.sandbox_reason = ok, why  # reported once per batch, and in the CSV

    @staticmethod
    def _make_scratch(folder: Path) -> Path:
        """The one folder a sandboxed kernel may write: a short private copy of the notebook's folder
        (unix socket paths must stay short) holding the plan; never the course, gradebook or sources."""
        from ..course import IGNORE

        scratch = Path(tempfile.mkdtemp(prefix="dgm-", dir="/tmp" if os.path.isdir("/tmp") else None))
        if folder.is_dir():
            shutil.copytree(folder, scratch, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*IGNORE))
        return scratch

    def _kernel_env(self) -> dict:
        """What the kernel gets on top of the sandbox's minimal environment (DGM_*, NBGRADER_EXECUTION)."""
        env = {k: v for k, v in os.environ.items() if k.startswith("DGM_") or k == "NBGRADER_EXECUTION"}
        env.pop("DGM_SANDBOX", None)
        return {**env, **self._env}

    def create_kernel_manager(self):
        """nbgrader passes its kernel manager class to nbclient; this is where the grader chooses."""
        st = self._state
        if st.sandboxed:
            from . import sandbox

            plan = self._env.get(evidence.PLAN_ENV)
            # the plan lies in the writable scratch folder: bound read-only, the kernel cannot rewrite it
            self.km = sandbox.kernel_manager(self._scratch, self._kernel_env(), readonly=[Path(plan)] if plan else [])
        else:
            km = LimitedKernelManager(kernel_name="python3", config=self.config)
            km.extra_env = dict(self._env)
            self.km = km
        return self.km

    # ------------------------------------------------------------------ kernel management
    def _start(self) -> None:
        self.km = self.create_kernel_manager()
        self.start_new_kernel()
        self.start_new_kernel_client()
        info = self.wait_for_reply(self.kc.kernel_info())
        if info is not None and "language_info" in info["content"]:
            self.nb.metadata["language_info"] = info["content"]["language_info"]

    def _stop(self) -> None:
        if self.km is not None:
            self.shutdown_kernel = "immediate"
            try:
                self._cleanup_kernel()
            except Exception:  # noqa: BLE001 - a dead kernel may fail to clean up; we move on
                self.km = self.kc = None

    async def _async_silent(self, code: str, timeout: float):
        """Run ``code`` without touching the notebook; True when it finished (False on timeout)."""
        msg_id = self.kc.execute(code, silent=True, store_history=False)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=min(1.0, left)))
            except Empty:
                if not await ensure_async(self.kc.is_alive()):
                    raise DeadKernelError("Kernel died") from None
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return True
        return False

    _silent = run_sync(_async_silent)

    async def _async_alive(self) -> bool:
        return self.kc is not None and bool(await ensure_async(self.kc.is_alive()))

    _alive = run_sync(_async_alive)

    async def _async_handle_timeout(self, timeout, cell=None):
        self._timed_out = True  # state, not the text of the error output
        return await super()._async_handle_timeout(timeout, cell)

    # ------------------------------------------------------------------ the notebook loop
    def preprocess(self, nb, resources=None, km=None):
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._state = st = state(self.resources)
        self._scratch = None
        deadline = time.monotonic() + self.notebook_timeout
        self.timeout_func = lambda cell: max(1, int(min(self.timeout, deadline - time.monotonic())))
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
        broken: set[int] = set()
        restarts = 0
        try:
            self._prepare(nb, self.resources)
            self._start()
            for pos, index in enumerate(code):
                cell = nb.cells[index]
                name = cell_name(cell, index)
                if time.monotonic() >= deadline:
                    self._skip(nb, code[pos:], f"the notebook's time limit ({self.notebook_timeout} s) was used up")
                    st.incident(f"notebook time limit ({self.notebook_timeout} s) reached; later cells not run")
                    break
                limit = self.timeout_func(cell)
                why = f"this cell ran longer than {limit} s and was stopped (an infinite loop, or far too slow)."
                self.error_on_timeout = {"ename": "TimeLimit", "evalue": why,
                                         "traceback": [f"TimeLimit: cell stopped after {limit} s"]}
                self._timed_out = False
                try:
                    self.execute_cell(cell, index, execution_count=self.code_cells_executed + 1)
                    if self._timed_out:
                        st.event(name, "time-limit", f"TimeLimit: {why}")
                        st.incident(f"cell {name} stopped after {limit} s")
                    continue
                except (DeadKernelError, CellTimeoutError, RuntimeError) as err:
                    dead = isinstance(err, DeadKernelError) or not self._alive()
                    why = ("the kernel died while running this cell (os._exit, a crash, or the memory limit)"
                           if dead else f"the kernel stopped responding in this cell ({type(err).__name__})")
                    ename = "KernelDied" if dead else "KernelHung"
                    cell.outputs.append(_error(ename, why + "."))
                    st.event(name, "kernel-died" if dead else "kernel-hung", f"{ename}: {why}.")
                    st.incident(f"cell {name}: {why}")
                broken.add(index)
                self._stop()
                rest = code[pos + 1:]
                if not any(utils.is_grade(nb.cells[i]) for i in rest):
                    self._skip(nb, rest, "the kernel died in an earlier cell")
                    break
                restarts += 1
                if restarts > self.max_restarts or not self._replay(nb, code[:pos], broken, deadline):
                    self._skip(nb, rest, "the kernel could not be restarted after an earlier cell killed it")
                    st.incident("gave up restarting the kernel; later cells not run")
                    break
                st.incident("restarted the kernel and replayed the earlier cells")
        finally:
            self._stop()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
        self.set_widgets_metadata()
        return self.nb, self.resources

    def _replay(self, nb, before, broken, deadline) -> bool:
        """New kernel; silently re-run the earlier non-test cells that worked. False if that fails."""
        try:
            self._start()
            for i in before:
                cell = nb.cells[i]
                if i in broken or utils.is_grade(cell):
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or not self._silent(cell.source, timeout=min(self.timeout, left)):
                    return False
            return True
        except (DeadKernelError, RuntimeError):
            return False

    def _skip(self, nb, indices, why: str) -> None:
        for i in indices:
            nb.cells[i].outputs = [_error("NotRun", f"this cell was not run: {why}.")]
            self._state.event(cell_name(nb.cells[i], i), "not-run", f"NotRun: this cell was not run: {why}.")


class OutputCap(NbGraderPreprocessor):
    """Truncate what one cell printed to ``limit`` characters (a 10 MB print stays readable)."""

    limit = Integer(200_000, help="characters of stream output kept per cell (0: no limit)").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and self.limit > 0:
            left = self.limit
            for out in cell.outputs:
                if out.output_type == "stream":
                    if len(out.text) > left:
                        n = len(out.text)
                        out.text = out.text[:left] + f"\n... output truncated by the grader ({n:,} characters) ...\n"
                        state(resources).incident(f"output of cell {cell_name(cell, index)} truncated")
                    left = max(0, left - len(out.text))
        return cell, resources


class StderrNotFatal(NbGraderPreprocessor):
    """stderr in a test cell (a warning, a debug print) is shown as output but does not cost points."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and utils.is_grade(cell):
            for out in cell.outputs:
                if out.output_type == "stream" and out.name == "stderr":
                    out.name = "stdout"
                    state(resources).incident(f"stderr output in {cell_name(cell, index)} ignored for grading")
        return cell, resources
