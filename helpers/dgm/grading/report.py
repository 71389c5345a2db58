r"""The class report: one self-contained HTML file per lab (``<exports>/<lab>_report.html``).

Opens offline: inline CSS and inline SVG charts, no script, no external resource. Every string that
comes from a submission or a student (ids, reasons, flags, messages) goes through ``html.escape``.

Sections: the score distribution; per part the share of full, partial and zero marks; the named
mistakes ranked by how many students made them (counted from the stable mistake ids of the judge's
verdicts — :meth:`GradeResult.mistakes` — never from message text), each with its message; the
integrity flags to review; who was not graded and why (and unmatched files); seconds per notebook
and the batch's throughput.
"""
from __future__ import annotations

import html
from collections import Counter
from pathlib import Path

from .result import NOT_GRADED

CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f4f4f4}td.n{text-align:right}.bar rect{fill:#4a78b5}.full{fill:#3c9a5f}.part{fill:#e0a526}
.zero{fill:#c8463d}.muted{color:#777}code{background:#f4f4f4;padding:0 .2em}"""


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def mistake_counts(results: dict) -> list[tuple[str, str, int, str]]:
    """[(cell, mistake id, students, message)] ranked by students (most first)."""
    count: Counter = Counter()
    message: dict = {}
    for res in results.values():
        for cell, ids in res.mistakes().items():
            for mid in ids:
                count[(cell, mid)] += 1
                if (cell, mid) not in message:
                    message[(cell, mid)] = next((v.message for v in res.verdicts.get(cell, [])
                                                 if not v.passed and v.mistake == mid), "")
    return [(c, m, n, message[(c, m)]) for (c, m), n in sorted(count.items(), key=lambda kv: (-kv[1], kv[0]))]


def part_shares(table: dict, tests: list) -> list[tuple[str, float, int, int, int]]:
    """[(test cell, max, full, partial, zero)] over the students in ``table``."""
    out = []
    for n, m in tests:
        vals = [table[s].get(n) or 0 for s in table]
        full = sum(v >= m for v in vals)
        zero = sum(v <= 0 for v in vals)
        out.append((n, m, full, len(vals) - full - zero, zero))
    return out


def histogram_svg(values: list[float], top: float, width: int = 520, height: int = 180) -> str:
    bins = list(range(int(top) + 1)) if top == int(top) and top <= 40 else [top * i / 10 for i in range(11)]
    counts = [0] * len(bins)
    for v in values:
        i = min(range(len(bins)), key=lambda k: abs(bins[k] - v))
        counts[i] += 1
    peak = max(counts + [1])
    bw = (width - 40) / len(bins)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}" class="bar" '
             f'role="img" aria-label="score distribution">']
    for i, (b, c) in enumerate(zip(bins, counts)):
        h = (height - 20) * c / peak
        x = 30 + i * bw
        parts.append(f'<rect x="{x + 2:.1f}" y="{height - h:.1f}" width="{bw - 4:.1f}" height="{h:.1f}">'
                     f'<title>{b:g} points: {c} students</title></rect>')
        parts.append(f'<text x="{x + bw / 2:.1f}" y="{height + 15}" font-size="11" text-anchor="middle">{b:g}</text>')
        if c:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{height - h - 3:.1f}" font-size="10" '
                         f'text-anchor="middle">{c}</text>')
    parts.append(f'<line x1="28" y1="{height}" x2="{width - 8}" y2="{height}" stroke="#999"/></svg>')
    return "".join(parts)


def shares_svg(shares: list, width: int = 520) -> str:
    row = 22
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row * len(shares) + 4}" '
             'role="img" aria-label="full, partial and zero marks per part">']
    for i, (n, _m, full, part, zero) in enumerate(shares):
        total = max(1, full + part + zero)
        x, y = 200.0, i * row + 2
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{esc(n)}</text>')
        for cls, k in (("full", full), ("part", part), ("zero", zero)):
            w = (width - 210) * k / total
            parts.append(f'<rect class="{cls}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 6}">'
                         f'<title>{cls}: {k}</title></rect>')
            x += w
    parts.append("</svg>")
    return "".join(parts)


def render(lab: str, graded: list, table: dict, status: dict, results: dict, unmatched=(), wall: float = 0.0,
           n_graded: int = 0, workers: int = 0) -> str:
    tests = [(n, m) for n, m, t in graded if t == "code"]
    top = sum(m for _, m in tests)
    totals = {s: sum(table[s].get(n) or 0 for n, _ in tests) for s in table}
    ng = sorted((s, r.reason) for s, r in results.items() if r.status == NOT_GRADED)
    h = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(lab)}: class report</title>"
         f"<style>{CSS}</style></head><body>", f"<h1>{esc(lab)}: class report</h1>"]
    mean = sum(totals.values()) / max(1, len(totals))
    h.append(f"<p>{len(table)} students; autograded out of {top:g} points; mean {mean:.2f}; "
             f"full marks {sum(v >= top for v in totals.values())}; not graded {len(ng)}.</p>")
    h.append("<h2>Score distribution</h2>" + histogram_svg(list(totals.values()), top))
    shares = part_shares(table, tests)
    h.append("<h2>Marks per part</h2>" + shares_svg(shares))
    h.append("<table><tr><th>part</th><th>max</th><th>full</th><th>partial</th><th>zero</th></tr>")
    for n, m, full, part, zero in shares:
        k = max(1, full + part + zero)
        h.append(f"<tr><td><code>{esc(n)}</code></td><td class=n>{m:g}</td><td class=n>{full} ({full / k:.0%})</td>"
                 f"<td class=n>{part} ({part / k:.0%})</td><td class=n>{zero} ({zero / k:.0%})</td></tr>")
    h.append("</table>")
    h.append("<h2>Mistakes, most frequent first</h2>")
    ranked = mistake_counts(results)
    if ranked:
        h.append("<table><tr><th>students</th><th>part</th><th>mistake</th><th>message</th></tr>")
        for cell, mid, n, msg in ranked:
            h.append(f"<tr><td class=n>{n}</td><td><code>{esc(cell)}</code></td><td><code>{esc(mid)}</code></td>"
                     f"<td>{esc(msg)}</td></tr>")
        h.append("</table>")
    else:
        h.append("<p class=muted>No named mistakes.</p>")
    flagged = sorted((s, r.integrity) for s, r in results.items() if r.integrity and r.integrity.get("flags"))
    h.append(f"<h2>Integrity flags to review ({len(flagged)})</h2>")
    if flagged:
        h.append("<p class=muted>A flag never changes a score.</p><table><tr><th>student</th><th>summary</th>"
                 "<th>where</th></tr>")
        for s, info in flagged:
            h.append(f"<tr><td>{esc(s)}</td><td>{esc(info.get('summary', ''))}</td>"
                     f"<td>{esc(', '.join(map(str, info.get('flags', []))))}</td></tr>")
        h.append("</table>")
    h.append(f"<h2>Not graded ({len(ng)})</h2>")
    if ng or unmatched:
        h.append("<table><tr><th>student / file</th><th>why</th></tr>")
        for s, why in ng:
            h.append(f"<tr><td>{esc(s)}</td><td>{esc(why)}</td></tr>")
        for u in unmatched:
            f, _, why = str(u).partition(": ")
            h.append(f"<tr><td>{esc(f)}</td><td>unmatched file: {esc(why)}</td></tr>")
        h.append("</table>")
    secs = sorted(r.seconds for r in results.values() if r.seconds and not r.skipped)
    h.append("<h2>Time</h2>")
    if secs:
        med = secs[len(secs) // 2]
        h.append(f"<p>{len(secs)} notebooks graded in this run: {sum(secs) / len(secs):.1f} s each on average "
                 f"(median {med:.1f} s, slowest {secs[-1]:.1f} s) inside a worker; "
                 f"{n_graded} in {wall:.1f} s wall with {workers} workers = "
                 f"<b>{n_graded / max(wall, 1e-9):.2f} notebooks/s</b>.</p>")
    skipped = sum(1 for r in results.values() if r.skipped)
    if skipped:
        h.append(f"<p>{skipped} unchanged submission(s) were not regraded in this run.</p>")
    h.append("</body></html>\n")
    return "\n".join(h)


def write(path: Path, lab: str, graded: list, table: dict, status: dict, results: dict, **kw) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(lab, graded, table, status, results, **kw), encoding="utf-8")
    tmp.replace(path)
    return path
