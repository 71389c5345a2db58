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
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .grading import book, collect, pool

_CHECKS = re.compile(r"from\s+dgm\.checks\s+import\s+(\w+)\s+as\s+(\w+)")


def _default_course() -> Path:
    for base in (Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]):
        if (base / "course" / "nbgrader_config.py").exists():
            return base / "course"
    return Path.cwd()


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


def _checks_of(course: Path, lab: str) -> tuple[str, str]:
    src = (course / "source" / lab / f"{lab}.ipynb").read_text()
    m = _CHECKS.search(src.replace("\\n", "\n"))
    return (m.group(1), m.group(2)) if m else ("", "")


def grade(args) -> dict:
    """Run the whole batch; returns {student: (status, reason)} (also printed)."""
    import nbformat
    from tqdm.auto import tqdm

    course = (args.course or _default_course()).resolve()
    lab = args.lab
    if not (course / "source" / lab / f"{lab}.ipynb").exists():
        raise SystemExit(f"{course}/source/{lab}/{lab}.ipynb not found (labs: "
                         f"{', '.join(p.name for p in sorted((course / 'source').glob('*')))})")
    book.ensure_assignment(course, lab)
    info = book.lab_info(course, lab)
    ws = Path(tempfile.mkdtemp(prefix="dgm-grade-"))
    t0 = time.perf_counter()
    try:
        subs, unmatched = collect.gather(args.submissions.resolve(), ws, lab, args.regex)
        others = book.other_labs(course, lab)
        for sub in subs:
            collect.validate(sub, lab, info["cells"], others, info["tests"])
        jobs, results = [], []
        for sub in subs:
            if sub.problem:
                results.append({"student": sub.student, "error": sub.problem, "grades": [], "comments": [],
                                "reasons": {}, "incidents": [], "seconds": 0.0})
                continue
            dest = course / "submitted" / sub.student / lab / f"{lab}.ipynb"
            dest.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(sub.nb, dest)
            jobs.append({"student": sub.student, "notebook": str(dest)})
        shutil.copy(course / "gradebook.db", ws / "template.db")
        checks, alias = _checks_of(course, lab)
        settings = {"workspace": str(ws), "lab": lab, "source_dir": str(course / "source" / lab),
                    "config_file": str(course / "nbgrader_config.py"), "template_db": str(ws / "template.db"),
                    "cell_timeout": args.cell_timeout, "notebook_timeout": args.timeout,
                    "memory_mb": args.memory, "output_limit": args.output_limit,
                    "guard_key": "_dgm_guard_" + secrets.token_hex(8), "checks": checks, "alias": alias}
        bar = tqdm(total=len(jobs), desc=f"grading {lab}", unit="nb", disable=args.quiet or not jobs,
                   file=sys.stderr)
        from nbgrader.api import Gradebook

        with Gradebook(book.db_url(course)) as gb:  # only this process writes the real gradebook
            for res in results:  # the notebooks that could not be graded: zeros and the reason
                book.import_result(course, lab, res, gb)
            for res in pool.run(jobs, settings, args.workers, hard_timeout=args.timeout + 180):
                book.import_result(course, lab, res, gb)  # one at a time, committed as results arrive
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


def _report(course, lab, info, results, notes, unmatched, args, wall, n_jobs) -> dict:
    by = {r["student"]: r for r in results}
    table = book.scores(course, lab, sorted(by))
    tests = [(n, m) for n, m, t in info["graded"] if t == "code"]
    total = sum(m for _, m in tests)
    status = {}
    for s, r in sorted(by.items()):
        got = sum(table[s].get(n) or 0 for n, _ in tests)
        why = [r["error"]] if r.get("error") else [f"{n}: {t}" for n, t in sorted(r["reasons"].items())]
        why += notes.get(s, []) + r.get("incidents", [])
        state = "not graded" if r.get("error") else ("full marks" if got == total else f"{got:g}/{total:g}")
        status[s] = (state, "; ".join(why))
    csv_path, pngs = book.export((args.out or course / "exports").resolve(), lab, info["graded"], table, status)
    print(f"\n{lab}: {len(by)} submissions, autograded out of {total:g} points")
    print(f"{'test cell':<32}{'max':>5}{'mean':>7}{'full':>6}{'zero':>6}")
    for n, m in tests:
        vals = [table[s].get(n) or 0 for s in table]
        print(f"{n:<32}{m:>5g}{sum(vals) / max(1, len(vals)):>7.2f}{sum(v == m for v in vals):>6}"
              f"{sum(v == 0 for v in vals):>6}")
    secs = [r["seconds"] for r in results if r.get("seconds")]
    if secs:
        print(f"time: {wall:.1f} s wall for {n_jobs} notebooks with {args.workers} workers "
              f"({wall / max(1, n_jobs):.1f} s/notebook; {sum(secs) / len(secs):.1f} s each on average)")
    print(f"grades: {csv_path}\nhistograms: {', '.join(p.name for p in pngs)} in {csv_path.parent}")
    print(f"feedback: {course / 'feedback'}/<student>/{lab}/{lab}.html")
    for f in unmatched:
        print(f"UNMATCHED {f}")
    lost = [(s, st) for s, st in status.items() if st[0] != "full marks"]
    if lost:
        print(f"\n{len(lost)} student(s) without full marks:")
    for s, (state, why) in lost:
        print(f"  {s}: {state} — {why}")
    return status


def main(argv=None) -> int:
    grade(parse(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
