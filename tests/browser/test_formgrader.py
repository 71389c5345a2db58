"""The instructor's server (make formgrader): nbgrader's formgrader lists the labs and an autograded submission."""
import sys

import pytest

from .harness import ROOT, JupyterServer, Lab

sys.path.insert(0, str(ROOT / "tests"))
import nbgrader_utils as nu  # noqa: E402

LAB = "01_autoencoder"  # one autograded submission is enough to see the whole path


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A scratch course with every lab generated and alice's submission of LAB."""
    course = nu.make_course(tmp_path_factory.mktemp("formgrader"), *nu.Course.repo().labs())
    nu.submit(course, LAB, "alice", nu.source_notebook(LAB))  # the solution, with nbgrader's cell metadata
    return course


@pytest.fixture(scope="module")
def instructor(course):
    with JupyterServer(course, student=False, env={"DGM_FAST": "1"}, cwd=course) as server:
        yield server


def test_formgrader_lists_the_labs(driver, instructor):
    lab = Lab(driver, instructor)
    lab.goto("/lab")
    lab.wait(lambda: "File" in lab.menus(), 120, what="the menu bar")
    assert "Nbgrader" in lab.menus(), lab.menus()
    lab.goto("/formgrader")
    for name in nu.Course.repo().labs():
        lab.wait(lambda: name in driver.page_source, 120, what=f"{name} in the formgrader's assignments")
    lab.screenshot("formgrader-assignments")


def test_formgrader_shows_the_autograded_submission(driver, instructor, course):
    nu.nbgrader(course, "autograde", LAB, "--force", timeout=900)
    lab = Lab(driver, instructor)
    lab.goto(f"/formgrader/gradebook/{LAB}/{LAB}")
    lab.wait(lambda: "alice" in driver.page_source, 120, what="alice's autograded submission")
    lab.screenshot("formgrader-submissions")
    lab.goto(f"/formgrader/manage_submissions/{LAB}")
    lab.wait(lambda: "alice" in driver.page_source, 120, what="alice in the submissions of the lab")


def test_written_answer_is_graded_by_hand(driver, instructor, course):
    """The instructor types a score for a written answer in the formgrader: it lands in the gradebook."""
    from nbgrader.api import Gradebook
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    db = f"sqlite:///{course / 'gradebook.db'}"
    with Gradebook(db) as gb:
        if not gb.assignment_submissions(LAB):
            nu.nbgrader(course, "autograde", LAB, "--force", timeout=900)
        sub_id = gb.find_submission_notebook(LAB, LAB, "alice").id
    lab = Lab(driver, instructor)
    lab.goto(f"/formgrader/submissions/{sub_id}")
    lab.wait(lambda: driver.find_elements(By.CSS_SELECTOR, "input.score#written_bottleneck"), 120,
             what="the score box of the written answer")
    box = driver.find_element(By.CSS_SELECTOR, "input.score#written_bottleneck")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
    box.clear()
    box.send_keys("1.5", Keys.TAB)  # "change" saves it (formgrade_models.js)

    def saved():
        with Gradebook(db) as gb:
            return gb.find_grade("written_bottleneck", LAB, LAB, "alice").manual_score == 1.5
    lab.wait(saved, 60, what="the manual score in the gradebook")
    lab.screenshot("formgrader-manual-grade")
