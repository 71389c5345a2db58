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
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .course import Course
from .grading import book, collect, pool
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
    ap.add_argument("--out", type=Path, default=None, help="CSV/plots folder (default: <course>/exports)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch workspace (for debugging)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def grade(args) -> dict:
    """Run the whole batch; returns {student: (status, reason)} (also printed)."""
    import nbformat
    from tqdm.auto import tqdm

    course = Course(args.course.resolve()) if args.course else Course.find()
    lab = args.lab
    if not course.source(lab).exists():
        raise SystemExit(f"{course.source(lab)} not found (labs: {', '.join(course.labs())})")
    book.ensure_assignment(course.root, lab)
    info = book.lab_info(course.root, lab)
    course.secret()  # created here (mode 600) before any worker needs it
    ws = Path(tempfile.mkdtemp(prefix="dgm-grade-"))
    t0 = time.perf_counter()
    try:
        subs, unmatched = collect.gather(args.submissions.resolve(), ws, lab, args.regex)
        others = book.other_labs(course.root, lab)
        for sub in subs:
            collect.validate(sub, lab, info["cells"], others, info["tests"])
        jobs, results = [], []
        for sub in subs:
            if sub.problem:
                results.append(GradeResult.failed(sub.student, lab, sub.problem))
                continue
            dest = course.submitted(sub.student, lab) / f"{lab}.ipynb"
            dest.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(sub.nb, dest)
            jobs.append({"student": sub.student, "notebook": str(dest)})
        shutil.copy(course.gradebook, ws / "template.db")
        settings = {"workspace": str(ws), "lab": lab, "course": str(course.root),
                    "template_db": str(ws / "template.db"), "secret_file": str(course.secret_file),
                    "cell_timeout": args.cell_timeout, "notebook_timeout": args.timeout,
                    "memory_mb": args.memory, "output_limit": args.output_limit}
        bar = tqdm(total=len(jobs), desc=f"grading {lab}", unit="nb", disable=args.quiet or not jobs,
                   file=sys.stderr)
        from nbgrader.api import Gradebook

        with Gradebook(course.db_url) as gb:  # only this process writes the real gradebook
            for res in results:  # the notebooks that could not be graded: zeros and the reason
                book.import_result(course.root, lab, res, gb)
            for res in pool.run(jobs, settings, args.workers, hard_timeout=args.timeout + 180):
                book.import_result(course.root, lab, res, gb)  # one at a time, committed as results arrive
                results.append(res)
                bar.update(1)
        bar.close()
        wall = time.perf_counter() - t0
        notes = {s.student: s.notes for s in subs}
        return _report(course, lab, info, results, notes, unmatched, args, wall, len(jobs))
    finally:
        if args.keep:
            print(f"scratch workspace kept in {ws}")
        else:
            shutil.rmtree(ws, ignore_errors=True)


def _report(course: Course, lab, info, results: list[GradeResult], notes, unmatched, args, wall, n_jobs) -> dict:
    by = {r.student: r for r in results}
    table = book.scores(course.root, lab, sorted(by))
    tests = [(n, m) for n, m, t in info["graded"] if t == "code"]
    total = sum(m for _, m in tests)
    status = {}
    for s, r in sorted(by.items()):
        got = sum(table[s].get(n) or 0 for n, _ in tests)
        failed = r.status == NOT_GRADED
        why = [r.reason] if failed else [f"{n}: {t}" for n, t in sorted(r.reasons.items())]
        why += notes.get(s, []) + r.incidents
        state = NOT_GRADED if failed else ("full marks" if got == total else f"{got:g}/{total:g}")
        status[s] = (state, "; ".join(why))
    csv_path, pngs = book.export((args.out or course.exports).resolve(), lab, info["graded"], table, status, by)
    print(f"\n{lab}: {len(by)} submissions, autograded out of {total:g} points")
    print(f"{'test cell':<32}{'max':>5}{'mean':>7}{'full':>6}{'zero':>6}")
    for n, m in tests:
        vals = [table[s].get(n) or 0 for s in table]
        print(f"{n:<32}{m:>5g}{sum(vals) / max(1, len(vals)):>7.2f}{sum(v == m for v in vals):>6}"
              f"{sum(v == 0 for v in vals):>6}")
    secs = [r.seconds for r in results if r.seconds]
    if secs:
        print(f"time: {wall:.1f} s wall for {n_jobs} notebooks with {args.workers} workers "
              f"({wall / max(1, n_jobs):.1f} s/notebook; {sum(secs) / len(secs):.1f} s each on average)")
    print(f"grades: {csv_path}\nhistograms: {', '.join(p.name for p in pngs)} in {csv_path.parent}")
    print(f"feedback: {course.root / 'feedback'}/<student>/{lab}/{lab}.html")
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
