r"""Collect submissions (a folder or an LMS zip export), map file names to student ids, and
pre-validate each notebook before nbgrader sees it.

Recognised names (first match wins; ``--regex`` with a ``(?P<student_id>...)`` group overrides):

* nbgrader layout            ``<student>/<lab>/<lab>.ipynb`` (or ``submitted/<student>/...``)
* Moodle folder per student  ``<Full Name>_<id>_assignsubmission_file_/<anything>.ipynb`` → ``<id>``
* Canvas                     ``<login>[_late]_<userid>_<subid>_<anything>.ipynb`` → ``<login>``
* a folder per student       ``<student>/<anything>.ipynb``
* flat                       ``<student>.ipynb``, ``<student>_<lab>.ipynb``, ``<lab>_<student>.ipynb``
"""
from __future__ import annotations

import json
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..course import strip_hidden

_MOODLE = re.compile(r"^.+?_(?P<student_id>\d+)_assign(?:submission|feedback)_\w+?_?$")
_CANVAS = re.compile(r"^(?P<student_id>[A-Za-z0-9]+)_(?:late_)?(?P<user_id>\d+)_\d+_.+$", re.I)
_SKIP = ("__MACOSX", ".ipynb_checkpoints", ".DS_Store")


@dataclass
class Submission:
    student: str
    path: Path
    problem: str | None = None          # set: the notebook cannot be graded (zero + this reason)
    notes: list[str] = field(default_factory=list)
    nb: object = None                   # the normalised notebook when there is no problem
    lms_id: str = ""                    # the LMS's numeric user id, when the file name carries it (Canvas)
    sha: str = ""                       # sha256 of the file's bytes (what a re-run compares)


def _clean(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", name).strip("._-")


def student_id(rel: Path, lab: str, regex: str | None = None) -> str | None:
    text = rel.as_posix()
    if regex:
        m = re.search(regex, text)
        return _clean(m.group("student_id")) if m else None
    parts = [p for p in rel.parts if p not in ("submitted", ".")]
    if len(parts) >= 3 and parts[-2] == lab:
        return _clean(parts[-3])
    for p in parts[:-1]:
        m = _MOODLE.match(p)
        if m:
            return m.group("student_id")
    stem = rel.stem
    m = _CANVAS.match(stem)
    if m and len(parts) == 1:
        return _clean(m.group("student_id"))
    if len(parts) >= 2:
        return _clean(parts[-2]) or None
    stem = stem.replace(lab, "").strip("_- ")
    return _clean(stem) or None


def lms_user_id(rel: Path) -> str:
    """Canvas's numeric user id from a flat export name (``login_12345_67890_name.ipynb``), else ""."""
    m = _CANVAS.match(rel.stem)
    return m.group("user_id") if m and len(rel.parts) == 1 else ""


def files(src: Path, scratch: Path) -> tuple[Path, list[Path]]:
    """(root, files under it): a zip export is extracted (and zips inside it, one level) first."""
    if src.is_file() and zipfile.is_zipfile(src):
        root = scratch / "extracted"
        with zipfile.ZipFile(src) as z:
            z.extractall(root)
        for inner in sorted(root.rglob("*.zip")):
            with zipfile.ZipFile(inner) as z:
                z.extractall(inner.with_suffix(""))
            inner.unlink()
    elif src.is_dir():
        root = src
    else:
        raise SystemExit(f"{src}: expected a folder of submissions or a .zip export")
    found = [p for p in sorted(root.rglob("*")) if p.is_file() and not any(s in p.parts for s in _SKIP)
             and not p.name.startswith(".")]
    return root, found


def gather(src: Path, scratch: Path, lab: str, regex: str | None = None):
    """([Submission], [unmatched file messages]); one submission per student (the newest file)."""
    root, paths = files(src, scratch)
    by_student: dict[str, list[Path]] = {}
    unmatched = []
    for p in paths:
        rel = p.relative_to(root)
        if p.suffix.lower() != ".ipynb":
            unmatched.append(f"{rel}: not a notebook (.ipynb), skipped")
            continue
        sid = student_id(rel, lab, regex)
        if not sid:
            unmatched.append(f"{rel}: could not tell which student this is (use --regex)")
            continue
        by_student.setdefault(sid, []).append(p)
    subs = []
    for sid, ps in sorted(by_student.items()):
        ps.sort(key=lambda p: (p.stat().st_mtime, str(p)))
        sub = Submission(sid, ps[-1], lms_id=lms_user_id(ps[-1].relative_to(root)))
        if len(ps) > 1:
            sub.notes.append(f"{len(ps)} files for this student; graded the newest ({ps[-1].name})")
        subs.append(sub)
    return subs, unmatched


def _unhidden(src: str) -> str:
    return strip_hidden(src).strip()


def validate(sub: Submission, lab: str, lab_cells: dict, other_labs: dict, tests: dict) -> Submission:
    """Load and normalise ``sub.path``; set ``sub.problem`` when it cannot be graded.

    ``lab_cells``: {grade_id} of this lab's nbgrader cells; ``other_labs``: {lab: {grade_id}};
    ``tests``: {test grade_id: the source students were given} (to notice edited test cells).
    """
    raw = sub.path.read_bytes()
    if not raw.strip():
        sub.problem = "the file is empty (0 bytes): the notebook was not saved before uploading"
        return sub
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        where = f" (line {err.lineno}, column {err.colno})" if isinstance(err, json.JSONDecodeError) else ""
        sub.problem = (f"the file is not a valid notebook: it is not valid JSON{where}. It was probably damaged "
                       "or renamed; download it again with File → Download .ipynb")
        return sub
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbformat's MissingIDFieldWarning for old (Colab) notebooks
            nb = nbformat.reads(json.dumps(data), as_version=4)
        if nb.nbformat_minor < 5 or any("id" not in c for c in nb.cells):
            sub.notes.append(f"old notebook format 4.{nb.nbformat_minor} (e.g. saved by Colab): upgraded")
            nb = nbformat.v4.upgrade(nb, from_version=4, from_minor=nb.nbformat_minor)
            nb.nbformat_minor = 5
        nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001 - any parsing/validation failure is the same for the student
        sub.problem = f"the file is JSON but not a Jupyter notebook nbformat 4 can read ({type(err).__name__})"
        return sub
    if "colab" in nb.metadata:
        sub.notes.append("saved by Colab: Colab metadata ignored")
    ks = nb.metadata.get("kernelspec") or {}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": ks.get("display_name", "Python 3"),
                                 "language": "python"}
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    ids = [i for i in ids if i]
    mine = len(set(ids) & lab_cells)
    best = max(other_labs.items(), key=lambda kv: len(set(ids) & kv[1]), default=(None, set()))
    if best[0] and len(set(ids) & best[1]) > mine:
        sub.problem = f"this is the notebook of {best[0]}, not {lab}: upload the {lab} notebook"
        return sub
    if mine == 0:
        sub.problem = (f"no cells of {lab} found (the nbgrader cell metadata is missing): work in the notebook "
                       "you were given, or copy your answers into it")
        return sub
    for gid in sorted(set(i for i in ids if ids.count(i) > 1)):
        sub.notes.append(f"cell {gid} appears {ids.count(gid)} times: the last copy is graded")
        copies = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid]
        for c in copies[:-1]:  # like nbgrader's DeduplicateIds, but without leaving an empty dict behind
            del c.metadata["nbgrader"]
    for gid, given in sorted(tests.items()):
        cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid]
        if not cells:
            sub.notes.append(f"test cell {gid} was deleted: the grader put it back")
        elif _unhidden(cells[-1].source) != _unhidden(given):
            sub.notes.append(f"test cell {gid} was edited: the grader restored it")
    sub.nb = nb
    return sub
