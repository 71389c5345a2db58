"""Shared test set-up: offline, fast mode, headless plots, one torch thread per worker."""
import os
import sys
from pathlib import Path

os.environ.setdefault("DGM_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).parent))  # nbgrader_utils

import pytest  # noqa: E402


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """A private dataset cache, so tests never touch ~/.cache/dgm."""
    monkeypatch.setenv("DGM_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def pytest_report_header(config):
    """Say up front whether grading kernels run sandboxed here (some tests skip or weaken without it)."""
    from dgm.grading import sandbox

    st = sandbox.status()
    return f"dgm grading sandbox: {'available' if st.available else 'UNAVAILABLE'} ({st.reason})"
