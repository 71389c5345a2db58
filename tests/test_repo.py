"""Repository invariants: generated labs match the sources, notebooks are clean, packaging is consistent."""
import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted(p.name for p in (ROOT / "course" / "source").iterdir() if (p / f"{p.name}.ipynb").exists())
NOTEBOOKS = [p for top in ("course/source", "labs", "solutions") for p in sorted((ROOT / top).rglob("*.ipynb"))
             if ".ipynb_checkpoints" not in p.parts]


def test_labs_and_solutions_match_make_release():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "release.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, f"labs/ or solutions/ drifted from course/source — run `make release`:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_notebooks_are_stripped_and_valid_python(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert "widgets" not in nb.metadata, "widget state must be stripped"
    tm = TransformerManager()
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "outputs must be stripped"
            ast.parse(tm.transform_cell(cell.source))  # stubs are valid Python, so Run-All works


@pytest.mark.parametrize("lab", LABS)
def test_student_version_has_stubs_and_no_solutions_or_hidden_tests(lab):
    text = (ROOT / "labs" / lab / f"{lab}.ipynb").read_text()
    source = nbformat.read(ROOT / "course" / "source" / lab / f"{lab}.ipynb", as_version=4)
    if any(c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution") for c in source.cells):
        assert "NotImplementedError" in text  # a lab with code to write (06_compare has only written answers)
    for marker in ("BEGIN SOLUTION", "HIDDEN TESTS", "hidden=True"):
        assert marker not in text, f"{marker} leaked into the student version"


@pytest.mark.parametrize("lab", LABS)
def test_every_todo_is_followed_by_a_check_and_preceded_by_prose(lab):
    nb = nbformat.read(ROOT / "course" / "source" / lab / f"{lab}.ipynb", as_version=4)
    cells = nb.cells
    for i, cell in enumerate(cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            assert cells[i - 1].cell_type == "markdown", f"{meta['grade_id']}: explain before the TODO"
            later = [c for c in cells[i + 1:i + 4] if c.metadata.get("nbgrader", {}).get("grade")]
            assert later and "checks." in later[0].source, f"{meta['grade_id']}: a check right after the TODO"


def _deps(names):
    out = {}
    for spec in names:
        m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(>=\s*[0-9.]+)?", spec)
        out[m.group(1).lower().replace("_", "-")] = (m.group(2) or "").replace(" ", "")
    return out


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "helpers" / "pyproject.toml").read_text())["project"]
    wanted = _deps(project["dependencies"] + project["optional-dependencies"]["dev"])
    wanted["pytorch"] = wanted.pop("torch")  # conda's name for torch
    yml = (ROOT / "environment.yml").read_text()
    conda = _deps(re.findall(r"^\s*-\s+([A-Za-z][^\s#:]*(?:>=[0-9.]+)?)\s*$", yml, re.M))
    for name, bound in wanted.items():
        assert name in conda, f"{name} is in helpers/pyproject.toml but not in environment.yml"
        assert conda[name] == bound, f"{name}: environment.yml says {conda[name] or 'any'}, pyproject {bound or 'any'}"
    assert "-e ./helpers" in yml and "python=3.11" in yml


def test_nbgrader_config_ignores_warnings_and_progress_bars_but_not_other_stderr():
    from traitlets.config import Config

    c = Config()
    exec((ROOT / "course" / "nbgrader_config.py").read_text(), {"get_config": lambda: c})
    assert c.IgnorePattern.enabled and c.RestoreCells.add_missing_cells and c.GradingExecute.timeout > 0
    assert any(p.__name__ == "RestoreCells" for p in c.Autograde.sanitize_preprocessors)
    pattern = re.compile(c.IgnorePattern.pattern)
    assert pattern.search("/home/s/lab.py:12: UserWarning: something\n  warnings.warn('something')\n")
    assert pattern.search(" 40%|####      | 10/25 [00:00<00:01, 12.42it/s, loss=22.63]")
    assert not pattern.search("my debug print: loss = 3.2\n")
