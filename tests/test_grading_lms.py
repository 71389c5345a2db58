"""Grade-import CSVs: Canvas's and Moodle's layouts (dgm.grading.lms), and Canvas user ids from collect."""
from __future__ import annotations

import csv
from pathlib import Path

from dgm.grading import collect, lms
from dgm.grading.result import GradeResult

LAB = "01_autoencoder"
GRADED = [("test_a", 2.0, "code"), ("test_b", 2.0, "code"), ("written", 2.0, "markdown")]
TABLE = {"smithjane": {"test_a": 2.0, "test_b": 1.0, "written": None}, "doejohn": {"test_a": 0, "test_b": 2, "written": 1.5}}
RESULTS = {"smithjane": GradeResult("smithjane", LAB, lms_id="4711"), "doejohn": GradeResult("doejohn", LAB)}


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_canvas_layout(tmp_path):
    rows = read(lms.write("canvas", tmp_path, LAB, TABLE, GRADED, RESULTS, canvas_assignment_id="12345"))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"{LAB} (12345)"]
    assert rows[1:] == [["doejohn", "", "", "doejohn", "", "3.5"], ["smithjane", "4711", "", "smithjane", "", "3"]]


def test_canvas_without_assignment_id_uses_the_lab_name(tmp_path):
    assert read(lms.write("canvas", tmp_path, LAB, TABLE, GRADED, RESULTS))[0][-1] == LAB


def test_moodle_layout(tmp_path):
    rows = read(lms.write("moodle", tmp_path, LAB, TABLE, GRADED, RESULTS, moodle_id="email"))
    assert rows == [["Email address", LAB], ["doejohn", "3.5"], ["smithjane", "3"]]
    assert read(lms.write("moodle", tmp_path, LAB, TABLE, GRADED, RESULTS))[0] == ["ID number", LAB]


def test_canvas_user_id_from_the_export_name():
    assert collect.lms_user_id(Path(f"smithjane_4711_998877_{LAB}.ipynb")) == "4711"
    assert collect.lms_user_id(Path(f"smithjane_late_4711_998877_{LAB}.ipynb")) == "4711"
    assert collect.lms_user_id(Path("alice/01_autoencoder.ipynb")) == ""
