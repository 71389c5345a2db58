"""dgm-grade's collection step: file names → student ids, and pre-validation (no kernels, fast)."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from dgm.grading.collect import Submission, gather, student_id, validate

LAB = "01_autoencoder"


@pytest.mark.parametrize("path, expected", [
    (f"alice/{LAB}/{LAB}.ipynb", "alice"),
    (f"submitted/bob/{LAB}/{LAB}.ipynb", "bob"),
    ("Ada Lovelace_123456_assignsubmission_file_/my lab.ipynb", "123456"),
    (f"jdoe_98765_1234567_{LAB}.ipynb", "jdoe"),
    (f"jdoe_late_98765_1234567_{LAB}-1.ipynb", "jdoe"),
    ("carol/whatever.ipynb", "carol"),
    ("dave.ipynb", "dave"),
    (f"erin_{LAB}.ipynb", "erin"),
    (f"{LAB}_frank.ipynb", "frank"),
    (f"{LAB}.ipynb", None),
])
def test_student_ids_from_lms_file_names(path, expected):
    assert student_id(Path(path), LAB) == expected


def test_custom_regex():
    assert student_id(Path("hw/s1234567-lab1.ipynb"), LAB, r"s(?P<student_id>\d{7})") == "1234567"
    assert student_id(Path("hw/other.ipynb"), LAB, r"s(?P<student_id>\d{7})") is None


def test_zip_export_with_nested_zip_and_unmatched_files(tmp_path):
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr(f"{LAB}.ipynb", "{}")
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w") as z:
        z.writestr(f"amy_1_2_{LAB}.ipynb", "{}")
        z.write(inner, "Bo Li_555_assignsubmission_file_/work.zip")
        z.writestr("notes.txt", "hi")
        z.writestr(f"__MACOSX/._amy_1_2_{LAB}.ipynb", "junk")
    (tmp_path / "scratch").mkdir()
    subs, unmatched = gather(export, tmp_path / "scratch", LAB)
    assert [s.student for s in subs] == ["555", "amy"]
    assert unmatched == ["notes.txt: not a notebook (.ipynb), skipped"]


def _lab_nb(prefix=""):
    meta = {"grade": True, "solution": False, "locked": True, "points": 2, "schema_version": 3}
    return new_notebook(cells=[
        new_code_cell("def f(): pass", metadata={"nbgrader": {"grade_id": prefix + "f", "solution": True,
                                                              "grade": False, "locked": False}}),
        new_code_cell("check(f)", metadata={"nbgrader": {**meta, "grade_id": prefix + "test_f"}}),
    ])


def _validate(tmp_path, content):
    path = tmp_path / "x.ipynb"
    path.write_text(content if isinstance(content, str) else nbformat.writes(content))
    return validate(Submission("x", path), LAB, {"f", "test_f"}, {"02_vae": {"vae_f", "vae_test_f"}},
                    {"test_f": "check(f)\n### BEGIN HIDDEN TESTS\ncheck(f, hidden=True)\n### END HIDDEN TESTS"})


def test_unreadable_files_get_a_reason(tmp_path):
    assert "empty" in _validate(tmp_path, "").problem
    assert "not valid JSON (line 1" in _validate(tmp_path, '{"cells": [').problem
    assert "not a Jupyter notebook" in _validate(tmp_path, "[1, 2]").problem
    assert "notebook of 02_vae" in _validate(tmp_path, _lab_nb("vae_")).problem
    assert "no cells of" in _validate(tmp_path, new_notebook(cells=[new_code_cell("1")])).problem


def test_colab_duplicates_and_edited_tests_are_normalised(tmp_path):
    d = json.loads(nbformat.writes(_lab_nb()))
    d["nbformat_minor"] = 0
    d["metadata"] = {"colab": {"provenance": []}, "kernelspec": {"name": "python3", "display_name": "Python 3"}}
    for c in d["cells"]:
        c.pop("id")
    d["cells"].append(json.loads(json.dumps(d["cells"][1])))
    d["cells"][1]["source"] = "pass"
    sub = _validate(tmp_path, json.dumps(d))
    assert sub.problem is None
    assert sub.nb.nbformat_minor == 5 and all("id" in c for c in sub.nb.cells)
    assert sub.nb.metadata.kernelspec.language == "python"
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in sub.nb.cells] == ["f", None, "test_f"]
    text = " ".join(sub.notes)
    assert "Colab" in text and "appears 2 times" in text and "edited" not in text
    sub = _validate(tmp_path, with_source(_lab_nb(), 1, "print('ok')"))
    assert any("test_f was edited" in n for n in sub.notes)


def with_source(nb, i, src):
    nb.cells[i].source = src
    return nb
