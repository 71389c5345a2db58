"""The instructor's server (make formgrader): nbgrader's formgrader lists the labs and a graded submission."""
import sys


from .harness import ROOT, JupyterServer, Lab

sys.path.insert(0, str(ROOT / "tests"))
import nbgrader_utils as nu  # noqa: E402

LAB = "01_autoencoder"  # one autograded submission is enough to see the whole path


def test_formgrader_lists_labs_and_the_autograded_submission(driver, tmp_path):
    course = nu.make_course(tmp_path, LAB)
    nu.submit(course, LAB, "alice", nu.source_notebook(LAB))  # the solution, with nbgrader's cell metadata
    nu.nbgrader(course, "autograde", LAB, "--force", timeout=900)
    with JupyterServer(course, student=False, env={"DGM_FAST": "1"}, cwd=course) as server:
        lab = Lab(driver, server)
        lab.goto("/formgrader")
        lab.wait(lambda: LAB in driver.page_source and lab.css("#main-table tr, table tr"), 120, what="the labs table")
        lab.screenshot("formgrader-assignments")
        lab.goto(f"/formgrader/gradebook/{LAB}/{LAB}")
        lab.wait(lambda: "alice" in driver.page_source, 120, what="alice's autograded submission")
        lab.screenshot("formgrader-submissions")
        lab.goto("/lab")
        lab.wait(lambda: "File" in lab.menus(), 120, what="the menu bar")
        assert "Nbgrader" in lab.menus() or any("grader" in m.lower() for m in lab.menus()), lab.menus()
