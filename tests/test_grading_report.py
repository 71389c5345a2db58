"""The class report (dgm.grading.report) on a synthetic batch: counts from mistake ids, escaping, offline."""
from __future__ import annotations

import re

from dgm.checks._check import Verdict
from dgm.grading import report
from dgm.grading.result import GradeResult

LAB = "01_autoencoder"
GRADED = [("test_a", 2.0, "code"), ("test_b", 2.0, "code"), ("written", 2.0, "markdown")]
EVIL = "<script>alert(1)</script>"


def batch():
    def res(s, wrong=(), **kw):
        v = {cell: [Verdict("check", "visible", False, mid, f"message of {mid} <b>")] for cell, mid in wrong}
        return GradeResult(s, LAB, verdicts=v, seconds=2.0, **kw)

    results = {
        "ann": res("ann"),
        "bob": res("bob", [("test_a", "wrong-reduction")]),
        "cy": res("cy", [("test_a", "wrong-reduction"), ("test_b", "no-grad")]),
        EVIL: res(EVIL, [("test_a", "wrong-reduction")], integrity={"flags": [f"exec {EVIL}"], "summary": EVIL}),
        "dan": GradeResult.failed("dan", LAB, f"the file is empty {EVIL}"),
    }
    table = {"ann": {"test_a": 2, "test_b": 2}, "bob": {"test_a": 0, "test_b": 2},
             "cy": {"test_a": 0, "test_b": 1}, EVIL: {"test_a": 0, "test_b": 2}, "dan": {"test_a": 0, "test_b": 0}}
    return table, results


def test_mistakes_are_counted_by_id_and_ranked():
    _, results = batch()
    ranked = report.mistake_counts(results)
    assert [(c, m, n) for c, m, n, _ in ranked] == [("test_a", "wrong-reduction", 3), ("test_b", "no-grad", 1)]
    assert ranked[0][3] == "message of wrong-reduction <b>"


def test_part_shares():
    table, _ = batch()
    assert report.part_shares(table, [("test_a", 2.0), ("test_b", 2.0)]) == [
        ("test_a", 2.0, 1, 0, 4), ("test_b", 2.0, 3, 1, 1)]


def test_html_is_self_contained_and_escapes_student_strings(tmp_path):
    table, results = batch()
    path = report.write(tmp_path / f"{LAB}_report.html", LAB, GRADED, table, {}, results,
                        unmatched=[f"{EVIL}.ipynb: could not tell which student this is"], wall=10.0, n_graded=4,
                        workers=2)
    text = path.read_text()
    assert "<script" not in text.lower() and "&lt;script&gt;" in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "no external resource"
    assert "<svg" in text and "<style>" in text
    assert "message of wrong-reduction &lt;b&gt;" in text
    assert "the file is empty &lt;script&gt;" in text and "Not graded (1)" in text
    assert "Integrity flags to review (1)" in text
    assert "0.40 notebooks/s" in text
