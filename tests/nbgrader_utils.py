"""Drive the real nbgrader pipeline in a scratch course, for the labs' pipeline tests.

    course = make_course(tmp_path, "01_autoencoder")          # generate_assignment → gradebook
    submit(course, "01_autoencoder", "alice", source_notebook("01_autoencoder"))
    nbgrader(course, "autograde", "01_autoencoder", "--force")
    scores(course, "01_autoencoder")["alice"]                  # {grade_id: score} via the Gradebook API

Submissions are built from the source notebook with :func:`with_cell` (swap one cell's code).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat

from dgm.course import REPO, Course, generate_assignment, venv_env

ROOT = REPO
COURSE = Course.repo().root
VENV_BIN = Path(sys.executable).parent


def env(**extra) -> dict:
    """The environment nbgrader needs: the venv's bin/ first on PATH (it shells out to alembic)."""
    e = venv_env()
    e.setdefault("DGM_FAST", "1")
    e.update(extra)
    return e


def nbgrader(course: Path, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env(),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def make_course(tmp_path: Path, *labs: str) -> Path:
    """A scratch nbgrader course with ``labs`` generated (so the gradebook knows their test cells)."""
    course = Course.repo().scratch_copy(tmp_path / "course", labs)
    for lab in labs:
        try:
            generate_assignment(course, lab)
        except RuntimeError as err:
            raise AssertionError(str(err)) from None
    return course.root


def source_notebook(lab: str):
    return nbformat.read(COURSE / "source" / lab / f"{lab}.ipynb", as_version=4)


def release_notebook(course: Path, lab: str):
    return nbformat.read(course / "release" / lab / f"{lab}.ipynb", as_version=4)


def with_cell(nb, grade_id: str, source: str):
    """A copy of ``nb`` whose cell ``grade_id`` holds ``source`` (a student's version of that TODO)."""
    nb = nbformat.from_dict(nb)
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    assert cells, f"no cell with grade_id {grade_id!r}"
    cells[0].source = source
    return nb


def submit(course: Path, lab: str, student: str, nb) -> Path:
    dest = course / "submitted" / student / lab
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{lab}.ipynb"
    if isinstance(nb, (str, bytes)):
        path.write_text(nb) if isinstance(nb, str) else path.write_bytes(nb)
    else:
        nbformat.write(nb, path)
    return path


def scores(course: Path, lab: str) -> dict:
    """{student: {grade_id: score}} for every autograded submission, read through nbgrader's Gradebook."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(lab):
            out[sub.student_id] = {g.name: g.score for nb in sub.notebooks for g in nb.grades}
    return out


def max_scores(course: Path, lab: str) -> dict:
    """{grade_id: max points} of the autograded test cells."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assignment = gb.find_assignment(lab)
        return {c.name: c.max_score for nb in assignment.notebooks for c in nb.grade_cells
                if c.cell_type == "code"}


def graded_notebook(course: Path, lab: str, student: str):
    return nbformat.read(course / "autograded" / student / lab / f"{lab}.ipynb", as_version=4)


def cell_output(nb, grade_id: str) -> str:
    """All text a cell printed or raised (stdout, stderr, error name/value and traceback)."""
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            parts = []
            for o in c.get("outputs", []):
                if o.output_type == "stream":
                    parts.append(o.text)
                elif o.output_type == "error":
                    parts.append(f"{o.ename}: {o.evalue}")
            return "\n".join(parts)
    raise KeyError(grade_id)


def run_notebook(path: Path, cwd: Path, timeout: int = 600):
    """Execute a notebook top to bottom with nbclient in fast mode, in folder ``cwd``; return it with outputs."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("DGM_FAST", "1")
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def errors_and_stderr(nb) -> list[str]:
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            if o.output_type == "error":
                out.append(f"{o.ename}: {o.evalue} in cell:\n{c.source[:200]}")
    return out


# ----------------------------------------------------------------------------- the four pipeline cases
class Pipeline:
    """The pipeline cases every lab must pass, written once.

    ``mistakes`` maps solution grade_ids to a student's wrong version (all in one submission);
    ``named`` maps each test that must then fail to a phrase its output and feedback must contain;
    ``reference`` = (solution grade_id, a version that calls the dgm reference, the test(s) that must score 0:
    the part itself and any later part whose check runs that student function).
    In a lab's test module: ``globals().update(Pipeline(...).tests())``.
    """

    def __init__(self, lab: str, tests: tuple, mistakes: dict, named: dict, reference: tuple):
        self.lab, self.test_ids, self.mistakes, self.named, self.reference = lab, tests, mistakes, named, reference

    def tests(self) -> dict:
        import pytest

        lab, test_ids = self.lab, self.test_ids

        @pytest.fixture(scope="module")
        def graded(tmp_path_factory):
            course = make_course(tmp_path_factory.mktemp(lab), lab)
            solution = source_notebook(lab)
            wrong = solution
            for grade_id, source in self.mistakes.items():
                wrong = with_cell(wrong, grade_id, source)
            submit(course, lab, "solution", solution)
            submit(course, lab, "untouched", release_notebook(course, lab))
            submit(course, lab, "mistakes", wrong)
            submit(course, lab, "reference", with_cell(solution, self.reference[0], self.reference[1]))
            nbgrader(course, "autograde", lab, "--force")
            nbgrader(course, "generate_feedback", lab, "--force")
            return course, scores(course, lab), max_scores(course, lab)

        def test_lab_has_graded_cells_with_hidden_parts_and_a_written_question(graded):
            _, _, maxima = graded
            assert set(test_ids) <= set(maxima)
            nb = source_notebook(lab)
            manual = [c for c in nb.cells if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")]
            assert manual, f"{lab} needs a manually graded written question"
            hidden = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") in test_ids
                      and "### BEGIN HIDDEN TESTS" in c.source]
            assert len(hidden) == len(test_ids), "every autograded test cell has a hidden part"

        def test_solution_gets_full_marks(graded):
            _, got, maxima = graded
            assert {k: got["solution"][k] for k in test_ids} == {k: maxima[k] for k in test_ids}

        def test_untouched_release_gets_zero(graded):
            course, got, _ = graded
            assert all(got["untouched"][k] == 0 for k in test_ids)
            text = cell_output(graded_notebook(course, lab, "untouched"), test_ids[0])
            assert "not implemented yet" in text

        def test_typical_mistakes_get_partial_credit_and_are_named(graded):
            course, got, maxima = graded
            for k in test_ids:
                assert got["mistakes"][k] == (0 if k in self.named else maxima[k]), k
            nb = graded_notebook(course, lab, "mistakes")
            feedback = (course / "feedback" / "mistakes" / lab / f"{lab}.html").read_text()
            for k, phrase in self.named.items():
                assert phrase in cell_output(nb, k), f"{k} should name the mistake: {phrase!r}"
                assert phrase in feedback
            assert "hidden=True" not in feedback, "feedback must not show the hidden tests"

        def test_calling_the_reference_gets_no_credit_for_that_part(graded):
            course, got, maxima = graded
            failing = self.reference[2]
            failing = (failing,) if isinstance(failing, str) else tuple(failing)
            for k in test_ids:
                assert got["reference"][k] == (0 if k in failing else maxima[k]), k
            for k in failing:
                text = cell_output(graded_notebook(course, lab, "reference"), k).lower()
                assert "write your own implementation" in text, k

        def test_solution_notebook_runs_in_fast_mode(tmp_path):
            nb = run_notebook(ROOT / "solutions" / lab / f"{lab}.ipynb", cwd=tmp_path)
            assert errors_and_stderr(nb) == []

        return {name: fn for name, fn in locals().items() if name == "graded" or name.startswith("test_")}
