#!/usr/bin/env python
"""Generate the student labs and the solutions from the nbgrader source notebooks.

    python tools/release.py            # rewrite labs/ and solutions/ from course/source
    python tools/release.py --check    # exit 1 (and list the files) if labs/ or solutions/ drifted

course/source/<lab>/<lab>.ipynb is the only hand-edited lab file. For each lab:

* labs/<lab>/       = `nbgrader generate_assignment` (solutions → stubs, hidden tests removed),
                      run in a scratch copy of the course so the real gradebook is never touched;
* solutions/<lab>/  = the source with the ### BEGIN/END SOLUTION markers and the hidden tests removed.

Both have outputs, execution counts and widget state stripped. Colab (dgm.colab): the install block of
each lab's setup cell gets the repository of course/colab.toml, and labs/ get an "Open in Colab" badge
cell on top. Only labs/ and solutions/ are written — never a student's workspace/.
"""
from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "helpers"))  # dgm.course, also without an installed dgm

from dgm.colab import INSTALL_BEGIN, INSTALL_END, badge_cell_source, install_cell, load_config  # noqa: E402
from dgm.course import SOLUTION_MARK, Course, generate_assignment, strip_hidden  # noqa: E402

COURSE = Course(ROOT / "course")
BADGE_ID = "colab-badge"  # a fixed cell id: the release stays byte-for-byte reproducible


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


def set_install(source: str, repository: str) -> str:
    """``source`` (a setup cell) with its install block written for ``repository`` (see dgm.colab)."""
    lines = source.split("\n")
    if INSTALL_BEGIN in lines and INSTALL_END in lines:
        a, b = lines.index(INSTALL_BEGIN), lines.index(INSTALL_END)
    else:  # the block before dgm.colab: DGM_PIP = "..." / try: import dgm / except ImportError: ... import dgm
        a = next((i for i, line in enumerate(lines) if line.startswith("DGM_PIP = ")), None)
        b = next((i for i in range(a or 0, len(lines)) if lines[i] == "    import dgm" and i > (a or 0) + 2), None)
        if a is None or b is None:
            raise ValueError("the setup cell (first code cell) has no install block")
    return "\n".join(lines[:a] + install_cell(repository).split("\n") + lines[b + 1:])


def colab(nb, lab: str, badge: bool) -> None:
    """Write course/colab.toml's repository into the setup cell; with ``badge``, the Colab badge cell on top."""
    conf = load_config(ROOT)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    setup.source = set_install(setup.source, conf["repository"])
    if nb.cells[0].get("id") == BADGE_ID:
        nb.cells.pop(0)
    if badge:
        cell = nbformat.v4.new_markdown_cell(badge_cell_source(conf["repository"], lab, conf["branch"]))
        cell["id"] = BADGE_ID
        nb.cells.insert(0, cell)


def solution_notebook(src: Path):
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        text = strip_hidden(cell.source)
        cell.source = "\n".join(line for line in text.split("\n") if not SOLUTION_MARK.match(line)).rstrip("\n")
        cell.metadata.pop("nbgrader", None)
    strip(nb)
    colab(nb, src.stem, badge=False)
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
                if path.name == f"{lab}.ipynb":
                    colab(nb, lab, badge=True)
                nbformat.write(nb, path)
        dest = out / "solutions" / lab
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        nbformat.write(solution_notebook(COURSE.source(lab)), dest / f"{lab}.ipynb")


def git_ignored(root: Path, paths: list[str]) -> set[str]:
    """Those of ``paths`` (relative to ``root``) that git ignores — a student's checkpoints, samples, copies."""
    if not paths:
        return set()
    try:
        proc = subprocess.run(["git", "-C", str(root), "check-ignore", "--stdin"], input="\n".join(paths),
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(proc.stdout.split("\n")) if proc.returncode in (0, 1) else set()


def drift(generated: Path, root: Path = ROOT) -> list[str]:
    """Files that differ between a fresh build in ``generated`` and the committed labs/ and solutions/.

    Files git ignores under ``root`` (checkpoints, samples, notebook checkpoints) are not part of the release.
    """
    problems = []
    for top in ("labs", "solutions"):
        a, b = generated / top, root / top
        names = {p.relative_to(a) for p in a.rglob("*") if p.is_file()} if a.exists() else set()
        names |= {p.relative_to(b) for p in b.rglob("*") if p.is_file()} if b.exists() else set()
        ignored = git_ignored(root, [f"{top}/{rel.as_posix()}" for rel in names])
        for rel in sorted(names):
            if ".ipynb_checkpoints" in rel.parts or f"{top}/{rel.as_posix()}" in ignored:
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
