"""Lab 1 end to end: release → submissions → nbgrader autograde → scores via the Gradebook API."""
from __future__ import annotations

import pytest

from nbgrader_utils import (ROOT, cell_output, errors_and_stderr, graded_notebook, make_course, max_scores,
                            nbgrader, release_notebook, run_notebook, scores, source_notebook, submit, with_cell)

LAB = "01_autoencoder"
TESTS = ("test_autoencoder", "test_reconstruction_loss", "test_train_step")

MEAN_LOSS = '''
def reconstruction_loss(x, x_hat):
    return ((x - x_hat) ** 2).mean()
'''
REFERENCE_LOSS = '''
from dgm.ae import reconstruction_loss as my_loss   # imported under another name

def reconstruction_loss(x, x_hat):
    return my_loss(x, x_hat)
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("lab01"), LAB)
    solution = source_notebook(LAB)
    submit(course, LAB, "solution", solution)
    submit(course, LAB, "untouched", release_notebook(course, LAB))
    submit(course, LAB, "mean_loss", with_cell(solution, "reconstruction_loss", MEAN_LOSS))
    submit(course, LAB, "reference", with_cell(solution, "reconstruction_loss", REFERENCE_LOSS))
    nbgrader(course, "autograde", LAB, "--force")
    nbgrader(course, "generate_feedback", LAB, "--force")
    return course, scores(course, LAB), max_scores(course, LAB)


def test_lab_has_enough_graded_cells(graded):
    _, _, maxima = graded
    assert set(TESTS) <= set(maxima)
    nb = source_notebook(LAB)
    manual = [c for c in nb.cells if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")]
    assert manual, "lab 1 needs a manually graded written question"
    hidden = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") in TESTS
              and "### BEGIN HIDDEN TESTS" in c.source]
    assert len(hidden) == len(TESTS), "every autograded test cell has a hidden part"


def test_solution_gets_full_marks(graded):
    _, got, maxima = graded
    assert {k: got["solution"][k] for k in TESTS} == {k: maxima[k] for k in TESTS}


def test_untouched_release_gets_zero(graded):
    course, got, _ = graded
    assert all(got["untouched"][k] == 0 for k in TESTS)
    assert "not implemented yet" in cell_output(graded_notebook(course, LAB, "untouched"), "test_reconstruction_loss")


def test_typical_mistake_gets_partial_credit_and_named(graded):
    course, got, maxima = graded
    assert got["mean_loss"]["test_reconstruction_loss"] == 0
    assert got["mean_loss"]["test_autoencoder"] == maxima["test_autoencoder"]
    assert got["mean_loss"]["test_train_step"] == maxima["test_train_step"]
    text = cell_output(graded_notebook(course, LAB, "mean_loss"), "test_reconstruction_loss")
    assert "wrong reduction" in text and "averages over every pixel" in text
    feedback = (course / "feedback" / "mean_loss" / LAB / f"{LAB}.html").read_text()
    assert "averages over every pixel" in feedback
    assert "hidden=True" not in feedback, "feedback must not show the hidden tests"


def test_calling_the_reference_gets_no_credit_for_that_part(graded):
    course, got, maxima = graded
    assert got["reference"]["test_reconstruction_loss"] == 0
    assert got["reference"]["test_autoencoder"] == maxima["test_autoencoder"]
    assert "write your own implementation" in cell_output(
        graded_notebook(course, LAB, "reference"), "test_reconstruction_loss").lower()


def test_solution_notebook_runs_in_fast_mode(tmp_path):
    nb = run_notebook(ROOT / "solutions" / LAB / f"{LAB}.ipynb", cwd=tmp_path)
    assert errors_and_stderr(nb) == []
