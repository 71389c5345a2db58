r"""dgm.grading.restore.RestoreCells on its own: deleted graded cells come back in the release's order, after the
nearest cell the submission still has, whatever else the student deleted (nbgrader's own repair raised a KeyError
for the whole class when a deleted graded cell's neighbour was deleted too)."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dgm.grading.restore import RestoreCells


@dataclass
class SourceCell:  # the fields nbgrader's missing_cell_transform reads from a gradebook SourceCell
    name: str
    cell_type: str = "code"
    source: str = ""
    locked: bool = True
    checksum: str = "x"


@dataclass
class GradeCell:
    name: str
    max_score: float


@dataclass
class SourceNotebook:
    source_cells: list
    grade_cells: list
    solution_cells: list = field(default_factory=list)


class Book:
    def __init__(self, nb):
        self.nb = nb

    def find_notebook(self, notebook_id, assignment_id):
        return self.nb


# The release: intro, f (solution), test_f (2 pts), prompt (markdown), answer (hand-graded solution, 1 pt),
# test_g (3 pts).
ORDER = [("intro", "markdown"), ("f", "code"), ("test_f", "code"), ("prompt", "markdown"),
         ("answer", "markdown"), ("test_g", "code")]
GRADED = {"test_f": 2.0, "answer": 1.0, "test_g": 3.0}


def cell(name, kind):
    c = (new_markdown_cell if kind == "markdown" else new_code_cell)(f"<{name}>")
    c.metadata["nbgrader"] = {"grade_id": name, "grade": name in GRADED, "solution": name in ("f", "answer"),
                              "locked": name not in ("f", "answer")}
    return c


def restore(kept: list[str]):
    pre = RestoreCells(add_missing_cells=True)
    pre.gradebook = Book(SourceNotebook(
        [SourceCell(n, k, source=f"<{n}>") for n, k in ORDER],
        [GradeCell(n, p) for n, p in GRADED.items()],
        [SourceCell("f"), SourceCell("answer", "markdown")]))
    pre.notebook_id, pre.assignment_id = "lab", "lab"
    nb = new_notebook(cells=[cell(n, k) for n, k in ORDER if n in kept])
    nb, _ = pre.add_missing_grade_cells(nb, {})
    return nb


def ids(nb):
    return [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]


@pytest.mark.parametrize("kept", [
    [n for n, _ in ORDER],                                    # nothing deleted: nothing changes
    ["intro", "f", "prompt", "answer", "test_g"],             # one test cell (its neighbours kept)
    ["intro", "f", "test_f", "test_g"],                       # a whole section: the prompt and its answer
    ["intro", "f"],                                           # everything after f
    [],                                                       # an empty notebook
    ["test_g"],                                               # only the last cell
], ids=["none", "one", "section", "tail", "empty", "only-last"])
def test_every_graded_cell_comes_back_in_release_order(kept):
    nb = restore(kept)
    got = ids(nb)
    assert set(GRADED) <= set(got)                             # every graded cell is there once
    assert len(got) == len(set(got))
    assert [n for n in got if n in GRADED] == ["test_f", "answer", "test_g"]   # in the release's order
    assert [n for n in got if n not in GRADED] == [n for n, _ in ORDER if n in kept and n not in GRADED]


def test_restored_cells_carry_their_points_and_kind():
    nb = restore(["intro", "f"])
    by_id = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells}
    assert by_id["test_f"].metadata["nbgrader"]["points"] == 2.0 and by_id["test_f"].cell_type == "code"
    assert by_id["test_g"].metadata["nbgrader"]["points"] == 3.0
    assert by_id["answer"].cell_type == "markdown" and by_id["answer"].metadata["nbgrader"]["solution"]
    assert by_id["test_f"].source.startswith("# ")           # nbgrader's notice, as a comment in code cells


def test_a_restored_cell_goes_right_after_its_nearest_surviving_predecessor():
    nb = restore(["intro", "f", "test_g"])                    # test_f, prompt and answer deleted
    assert ids(nb) == ["intro", "f", "test_f", "answer", "test_g"]
    nb = restore(["test_g"])                                  # nothing before test_f survives: it goes first
    assert ids(nb) == ["test_f", "answer", "test_g"]
