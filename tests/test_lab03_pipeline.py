"""Lab 3 end to end: release → submissions → nbgrader autograde → scores via the Gradebook API."""
from __future__ import annotations

import pytest

from nbgrader_utils import (ROOT, cell_output, errors_and_stderr, graded_notebook, make_course, max_scores,
                            nbgrader, release_notebook, run_notebook, scores, source_notebook, submit, with_cell)

LAB = "03_gan"
TESTS = ("test_sample_noise", "test_discriminator_loss", "test_generator_loss", "test_train_step")

SWAPPED_LABELS = '''
def discriminator_loss(real_logits, fake_logits):
    real_term = F.binary_cross_entropy_with_logits(real_logits, torch.zeros_like(real_logits))
    fake_term = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    return 0.5 * real_term + 0.5 * fake_term
'''
NO_DETACH = '''
def train_step(G, D, opt_g, opt_d, real, z, kind="nonsaturating", d_loss=None, g_loss=None):
    d_loss = d_loss or discriminator_loss
    g_loss = g_loss or generator_loss
    opt_d.zero_grad()
    loss_d = d_loss(D(real), D(G(z)))          # forgot .detach(): J_D reaches G
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    loss_g = g_loss(D(G(z)), kind=kind)
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()
'''
REFERENCE_LOSS = '''
from dgm.gan import generator_loss as my_generator_loss   # imported under another name

def generator_loss(fake_logits, kind="nonsaturating"):
    return my_generator_loss(fake_logits, kind)
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("lab03"), LAB)
    solution = source_notebook(LAB)
    submit(course, LAB, "solution", solution)
    submit(course, LAB, "untouched", release_notebook(course, LAB))
    two_mistakes = with_cell(with_cell(solution, "discriminator_loss", SWAPPED_LABELS), "train_step", NO_DETACH)
    submit(course, LAB, "mistakes", two_mistakes)
    submit(course, LAB, "reference", with_cell(solution, "generator_loss", REFERENCE_LOSS))
    nbgrader(course, "autograde", LAB, "--force")
    nbgrader(course, "generate_feedback", LAB, "--force")
    return course, scores(course, LAB), max_scores(course, LAB)


def test_lab_has_enough_graded_cells(graded):
    _, _, maxima = graded
    assert set(TESTS) <= set(maxima) and len(maxima) >= 4
    nb = source_notebook(LAB)
    manual = [c for c in nb.cells if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")]
    assert manual, "lab 3 needs a manually graded written question"
    hidden = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") in TESTS
              and "### BEGIN HIDDEN TESTS" in c.source]
    assert len(hidden) == len(TESTS), "every autograded test cell has a hidden part"


def test_solution_gets_full_marks(graded):
    _, got, maxima = graded
    assert {k: got["solution"][k] for k in TESTS} == {k: maxima[k] for k in TESTS}


def test_untouched_release_gets_zero(graded):
    course, got, _ = graded
    assert all(got["untouched"][k] == 0 for k in TESTS)
    assert "not implemented yet" in cell_output(graded_notebook(course, LAB, "untouched"), "test_generator_loss")


def test_typical_mistakes_get_partial_credit_and_are_named(graded):
    course, got, maxima = graded
    assert got["mistakes"]["test_discriminator_loss"] == 0
    assert got["mistakes"]["test_train_step"] == 0
    assert got["mistakes"]["test_sample_noise"] == maxima["test_sample_noise"]
    assert got["mistakes"]["test_generator_loss"] == maxima["test_generator_loss"]
    nb = graded_notebook(course, LAB, "mistakes")
    assert "labels are swapped" in cell_output(nb, "test_discriminator_loss")
    assert "missing detach" in cell_output(nb, "test_train_step")
    feedback = (course / "feedback" / "mistakes" / LAB / f"{LAB}.html").read_text()
    assert "labels are swapped" in feedback
    assert "hidden=True" not in feedback, "feedback must not show the hidden tests"


def test_calling_the_reference_gets_no_credit_for_that_part(graded):
    course, got, maxima = graded
    assert got["reference"]["test_generator_loss"] == 0
    assert got["reference"]["test_discriminator_loss"] == maxima["test_discriminator_loss"]
    assert got["reference"]["test_train_step"] == maxima["test_train_step"]
    assert "write your own implementation" in cell_output(
        graded_notebook(course, LAB, "reference"), "test_generator_loss").lower()


def test_solution_notebook_runs_in_fast_mode(tmp_path):
    nb = run_notebook(ROOT / "solutions" / LAB / f"{LAB}.ipynb", cwd=tmp_path)
    assert errors_and_stderr(nb) == []
