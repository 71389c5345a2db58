r"""Google Colab: keep checkpoints on Google Drive, and what ``make release`` writes for Colab.

In a lab on Colab, after the setup cell::

    import dgm.colab
    dgm.colab.use_drive()      # mounts Drive; ./checkpoints now lives in MyDrive/dgm-course/checkpoints

Trainings write ``checkpoints/<name>.pt`` relative to the notebook's working directory and continue
from there after a disconnect (:func:`dgm.train.fit`); with Drive they also survive the end of the
Colab session. Elsewhere :func:`use_drive` changes nothing and says so in one line.

Release side (``tools/release.py``, never needed by a student): the course's public repository is set
in ONE place, ``course/colab.toml``; :func:`install_cell` and :func:`badge_cell_source` turn it into the
labs' install cell and their "Open in Colab" badge.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

__all__ = ["in_colab", "use_drive", "load_config", "install_cell", "badge_cell_source", "colab_url",
           "INSTALL_BEGIN", "INSTALL_END"]

#: where ``make release`` reads the repository URL (repository root relative)
CONFIG = Path("course") / "colab.toml"
DRIVE = Path("/content/drive")


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    import importlib.util

    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):
        return False


def use_drive(folder: str = "dgm-course", checkpoints: str | os.PathLike = "checkpoints",
              mount_point: str | os.PathLike = DRIVE) -> Path:
    """On Colab: mount Google Drive and make ``./checkpoints`` a link to ``MyDrive/<folder>/checkpoints``.

    Checkpoints already in ``./checkpoints`` are copied to Drive first (files already on Drive win).
    Elsewhere: a no-op with a one-line message. Returns the folder checkpoints are written to.
    """
    local = Path(checkpoints)
    if not in_colab():
        print(f"dgm.colab.use_drive(): not on Colab — checkpoints stay in {local.resolve()}")
        return local
    from google.colab import drive  # type: ignore[import-not-found]

    mount_point = Path(mount_point)
    drive.mount(str(mount_point))
    target = mount_point / "MyDrive" / folder / local.name
    target.mkdir(parents=True, exist_ok=True)
    if local.is_symlink():
        local.unlink()
    elif local.is_dir():
        for f in local.rglob("*"):
            dest = target / f.relative_to(local)
            if f.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
            elif not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dest)
        shutil.rmtree(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    local.symlink_to(target, target_is_directory=True)
    print(f"dgm.colab.use_drive(): checkpoints → {target} (they survive the Colab session)")
    return target


# ----------------------------------------------------------------------------- release side
def load_config(root: str | os.PathLike) -> dict:
    """``course/colab.toml`` of the repository at ``root``: ``{"repository": url, "branch": name}``."""
    text = (Path(root) / CONFIG).read_text()
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the file is two `key = "value"` lines
        conf = dict(re.findall(r'^\s*(\w+)\s*=\s*"([^"]*)"', text, re.M))
    else:
        conf = tomllib.loads(text)
    url = str(conf.get("repository", "")).rstrip("/")
    if url.endswith(".git"):
        url = url[:-4]
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"{CONFIG}: repository must be https://github.com/<owner>/<repo>, got {url!r}")
    return {"repository": url, "branch": str(conf.get("branch", "main"))}


def colab_url(repository: str, lab: str, branch: str = "main") -> str:
    """The "Open in Colab" link of ``labs/<lab>/<lab>.ipynb`` in ``repository`` (https://github.com/o/r)."""
    owner_repo = repository.split("github.com/", 1)[1]
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/labs/{lab}/{lab}.ipynb"


def badge_cell_source(repository: str, lab: str, branch: str = "main") -> str:
    """The markdown cell at the top of each student lab: the badge and how to keep checkpoints on Drive."""
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(repository, lab, branch)})\n"
            "\n"
            "**On Colab:** run the setup cell below first — it installs the course helpers (`dgm-course`) from "
            f"{repository} (the environment variable `DGM_PIP` overrides what it installs). To keep "
            "checkpoints across sessions, run `import dgm.colab; dgm.colab.use_drive()` after it: it mounts "
            "Google Drive and stores `checkpoints/` in `MyDrive/dgm-course/checkpoints`. "
            "**Locally:** `make lab` has installed everything; the setup cell only imports.")


#: the install block opens the setup cell; release.py replaces what lies between these two lines
INSTALL_BEGIN = "# --- install the course helpers when missing (Colab); written by `make release` from course/colab.toml"
INSTALL_END = "# --- end of install"


def install_cell(repository: str) -> str:
    """The install block at the top of each lab's setup cell. It runs BEFORE ``dgm`` exists (no dgm import).

    ``DGM_PIP`` (environment) overrides the pip target; git never prompts (``GIT_TERMINAL_PROMPT=0``),
    pip gets a timeout, and a failure raises an error naming ``DGM_PIP`` and ``course/colab.toml``.
    Only the ``DGM_REPO = ...`` line depends on the repository (the grader's integrity scan recognises
    the rest as part of the release).
    """
    return f'''{INSTALL_BEGIN}
DGM_REPO = "{repository}"
try:
    import dgm
except ImportError:
    import os, subprocess, sys
    _target = os.environ.get("DGM_PIP") or f"git+{{DGM_REPO}}.git#subdirectory=helpers"
    try:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-input", _target], check=True, timeout=900,
                       stdin=subprocess.DEVNULL, env={{**os.environ, "GIT_TERMINAL_PROMPT": "0"}})
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as _err:
        raise RuntimeError(f"Could not install the course helpers with `pip install {{_target}}` ({{_err}}). Set the "
                           "environment variable DGM_PIP to a pip target that works (a wheel, a path, a git URL), or "
                           "fix `repository` in course/colab.toml and run `make release`.") from None
    import importlib
    importlib.invalidate_caches()
    import dgm
{INSTALL_END}'''
