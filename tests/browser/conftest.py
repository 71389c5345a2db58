"""Fixtures of the real-browser tests (make test-browser; never part of `make test`)."""
import os
import shutil
from pathlib import Path

import pytest

from .harness import ROOT, JupyterServer, Lab, make_driver, missing

SCREENSHOTS = ROOT / "tests" / "browser" / "screenshots"


def pytest_collection_modifyitems(config, items):
    reason = None if os.environ.get("DGM_BROWSER_TESTS") == "1" else "real-browser tests: run `make test-browser`"
    reason = reason or missing()
    if reason:
        for item in items:
            if "tests/browser" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def driver():
    d = make_driver()
    yield d
    d.quit()


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    """A scratch student workspace holding every lab's solution."""
    ws = tmp_path_factory.mktemp("workspace")
    for nb in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        (ws / nb.parent.name).mkdir()
        shutil.copy(nb, ws / nb.parent.name / nb.name)
    return ws


@pytest.fixture(scope="session")
def student_server(workspace):
    """The student's server (config/student) on the scratch workspace, fast mode in the kernels' env."""
    with JupyterServer(workspace, student=True, env={"DGM_FAST": "1", "MPLBACKEND": ""}) as server:
        yield server


@pytest.fixture
def lab(driver, student_server):
    return Lab(driver, student_server, SCREENSHOTS)
