r"""Integrity scan: what in a submission's own code looks like tampering with the grading.

API::

    from dgm.grading import integrity
    result = integrity.scan(nb, release=release_nb)   # nbformat NotebookNodes; pass the release!
    result.summary()          # "ok" or "flagged: dispatch-override, reads-sources"
    result.flags              # [Flag(cls, cell, line, snippet), ...]: cell = grade_id or "#<index>"

The scan reads code, never runs it, and never changes a score by itself: it gives the instructor a
reason to look. It covers what the student can change — not locked or read-only cells (nbgrader
restores those) — and skips top-level statements the release (the student version of the lab)
already has, e.g. the setup cell's ``pip install`` fallback; without ``release`` they count too.
IPython syntax (``!cmd``, ``%magic``, ``%%cell magic``) is translated by IPython first: shell escapes
are "shell", and the code inside ``%time``/``%%capture``-like magics is scanned as well.

Flags are grouped by CLASS of tampering (:data:`RULES`, in :mod:`dgm.grading.integrity_rules`), found
through dotted names resolved through imports and aliases (``import subprocess as sp; sp.run`` is
``subprocess.run``), attribute names, file reads of sensitive paths, writes to imported names, and the lab's
graded names in its reference.
"""
from __future__ import annotations

import ast
import re
from fnmatch import translate
from functools import lru_cache

from .integrity_rules import (CODE_MAGICS, FILE_CALLS, FILE_METHODS, GLOBAL_NAMES, MAGICS, REFERENCE,
                              SAFE_SETTINGS, SENSITIVE, CLASSES, RULES, Flag, Integrity)

__all__ = ["Flag", "Integrity", "scan", "CLASSES", "RULES"]


@lru_cache(maxsize=None)
def _regex(patterns: tuple[str, ...]) -> re.Pattern:
    return re.compile("|".join(translate(p) + "|" + translate(p + ".*") for p in patterns))


def _match(path: str, patterns: tuple[str, ...]) -> bool:
    return _regex(patterns).match(path) is not None


@lru_cache(maxsize=4096)
def _source(cell: str) -> str:
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(cell)
    except Exception:  # noqa: BLE001 - no IPython, or it choked: comment out shell escapes and magics
        return re.sub(r"(?m)^(\s*)([!%])", r"\1#\2", cell)


class _TooDeep(Exception):
    pass


def _parse(src: str) -> ast.Module | None:
    r"""The cell's syntax tree; None when it is not Python (it cannot run either: nothing to flag)."""
    try:
        return ast.parse(_source(src))
    except (SyntaxError, ValueError):
        return None
    except (RecursionError, MemoryError):
        raise _TooDeep from None


class _Scanner(ast.NodeVisitor):
    r"""Flags the statements of one cell; ``alias`` maps imported names to dotted names."""

    def __init__(self, alias: dict[str, str], graded: set[str], reference: set[str], lines: list[str],
                 cell: str, out: list[Flag]):
        self.alias, self.graded, self.reference, self.lines, self.cell, self.out = (
            alias, graded, reference, lines, cell, out)

    def flag(self, cls: str, node: ast.AST) -> None:
        line = getattr(node, "lineno", 1)
        flag = Flag(cls, self.cell, line, self.lines[line - 1].strip()[:120] if 0 < line <= len(self.lines) else "")
        if flag not in self.out:
            self.out.append(flag)

    def path(self, node: ast.AST) -> str | None:
        r"""The dotted name of a Name/Attribute chain ("~x" for the student's own x), else None."""
        if isinstance(node, ast.Name):
            return self.alias.get(node.id, node.id if node.id in GLOBAL_NAMES else "~" + node.id)
        if isinstance(node, ast.Attribute):
            base = self.path(node.value)
            return None if base is None else f"{base}.{node.attr}"
        if isinstance(node, ast.Call) and self.path(node.func) in ("get_ipython", "IPython.get_ipython"):
            return "get_ipython()"
        return None

    def check_path(self, path: str, node: ast.AST) -> None:
        for cls, rule in RULES.items():
            if rule.names and _match(path, rule.names):
                self.flag(cls, node)
        if path.startswith("get_ipython().") and not _match(path, RULES["shell"].names):
            self.flag("ipython-hooks", node)
        parts = path.split(".")
        if len(parts) > 2 and ".".join(parts[:2]) in self.reference and parts[2] in self.graded:
            self.flag("uses-reference", node)
        if path.startswith("dgm.checks.") and len(parts) > 3 and not parts[3].startswith("check_"):
            self.flag("checker-internals", node)

    def check_attr(self, name: str, node: ast.AST) -> None:
        for cls, rule in RULES.items():
            if name in rule.attrs:
                self.flag(cls, node)

    # ----------------------------------------------------------------- names, attributes, imports, defs
    def visit_Name(self, node: ast.Name) -> None:
        self.check_path(self.path(node), node)
        if node.id.startswith("__"):
            self.check_attr(node.id, node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        inner = node
        while isinstance(inner, ast.Attribute):
            self.check_attr(inner.attr, node)
            inner = inner.value
        path = self.path(node)
        if path is not None and node.attr == "__dict__" and not path.startswith("~"):
            self.flag("monkeypatch", node)  # torch.__dict__ / checks.__dict__: a module's namespace, writable
        if path is not None:
            self.check_path(path, node)  # the whole chain at once; its Name is not visited again
        else:
            self.visit(node.value)

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.check_path(a.name, node)
            self.rebinds(a.asname or a.name.split(".")[0], node, a.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for a in node.names:
            self.check_path(f"{node.module or ''}.{a.name}", node)
            self.rebinds(a.asname or a.name, node, f"{node.module}.{a.name}")
            if a.name == "*" and node.module in self.reference:
                self.flag("uses-reference", node)

    def visit_FunctionDef(self, node) -> None:
        self.check_attr(node.name, node)
        self.rebinds(node.name, node)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and "vnd.dgm" in node.value:
            self.flag("forged-output", node)

    # ----------------------------------------------------------------- calls
    def visit_Call(self, node: ast.Call) -> None:
        func, args = self.path(node.func), node.args
        name = node.func.attr if isinstance(node.func, ast.Attribute) else func
        consts = [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if func in ("get_ipython().run_line_magic", "get_ipython().run_cell_magic") and consts:
            return self.magic(consts[0], consts[-1], node)
        if func in ("getattr", "setattr", "delattr", "hasattr") and len(args) >= 2:
            target = self.path(args[0])
            if isinstance(args[1], ast.Constant) and isinstance(args[1].value, str):
                self.check_attr(args[1].value, node)
                if target is not None:
                    self.check_path(f"{target}.{args[1].value}", node)
            elif target in self.reference:  # getattr(dgm.vae, "repa" + "rameterize")
                self.flag("uses-reference", node)
            if func in ("setattr", "delattr"):
                self.patch(args[0], node)
        if func == "vars" and args and not (self.path(args[0]) or "~").startswith("~"):
            self.flag("monkeypatch", node)  # vars(torch): the module's namespace
        if (func or "").endswith("display") and (any(isinstance(a, ast.Dict) for a in args) or any(
                k.arg == "raw" and not (isinstance(k.value, ast.Constant) and not k.value.value)
                for k in node.keywords)):
            self.flag("forged-output", node)
        if (func is not None and _match(func, FILE_CALLS)) or name in FILE_METHODS:
            if any(isinstance(c, ast.Constant) and isinstance(c.value, str) and SENSITIVE.search(c.value)
                   for c in ast.walk(node)):
                self.flag("reads-sources", node)
        if func is not None and func.startswith("os.environ.") and name not in ("get", "copy", "items", "keys"):
            self.flag("interpreter-hooks", node)
        self.generic_visit(node)

    def magic(self, magic: str, body: str, node: ast.AST) -> None:
        if magic in MAGICS:
            self.flag(MAGICS[magic], node)
        elif magic in CODE_MAGICS and (tree := _parse(body)) is not None:
            for stmt in tree.body:
                ast.increment_lineno(stmt, getattr(node, "lineno", 1) - 1)
                self.visit(stmt)

    # ----------------------------------------------------------------- assignments
    def patch(self, target: ast.AST, node: ast.AST) -> None:
        r"""An attribute or item of ``target`` is written: flag it when ``target`` is imported code."""
        root = target
        while isinstance(root, (ast.Attribute, ast.Subscript)):
            root = root.value
        path = self.path(target) or ""
        if path.startswith("os.environ"):
            self.flag("interpreter-hooks", node)
        elif isinstance(root, ast.Name) and (root.id in self.alias or root.id == "checks"):
            if not any(s in path for s in SAFE_SETTINGS):
                self.flag("monkeypatch", node)
        elif isinstance(root, ast.Call) and self.path(root.func) in ("globals", "vars", "locals"):
            self.flag("monkeypatch", node)

    def rebinds(self, name: str, node: ast.AST, value: str | None = None) -> None:
        if (name == "checks" or name.startswith("check_")) and not (value or "").startswith("dgm.checks."):
            self.flag("monkeypatch", node)

    def store(self, target: ast.AST, node: ast.AST) -> None:
        if isinstance(target, (ast.Tuple, ast.List)):
            for t in target.elts:
                self.store(t, node)
        elif isinstance(target, ast.Starred):
            self.store(target.value, node)
        elif isinstance(target, ast.Name):
            self.rebinds(target.id, node)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            self.patch(target.value, node)
            if isinstance(target, ast.Attribute):
                self.check_attr(target.attr, node)

    def visit_Assign(self, node) -> None:
        for t in getattr(node, "targets", None) or [node.target]:
            self.store(t, node)
        self.generic_visit(node)

    visit_AugAssign = visit_AnnAssign = visit_For = visit_AsyncFor = visit_NamedExpr = visit_Assign

    def visit_withitem(self, node: ast.withitem) -> None:
        if node.optional_vars is not None:
            self.store(node.optional_vars, node.context_expr)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for t in node.targets:
            self.store(t, node)


def _editable(cell) -> bool:
    md = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and not md.get("locked") and not (md.get("grade") and not md.get("solution"))


def _aliases(trees: list[ast.Module]) -> dict[str, str]:
    r"""Imported name → dotted name, from every import and ``x = <imported dotted name>`` in the notebook."""
    alias: dict[str, str] = {}
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.Import):
            for a in node.names:
                alias[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            alias.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    for node in (n for tree in trees for n in ast.walk(tree)):  # sp = subprocess; run = sp.run; e = eval
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            path = _Scanner(alias, set(), set(), [], "", []).path(node.value)
            if path is not None and not path.startswith("~") and path != node.targets[0].id:
                alias[node.targets[0].id] = path
    return alias


def _graded(nb) -> set[str]:
    r"""Top-level def/class names of the solution cells: what the student implements for credit."""
    names = set()
    for cell in nb.cells:
        if cell.get("cell_type") == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            tree = _parse(cell.source)
            names |= {n.name for n in (tree.body if tree else [])
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return names


def scan(nb, release=None) -> Integrity:
    r"""Scan the code cells the student can edit in ``nb`` (see the module docstring)."""
    known: set[str] = set()  # the release's top-level statements: not the student's code
    for cell in release.cells if release is not None else []:
        tree = _parse(cell.source) if cell.get("cell_type") == "code" else None
        known |= {ast.dump(s) for s in (tree.body if tree else [])}
    out: list[Flag] = []
    cells = []
    for i, c in enumerate(nb.cells):
        name = c.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"#{i}"
        try:
            cells.append((i, name, c, _parse(c.source) if c.get("cell_type") == "code" else None))
        except _TooDeep:
            if _editable(c):
                out.append(Flag("unscannable", name, 1, c.source.strip()[:120]))
    alias = _aliases([t for *_, t in cells if t is not None])
    graded = _graded(nb) | (_graded(release) if release is not None else set())
    # the lab's reference module, from the checks it imports (dgm.checks.vae → dgm.vae); the other labs'
    # reference models are course material (lab 2 trains dgm.ae's autoencoder for comparison)
    labs = {f"dgm.{v.split('.')[2]}" for v in alias.values() if v.startswith("dgm.checks.")}
    reference = (labs & set(REFERENCE)) or set(REFERENCE)
    for i, name, cell, tree in cells:
        if tree is None or not _editable(cell):
            continue
        lines = cell.source.splitlines()
        if len(lines) != len(_source(cell.source).splitlines()):  # a cell magic: show IPython's lines
            lines = _source(cell.source).splitlines()
        scanner = _Scanner(alias, graded, reference, lines, name, out)
        try:
            for stmt in tree.body:
                if ast.dump(stmt) not in known:
                    scanner.visit(stmt)
        except RecursionError:
            out.append(Flag("unscannable", name, 1, cell.source.strip()[:120]))
    return Integrity(out)
