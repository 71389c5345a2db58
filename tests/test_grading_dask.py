"""dgm-grade on an existing Dask scheduler: a scheduler and two `dask worker` processes on 127.0.0.1;
one worker is SIGKILLed while it grades — its job runs on the other worker (its nanny brings it back):
nothing is lost or graded twice, and the grades are right. Plans travel with the jobs (the workers
never see the grading secret). Small: lab 1, 3 students cut to the graded cells, fast mode.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from nbgrader_utils import env, make_course, scores
from test_grading_resume import LAB, write_subs

pytest.importorskip("distributed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_killed_worker_loses_nothing(tmp_path):
    from distributed import Client

    def busy(dask_worker):  # nested: cloudpickle ships it by value (the workers cannot import this module)
        return os.getpid(), len(getattr(dask_worker.state, "executing", ())) + len(
            getattr(dask_worker.state, "long_running", ()))

    course = make_course(tmp_path, LAB)
    write_subs(tmp_path / "subs", 3)
    port = free_port()
    addr = f"tcp://127.0.0.1:{port}"
    bindir = os.path.dirname(sys.executable)
    procs = [subprocess.Popen([f"{bindir}/dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([f"{bindir}/dask", "worker", addr, "--nthreads", "1", "--nworkers", "1",
                                           "--memory-limit", "0", "--no-dashboard"], env=env(),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
        with Client(addr, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            grader = subprocess.Popen([sys.executable, "-m", "dgm.grade", LAB, str(tmp_path / "subs"), "--course",
                                       str(course), "--scheduler", addr, "--cell-timeout", "60", "--timeout", "240",
                                       "-q"], env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            killed = None
            deadline = time.monotonic() + 150
            while killed is None and grader.poll() is None and time.monotonic() < deadline:
                for pid, n in client.run(busy).values():
                    if n:
                        os.kill(pid, signal.SIGKILL)
                        killed = pid
                        break
                time.sleep(0.5)
            out, _ = grader.communicate(timeout=240)
        assert killed, "no worker was caught grading"
        assert grader.returncode == 0, out[-3000:]
        got = scores(course, LAB)
        assert sorted(got) == ["s00", "s01", "s02"], out[-2000:]
        assert got["s00"]["test_reconstruction_loss"] == 2.0 and got["s01"]["test_reconstruction_loss"] == 0.0
        assert got["s02"] == got["s00"]
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            assert len(gb.assignment_submissions(LAB)) == 3
        assert "not graded" not in out and "crashed" not in out, out[-2000:]
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
