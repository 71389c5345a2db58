"""make workspace (tools/workspace.py): copies new labs, never overwrites a student's file, announces updates."""
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import workspace  # noqa: E402


def lab_nb(text: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(text), nbformat.v4.new_code_cell("x = 1")]
    return nbformat.writes(nb)


@pytest.fixture
def labs(tmp_path):
    labs = tmp_path / "labs"
    for lab in ("01_a", "02_b"):
        (labs / lab).mkdir(parents=True)
        (labs / lab / f"{lab}.ipynb").write_text(lab_nb(f"{lab} v1"))
    (labs / "01_a" / "data.csv").write_text("1,2\n")
    (labs / "01_a" / "checkpoints").mkdir()
    (labs / "01_a" / "checkpoints" / "stale.pt").write_bytes(b"x")  # never part of a release copy
    return labs


def run(labs, ws):
    lines = []
    done = workspace.sync(labs, ws, out=lines.append)
    return done, "\n".join(lines)


def test_copies_missing_labs_and_keeps_the_release_they_came_from(labs, tmp_path):
    ws = tmp_path / "workspace"
    done, text = run(labs, ws)
    assert sorted(done["copied"]) == ["01_a/01_a.ipynb", "01_a/data.csv", "02_b/02_b.ipynb"]
    assert (ws / "01_a" / "01_a.ipynb").read_text() == (labs / "01_a" / "01_a.ipynb").read_text()
    assert (ws / ".dgm" / "release" / "01_a" / "01_a.ipynb").exists()
    assert not (ws / "01_a" / "checkpoints").exists()
    done, text = run(labs, ws)
    assert not done["copied"] and "up to date" in text


def test_never_overwrites_and_writes_updated_beside_the_students_file(labs, tmp_path):
    ws = tmp_path / "workspace"
    run(labs, ws)
    mine = ws / "01_a" / "01_a.ipynb"
    mine.write_text(lab_nb("my answers"))
    (ws / "01_a" / "checkpoints").mkdir()
    (ws / "01_a" / "checkpoints" / "ae.pt").write_bytes(b"weights")
    done, text = run(labs, ws)  # nothing new upstream: the student's edits are simply theirs
    assert not done["updated"] and "my answers" in mine.read_text()

    (labs / "01_a" / "01_a.ipynb").write_text(lab_nb("01_a v2"))
    done, text = run(labs, ws)
    assert "my answers" in mine.read_text(), "the student's file was overwritten"
    upd = ws / "01_a" / "01_a.updated.ipynb"
    assert "01_a v2" in upd.read_text()
    assert "changed upstream" in text and "01_a.updated.ipynb" in text and "--accept 01_a" in text
    assert (ws / "01_a" / "checkpoints" / "ae.pt").read_bytes() == b"weights"

    done, text = run(labs, ws)  # still pending: said again, nothing rewritten
    assert done["pending"] == ["01_a/01_a.ipynb"] and "changed upstream" in text

    upd.write_text(lab_nb("merged into the update"))  # an edited .updated file is the student's too
    (labs / "01_a" / "01_a.ipynb").write_text(lab_nb("01_a v3"))
    done, text = run(labs, ws)
    assert "merged into the update" in upd.read_text()
    assert "01_a v3" in (ws / "01_a" / "01_a.updated-2.ipynb").read_text()


def test_accept_takes_the_current_release_as_base(labs, tmp_path):
    ws = tmp_path / "workspace"
    run(labs, ws)
    (ws / "02_b" / "02_b.ipynb").write_text(lab_nb("mine"))
    (labs / "02_b" / "02_b.ipynb").write_text(lab_nb("02_b v2"))
    run(labs, ws)
    workspace.accept(labs, ws, "02_b", out=lambda s: None)
    assert not (ws / "02_b" / "02_b.updated.ipynb").exists()
    done, text = run(labs, ws)
    assert "up to date" in text and "mine" in (ws / "02_b" / "02_b.ipynb").read_text()


def test_cli_defaults_to_labs_and_workspace_and_release_never_writes_there(tmp_path, labs):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "workspace.py"), "--labs", str(labs),
                           "--workspace", str(tmp_path / "ws")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "01_a/01_a.ipynb" in proc.stdout, proc.stderr
    text = (ROOT / "tools" / "release.py").read_text()
    assert "workspace" not in text.replace("never a student's workspace/", "")


def test_workspace_and_generated_files_are_git_ignored():
    paths = ["workspace/01_autoencoder/01_autoencoder.ipynb", "workspace/.dgm/release/x.ipynb",
             "labs/01_autoencoder/checkpoints/ae_2.pt", "labs/01_autoencoder/.ipynb_checkpoints/x.ipynb",
             "tests/browser/screenshots/lab.png"]
    proc = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "--no-index", *paths], capture_output=True, text=True)
    assert sorted(proc.stdout.split()) == sorted(paths)


def test_release_check_ignores_what_a_student_leaves_in_the_repo(tmp_path):
    """`make test` (release --check) must not fail on checkpoints or saved copies git ignores."""
    import release

    root, v1 = tmp_path / "repo", lab_nb("v1")  # (fresh cell ids on every call)
    for top in ("labs", "solutions"):
        (root / top / "01_a").mkdir(parents=True)
        (root / top / "01_a" / "01_a.ipynb").write_text(v1)
    (root / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    generated = tmp_path / "generated"
    for top in ("labs", "solutions"):
        (generated / top / "01_a").mkdir(parents=True)
        (generated / top / "01_a" / "01_a.ipynb").write_text(v1)
    (root / "labs" / "01_a" / "checkpoints").mkdir()
    (root / "labs" / "01_a" / "checkpoints" / "ae.pt").write_bytes(b"w")
    (root / "labs" / "01_a" / ".ipynb_checkpoints").mkdir()
    (root / "labs" / "01_a" / ".ipynb_checkpoints" / "01_a-checkpoint.ipynb").write_text(lab_nb("saved"))
    assert release.drift(generated, root=root) == []
    (root / "labs" / "01_a" / "notes.txt").write_text("not ignored: reported")
    assert any("notes.txt" in p for p in release.drift(generated, root=root))
