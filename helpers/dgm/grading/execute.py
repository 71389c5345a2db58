r"""nbgrader preprocessors that keep grading going when a submission misbehaves.

:class:`GuardedExecute` replaces nbgrader's ``Execute``:

* a wall-clock budget per notebook on top of nbgrader's per-cell timeout (an infinite loop costs
  at most one cell timeout per cell that runs it; when the budget is spent the remaining cells are
  marked "not run");
* when the kernel dies (``os._exit``, a crash, the memory limit) or stops answering, the cell gets a
  readable error, a fresh kernel is started and the earlier non-test cells are replayed, so later
  test cells are still graded — zero only for what is really broken;
* before every test cell the in-kernel guard (:mod:`dgm.grading.guard`) undoes monkeypatching.

:class:`StderrNotFatal` relabels stderr in test cells as stdout: only an exception fails a check.
Incidents (what happened, per student) are collected in :data:`INCIDENTS` for the report.
"""
from __future__ import annotations

import time
from queue import Empty

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer, Unicode

INCIDENTS: list[str] = []


def _error(ename: str, evalue: str):
    return new_output("error", ename=ename, evalue=evalue, traceback=[f"\x1b[0;31m{ename}\x1b[0m: {evalue}"])


class GuardedExecute(Execute):
    notebook_timeout = Integer(1800, help="Wall-clock seconds for the whole notebook.").tag(config=True)
    guard_key = Unicode("", help="builtins name of the in-kernel restore function.").tag(config=True)
    guard_checks = Unicode("", help="dgm.checks submodule of the lab (e.g. 'ae').").tag(config=True)
    guard_alias = Unicode("", help="name the notebook binds the checks module to.").tag(config=True)
    max_restarts = Integer(3, help="kernel restarts per notebook before giving up.").tag(config=True)

    # ------------------------------------------------------------------ kernel management
    def _start(self) -> None:
        self.km = self.create_kernel_manager()
        self.start_new_kernel()
        self.start_new_kernel_client()
        info = self.wait_for_reply(self.kc.kernel_info())
        if info is not None and "language_info" in info["content"]:
            self.nb.metadata["language_info"] = info["content"]["language_info"]
        if self.guard_key:
            code = (f"import dgm.grading.guard as _g; _g.install({self.guard_key!r}, {self.guard_checks!r}, "
                    f"{self.guard_alias!r}); del _g")
            self._silent(code, timeout=120)

    def _stop(self) -> None:
        if self.km is not None:
            self.shutdown_kernel = "immediate"
            try:
                self._cleanup_kernel()
            except Exception:  # noqa: BLE001 - a dead kernel may fail to clean up; we move on
                self.km = self.kc = None

    async def _async_silent(self, code: str, timeout: float, expr: str = ""):
        """Run ``code`` without touching the notebook; return the reply (None on timeout)."""
        msg_id = self.kc.execute(code, silent=True, store_history=False,
                                 user_expressions={"r": expr} if expr else None)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=min(1.0, left)))
            except Empty:
                if not await ensure_async(self.kc.is_alive()):
                    raise DeadKernelError("Kernel died") from None
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg
        return None

    _silent = run_sync(_async_silent)

    async def _async_alive(self) -> bool:
        return self.kc is not None and bool(await ensure_async(self.kc.is_alive()))

    _alive = run_sync(_async_alive)

    def _restore_guard(self) -> None:
        if not self.guard_key:
            return
        reply = self._silent("", timeout=30, expr=f"{self.guard_key}()")
        try:
            fixed = eval(reply["content"]["user_expressions"]["r"]["data"]["text/plain"])  # a list literal
        except Exception:  # noqa: BLE001
            fixed = ["the grader's guard itself"] if reply is not None else []
        if fixed:
            INCIDENTS.append("undid monkeypatching before a test cell: " + ", ".join(sorted(set(fixed))[:6]))

    # ------------------------------------------------------------------ the notebook loop
    def preprocess(self, nb, resources=None, km=None):
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        deadline = time.monotonic() + self.notebook_timeout
        self.timeout_func = lambda cell: max(1, int(min(self.timeout, deadline - time.monotonic())))
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
        broken: set[int] = set()
        restarts = 0
        self._start()
        try:
            for pos, index in enumerate(code):
                cell = nb.cells[index]
                if time.monotonic() >= deadline:
                    self._skip(nb, code[pos:], f"the notebook's time limit ({self.notebook_timeout} s) was used up")
                    INCIDENTS.append(f"notebook time limit ({self.notebook_timeout} s) reached; later cells not run")
                    break
                limit = self.timeout_func(cell)
                self.error_on_timeout = {"ename": "TimeLimit", "evalue": (
                    f"this cell ran longer than {limit} s and was stopped (an infinite loop, or far too slow)."),
                    "traceback": [f"TimeLimit: cell stopped after {limit} s"]}
                try:
                    if utils.is_grade(cell):
                        self._restore_guard()
                    self.execute_cell(cell, index, execution_count=self.code_cells_executed + 1)
                    if any(o.get("ename") == "TimeLimit" for o in cell.outputs):
                        INCIDENTS.append(f"cell {self._name(cell, index)} stopped after {limit} s")
                    continue
                except (DeadKernelError, CellTimeoutError, RuntimeError) as err:
                    dead = isinstance(err, DeadKernelError) or not self._alive()
                    why = ("the kernel died while running this cell (os._exit, a crash, or the memory limit)"
                           if dead else f"the kernel stopped responding in this cell ({type(err).__name__})")
                    cell.outputs.append(_error("KernelDied" if dead else "KernelHung", why + "."))
                    INCIDENTS.append(f"cell {self._name(cell, index)}: {why}")
                broken.add(index)
                self._stop()
                rest = code[pos + 1:]
                if not any(utils.is_grade(nb.cells[i]) for i in rest):
                    self._skip(nb, rest, "the kernel died in an earlier cell")
                    break
                restarts += 1
                if restarts > self.max_restarts or not self._replay(nb, code[:pos], broken, deadline):
                    self._skip(nb, rest, "the kernel could not be restarted after an earlier cell killed it")
                    INCIDENTS.append("gave up restarting the kernel; later cells not run")
                    break
                INCIDENTS.append("restarted the kernel and replayed the earlier cells")
        finally:
            self._stop()
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
                if left <= 0 or self._silent(cell.source, timeout=min(self.timeout, left)) is None:
                    return False
            return True
        except (DeadKernelError, RuntimeError):
            return False

    @staticmethod
    def _name(cell, index) -> str:
        return cell.metadata.get("nbgrader", {}).get("grade_id") or f"#{index}"

    @staticmethod
    def _skip(nb, indices, why: str) -> None:
        for i in indices:
            nb.cells[i].outputs = [_error("NotRun", f"this cell was not run: {why}.")]


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
                        INCIDENTS.append(f"output of cell {GuardedExecute._name(cell, index)} truncated")
                    left = max(0, left - len(out.text))
        return cell, resources


class StderrNotFatal(NbGraderPreprocessor):
    """stderr in a test cell (a warning, a debug print) is shown as output but does not cost points."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and utils.is_grade(cell):
            for out in cell.outputs:
                if out.output_type == "stream" and out.name == "stderr":
                    out.name = "stdout"
                    INCIDENTS.append(f"stderr output in {cell.metadata.nbgrader['grade_id']} ignored for grading")
        return cell, resources
