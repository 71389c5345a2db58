r"""One home for what the tools know about the course: its layout, markers, copies and environment.

    from dgm.course import Course
    course = Course.find()                   # the nbgrader course root (``course/`` of this repo)
    course.source(lab), course.gradebook, course.db_url, course.submitted(student, lab), …
    scratch = course.scratch_copy(tmp, [lab])   # lab source + config, for nbgrader in a throw-away course
    generate_assignment(scratch, lab)           # `nbgrader generate_assignment` there (venv bin/ on PATH)

Used by ``dgm-grade`` (:mod:`dgm.grade`, :mod:`dgm.grading`), ``tools/release.py``, the tests'
``nbgrader_utils`` and ``bench/``. Importing it does not import nbgrader (``dgm`` works without the
``grading`` extra): only :func:`generate_assignment` runs nbgrader, as a subprocess.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: The repository (when ``dgm`` is installed from a checkout: ``helpers/dgm/course.py`` → repo root).
REPO = Path(__file__).resolve().parents[2]

# ----------------------------------------------------------------------------- nbgrader markers
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
#: a hidden-test block, its marker lines included (multi-line source text)
HIDDEN_BLOCK = re.compile(r"^[^\n]*BEGIN HIDDEN TESTS.*?END HIDDEN TESTS[^\n]*\n?", re.S | re.M)
SOLUTION_MARK = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")

#: what never belongs in a copy of a lab folder
IGNORE = (".ipynb_checkpoints", "checkpoints", "__pycache__")
#: the grading secret (HMAC key of the hidden cases' seeds), in the course root, mode 600, git-ignored
SECRET_FILE = ".dgm_grading_secret"


def strip_hidden(source: str) -> str:
    """``source`` without its hidden-test blocks (what students were given)."""
    return HIDDEN_BLOCK.sub("", source)


def venv_env(**extra: str) -> dict:
    """This environment with the running Python's ``bin/`` first on PATH (nbgrader shells out to alembic)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@dataclass(frozen=True)
class Course:
    """An nbgrader course root and the folders nbgrader uses inside it."""
    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> "Course":
        """The course next to ``start`` (default: the working directory) or this repository's ``course/``."""
        start = Path(start or Path.cwd()).resolve()
        for base in (start, *start.parents, REPO):
            if (base / "nbgrader_config.py").exists() and (base / "source").is_dir():
                return cls(base)
            if (base / "course" / "nbgrader_config.py").exists():
                return cls(base / "course")
        return cls(start)

    @classmethod
    def repo(cls) -> "Course":
        return cls(REPO / "course")

    # ---------------------------------------------------------------- paths
    @property
    def config(self) -> Path:
        return self.root / "nbgrader_config.py"

    @property
    def gradebook(self) -> Path:
        return self.root / "gradebook.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.gradebook}"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def secret_file(self) -> Path:
        return self.root / SECRET_FILE

    def source(self, lab: str) -> Path:
        """The source (instructor) notebook of ``lab``."""
        return self.root / "source" / lab / f"{lab}.ipynb"

    def release(self, lab: str) -> Path:
        return self.root / "release" / lab

    def submitted(self, student: str, lab: str) -> Path:
        return self.root / "submitted" / student / lab

    def autograded(self, student: str, lab: str) -> Path:
        return self.root / "autograded" / student / lab

    def feedback(self, student: str, lab: str) -> Path:
        return self.root / "feedback" / student / lab

    def labs(self) -> list[str]:
        """The labs with a source notebook ``source/<lab>/<lab>.ipynb``."""
        folder = self.root / "source"
        return sorted(p.name for p in folder.iterdir() if (p / f"{p.name}.ipynb").exists()) if folder.is_dir() else []

    # ---------------------------------------------------------------- copies
    def copy_lab(self, lab: str, dest: "Course") -> None:
        """Copy ``source/<lab>`` into ``dest`` (no checkpoints, caches or trained weights)."""
        target = dest.root / "source" / lab
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.root / "source" / lab, target, ignore=shutil.ignore_patterns(*IGNORE))

    def scratch_copy(self, where: Path, labs=(), gradebook: bool = False) -> "Course":
        """A throw-away course at ``where``: the config, ``labs``' sources, optionally the gradebook."""
        dest = Course(Path(where))
        (dest.root / "source").mkdir(parents=True, exist_ok=True)
        shutil.copy(self.config, dest.config)
        for lab in labs:
            self.copy_lab(lab, dest)
        if gradebook and self.gradebook.exists():
            shutil.copy(self.gradebook, dest.gradebook)
        return dest

    # ---------------------------------------------------------------- the grading secret
    def secret(self, path: Path | None = None) -> bytes:
        """The HMAC key for the hidden cases' seeds; created (mode 600) on first use. Never inside a kernel."""
        path = Path(path or self.secret_file)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
        key = path.read_text().strip()
        if len(key) < 32:
            raise RuntimeError(f"{path}: the grading secret is too short (delete it to create a new one)")
        return key.encode()


# ----------------------------------------------------------------------------- running nbgrader
def nbgrader(course: Course | Path, *args: str, timeout: float | None = None,
             env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``nbgrader <args>`` in ``course`` with the venv's bin/ first on PATH (output captured)."""
    root = course.root if isinstance(course, Course) else Path(course)
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env or venv_env(),
                          capture_output=True, text=True, timeout=timeout)


def generate_assignment(course: Course | Path, lab: str) -> Path:
    """``nbgrader generate_assignment <lab> --force`` in ``course``; returns the release folder.

    Raises RuntimeError with nbgrader's output when it fails.
    """
    course = course if isinstance(course, Course) else Course(Path(course))
    proc = nbgrader(course, "generate_assignment", lab, "--force")
    if proc.returncode != 0 or not course.release(lab).exists():
        raise RuntimeError(f"nbgrader generate_assignment {lab} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return course.release(lab)
