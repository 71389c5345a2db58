r"""N grading workers (separate processes) with a hard deadline per submission.

Each worker grades one submission at a time (:func:`dgm.grading.worker.grade_one`). A worker that
exceeds ``hard_timeout`` seconds on one submission is killed (its kernel dies with it) and
replaced; that student gets a result that says so. Results are yielded as they arrive.
"""
from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.connection import wait
from typing import Iterable, Iterator

from .result import GradeResult
from .worker import worker_main


class _Worker:
    def __init__(self, ctx, settings: dict):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, settings), daemon=True)
        self.proc.start()
        child.close()
        self.job: dict | None = None
        self.started = 0.0

    def give(self, job: dict) -> None:
        self.job, self.started = job, time.monotonic()
        self.conn.send(job)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def run(jobs: Iterable[dict], settings: dict, workers: int, hard_timeout: float) -> Iterator[GradeResult]:
    ctx = mp.get_context("spawn")
    todo = list(jobs)
    if not todo:
        return
    pool = [_Worker(ctx, settings) for _ in range(max(1, min(workers, len(todo))))]
    try:
        while todo or any(w.job for w in pool):
            for w in pool:
                if w.job is None and todo:
                    w.give(todo.pop(0))
            busy = [w for w in pool if w.job is not None]
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=1.0)
            for i, w in enumerate(pool):
                if w.job is None:
                    continue
                result = None
                if w.conn in ready:
                    try:
                        result = w.conn.recv()
                    except (EOFError, OSError):
                        result = None
                elapsed = time.monotonic() - w.started
                if result is None and (w.proc.sentinel in ready or not w.proc.is_alive()):
                    result = _failed(w.job, settings, "the grading worker crashed", elapsed)
                elif result is None and elapsed > hard_timeout:
                    result = _failed(w.job, settings,
                                     f"grading did not finish within {hard_timeout:.0f} s and was stopped", elapsed)
                if result is None:
                    continue
                crashed = result.worker_failed
                w.job = None
                if crashed:
                    w.kill()
                    pool[i] = w = _Worker(ctx, settings)
                if todo:  # hand out the next job before the caller spends time on this result
                    w.give(todo.pop(0))
                yield result
    finally:
        for w in pool:
            if w.proc.is_alive() and w.job is None:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
            w.proc.join(10)
            if w.proc.is_alive():
                w.kill()


def _failed(job: dict, settings: dict, why: str, elapsed: float) -> GradeResult:
    return GradeResult.failed(job["student"], settings["lab"], why, elapsed, worker_failed=True)
