r"""The grading engine: jobs on a ``dask.distributed`` cluster (or the old process pool, for comparison).

    with cluster(workers=2) as client:                      # a LocalCluster: -j processes, 1 thread each
        for result in run(client, jobs, settings, kit, hard_timeout=1080):
            ...                                             # as each job finishes (as_completed order)

``cluster`` gives a client on a ``LocalCluster`` (default), on an existing scheduler
(``scheduler="tcp://host:8786"``) or on a ``dask-jobqueue`` cluster (``kind="slurm"``, configured the
dask way: ``~/.config/dask/jobqueue.yaml``). What travels to a worker:

* the **kit** (:func:`build_kit`, :func:`pack`): the lab's source folder, its student release, the
  course's nbgrader config and a gradebook that knows only this lab — a few hundred kB, sent with every
  job and unpacked once per worker process (cached by its hash), so workers need no shared file system;
* the **job**: the student id, the submission's bytes and its **plan** (:class:`Planner`: the hidden
  cases' seeds, computed here from the grading secret — the secret never leaves this machine).

The parent keeps at most ``window`` jobs in flight (default 2 × workers): submissions are read,
planned and submitted as slots free up, results are yielded as they finish and dropped by the caller
after writing them, so its memory stays flat in the number of submissions.

A job that runs longer than ``hard_timeout`` (measured from when a worker *started* it: workers log a
``dgm-started`` event) is cancelled and its worker restarted (a nanny brings it back); the student is
reported and the batch goes on. A worker that dies mid-job (killed, out of memory) loses nothing: the
scheduler runs its job on another worker (up to ``distributed.scheduler.allowed-failures`` times,
then the student is reported).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Iterator

from ..course import IGNORE, Course
from .result import GradeResult

TOPIC = "dgm-started"


# ----------------------------------------------------------------------------- what a worker needs
def build_kit(course: Course, lab: str, dest: Path) -> Path:
    """A folder with what grading ``lab`` needs: config, source, release, a one-lab gradebook."""
    from . import book

    kit = course.scratch_copy(dest, [lab])
    if course.release(lab).is_dir():  # the integrity scan compares with the student version
        shutil.copytree(course.release(lab), kit.release(lab), ignore=shutil.ignore_patterns(*IGNORE))
    book.template_gradebook(course.root, lab, kit.gradebook)
    return Path(dest)


def pack(folder: Path) -> bytes:
    """``folder`` as tar.gz bytes (deterministic order)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in sorted(Path(folder).rglob("*")):
            tar.add(p, arcname=str(p.relative_to(folder)), recursive=False)
    return buf.getvalue()


_KITS: dict = {}


def unpack(data: bytes, base: Path) -> Path:
    """The kit unpacked under ``base`` (once per process and kit)."""
    sha = hashlib.sha256(data).hexdigest()[:16]
    if sha in _KITS and _KITS[sha].is_dir():
        return _KITS[sha]
    dest = Path(base) / f"kit-{sha}"
    if not dest.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=".kit-", dir=base))
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    _KITS[sha] = dest
    return dest


class Planner:
    """The grading plan of each submission, computed in the parent (where the secret is).

    nbgrader sanitises a submission before the grading preprocessors see it (clear outputs, drop
    duplicated ids, restore the kernelspec and locked cells from the gradebook); the plan's hash is of
    that notebook. This runs the same sanitising preprocessors against the kit's gradebook.
    """

    def __init__(self, course: Course, lab: str, kit: Path):
        from nbgrader.preprocessors import (CheckCellMetadata, ClearOutput, DeduplicateIds, OverwriteCells,
                                            OverwriteKernelspec)
        from traitlets.config.loader import PyFileConfigLoader

        from . import judge

        self.lab = lab
        self.cfg = PyFileConfigLoader("nbgrader_config.py", path=str(course.root)).load_config()
        self.cfg.Application.log_level = "ERROR"
        classes = self.cfg.Autograde.get("sanitize_preprocessors") or [  # nbgrader's Autograde default
            ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata]
        self.pre = [c(config=self.cfg) for c in classes]
        for p in self.pre:
            p.log.setLevel(logging.ERROR)
        self.db_url = f"sqlite:///{Path(kit) / 'gradebook.db'}"
        self.declared = judge.declared_cells(lab)
        self.secret = course.secret() if self.declared is not None else b""

    def plan(self, nb_bytes: bytes, student: str) -> dict:
        import nbformat

        from . import judge

        if self.declared is None:
            return {"sha": None, "cases": []}
        try:
            nb = nbformat.reads(nb_bytes.decode("utf-8"), as_version=4)
            res = {"unique_key": self.lab, "output_files_dir": f"{self.lab}_files",
                   "nbgrader": {"student": student, "assignment": self.lab, "notebook": self.lab,
                                "db_url": self.db_url}}
            for p in self.pre:
                nb, res = p(nb, res)
        except Exception as err:  # noqa: BLE001 - nbgrader will fail on it too, and say why
            return {"error": f"nbgrader could not prepare this notebook: {type(err).__name__}: {err}"}
        sha = judge.submission_sha256(nb)
        cases = judge.make_plan(self.declared, self.secret, student, self.lab, sha)
        return {"sha": sha, "cases": [asdict(c) for c in cases]}


# ----------------------------------------------------------------------------- the worker side
_SETUP: dict = {}


def run_job(job: dict, kit: bytes, settings: dict) -> GradeResult:
    """One job on a Dask worker: unpack the kit (once), grade, return the result with its files."""
    from . import worker

    base = Path(settings["workspace"]) if settings.get("local") else Path(tempfile.gettempdir())
    if "ws" not in _SETUP:
        base.mkdir(parents=True, exist_ok=True)
        ws = Path(tempfile.mkdtemp(prefix=f"dgm-worker-{os.getpid()}-", dir=base))
        worker.setup_process({**settings, "workspace": str(ws)})
        _SETUP["ws"] = ws
    ws = _SETUP["ws"]
    try:
        from distributed import get_worker

        w = get_worker()
        w.log_event(TOPIC, {"key": job["key"], "student": job["student"], "worker": w.address,
                            "pid": os.getpid(), "time": time.time()})
    except Exception:  # noqa: BLE001 - no event: only the hard timeout is lost
        pass
    try:
        return worker.grade_one(job, {**settings, "workspace": str(ws)}, unpack(kit, ws))
    except Exception as err:  # noqa: BLE001 - report, never take the batch down
        return GradeResult.failed(job["student"], settings["lab"], f"grader error: {type(err).__name__}: {err}")


# ----------------------------------------------------------------------------- clusters
@contextlib.contextmanager
def cluster(workers: int = 2, scheduler: str | None = None, kind: str = "local", env: dict | None = None):
    """A ``distributed.Client``: on ``scheduler`` when given, else a new ``kind`` cluster of ``workers``."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout=30) as client:
            yield client
        return
    if kind == "slurm":
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError:
            raise SystemExit("--cluster slurm needs dask-jobqueue: pip install 'dgm-course[grading,slurm]' "
                             "(configure it in ~/.config/dask/jobqueue.yaml; docs/grading.md)") from None
        with SLURMCluster() as c, Client(c) as client:  # cores, memory, queue, ... from jobqueue.yaml
            c.scale(n=workers)
            yield client
        return
    if kind != "local":
        raise SystemExit(f"unknown --cluster {kind!r} (local or slurm)")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0", memory_limit=0, silence_logs=logging.ERROR,
                      env=env or {}) as c, Client(c) as client:
        yield client


def _restart(client, info: dict) -> None:
    """Stop the job running on ``info['worker']``: restart that worker (its nanny starts a new one)."""
    try:
        client.restart_workers([info["worker"]], timeout=60, raise_for_error=True)
        return
    except Exception:  # noqa: BLE001 - no nanny: kill it when it is on this machine
        pass
    host = info["worker"].split("://")[-1].rsplit(":", 1)[0]
    if host in ("127.0.0.1", "localhost", os.uname().nodename):
        with contextlib.suppress(OSError):
            os.kill(int(info["pid"]), signal.SIGKILL)


def run(client, jobs: Iterable[dict], settings: dict, kit: bytes, hard_timeout: float,
        window: int | None = None) -> Iterator[GradeResult]:
    """Submit ``jobs`` (an iterator: read lazily) with at most ``window`` in flight; yield results."""
    from distributed import wait

    lab = settings["lab"]
    nthreads = sum(client.nthreads().values()) or 1
    window = window or max(2, 2 * nthreads)
    started: dict = {}
    lock = threading.Lock()

    def on_start(event):
        msg = event[1] if isinstance(event, tuple) else event
        if isinstance(msg, dict) and "key" in msg:
            with lock:
                started[msg["key"]] = msg

    client.subscribe_topic(TOPIC, on_start)
    todo = iter(jobs)
    pending: dict = {}
    batch = uuid.uuid4().hex[:8]

    def top_up():
        while len(pending) < window:
            job = next(todo, None)
            if job is None:
                return
            job = {**job, "key": f"dgm-{lab}-{job['student']}-{batch}"}
            fut = client.submit(run_job, job, kit, settings, key=job["key"], pure=False)
            pending[fut] = (job["student"], time.time())
            # the job (the notebook's bytes) now lives in the scheduler's hands; drop ours
            del job

    try:
        top_up()
        while pending:
            try:
                done, _ = wait(list(pending), timeout=1.0, return_when="FIRST_COMPLETED")
            except Exception:  # noqa: BLE001 - distributed raises TimeoutError (its own or the builtin)
                done = set()
            out = []
            for fut in done:
                student, _ = pending.pop(fut)
                if fut.status == "finished":
                    res = fut.result()
                else:
                    err = fut.exception() if fut.status == "error" else None
                    why = f"{type(err).__name__}: {err}" if err is not None else fut.status
                    res = GradeResult.failed(student, lab, f"the grading worker crashed ({why[:200]})",
                                             worker_failed=True)
                fut.release()
                out.append(res)
            now = time.time()
            for fut, (student, _) in list(pending.items()):
                with lock:
                    info = started.get(fut.key)
                if info and now - info["time"] > hard_timeout:
                    pending.pop(fut)
                    fut.cancel()
                    _restart(client, info)
                    out.append(GradeResult.failed(student, lab, f"grading did not finish within {hard_timeout:.0f} s "
                                                  "and was stopped", now - info["time"], worker_failed=True))
            top_up()  # hand out the next jobs before the caller spends time on these results
            yield from out
    finally:
        for fut in pending:
            fut.cancel()
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(TOPIC)


def run_pool(jobs: Iterable[dict], settings: dict, kit: Path, workers: int, hard_timeout: float):
    """The hand-written process pool (:mod:`.pool`), kept for ``--engine pool`` and the benchmark."""
    from . import pool

    return pool.run(jobs, {**settings, "kit": str(kit)}, workers, hard_timeout=hard_timeout)


def dumps_plan(plan: dict) -> str:
    return json.dumps(plan)
