r"""``dgm-grade`` — grade a whole class's submissions of one lab with nbgrader, in parallel.

    dgm-grade 01_autoencoder path/to/submissions/            # a folder of .ipynb files
    dgm-grade 01_autoencoder canvas_export.zip -j 4          # an LMS zip export
    make grade ARGS="01_autoencoder export.zip -j 4"

Steps: collect the files and map them to student ids (unmatched files are listed); pre-validate
each notebook (empty, invalid JSON, wrong lab → zero with a reason; Colab format normalised);
autograde with N workers, each in a scratch copy of the course, under per-cell and per-notebook
time limits and a memory limit; import every grade into the course gradebook one at a time;
write feedback HTML (hidden tests removed), a grades CSV and one score histogram per test cell;
print a summary and one line per student who lost points or could not be graded, and why.
Re-running with the same inputs gives the same grades. Details and the security model: docs/grading.md.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .course import Course
from .grading import book, collect
from .grading.result import NOT_GRADED, GradeResult


def parse(argv=None):
    ap = argparse.ArgumentParser(prog="dgm-grade", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lab", help="lab (assignment) id, e.g. 01_autoencoder")
    ap.add_argument("submissions", type=Path, help="folder of submissions or an LMS .zip export")
    ap.add_argument("--course", type=Path, default=None, help="nbgrader course root (default: ./course)")
    ap.add_argument("-j", "--workers", type=int, default=2, help="parallel grading workers (default 2)")
    ap.add_argument("--cell-timeout", type=int, default=None, help="seconds per cell (default: course config)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per notebook (default 900)")
    ap.add_argument("--memory", type=int, default=4096, help="MB of memory per notebook (default 4096)")
    ap.add_argument("--output-limit", type=int, default=200_000, help="characters one cell may print")
    ap.add_argument("--regex", default=None, help="regex with (?P<student_id>...) applied to file paths")
    ap.add_argument("--out", type=Path, default=None, help="CSV/plots/report folder (default: <course>/exports)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch workspace (for debugging)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g = ap.add_argument_group("engine (docs/grading.md: grading at scale)")
    g.add_argument("--engine", choices=("dask", "pool"), default="dask",
                   help="dask (default) or the old hand-written process pool (for comparison)")
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="an existing Dask scheduler")
    g.add_argument("--cluster", choices=("local", "slurm"), default="local",
                   help="local: a LocalCluster of -j processes (default); slurm: dask-jobqueue "
                        "(~/.config/dask/jobqueue.yaml), -j workers")
    g.add_argument("--window", type=int, default=None, help="jobs in flight (default 2 x workers)")
    g.add_argument("--force", action="store_true", help="regrade every submission, changed or not")
    g.add_argument("--db-url", default=None, help="the gradebook's SQLAlchemy URL (default: $DGM_DB_URL, "
                                                  "else the course config's, else <course>/gradebook.db)")
    g.add_argument("--lms", choices=("canvas", "moodle"), action="append", default=[],
                   help="also write the grade-import CSV of this LMS (repeatable)")
    g.add_argument("--canvas-assignment-id", default=None,
                   help="Canvas assignment id for the CSV column '<lab> (<id>)' (see docs/grading.md)")
    g.add_argument("--moodle-id", choices=("idnumber", "username", "email"), default="idnumber",
                   help="what the student ids are in Moodle (the CSV's identifier column)")
    return ap.parse_args(argv)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def grade(args) -> dict:
    """Run the whole batch; returns {student: (status, reason)} (also printed)."""
    import nbformat
    from nbgrader.api import Gradebook
    from tqdm.auto import tqdm

    from .grading import engine

    course = Course(args.course.resolve()) if args.course else Course.find()
    lab = args.lab
    if not course.source(lab).exists():
        raise SystemExit(f"{course.source(lab)} not found (labs: {', '.join(course.labs())})")
    if args.db_url:
        os.environ[book.DB_ENV] = args.db_url  # nbgrader (generate_assignment) reads it through the config
    url = book.db_url(course.root)
    book.ensure_assignment(course.root, lab)
    info = book.lab_info(course.root, lab)
    course.secret()  # created here (mode 600); it never leaves this process (the plans do)
    ws = Path(tempfile.mkdtemp(prefix="dgm-grade-"))
    t0 = time.perf_counter()
    try:
        subs, unmatched = collect.gather(args.submissions.resolve(), ws, lab, args.regex)
        others = book.other_labs(course.root, lab)
        fp = book.fingerprint(course.root, lab)
        kit = engine.build_kit(course, lab, ws / "kit")
        planner = engine.Planner(course, lab, kit)
        results: list[GradeResult] = []
        with Gradebook(url) as gb:  # only this process writes the real gradebook
            done = book.graded_state(gb, lab)
            todo = []
            for sub in subs:
                sub.sha = sha256(sub.path)
                prev = done.get(sub.student)
                if not args.force and prev and prev[:2] == (sub.sha, fp) and prev[2]:
                    old = GradeResult.from_json(prev[2])
                    if not old.worker_failed:  # a crashed or stopped worker is tried again
                        old.skipped = True
                        results.append(old)
                        continue
                todo.append(sub)
            by_student = {s.student: s for s in todo}

            def commit(res: GradeResult) -> None:
                sub = by_student[res.student]
                res.notes, res.lms_id = list(sub.notes), sub.lms_id
                book.import_result(course.root, lab, res, gb, (sub.sha, fp))  # committed at once
                res.files = {}  # written: drop the bytes
                results.append(res)

            def jobs():
                """Validate, plan and hand out one submission at a time (nothing kept in memory)."""
                for sub in todo:
                    collect.validate(sub, lab, info["cells"], others, info["tests"])
                    if sub.problem:
                        commit(GradeResult.failed(sub.student, lab, sub.problem))
                        continue
                    data = nbformat.writes(sub.nb).encode()
                    sub.nb = None
                    dest = course.submitted(sub.student, lab) / f"{lab}.ipynb"
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(data)
                    yield {"student": sub.student, "nb": data, "plan": planner.plan(data, sub.student)}

            skipped = len(results)
            if skipped:
                print(f"skipped {skipped} unchanged submission(s) (already graded with this release; "
                      "--force regrades them)", flush=True)
            settings = {"workspace": str(ws), "lab": lab, "cell_timeout": args.cell_timeout,
                        "notebook_timeout": args.timeout, "memory_mb": args.memory,
                        "output_limit": args.output_limit}
            bar = tqdm(total=len(todo), desc=f"grading {lab}", unit="nb", disable=args.quiet or not todo,
                       file=sys.stderr)
            hard = args.timeout + 180
            workers = args.workers
            if args.engine == "pool":
                stream = engine.run_pool(list(jobs()), {**settings, "secret_file": str(course.secret_file)},
                                         kit, args.workers, hard)
                ctx = None
            else:
                local = not args.scheduler and args.cluster == "local"
                if local:  # same machine: a plan mismatch may fall back to the secret file
                    settings.update(local=True, secret_file=str(course.secret_file))
                ctx = engine.cluster(args.workers, args.scheduler, args.cluster,
                                     env={"DGM_FAST": os.environ["DGM_FAST"]} if "DGM_FAST" in os.environ else None)
                client = ctx.__enter__()
                workers = sum(client.nthreads().values()) or args.workers
                stream = engine.run(client, jobs(), settings, engine.pack(kit), hard, args.window)
            try:
                n_graded = 0
                for res in stream:
                    commit(res)
                    n_graded += 1
                    bar.update(1)
            finally:
                if ctx is not None:
                    ctx.__exit__(None, None, None)
            bar.close()
        wall = time.perf_counter() - t0
        args.workers = workers
        return _report(course, lab, info, results, unmatched, args, wall, n_graded)
    finally:
        if args.keep:
            print(f"scratch workspace kept in {ws}")
        else:
            shutil.rmtree(ws, ignore_errors=True)


def _report(course: Course, lab, info, results: list[GradeResult], unmatched, args, wall, n_jobs) -> dict:
    from .grading import lms, report

    by = {r.student: r for r in results}
    table = book.scores(course.root, lab, sorted(by))
    tests = [(n, m) for n, m, t in info["graded"] if t == "code"]
    total = sum(m for _, m in tests)
    status = {}
    for s, r in sorted(by.items()):
        got = sum(table[s].get(n) or 0 for n, _ in tests)
        failed = r.status == NOT_GRADED
        why = [r.reason] if failed else [f"{n}: {t}" for n, t in sorted(r.reasons.items())]
        why += r.notes + r.incidents
        state = NOT_GRADED if failed else ("full marks" if got == total else f"{got:g}/{total:g}")
        status[s] = (state, "; ".join(why))
    csv_path, pngs = book.export((args.out or course.exports).resolve(), lab, info["graded"], table, status, by)
    print(f"\n{lab}: {len(by)} submissions, autograded out of {total:g} points")
    print(f"{'test cell':<32}{'max':>5}{'mean':>7}{'full':>6}{'zero':>6}")
    for n, m in tests:
        vals = [table[s].get(n) or 0 for s in table]
        print(f"{n:<32}{m:>5g}{sum(vals) / max(1, len(vals)):>7.2f}{sum(v == m for v in vals):>6}"
              f"{sum(v == 0 for v in vals):>6}")
    secs = [r.seconds for r in results if r.seconds and not r.skipped]
    if secs:
        print(f"time: {wall:.1f} s wall for {n_jobs} notebooks with {args.workers} workers "
              f"({wall / max(1, n_jobs):.1f} s/notebook; {sum(secs) / len(secs):.1f} s each on average)")
    print(f"grades: {csv_path}\nhistograms: {', '.join(p.name for p in pngs)} in {csv_path.parent}")
    print(f"feedback: {course.root / 'feedback'}/<student>/{lab}/{lab}.html")
    html = report.write(csv_path.parent / f"{lab}_report.html", lab, info["graded"], table, status, by,
                        unmatched=unmatched, wall=wall, n_graded=n_jobs, workers=args.workers)
    print(f"class report: {html}")
    for system in args.lms:
        path = lms.write(system, csv_path.parent, lab, table, info["graded"], by,
                         canvas_assignment_id=args.canvas_assignment_id, moodle_id=args.moodle_id)
        print(f"{system} grade import: {path}")
    ran = [r for r in results if r.sandboxed is not None]
    unboxed = sorted({r.sandbox_reason for r in ran if not r.sandboxed})
    if unboxed:
        print(f"unsandboxed: {'; '.join(unboxed)} — {sum(not r.sandboxed for r in ran)} notebook(s) ran "
              "without the sandbox (docs/grading.md)")
    elif ran:
        print(f"sandboxed: all {len(ran)} kernels ({ran[0].sandbox_reason})")
    for f in unmatched:
        print(f"UNMATCHED {f}")
    lost = [(s, st) for s, st in status.items() if st[0] != "full marks"]
    if lost:
        print(f"\n{len(lost)} student(s) without full marks:")
    for s, (state, why) in lost:
        print(f"  {s}: {state} — {why}")
    flagged = [r for _, r in sorted(by.items()) if r.integrity and r.integrity.get("flags")]
    if flagged:
        print(f"\nintegrity flags ({len(flagged)} student(s); scores unchanged — review by hand):")
    for r in flagged:
        where = ", ".join(r.integrity["flags"][:4]) + (" …" if len(r.integrity["flags"]) > 4 else "")
        print(f"  integrity {r.student}: {r.integrity.get('summary', '')} ({where})")
    return status


def main(argv=None) -> int:
    grade(parse(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
