"""Lab 4 end to end: release → submissions → nbgrader autograde → scores via the Gradebook API."""
from __future__ import annotations

import pytest

from nbgrader_utils import (ROOT, cell_output, errors_and_stderr, graded_notebook, make_course, max_scores,
                            nbgrader, release_notebook, run_notebook, scores, source_notebook, submit, with_cell)

LAB = "04_ddpm"
TESTS = ("test_schedule", "test_q_sample", "test_ddpm_loss", "test_p_sample", "test_sample_loop")

SLIDE_TYPO = '''
@torch.no_grad()
def p_sample(model, xt, t, sched, z=None):
    if z is None:
        z = torch.randn_like(xt)
    eps_theta = model(xt, torch.full((xt.shape[0],), t))
    alpha, beta = sched.alpha[t], sched.beta[t]
    mean = (xt - (1 - alpha) / (1 - alpha).sqrt() * eps_theta) / alpha.sqrt()   # √(1 − α_t) as on the slide
    return mean + beta.sqrt() * z if t > 1 else mean
'''
REFERENCE_Q_SAMPLE = '''
from dgm.ddpm import q_sample as my_q_sample   # imported under another name

def q_sample(x0, t, eps, sched):
    return my_q_sample(x0, t, eps, sched)
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("lab04"), LAB)
    solution = source_notebook(LAB)
    submit(course, LAB, "solution", solution)
    submit(course, LAB, "untouched", release_notebook(course, LAB))
    submit(course, LAB, "slide_typo", with_cell(solution, "p_sample", SLIDE_TYPO))
    submit(course, LAB, "reference", with_cell(solution, "q_sample", REFERENCE_Q_SAMPLE))
    nbgrader(course, "autograde", LAB, "--force")
    nbgrader(course, "generate_feedback", LAB, "--force")
    return course, scores(course, LAB), max_scores(course, LAB)


def test_lab_has_enough_graded_cells(graded):
    _, _, maxima = graded
    assert set(TESTS) <= set(maxima) and len(TESTS) >= 5
    nb = source_notebook(LAB)
    manual = [c for c in nb.cells if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")]
    assert manual, "lab 4 needs a manually graded written question"
    hidden = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") in TESTS
              and "### BEGIN HIDDEN TESTS" in c.source]
    assert len(hidden) == len(TESTS), "every autograded test cell has a hidden part"


def test_solution_gets_full_marks(graded):
    _, got, maxima = graded
    assert {k: got["solution"][k] for k in TESTS} == {k: maxima[k] for k in TESTS}


def test_untouched_release_gets_zero(graded):
    course, got, _ = graded
    assert all(got["untouched"][k] == 0 for k in TESTS)
    assert "not implemented yet" in cell_output(graded_notebook(course, LAB, "untouched"), "test_p_sample")


def test_typical_mistake_gets_partial_credit_and_named(graded):
    course, got, maxima = graded
    assert got["slide_typo"]["test_p_sample"] == 0
    for k in set(TESTS) - {"test_p_sample", "test_sample_loop"}:
        assert got["slide_typo"][k] == maxima[k]
    text = cell_output(graded_notebook(course, LAB, "slide_typo"), "test_p_sample")
    assert "typo on the slide" in text
    feedback = (course / "feedback" / "slide_typo" / LAB / f"{LAB}.html").read_text()
    assert "typo on the slide" in feedback
    assert "hidden=True" not in feedback, "feedback must not show the hidden tests"


def test_calling_the_reference_gets_no_credit_for_that_part(graded):
    course, got, maxima = graded
    assert got["reference"]["test_q_sample"] == 0
    assert got["reference"]["test_p_sample"] == maxima["test_p_sample"]
    assert "write your own implementation" in cell_output(
        graded_notebook(course, LAB, "reference"), "test_q_sample").lower()


def test_solution_notebook_runs_in_fast_mode(tmp_path):
    path = ROOT / "solutions" / LAB / f"{LAB}.ipynb"
    if not path.exists():  # before the first `make release`: the source notebook holds the same code
        path = ROOT / "course" / "source" / LAB / f"{LAB}.ipynb"
    nb = run_notebook(path, cwd=tmp_path)
    assert errors_and_stderr(nb) == []
