r"""The typed result of grading one submission (what workers send, the gradebook imports, the report prints)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..checks._check import Verdict

GRADED, NOT_GRADED = "graded", "not graded"


@dataclass(frozen=True)
class CellGrade:
    """One graded cell of one notebook, as nbgrader scored it."""
    notebook: str
    name: str
    auto_score: float | None
    needs_manual: bool


@dataclass(frozen=True)
class CellComment:
    notebook: str
    name: str
    auto_comment: str | None


@dataclass
class GradeResult:
    r"""One student's result for one lab.

    ``status`` is :data:`GRADED` or :data:`NOT_GRADED` (then ``reason`` says why and every cell is 0).
    ``verdicts``: the judge's decisions per judged test cell; ``reasons``: per lost test cell, the
    first line of what went wrong (the failed verdict's message, or the cell's error).
    """
    student: str
    lab: str
    status: str = GRADED
    reason: str = ""
    grades: list[CellGrade] = field(default_factory=list)
    comments: list[CellComment] = field(default_factory=list)
    verdicts: dict[str, list[Verdict]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    incidents: list[str] = field(default_factory=list)
    seconds: float = 0.0
    integrity: dict | None = None          # {"flags": [...], "summary": "..."} (never changes a score)
    sandboxed: bool | None = None          # None: no kernel ran
    sandbox_reason: str = ""
    autograded: str | None = None          # path of the autograded notebook (in the worker's scratch course)
    feedback: str | None = None            # path of the feedback HTML
    worker_failed: bool = False            # the worker process died or was killed: replace it
    files: dict = field(default_factory=dict)  # {"autograded"|"feedback": bytes} (remote workers send the files)
    notes: list[str] = field(default_factory=list)  # what collect noticed (several files, Colab, ...)
    lms_id: str = ""                       # the LMS's own user id when the export's file name carried it
    skipped: bool = False                  # not regraded in this run (unchanged since the last one)

    @property
    def scores(self) -> dict[str, float | None]:
        """{grade_id: auto score} of every graded cell."""
        return {g.name: g.auto_score for g in self.grades}

    def mistakes(self) -> dict[str, list[str]]:
        """{test cell: [mistake ids of its failed verdicts]} (judged cells only)."""
        return {cell: list(dict.fromkeys(v.mistake for v in vs if not v.passed and v.mistake))
                for cell, vs in self.verdicts.items() if any(not v.passed for v in vs)}

    def to_json(self) -> str:
        """The result without its files, as JSON (stored beside the grades for resumed runs)."""
        d = asdict(self)
        d.pop("files")
        d["verdicts"] = {c: [asdict(v) for v in vs] for c, vs in self.verdicts.items()}
        d["skipped"] = False
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "GradeResult":
        d = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        d = {k: v for k, v in d.items() if k in known}
        d["grades"] = [CellGrade(**g) for g in d.get("grades") or []]
        d["comments"] = [CellComment(**c) for c in d.get("comments") or []]
        d["verdicts"] = {c: [Verdict(**v) for v in vs] for c, vs in (d.get("verdicts") or {}).items()}
        return cls(**d)

    @classmethod
    def failed(cls, student: str, lab: str, reason: str, seconds: float = 0.0,
               worker_failed: bool = False) -> "GradeResult":
        return cls(student, lab, NOT_GRADED, reason, seconds=seconds, worker_failed=worker_failed)
