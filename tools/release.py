#!/usr/bin/env python
"""Generate the student labs and the solutions from the nbgrader source notebooks.

    python tools/release.py            # rewrite labs/ and solutions/ from course/source
    python tools/release.py --check    # exit 1 (and list the files) if labs/ or solutions/ drifted

course/source/<lab>/<lab>.ipynb is the only hand-edited lab file. For each lab:

* labs/<lab>/       = `nbgrader generate_assignment` (solutions → stubs, hidden tests removed),
                      run in a scratch copy of the course so the real gradebook is never touched;
* solutions/<lab>/  = the source with the ### BEGIN/END SOLUTION markers and the hidden tests removed.

Both have outputs, execution counts and widget state stripped.
"""
from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "helpers"))  # dgm.course, also without an installed dgm

from dgm.course import SOLUTION_MARK, Course, generate_assignment, strip_hidden  # noqa: E402

COURSE = Course(ROOT / "course")


def labs() -> list[str]:
    return COURSE.labs()


def strip(nb) -> None:
    """Remove outputs, execution counts and widget state (what the repo must never carry)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("widgets", None)


def solution_notebook(src: Path):
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        text = strip_hidden(cell.source)
        cell.source = "\n".join(line for line in text.split("\n") if not SOLUTION_MARK.match(line)).rstrip("\n")
        cell.metadata.pop("nbgrader", None)
    strip(nb)
    return nb


def student_notebook(lab: str, scratch: Path) -> Path:
    """Run nbgrader generate_assignment for ``lab`` in a scratch copy of the course; return the release dir."""
    course = COURSE.scratch_copy(scratch / "course", [lab])
    try:
        return generate_assignment(course, lab)
    except RuntimeError as err:
        sys.exit(str(err))


def build(out: Path) -> None:
    """Write labs/ and solutions/ for every lab under ``out``."""
    for lab in labs():
        with tempfile.TemporaryDirectory() as tmp:
            release = student_notebook(lab, Path(tmp))
            dest = out / "labs" / lab
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(release, dest)
            for path in dest.rglob("*.ipynb"):
                nb = nbformat.read(path, as_version=4)
                strip(nb)
                nbformat.write(nb, path)
        dest = out / "solutions" / lab
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        nbformat.write(solution_notebook(COURSE.source(lab)), dest / f"{lab}.ipynb")


def drift(generated: Path) -> list[str]:
    """Files that differ between a fresh build in ``generated`` and the committed labs/ and solutions/."""
    problems = []
    for top in ("labs", "solutions"):
        a, b = generated / top, ROOT / top
        names = {p.relative_to(a) for p in a.rglob("*") if p.is_file()} if a.exists() else set()
        names |= {p.relative_to(b) for p in b.rglob("*") if p.is_file()} if b.exists() else set()
        for rel in sorted(names):
            if ".ipynb_checkpoints" in rel.parts:
                continue
            fa, fb = a / rel, b / rel
            if not fb.exists():
                problems.append(f"{top}/{rel}: missing (run `make release` and commit)")
            elif not fa.exists():
                problems.append(f"{top}/{rel}: not generated from course/source (stale? remove it)")
            elif not filecmp.cmp(fa, fb, shallow=False):
                problems.append(f"{top}/{rel}: differs from what `make release` generates now")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only report drift; change nothing")
    args = ap.parse_args(argv)
    if not args.check:
        build(ROOT)
        print(f"released {', '.join(labs())} → labs/ and solutions/")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        problems = drift(Path(tmp))
    print("\n".join(problems) if problems else "labs/ and solutions/ are up to date")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
