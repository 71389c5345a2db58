"""Colab: the install cell and badge `make release` writes, DGM_PIP, Drive, ipywidgets 7, and a Colab-like run.

The Colab-like run: a fresh venv WITHOUT dgm (it sees this venv's other packages through a .pth file,
dgm's editable install left out), a lab's setup cell installs dgm-course from a git clone of this repo
(DGM_PIP=git+file://...), then the rest of the lab runs in fast mode under nbclient.
"""
import os
import subprocess
import sys
import sysconfig
import types
from importlib.machinery import ModuleSpec
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import release  # noqa: E402

from dgm import colab  # noqa: E402

CONF = colab.load_config(ROOT)
LABS = release.labs()
COLAB_LAB = os.environ.get("DGM_COLAB_TEST_LAB", "03_gan")


def first_code(nb):
    return next(c for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("lab", LABS)
def test_release_writes_the_repository_into_install_cell_and_badge(lab):
    student = nbformat.read(ROOT / "labs" / lab / f"{lab}.ipynb", as_version=4)
    solution = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    block = colab.install_cell(CONF["repository"])
    for nb in (student, solution):
        assert block in first_code(nb).source
    badge = student.cells[0]
    assert badge.cell_type == "markdown" and badge.get("id") == release.BADGE_ID
    url = f"https://colab.research.google.com/github/{CONF['repository'].split('github.com/')[1]}/blob/main/labs/{lab}/{lab}.ipynb"
    assert f"]({url})" in badge.source and "use_drive()" in badge.source and "DGM_PIP" in badge.source


def test_the_repository_url_lives_in_one_place():
    url = CONF["repository"].split("://")[1]
    hits = subprocess.run(["git", "-C", str(ROOT), "grep", "-l", url, "--", "*.py", "*.toml", "*.cfg", "Makefile",
                           "*.yml", ".ci/*"], capture_output=True, text=True).stdout.split()
    assert hits == ["course/colab.toml"], hits


def test_set_install_is_idempotent_and_converts_the_old_block():
    old = ('# Setup.\nDGM_PIP = "git+https://example/x.git"  # fork\ntry:\n    import dgm\nexcept ImportError:\n'
           '    import subprocess, sys\n    subprocess.check_call([sys.executable, "-m", "pip", "install", DGM_PIP])\n'
           '    import dgm\n\nimport torch')
    new = release.set_install(old, "https://github.com/a/b")
    assert new.startswith("# Setup.\n" + colab.INSTALL_BEGIN) and new.endswith(colab.INSTALL_END + "\n\nimport torch")
    assert release.set_install(new, "https://github.com/a/b") == new
    assert 'DGM_REPO = "https://github.com/c/d"' in release.set_install(new, "https://github.com/c/d")


def test_install_cell_cannot_hang_and_names_dgm_pip_when_it_fails(tmp_path):
    block = colab.install_cell(CONF["repository"])
    assert '"GIT_TERMINAL_PROMPT": "0"' in block and "timeout=" in block and "--no-input" in block
    script = tmp_path / "cell.py"
    script.write_text(block)
    # -S: no site-packages, so no dgm (and no pip): the install fails at once
    proc = subprocess.run([sys.executable, "-S", str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DGM_PIP": str(tmp_path / "nowhere")})
    assert proc.returncode != 0
    assert "RuntimeError" in proc.stderr and "DGM_PIP" in proc.stderr and "course/colab.toml" in proc.stderr
    assert str(tmp_path / "nowhere") in proc.stderr


def test_use_drive_is_a_noop_elsewhere(capsys, tmp_path):
    assert colab.use_drive(checkpoints=tmp_path / "checkpoints") == tmp_path / "checkpoints"
    assert "not on Colab" in capsys.readouterr().out
    assert not (tmp_path / "checkpoints").exists()


def test_use_drive_on_colab_mounts_and_links_checkpoints(monkeypatch, tmp_path, capsys):
    mounted = []

    def mount(path):
        mounted.append(path)
        (Path(path) / "MyDrive").mkdir(parents=True)

    google, gcolab = types.ModuleType("google"), types.ModuleType("google.colab")
    gcolab.__spec__ = ModuleSpec("google.colab", None)
    gcolab.drive = types.SimpleNamespace(mount=mount)
    google.colab = gcolab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", gcolab)
    local = tmp_path / "content" / "checkpoints"
    local.mkdir(parents=True)
    (local / "ae.pt").write_bytes(b"weights")
    target = colab.use_drive(checkpoints=local, mount_point=tmp_path / "drive")
    assert mounted == [str(tmp_path / "drive")]
    assert target == tmp_path / "drive" / "MyDrive" / "dgm-course" / "checkpoints"
    assert local.is_symlink() and local.resolve() == target.resolve()
    assert (target / "ae.pt").read_bytes() == b"weights"
    assert "checkpoints →" in capsys.readouterr().out
    assert colab.use_drive(checkpoints=local, mount_point=tmp_path / "drive2") is not None  # twice: fine


def _pip(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=timeout)


def test_widget_tests_pass_under_ipywidgets_7(tmp_path):
    """dgm asks for ipywidgets>=7.7 (what Colab ships): the widget tests, again, with ipywidgets 7.8."""
    target = tmp_path / "ipywidgets7"
    proc = _pip("install", "-q", "--no-deps", "--target", str(target), "ipywidgets==7.8.*", "widgetsnbextension==3.6.*",
                "jupyterlab_widgets>=1.0,<3", "ipython_genutils")
    if proc.returncode != 0:
        pytest.skip(f"pip could not fetch ipywidgets 7.8 (offline?): {proc.stderr.strip()[-300:]}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]), "DGM_FAST": "1"}
    version = subprocess.run([sys.executable, "-c", "import ipywidgets; print(ipywidgets.__version__)"],
                             capture_output=True, text=True, env=env, timeout=120).stdout.strip()
    assert version.startswith("7."), version
    tests = sorted(str(p) for p in (ROOT / "tests").glob("test_*widgets*.py"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *tests],
                          capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, f"widget tests under ipywidgets {version}:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"


def test_colab_like_fresh_env_installs_dgm_from_git_and_runs_a_lab(tmp_path):
    """Plays Colab: no dgm, the setup cell pip-installs it from a git clone (DGM_PIP), the lab runs (fast mode)."""
    clone = tmp_path / "clone"  # a full clone: pip's `git clone --filter=blob:none` hangs on a shallow one
    subprocess.run(["git", "clone", "-q", f"file://{ROOT}", str(clone)], check=True, timeout=120)
    subprocess.run(["git", "-C", str(clone), "config", "uploadpack.allowFilter", "true"], check=True)
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True, timeout=120)
    py = fresh / "bin" / "python"
    shared = tmp_path / "shared"  # this venv's packages, dgm left out
    shared.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "dgm" not in entry.name.lower():
            (shared / entry.name).symlink_to(entry)
    fresh_site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     capture_output=True, text=True, check=True).stdout.strip())
    (fresh_site / "shared-venv.pth").write_text(f"{shared}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(DGM_PIP=f"git+file://{clone}#subdirectory=helpers", DGM_FAST="1", PIP_NO_INDEX="1",
               PIP_NO_BUILD_ISOLATION="0", MPLBACKEND="Agg")
    probe = subprocess.run([str(py), "-c", "import dgm"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert probe.returncode != 0, "the fresh venv must not see dgm before the setup cell runs"
    nb_path = clone / "solutions" / COLAB_LAB / f"{COLAB_LAB}.ipynb"
    run = (f"import nbformat, nbclient\n"
           f"nb = nbformat.read({str(nb_path)!r}, as_version=4)\n"
           f"nbclient.NotebookClient(nb, timeout=600, kernel_name='python3', resources={{'metadata': {{'path': {str(tmp_path)!r}}}}}).execute()\n"
           f"first = [o for o in nb.cells[1].outputs if o.get('output_type') == 'stream']\n"
           f"print('SETUP:', ''.join(o['text'] for o in first))\n")
    proc = subprocess.run([str(py), "-c", run], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert "fast mode: True" in proc.stdout
    installed = subprocess.run([str(py), "-c", "import dgm, importlib.metadata as m; print(dgm.__file__, m.version('dgm-course'))"],
                               capture_output=True, text=True, env=env, cwd=tmp_path)
    assert str(fresh) in installed.stdout and "0.1.0" in installed.stdout, installed
