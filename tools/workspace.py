#!/usr/bin/env python
"""The student's workspace: ``workspace/`` (git-ignored), filled from ``labs/``. Used by ``make workspace``.

    python tools/workspace.py                  # copy new labs, report labs that changed upstream
    python tools/workspace.py --accept 02_vae  # "I merged the update": take the current release as my base

Rules:

* a lab file that is missing in the workspace is copied from ``labs/``;
* a file that exists is NEVER overwritten (it holds the student's work);
* each copied file's release is kept in ``workspace/.dgm/release/<lab>/<file>`` (the base the student's
  file came from). When ``labs/`` has a different version, the new release is written beside the
  student's file as ``<name>.updated<ext>`` (e.g. ``02_vae.updated.ipynb``) and reported; the student
  merges by hand (or deletes their file to start over) and runs ``--accept <lab>``.
* ``make release`` writes only ``labs/`` and ``solutions/``, never the workspace.

Checkpoints, samples and notebook checkpoints written while working stay inside ``workspace/``.
"""
from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".ipynb_checkpoints", "checkpoints", "__pycache__", "samples"}  # never part of a release copy
META = ".dgm"  # inside the workspace: the releases the student's files came from


def updated_name(path: Path) -> Path:
    """``lab.ipynb`` → ``lab.updated.ipynb`` (beside it)."""
    return path.with_name(f"{path.stem}.updated{path.suffix}")


def release_files(labs: Path) -> dict[str, list[Path]]:
    """lab → its files (relative to labs/<lab>), caches and checkpoints left out."""
    out = {}
    for lab in sorted(p for p in labs.iterdir() if p.is_dir() and not p.name.startswith(".")):
        out[lab.name] = sorted(p.relative_to(lab) for p in lab.rglob("*")
                               if p.is_file() and not SKIP & set(p.relative_to(lab).parts)
                               and ".updated." not in p.name)
    return out


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)


def _same(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and filecmp.cmp(a, b, shallow=False)


def sync(labs: Path, workspace: Path, out=print) -> dict[str, list[str]]:
    """Bring ``workspace`` up to date with ``labs`` under the rules above; returns what happened.

    The only files it ever replaces are ``.updated`` files it wrote itself and nobody edited since
    (it keeps a copy of each in ``.dgm/updated/``); an edited one stays and the newer release gets a
    numbered name (``lab.updated-2.ipynb``).
    """
    done: dict[str, list[str]] = {"copied": [], "updated": [], "pending": [], "current": []}
    meta = workspace / META
    for lab, files in release_files(labs).items():
        for rel in files:
            new, mine = labs / lab / rel, workspace / lab / rel
            base, wrote = meta / "release" / lab / rel, meta / "updated" / lab / rel
            name = f"{lab}/{rel}"
            if not mine.exists():
                _copy(new, mine)
                _copy(new, base)
                done["copied"].append(name)
                continue
            if _same(mine, new) or _same(base, new):
                if not base.exists():
                    _copy(new, base)  # a file from before the workspace kept its releases
                done["current"].append(name)  # nothing new upstream (the student's edits stay theirs)
                continue
            upd = updated_name(mine)
            if _same(upd, new):
                done["pending"].append(name)
                continue
            if upd.exists() and not _same(upd, wrote):  # the student edited an older update: keep it
                n = 2
                while updated_name(mine).with_name(f"{mine.stem}.updated-{n}{mine.suffix}").exists():
                    n += 1
                upd = mine.with_name(f"{mine.stem}.updated-{n}{mine.suffix}")
            _copy(new, upd)
            _copy(new, wrote)
            done["updated"].append(f"{name} → {upd.relative_to(workspace).as_posix()}")
    for name in done["copied"]:
        out(f"workspace: new          {name}")
    for name in done["updated"] + done["pending"]:
        lab, arrow = name.split("/")[0], " → " in name
        shown = name if arrow else f"{name} → {updated_name(Path(name)).as_posix()}"
        out(f"workspace: changed upstream  {shown} (your file is untouched: merge what you need, then run "
            f"`python tools/workspace.py --accept {lab}`, or delete your file and run `make workspace`)")
    if not (done["copied"] or done["updated"] or done["pending"]):
        out(f"workspace: up to date ({len(done['current'])} files in {workspace.name}/)")
    return done


def accept(labs: Path, workspace: Path, lab: str, out=print) -> None:
    """Record ``labs/<lab>`` as the base of the student's files (after merging) and drop the .updated files."""
    files = release_files(labs).get(lab)
    if files is None:
        raise SystemExit(f"no lab {lab!r} in {labs}")
    for rel in files:
        base = workspace / META / "release" / lab / rel
        base.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(labs / lab / rel, base)
        upd = updated_name(workspace / lab / rel)
        if _same(upd, labs / lab / rel):  # the update it announced, untouched: no longer needed
            upd.unlink()
    out(f"workspace: {lab} now follows the current release")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labs", type=Path, default=ROOT / "labs", help="the released labs (default: labs/)")
    ap.add_argument("--workspace", type=Path, default=ROOT / "workspace", help="default: workspace/")
    ap.add_argument("--accept", metavar="LAB", help="take the current release of LAB as the base of your files")
    args = ap.parse_args(argv)
    args.workspace.mkdir(parents=True, exist_ok=True)
    if args.accept:
        accept(args.labs, args.workspace, args.accept)
    else:
        sync(args.labs, args.workspace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
