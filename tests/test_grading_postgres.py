"""A gradebook on a real PostgreSQL server: a throw-away cluster (initdb + pg_ctl as an unprivileged
user, unix socket in a scratch folder), `dgm-grade --db-url` grades 3 submissions into it, nbgrader's
Gradebook API reads the grades back. Skipped with the reason when the server cannot start."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from nbgrader_utils import env, make_course
from test_grading_resume import LAB, write_subs

pytest.importorskip("psycopg2")


def pg_bin() -> str | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(f"{d}/initdb"):
            return d
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


@pytest.fixture
def postgres():
    bindir = pg_bin()
    if not bindir:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    root = tempfile.mkdtemp(prefix="dgm-pg-")
    os.chmod(root, 0o755)
    data, sock = os.path.join(root, "data"), os.path.join(root, "sock")
    os.makedirs(sock)
    prefix = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as nobody
        import pwd

        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        os.chown(sock, nobody.pw_uid, nobody.pw_gid)
        prefix = ["runuser", "-u", "nobody", "--"]
    port = "54329"
    run = lambda *a, **kw: subprocess.run([*prefix, *a], capture_output=True, text=True, timeout=120, **kw)  # noqa: E731
    try:
        p = run(f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "grader", "--no-sync")
        if p.returncode:
            pytest.skip(f"initdb failed: {p.stderr[-500:]}")
        p = run(f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(root, "log"), "-o",
                f"-k {sock} -p {port} -c listen_addresses='' -F", "start")
        if p.returncode:
            pytest.skip(f"the PostgreSQL server did not start: {p.stdout[-300:]} {p.stderr[-300:]}")
        p = run(f"{bindir}/createdb", "-h", sock, "-p", port, "-U", "grader", "dgm")
        assert p.returncode == 0, p.stderr
        yield f"postgresql+psycopg2://grader@/dgm?host={sock}&port={port}"
    finally:
        run(f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_grades_go_to_postgres(tmp_path, postgres):
    from nbgrader.api import Gradebook

    course = make_course(tmp_path, LAB)
    write_subs(tmp_path / "subs", 3)
    proc = subprocess.run([sys.executable, "-m", "dgm.grade", LAB, str(tmp_path / "subs"), "--course", str(course),
                           "-j", "2", "--db-url", postgres, "--cell-timeout", "60", "--timeout", "240", "-q"],
                          env=env(), capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with Gradebook(postgres) as gb:
        subs = {s.student_id: s for s in gb.assignment_submissions(LAB)}
        assert sorted(subs) == ["s00", "s01", "s02"]
        got = {s: {g.name: g.auto_score for nb in sub.notebooks for g in nb.grades} for s, sub in subs.items()}
    assert got["s00"]["test_reconstruction_loss"] == 2.0 and got["s01"]["test_reconstruction_loss"] == 0.0
    assert got["s02"] == got["s00"]
    out = subprocess.run([sys.executable, "-m", "dgm.grade", LAB, str(tmp_path / "subs"), "--course", str(course),
                          "--db-url", postgres, "-q"], env=env(), capture_output=True, text=True, timeout=300).stdout
    assert "skipped 3 unchanged" in out, out[-2000:]
