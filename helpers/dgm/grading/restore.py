"""Put back the graded cells a student deleted, wherever the rest of the notebook lets us.

nbgrader's ``OverwriteCells.add_missing_cells`` inserts a missing grade cell after the source cell
that precedes it, and fails with a ``KeyError`` for the *whole assignment* when that cell is gone
too (a student who deletes a section: a markdown prompt and its test cell). :class:`RestoreCells`
walks back through the source order to the nearest cell the submission still has (counting the
cells it has just put back) and inserts after it, or at the top when none is left. The cell it
inserts is nbgrader's own (``missing_cell_transform``): same notice, same metadata, same points.
"""
from __future__ import annotations

from nbgrader.preprocessors import OverwriteCells


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


class RestoreCells(OverwriteCells):
    """OverwriteCells whose missing-cell repair never depends on a neighbour still being there."""

    def add_missing_grade_cells(self, nb, resources):
        source_nb = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        order = [cell.name for cell in source_nb.source_cells]           # the release's cell order
        solution_ids = {cell.name for cell in source_nb.solution_cells}
        for grade_cell in sorted(source_nb.grade_cells, key=lambda g: order.index(g.name) if g.name in order else -1):
            present = {_grade_id(c): i for i, c in enumerate(nb.cells) if _grade_id(c)}
            if grade_cell.name in present or grade_cell.name not in order:
                continue
            self.log.warning("Missing grade cell %s encountered, adding to notebook", grade_cell.name)
            k = order.index(grade_cell.name)
            source_cell = source_nb.source_cells[k]
            cell = self.missing_cell_transform(source_cell, grade_cell.max_score,
                                               is_solution=grade_cell.name in solution_ids)
            before = next((present[name] for name in reversed(order[:k]) if name in present), -1)
            nb.cells.insert(before + 1, cell)
        return nb, resources
