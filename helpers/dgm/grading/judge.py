r"""The grader side of grading: plan the cases, judge the evidence, sanitise what gets rendered.

* :func:`make_plan` — for each declared test cell of the lab (``dgm.checks.cells(lab)``), each check
  and each case of ``check.all_cases()``: the visible case gets ``public_seed(check, "visible")``,
  hidden cases ``HMAC-SHA256(secret, "student/lab/cell/check/case/submission_sha256") mod 2**31``.
  Re-grading the same submission gives the same seeds; another submission (or a leaked input) gets
  other ones. Computed by :class:`dgm.grading.execute.GradingExecute` before the kernel starts.
* :class:`Judge` — after execution, for every declared test cell: read the cell's evidence outputs
  with :func:`dgm.checks.evidence.parse` (JSON only; never eval or pickle), require exactly the planned
  records (no missing, duplicate, foreign or mis-seeded ones), call ``check.verdict`` in this process on
  inputs it regenerates from the seed, and **replace the cell's outputs by the verdict**: one
  ``✔ …`` line, or an error ``Mistake`` with the first failed verdict's message and
  ``[mistake: <id>]``. nbgrader's score, the feedback and the formgrader then agree with the judge.
  Undeclared test cells (a lab not converted yet) keep nbgrader's own scoring.
* :class:`SanitizeOutputs` — keeps only inert MIME types in code-cell outputs.
* :class:`GradingRecord` — writes the typed verdicts and incidents into the autograded notebook's
  metadata (``metadata.dgm_grading``) for the report and the CSV.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import asdict
from pathlib import Path

from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, List, Unicode

from ..checks import evidence
from ..checks._check import Verdict, public_seed
from .execute import cell_name, state

VISIBLE = "visible"
METADATA_KEY = "dgm_grading"


# ----------------------------------------------------------------------------- plan
def declared_cells(lab: str) -> dict | None:
    """``{grade_id: (Check, …)}`` of ``lab``, or None while its checks module declares no ``CELLS``."""
    from .. import checks

    try:
        cells = checks.cells(lab)
    except (KeyError, AttributeError, ImportError):
        return None
    return {str(k): tuple(v) for k, v in dict(cells).items()} or None


def submission_sha256(nb) -> str:
    """A hash of what the student handed in, as graded: every cell's type and source, in order."""
    content = json.dumps([[c.cell_type, c.source] for c in nb.cells], ensure_ascii=False)
    return hashlib.sha256(content.encode()).hexdigest()


def hidden_seed(secret: bytes, student: str, lab: str, cell: str, check: str, case: str, sha: str) -> int:
    msg = f"{student}/{lab}/{cell}/{check}/{case}/{sha}".encode()
    return int.from_bytes(hmac.new(secret, msg, hashlib.sha256).digest(), "big") % 2**31


def make_plan(declared: dict, secret: bytes, student: str, lab: str, sha: str) -> list:
    plan = []
    for cell, checks in declared.items():
        for check in checks:
            for case in check.all_cases():
                seed = (public_seed(check.name, case) if case == VISIBLE
                        else hidden_seed(secret, student, lab, cell, check.name, case, sha))
                plan.append(evidence.PlannedCase(cell, check.name, case, seed))
    return plan


# ----------------------------------------------------------------------------- judging one cell
def _payloads(outputs) -> list:
    """The evidence payloads of a cell's outputs, as JSON text (oversized/unserialisable → None)."""
    found = []
    for out in outputs:
        data = out.get("data") if out.get("output_type") in ("display_data", "execute_result") else None
        if not isinstance(data, dict) or evidence.MIME not in data:
            continue
        payload = data[evidence.MIME]
        if not isinstance(payload, str):
            try:
                payload = json.dumps(payload, allow_nan=True)
            except (ValueError, TypeError, RecursionError):
                payload = None
        found.append(payload)
    return found


def judge_cell(cell: str, checks: tuple, plan: list, outputs, event=None) -> list[Verdict]:
    """The verdicts of one declared test cell: one per planned case, plus one per anomaly.

    The cell passes when every verdict passed. ``event``: the grader's own reason the cell produced
    nothing (time limit, dead kernel, not run), used as the message of missing evidence.
    """
    planned = {(p.cell, p.check, p.case): p.seed for p in plan if p.cell == cell}
    records: dict[tuple, list] = {}
    anomalies: list[Verdict] = []
    for payload in _payloads(outputs):
        try:
            if payload is None:
                raise evidence.EvidenceError("unserialisable evidence")
            rec = evidence.parse(payload)
        except evidence.EvidenceError as err:
            anomalies.append(Verdict("", "", False, "malformed-evidence",
                                     f"{cell}: the check's result was malformed and was refused ({err})."))
            continue
        if rec.key not in planned:
            anomalies.append(Verdict(rec.check, rec.case, False, "foreign-evidence",
                                     f"{cell}: a result for another test ({rec.cell} / {rec.check} / {rec.case}) "
                                     "was found in this cell and refused."))
            continue
        records.setdefault(rec.key, []).append(rec)
    verdicts = []
    by_name = {c.name: c for c in checks}
    for (c, name, case), seed in planned.items():
        check, recs = by_name[name], records.get((c, name, case), [])
        if len(recs) > 1:
            verdicts.append(Verdict(name, case, False, "duplicate-evidence",
                                    f"`{check.student}`: the check reported {len(recs)} results for one case."))
        elif recs and recs[0].seed != seed:
            verdicts.append(Verdict(name, case, False, "wrong-seed",
                                    f"`{check.student}`: the result was computed on other inputs than the "
                                    "grader's and was refused."))
        elif not recs and event is not None:
            verdicts.append(Verdict(name, case, False, event.kind, event.message))
        else:
            try:
                verdicts.append(check.verdict(case, seed, recs[0] if recs else None))
            except Exception as err:  # noqa: BLE001 - a judge that raises is a zero, never a crash
                verdicts.append(Verdict(name, case, False, "judge-error",
                                        f"`{check.student}`: the result could not be judged ({type(err).__name__})."))
    return verdicts + anomalies


def verdict_outputs(checks: tuple, verdicts: list[Verdict]) -> list:
    """The outputs a judged test cell shows: one ✔ line, or the first failed verdict as an error."""
    failed = [v for v in verdicts if not v.passed]
    if not failed:
        text = " ".join(f"{c.student}: {c.passed}" for c in checks)
        return [new_output("stream", name="stdout", text=f"\u2714 {text}\n")]
    first = failed[0]
    return [new_output("error", ename="Mistake", evalue=first.message,
                       traceback=[f"\x1b[0;31mMistake\x1b[0m: {first.message}", f"[mistake: {first.mistake}]"])]


class Judge(NbGraderPreprocessor):
    """Decide every declared test cell from its evidence, in the grader's process (see module doc)."""

    def preprocess(self, nb, resources):
        st = state(resources)
        if st.declared is None or st.plan is None:
            return nb, resources  # lab not converted yet: nbgrader scores the cells' own outputs
        t0 = time.perf_counter()
        present = {}
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and utils.is_grade(cell):
                present[cell_name(cell, i)] = cell  # the last copy of a duplicated id
        for gid, checks in st.declared.items():
            cell = present.get(gid)
            if cell is None:
                continue
            verdicts = judge_cell(gid, checks, st.plan, cell.outputs, st.event_of(gid))
            st.verdicts[gid] = verdicts
            cell.outputs = verdict_outputs(checks, verdicts)
        st.judge_seconds = time.perf_counter() - t0
        return nb, resources


# ----------------------------------------------------------------------------- sanitising outputs
#: MIME types kept in code-cell outputs; everything else (HTML, JavaScript, Markdown, SVG, LaTeX,
#: widget views, evidence, custom renderers) is removed before anything renders the notebook.
SAFE_MIME = ("text/plain", "image/png", "image/jpeg", "image/gif")


class SanitizeOutputs(NbGraderPreprocessor):
    r"""Keep only inert MIME types in the outputs of every code cell.

    Every code cell's output is produced by the kernel, which runs student code (a student can make
    an instructor's plotting cell emit HTML through a display hook), so all code cells are cleaned,
    not only the student's: ``text/html``, ``application/javascript``, ``text/markdown`` (rendered to
    HTML, raw HTML included), ``image/svg+xml`` (may carry script), ``text/latex``, widget views and
    anything unknown go; ``text/plain`` and raster images stay. An output left with nothing says so
    in text/plain. Streams and errors are plain text, escaped by every template.
    """

    keep = List(Unicode(), list(SAFE_MIME), help="MIME types kept in code-cell outputs").tag(config=True)
    enabled = Bool(True, help="strip active MIME types from code-cell outputs").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if not self.enabled or cell.cell_type != "code":
            return cell, resources
        removed = set()
        for out in cell.outputs:
            data = out.get("data")
            if out.get("output_type") not in ("display_data", "execute_result") or not isinstance(data, dict):
                continue
            drop = [k for k in data if k not in self.keep]
            for k in drop:
                del data[k]
                removed.add(k)
            out.get("metadata", {}).clear()
            if not data:
                data["text/plain"] = "[output removed by the grader: " + ", ".join(sorted(drop))[:200] + "]"
        shown = removed - {evidence.MIME, "application/vnd.jupyter.widget-view+json"}  # routine in a lab
        if shown:
            state(resources).incident(f"removed {', '.join(sorted(shown))[:200]} output from cell "
                                      f"{cell_name(cell, index)}")
        return cell, resources


# ----------------------------------------------------------------------------- the record in the notebook
def _integrity(nb, release) -> dict | None:
    try:
        from . import integrity
    except ImportError:
        return None
    try:
        res = integrity.scan(nb, release=release)
        flags = [f"{getattr(f, 'cls', f)} {getattr(f, 'cell', '')}:{getattr(f, 'line', '')}" for f in res.flags]
        return {"flags": flags, "summary": str(res.summary())}
    except Exception as err:  # noqa: BLE001 - a scanner bug must not cost a grade; say so
        return {"flags": ["scan-failed"], "summary": f"integrity scan failed: {type(err).__name__}"}


def _release(config, resources):
    """The student version of this notebook (``<course>/release/<lab>/<nb>.ipynb``), if present."""
    import nbformat

    info = resources.get("nbgrader", {})
    root = config.get("CourseDirectory", {}).get("root") or "."
    path = Path(root) / "release" / info.get("assignment", "") / f"{info.get('notebook', '')}.ipynb"
    try:
        return nbformat.read(path, as_version=4) if path.is_file() else None
    except Exception:  # noqa: BLE001 - an unreadable release only makes the scan less precise
        return None


class GradingRecord(NbGraderPreprocessor):
    """Write the verdicts, incidents, sandbox and integrity result into ``nb.metadata.dgm_grading``.

    Runs after ``ClearMetadataPreprocessor`` (which would drop it). Only the grader writes this key:
    a kernel cannot set notebook metadata.
    """

    def preprocess(self, nb, resources):
        st = state(resources)
        st.integrity = _integrity(nb, _release(self.config, resources))
        nb.metadata[METADATA_KEY] = {
            "lab": st.lab, "student": st.student, "judged": st.declared is not None,
            "verdicts": {gid: [asdict(v) for v in vs] for gid, vs in st.verdicts.items()},
            "incidents": list(st.incidents), "sandboxed": st.sandboxed, "sandbox_reason": st.sandbox_reason,
            "integrity": st.integrity,
            "events": [asdict(e) for e in st.events], "judge_seconds": round(st.judge_seconds, 4),
        }
        return nb, resources


def read_record(nb) -> dict:
    """The grader's record of an autograded notebook (see :class:`GradingRecord`); {} when absent."""
    rec = nb.metadata.get(METADATA_KEY)
    return dict(rec) if isinstance(rec, dict) else {}
