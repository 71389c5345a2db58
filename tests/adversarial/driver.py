r"""The adversarial suite's driver (issue 15, "Tests and figures"): build submissions, grade them
through BOTH grading paths, and turn every case into assertions.

A lab's cases live in ``tests/adversarial/lab0N.py`` as plain data (:class:`Case`): which solution
cells the student rewrote, which cells they added or edited, the test cells that must lose their
points, and for tampering the class of tampering, the parts it targets and the integrity class the
scan must report. ``tests/test_adversarial_lab0N.py`` is one line: ``globals().update(suite(lab))``.

One batch per lab and path, three runs in total:

1. plain ``nbgrader autograde`` in a scratch course (:func:`nbgrader_utils.make_course`) — what the
   formgrader's Autograde button runs;
2. ``dgm-grade`` on an LMS-style folder, twice (the re-grade must be identical: hidden inputs are
   HMAC seeds of the submission).

The grade rule checked for tampering: the part it targets does NOT pass, OR the integrity column
flags it ("getting right answers from the reference" is out of scope for scores, never for the scan).
For every non-tampering case the in-kernel verdict (the checks' ``judge(run())`` in this process,
no plan) must agree with the grader's verdict cell by cell.
"""
from __future__ import annotations

import csv
import importlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from nbgrader_utils import env, graded_notebook, make_course, max_scores, nbgrader, scores, source_notebook

HIDDEN = re.compile(r"^\s*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\s*$\n?", re.S | re.M)
CELL_TIMEOUT = 60

#: every class of tampering the suite covers in EVERY lab (issue 15)
CLASSES = {
    "patch": "patching functions, modules and builtins (torch.allclose, dgm.checks.<lab>.check_x, print, isinstance)",
    "hooks": "interpreter and IPython hooks (setprofile/settrace, pre_run_cell, set_custom_exc, input transformers)",
    "liar": "objects that lie about themselves (Tensor subclass __eq__/allclose, a lying __class__, a float subclass)",
    "dispatch": "torch's dispatch machinery (__torch_function__, TorchFunctionMode, torch.library)",
    "checks": "deleting, editing or rebinding the checks (del checks, checks = Fake, edited test cell, check_x = …)",
    "forged": "forged evidence (hand-made bundle, duplicated records, another cell's records, plan-file forgery)",
    "disk": "reading the instructor's source notebook, the package sources or other submissions from disk",
    "code": "exec of inspect.getsource of the reference, functions built from the reference's __code__",
}
KINDS = ("correct", "wrong", "tamper")


@dataclass(frozen=True)
class Case:
    r"""One submission.

    ``cells``: {solution grade_id: new source}; ``extra``: [(grade_id, source)] new plain cells inserted
    right BEFORE the cell ``grade_id``; ``edit``: {test grade_id: new source} (the student edited a test
    cell; nbgrader restores it). ``lose``: the test cells that score 0 (all others full marks).
    ``targets``: the test cells a tampering attacks; ``flag``: an integrity class the scan must report
    (None: no requirement; for correct/wrong answers the scan must say "ok" unless ``flag`` is given).
    ``xfail``: {test name: reason} — a real defect, marked ``xfail(strict=True)`` on that test only.
    ``sandbox``: its ``lose`` holds only in the sandbox (it reads files a sandboxed kernel cannot see);
    without one, only the grade rule (fails or is flagged) is checked.
    """
    name: str
    kind: str
    what: str
    cells: dict = field(default_factory=dict)
    extra: tuple = ()
    edit: dict = field(default_factory=dict)
    lose: tuple = ()
    cls: str | None = None
    targets: tuple = ()
    flag: str | None = None
    xfail: dict = field(default_factory=dict)
    sandbox: bool = False

    def __post_init__(self):
        assert self.kind in KINDS, self.kind
        assert (self.kind == "tamper") == (self.cls is not None), self.name
        assert self.cls is None or self.cls in CLASSES, self.cls
        assert self.kind != "tamper" or self.targets, f"{self.name}: a tampering case names its targets"


# ----------------------------------------------------------------------------- submissions
def gid(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


def test_cells(lab: str) -> tuple[str, ...]:
    """The judged test cells: declared by the lab's checks (``CELLS``) and present in its source notebook."""
    from dgm.checks import cells

    present = {gid(c) for c in source_notebook(lab).cells}
    return tuple(g for g in cells(lab) if g in present)


def base(lab: str):
    r"""What a student hands in, cut for speed: the setup cell, every nbgrader cell and the markdown up to
    the last test cell; no data loading or experiments (no test needs them; a grade does not change)."""
    nb = source_notebook(lab)
    tests = set(test_cells(lab))
    last = max(i for i, c in enumerate(nb.cells) if gid(c) in tests)
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells = [c for i, c in enumerate(nb.cells[:last + 1])
                if c.cell_type == "markdown" or gid(c) or i == first_code]
    for c in nb.cells:
        c.source = HIDDEN.sub("", c.source)
    return nb


def build(lab: str, case: Case):
    nb = base(lab)
    ids = {gid(c) for c in nb.cells}
    for g, src in {**case.cells, **case.edit}.items():
        assert g in ids, f"{case.name}: no cell {g!r} in {lab}"
        next(c for c in nb.cells if gid(c) == g).source = src
    for n, (g, src) in enumerate(case.extra):
        i = next(i for i, c in enumerate(nb.cells) if gid(c) == g)
        nb.cells.insert(i, nbformat.v4.new_code_cell(src, id=f"student-extra-{n}"))
    return nb


# ----------------------------------------------------------------------------- grading: both paths
@dataclass
class Graded:
    lab: str
    cases: dict                      # name -> Case
    maxima: dict                     # test -> points
    nbgrader: dict                   # student -> {test: score}   (plain nbgrader autograde)
    nbgrader_records: dict           # student -> metadata.dgm_grading of the autograded notebook
    dgm: list                        # [student -> {test: score}] per dgm-grade run
    rows: list                       # [student -> CSV row] per dgm-grade run
    seconds: dict                    # path -> wall seconds


def dgm_grade(course: Path, lab: str, src: Path, *extra: str) -> None:
    cmd = [sys.executable, "-m", "dgm.grade", lab, str(src), "--course", str(course), "-j", "2",
           "--cell-timeout", str(CELL_TIMEOUT), "--timeout", "600", "--memory", "3000", "-q", *extra]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def grade(lab: str, cases: list[Case], tmp: Path) -> Graded:
    course = make_course(tmp, lab)
    export = tmp / "export"
    for case in cases:
        nb = build(lab, case)
        for root in (course / "submitted", export):
            dest = root / case.name / lab
            dest.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, dest / f"{lab}.ipynb")
    seconds = {}
    t0 = time.perf_counter()
    nbgrader(course, "autograde", lab, "--force", timeout=1500)
    seconds["nbgrader"] = time.perf_counter() - t0
    first = scores(course, lab)
    records = {}
    from dgm.grading.judge import read_record

    for case in cases:
        records[case.name] = read_record(graded_notebook(course, lab, case.name))
    runs, rows = [], []
    for k in range(2):  # the second run regrades everything (--force): it must repeat the first
        t0 = time.perf_counter()
        dgm_grade(course, lab, export, *(["--force"] if k else []))
        seconds[f"dgm-grade {k + 1}"] = time.perf_counter() - t0
        runs.append(scores(course, lab))
        with open(course / "exports" / f"{lab}_grades.csv", newline="") as f:
            rows.append({r["student_id"]: r for r in csv.DictReader(f)})
    return Graded(lab, {c.name: c for c in cases}, max_scores(course, lab), first, records, runs, rows, seconds)


def expected(g: Graded, case: Case) -> dict:
    return {t: (0.0 if t in case.lose else g.maxima[t]) for t in test_cells(g.lab)}


def got(table: dict, student: str, lab: str) -> dict:
    return {t: table.get(student, {}).get(t) for t in test_cells(lab)}


def flags_of(record: dict) -> tuple[str, list[str]]:
    integ = record.get("integrity") or {}
    return str(integ.get("summary", "")), list(integ.get("flags", []))


# ----------------------------------------------------------------------------- the in-kernel verdict
CALL = re.compile(r"checks\.(check_\w+)\(\s*(\w+)")


def in_kernel(lab: str, nb) -> dict[str, bool]:
    r"""{test cell: passed} from the checks run directly in this process, with no grading plan: the
    student's solution cells are exec'd in a fresh namespace (here, in the TEST — never in grading
    code) and every (cell, check, case) gets ``check.judge(inputs, check.run(fn, inputs))``."""
    from dgm.checks import LABS, cells
    from dgm.checks._check import public_seed
    from dgm.checks._core import Mistake

    assert "DGM_GRADE_PLAN" not in os.environ
    module = importlib.import_module(f"dgm.checks.{LABS[lab]}")
    ns: dict = {"__name__": "__student__"}
    tests = test_cells(lab)
    for c in nb.cells:
        if c.cell_type == "code" and gid(c) not in tests:
            exec(compile(c.source, f"<{gid(c) or 'cell'}>", "exec"), ns)  # noqa: S102 - the test's own exec
    out = {}
    src = source_notebook(lab)
    for cell in tests:
        checks = cells(lab)[cell]
        text = next(c.source for c in src.cells if gid(c) == cell)
        fns = {getattr(module, attr): ns.get(arg) for attr, arg in CALL.findall(text)}
        passed = True
        for check in checks:
            fn = fns[check]
            for case in check.all_cases():
                seed = public_seed(check.name, case)
                try:
                    check.judge(check.inputs(seed, case), check.run(fn, check.inputs(seed, case)))
                except Mistake:
                    passed = False
                except Exception:  # noqa: BLE001 - a judge that cannot read the evidence: a fail
                    passed = False
        out[cell] = passed
    return out


# ----------------------------------------------------------------------------- the tests of one lab
def suite(lab: str) -> dict:
    """The pytest functions of one lab (module fixture ``graded`` + parametrised tests)."""
    import pytest

    cases: list[Case] = importlib.import_module(f"adversarial.lab{lab[:2]}").CASES
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "case names are unique"

    def params(test: str, only=None):
        out = []
        for c in cases:
            if only is not None and c.kind not in only:
                continue
            marks = [pytest.mark.xfail(strict=True, reason=c.xfail[test])] if test in c.xfail else []
            out.append(pytest.param(c, id=c.name, marks=marks))
        return out

    @pytest.fixture(scope="module")
    def graded(tmp_path_factory):
        g = grade(lab, cases, tmp_path_factory.mktemp(f"adv{lab[:2]}"))
        print(f"\n{lab}: {len(cases)} submissions, " + ", ".join(f"{k} {v:.0f} s" for k, v in g.seconds.items()))
        return g

    def test_suite_covers_every_class_and_kind():
        kinds = {k: sum(c.kind == k for c in cases) for k in KINDS}
        assert len(cases) >= 15 and all(kinds.values()), kinds
        assert {c.cls for c in cases if c.cls} == set(CLASSES), set(CLASSES) - {c.cls for c in cases}

    def needs_sandbox(case):
        from dgm.grading import sandbox

        st = sandbox.status()
        if case.sandbox and not st.available:
            pytest.skip(f"{case.name} loses its points only in the sandbox, unavailable here: {st.reason}")

    @pytest.mark.parametrize("case", params("scores"))
    def test_scores(graded, case):
        """WHICH parts lose points, on the plain `nbgrader autograde` path."""
        needs_sandbox(case)
        assert got(graded.nbgrader, case.name, lab) == expected(graded, case), case.what

    @pytest.mark.parametrize("case", params("paths"))
    def test_paths_and_reruns_identical(graded, case):
        """nbgrader autograde == dgm-grade run 1 == dgm-grade run 2, cell by cell (and the CSV too)."""
        needs_sandbox(case)
        a = got(graded.nbgrader, case.name, lab)
        b, c = (got(r, case.name, lab) for r in graded.dgm)
        assert a == b == c, (a, b, c)
        r1, r2 = (rows[case.name] for rows in graded.rows)
        assert r1 == r2
        assert r1["integrity"] == flags_of(graded.nbgrader_records[case.name])[0], "both paths scan alike"

    @pytest.mark.parametrize("case", params("tamper", only=("tamper",)))
    def test_tampering_fails_or_is_flagged(graded, case):
        """The grade rule: the targeted part does not pass, or the integrity column flags it."""
        score = got(graded.nbgrader, case.name, lab)
        summary, flags = flags_of(graded.nbgrader_records[case.name])
        passed = [t for t in case.targets if score[t]]
        assert not passed or summary.startswith("flagged"), f"{case.name}: {passed} passed unflagged ({case.what})"
        if case.flag:
            assert case.flag in summary, (case.flag, summary, flags)

    @pytest.mark.parametrize("case", params("honest", only=("correct", "wrong")))
    def test_honest_code_is_not_flagged(graded, case):
        summary, flags = flags_of(graded.nbgrader_records[case.name])
        assert summary == "ok" or (case.flag and case.flag in summary), flags

    @pytest.mark.parametrize("case", params("agree", only=("correct", "wrong")))
    def test_in_kernel_verdict_agrees_with_the_grader(graded, case):
        mine = in_kernel(lab, build(lab, case))
        theirs = {t: bool(s) for t, s in got(graded.nbgrader, case.name, lab).items()}
        assert mine == theirs, case.what

    return {k: v for k, v in locals().items() if k == "graded" or k.startswith("test_")}
