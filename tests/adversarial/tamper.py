r"""Tampering submissions, written once and instantiated for every lab from a :class:`Target`.

Each lab attacks one graded function (``Target``): the variants below rewrite its solution cell
(and sometimes add or edit cells) so that a WRONG implementation would pass if the attack worked,
or so that the right values come from the dgm reference. Every class of :data:`driver.CLASSES` has
several variants; :func:`cases` gives each lab a rotation of them so that every lab covers every
class and every variant runs in at least one lab.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .driver import Case, test_cells


@dataclass(frozen=True)
class Target:
    lab: str
    sol: str        # grade_id of the solution cell holding the function
    test: str       # grade_id of its test cell
    fn: str         # the student's function name
    args: str       # its parameters, e.g. "x, x_hat"
    good: str       # a correct body (lines, ends with a return)
    bad: str        # a wrong body (lines, ends with a return)
    ref_mod: str    # "dgm.ae"
    ref: str        # "reconstruction_loss" (the reference function in ref_mod)
    mod: str        # the checks module, "ae"
    attr: str       # "check_reconstruction_loss"

    @property
    def later(self) -> tuple:
        """The test cells after ``test`` (all call ``checks.*``), as the lab declares them today."""
        cells = test_cells(self.lab)
        return cells[cells.index(self.test) + 1:]

    @property
    def REF(self) -> str:
        return f"{self.ref_mod}.{self.ref}"

    @property
    def call(self) -> str:
        return f"{self.REF}({self.args})"

    def define(self, body: str, name: str | None = None) -> str:
        lines = "".join(f"    {ln}\n" for ln in body.strip("\n").splitlines())
        return f"def {name or self.fn}({self.args}):\n{lines}"

    @property
    def wrong(self) -> str:
        return self.define(self.bad)

    @property
    def right(self) -> str:
        return self.define(self.good)


def _patch(t: Target) -> list[Case]:
    lose = (t.test,)
    return [
        Case("patch_allclose", "tamper", "torch.allclose/equal and dgm's close rebound to True, wrong answer",
             cells={t.sol: t.wrong + "import torch, dgm.checks._core as core\n"
                           "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
                           "core.close = lambda *a, **k: True\n"},
             lose=lose, cls="patch", targets=lose, flag="monkeypatch"),
        Case("patch_check_fn", "tamper", f"dgm.checks.{t.mod}.{t.attr} rebound to a printer, wrong answer",
             cells={t.sol: t.wrong + f"import dgm.checks.{t.mod}\n"
                           f"dgm.checks.{t.mod}.{t.attr} = lambda *a, **k: print('\u2714 passed')\n"},
             lose=lose, cls="patch", targets=lose, flag="monkeypatch"),
        Case("patch_builtins", "tamper", "builtins.print and builtins.isinstance replaced, wrong answer",
             cells={t.sol: t.wrong + "import builtins, sys\nfrom dgm.checks import Mistake\n"
                           "builtins.isinstance = lambda o, c, _i=isinstance: False if c is Mistake else _i(o, c)\n"
                           "builtins.print = lambda *a, **k: sys.stdout.write('\u2714 passed\\n')\n"},
             lose=lose, cls="patch", targets=lose, flag="interpreter-hooks"),
    ]


def _hooks(t: Target) -> list[Case]:
    lose = (t.test,)
    return [
        # the watcher is a profiler: switching it off inside the call hides the reference → right
        # answers from the reference; out of scope for the score, so the scan must flag it
        Case("hook_setprofile_reference", "tamper", "sys.setprofile(None) inside the function, then the reference",
             cells={t.sol: f"import sys, {t.ref_mod}\n" + t.define(f"sys.setprofile(None)\nreturn {t.call}")},
             lose=(), cls="hooks", targets=lose, flag="uses-reference"),
        Case("hook_settrace", "tamper", "sys.settrace swaps the checked function for the reference in run()",
             cells={t.sol: t.wrong + f"import sys, {t.ref_mod}\n"
                           "def _tracer(frame, event, arg):\n"
                           "    if event == 'call' and frame.f_code.co_name == 'run' and 'fn' in frame.f_locals:\n"
                           f"        frame.f_locals['fn'] = {t.REF}\n"
                           "    return None\n"
                           "sys.settrace(_tracer)\n"},
             lose=(t.test, *t.later), cls="hooks", targets=lose, flag="interpreter-hooks"),
        Case("hook_pre_run_cell", "tamper", "a pre_run_cell hook puts the reference in the namespace before the test",
             cells={t.sol: t.wrong + f"import {t.ref_mod}\n"
                           "def _swap(*args):\n"
                           f"    get_ipython().user_ns[{t.fn!r}] = {t.REF}\n"
                           "get_ipython().events.register('pre_run_cell', _swap)\n"},
             lose=lose, cls="hooks", targets=lose, flag="ipython-hooks"),
        Case("hook_custom_exc", "tamper", "set_custom_exc swallows every exception and prints a pass, wrong answer",
             cells={t.sol: t.wrong + "def _swallow(shell, etype, value, tb, tb_offset=None):\n"
                           "    print('\u2714 passed')\n"
                           "get_ipython().set_custom_exc((BaseException,), _swallow)\n"},
             lose=lose, cls="hooks", targets=lose, flag="ipython-hooks"),
        Case("hook_input_transformer", "tamper", "an input transformer rewrites the test cell's check call to print",
             cells={t.sol: t.wrong + "def _rewrite(lines):\n"
                           f"    return [ln.replace('checks.{t.attr}(', 'print(') for ln in lines]\n"
                           "get_ipython().input_transformers_cleanup.append(_rewrite)\n"},
             lose=lose, cls="hooks", targets=lose, flag="ipython-hooks"),
    ]


def _liar(t: Target) -> list[Case]:
    lose = (t.test,)
    bad = t.define(t.bad, "_wrong")
    return [
        Case("liar_tensor", "tamper", "a Tensor subclass whose ==, allclose and __torch_function__ say True",
             cells={t.sol: "import torch\n"
                           "class Liar(torch.Tensor):\n"
                           "    def __eq__(self, other): return True\n"
                           "    def allclose(self, *a, **k): return True\n"
                           "    @classmethod\n"
                           "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
                           "        if func in (torch.allclose, torch.equal, torch.Tensor.allclose): return True\n"
                           "        return super().__torch_function__(func, types, args, kwargs or {})\n"
                           + bad + t.define(f"return _wrong({t.args}).as_subclass(Liar)")},
             lose=lose, cls="liar", targets=lose, flag="dispatch-override"),
        Case("liar_class", "tamper", "an object whose __class__ claims torch.Tensor, wrapping a wrong answer",
             cells={t.sol: "import torch\n"
                           "class Impostor:\n"
                           "    def __init__(self, t): self._t = t\n"
                           "    @property\n"
                           "    def __class__(self): return torch.Tensor\n"
                           "    def __getattr__(self, k): return getattr(self._t, k)\n"
                           "    def __eq__(self, other): return True\n"
                           + bad + t.define(f"return Impostor(_wrong({t.args}))")},
             lose=lose, cls="liar", targets=lose),
        Case("liar_float", "tamper", "a float subclass equal to everything, wrong value",
             cells={t.sol: "class Yes(float):\n"
                           "    def __eq__(self, other): return True\n"
                           "    def __abs__(self): return Yes(0.0)\n"
                           "    def __sub__(self, other): return Yes(0.0)\n"
                           "    __rsub__ = __sub__\n"
                           "    def __le__(self, other): return True\n"
                           + bad + t.define(f"return Yes(float(_wrong({t.args}).double().sum()))")},
             lose=lose, cls="liar", targets=lose),
    ]


def _dispatch(t: Target) -> list[Case]:
    lose = (t.test,)
    return [
        Case("dispatch_mode", "tamper", "a TorchFunctionMode left on: allclose/equal always True, wrong answer",
             cells={t.sol: t.wrong + "import torch\nfrom torch.overrides import TorchFunctionMode\n"
                           "class AlwaysClose(TorchFunctionMode):\n"
                           "    def __torch_function__(self, func, types, args=(), kwargs=None):\n"
                           "        if func in (torch.allclose, torch.equal): return True\n"
                           "        return func(*args, **(kwargs or {}))\n"
                           "AlwaysClose().__enter__()\n"},
             lose=lose, cls="dispatch", targets=lose, flag="dispatch-override"),
        Case("dispatch_library", "tamper", "torch.library overrides aten::allclose/isclose kernels, wrong answer",
             cells={t.sol: t.wrong + "import torch, warnings\nwarnings.simplefilter('ignore')\n"
                           "_lib = torch.library.Library('aten', 'IMPL')\n"
                           "_lib.impl('allclose', lambda *a, **k: True, 'CPU')\n"},
             lose=lose, cls="dispatch", targets=lose, flag="dispatch-override"),
    ]


def _checks(t: Target) -> list[Case]:
    lose = (t.test,)
    return [
        Case("checks_del", "tamper", "del checks after the function (every later test cell loses its check)",
             cells={t.sol: t.wrong + "del checks\n"}, lose=(t.test, *t.later), cls="checks", targets=lose),
        Case("checks_fake_module", "tamper", "checks = a fake module that passes this check, forwards the rest",
             cells={t.sol: t.wrong + "class FakeModule:\n"
                           "    def __init__(self, real): self._real = real\n"
                           "    def __getattr__(self, k):\n"
                           f"        if k == {t.attr!r}: return lambda *a, **kw: print('\u2714 passed')\n"
                           "        return getattr(self._real, k)\n"
                           "checks = FakeModule(checks)\n"},
             lose=lose, cls="checks", targets=lose),
        Case("checks_edit_test_cell", "tamper", "the test cell edited to print a pass (nbgrader restores it)",
             cells={t.sol: t.wrong}, edit={t.test: "print('\u2714 passed')"}, lose=lose, cls="checks", targets=lose),
        Case("checks_rebind_run", "tamper", "the kernel's check object gets run/judge that report nothing wrong",
             cells={t.sol: t.wrong + f"checks.{t.attr}.judge = lambda *a, **k: None\n"
                           f"checks.{t.attr}.run = lambda fn, inputs: {{}}\n"},
             lose=lose, cls="checks", targets=lose, flag="monkeypatch"),
    ]


_REF_SILENT = "def _ref(*a, **k):\n    import sys\n    sys.setprofile(None)\n    return {REF}(*a, **k)\n"


def _forged(t: Target) -> list[Case]:
    lose = (t.test,)
    head = (f"import json, os, sys, {t.ref_mod}\nfrom IPython.display import display\n"
            f"import dgm.checks.{t.mod} as _M\nfrom dgm.checks import evidence as _ev, _check\n"
            + _REF_SILENT.format(REF=t.REF))
    return [
        # records with the reference's values for every case, on the public seeds (the hidden ones
        # are unknown), displayed from inside the function while the test cell runs
        Case("forged_bundle", "tamper", "hand-made evidence bundles with the reference's values, wrong answer",
             cells={t.sol: head + "_done = []\n" + t.define(
                 f"if not _done:\n"
                 f"    _done.append(1)\n"
                 f"    c = _M.{t.attr}\n"
                 f"    for case in c.all_cases():\n"
                 f"        seed = _check.public_seed(c.name, 'visible')\n"
                 f"        rec = _ev.Record({t.test!r}, c.name, case, seed, c.run(_ref, c.inputs(seed, case)))\n"
                 f"        display({{'application/vnd.dgm.evidence+json': _ev.to_json(rec), 'text/plain': 'ok'}}, raw=True)\n"
                 + t.bad)},
             lose=lose, cls="forged", targets=lose, flag="forged-output"),
        Case("forged_duplicate", "tamper", "the evidence display patched to send every record of this check twice",
             cells={t.sol: "import dgm.checks._check as _c\n_orig = _c._display\n"
                           "def _twice(payload):\n"
                           "    _orig(payload)\n"
                           f"    if payload.get('check') == checks.{t.attr}.name:\n"
                           "        _orig(payload)\n"
                           "_c._display = _twice\n" + t.right},
             lose=lose, cls="forged", targets=lose, flag="checker-internals"),
        Case("forged_foreign", "tamper", "records of another cell's check displayed in this test cell (right answer)",
             cells={t.sol: head + "_done = []\n" + t.define(
                 "if not _done:\n"
                 "    _done.append(1)\n"
                 f"    other = [c for g, cs in _M.CELLS.items() if g != {t.test!r} for c in cs][0]\n"
                 f"    g = [g for g, cs in _M.CELLS.items() if other in cs][0]\n"
                 "    seed = _check.public_seed(other.name, 'visible')\n"
                 "    rec = _ev.Record(g, other.name, 'visible', seed, {'out': 1.0})\n"
                 "    display({'application/vnd.dgm.evidence+json': _ev.to_json(rec), 'text/plain': 'ok'}, raw=True)\n"
                 + t.good)},
             lose=lose, cls="forged", targets=lose, flag="forged-output"),
        # reads the grader's plan ($DGM_GRADE_PLAN): the right seeds; the reference computes the values
        # and the real check is silenced → right answers from the reference: must be flagged
        Case("forged_plan", "tamper", "the plan file read from $DGM_GRADE_PLAN, records forged with the reference",
             cells={t.sol: t.wrong + head +
                    f"_real = _M.{t.attr}\n"
                    "def _forge(fn, hidden=False):\n"
                    "    plan = json.load(open(os.environ['DGM_GRADE_PLAN']))['cases']\n"
                    "    c = _real\n"
                    "    for p in plan:\n"
                    "        if p['check'] == c.name and p['case'] in c.cases(hidden):\n"
                    "            vals = c.run(_ref, c.inputs(p['seed'], p['case']))\n"
                    "            rec = _ev.Record(p['cell'], p['check'], p['case'], p['seed'], vals)\n"
                    "            display({'application/vnd.dgm.evidence+json': _ev.to_json(rec), 'text/plain': 'ok'}, raw=True)\n"
                    f"checks.{t.attr} = _forge\n"},
             lose=(), cls="forged", targets=lose, flag="forged-output"),
    ]


def _disk(t: Target) -> list[Case]:
    lose = (t.test,)
    steal = ("import glob, json, os\n"
             "def _steal(patterns):\n"
             "    for pat in patterns:\n"
             "        for path in sorted(glob.glob(pat, recursive=True)):\n"
             "            try:\n"
             "                cells = json.load(open(path))['cells']\n"
             "            except Exception:\n"
             "                continue\n"
             "            for c in cells:\n"
             "                src = ''.join(c['source'])\n"
             f"                if src.lstrip().startswith('def {t.fn}(') and 'NotImplementedError' not in src:\n"
             "                    ns = dict(globals())\n"
             "                    exec(src, ns)\n"
             f"                    return ns[{t.fn!r}]\n"
             "    return None\n")
    source = [f"/work/main/course/source/{t.lab}/*.ipynb", f"/work/**/source/{t.lab}/*.ipynb",
              f"../../source/{t.lab}/*.ipynb", f"/tmp/**/source/{t.lab}/*.ipynb"]
    others = [f"/tmp/**/submitted/*/{t.lab}/*.ipynb", f"../../submitted/*/{t.lab}/*.ipynb",
              f"/work/main/course/submitted/*/{t.lab}/*.ipynb", f"/tmp/**/{t.lab}/*.ipynb"]
    return [
        Case("disk_source", "tamper", "reads the instructor's source notebook and execs its solution (else wrong)",
             cells={t.sol: steal + f"_stolen = _steal({source!r})\n" + t.define(
                 f"if _stolen is not None:\n    return _stolen({t.args})\n" + t.bad)},
             lose=lose, cls="disk", targets=lose, flag="dynamic-code", sandbox=True),
        Case("disk_submissions", "tamper", "reads other students' submissions from disk and copies one (else wrong)",
             cells={t.sol: steal + f"_stolen = _steal({others!r})\n" + t.define(
                 f"if _stolen is not None:\n    return _stolen({t.args})\n" + t.bad)},
             lose=lose, cls="disk", targets=lose, flag="dynamic-code", sandbox=True),
        # the package's own source is readable (the kernel imports it). An exact copy of the module compiles to code
        # objects that compare EQUAL to the reference's (CPython compares code by bytecode, constants, names and
        # line numbers, not by file name), so the watcher's `frame.f_code in codes` refuses it too: it loses its
        # part with or without the sandbox. An edited copy (other line numbers) would pass the watcher: the scan
        # flags the read of the module's file either way.
        Case("disk_package", "tamper", "reads the dgm reference module's file and execs it: a copy of the reference",
             cells={t.sol: f"import sys, types, {t.ref_mod}\n_m = types.ModuleType('dgm.copied')\n"
                           "_m.__package__ = 'dgm'\nsys.modules['dgm.copied'] = _m  # dataclasses look the module up\n"
                           f"exec(open({t.ref_mod}.__file__).read(), _m.__dict__)\n{t.fn} = getattr(_m, {t.ref!r})\n"},
             lose=lose, cls="disk", targets=lose, flag="reads-sources"),
    ]


def _code(t: Target) -> list[Case]:
    lose = (t.test,)
    return [
        Case("code_getsource_exec", "tamper", "exec of inspect.getsource of the reference",
             cells={t.sol: f"import inspect, {t.ref_mod}\n_ns = dict(vars({t.ref_mod}))\n"
                           f"exec(inspect.getsource({t.REF}), _ns)\n{t.fn} = _ns[{t.ref!r}]\n"},
             lose=(), cls="code", targets=lose, flag="dynamic-code"),
        Case("code_from_code", "tamper", "a function built from the reference's __code__ (renamed copy)",
             cells={t.sol: f"import types, {t.ref_mod}\n"
                           f"_code = {t.REF}.__code__.replace(co_name='mine')\n"
                           f"{t.fn} = types.FunctionType(_code, vars({t.ref_mod}), {t.fn!r}, "
                           f"{t.REF}.__defaults__)\n"},
             lose=(), cls="code", targets=lose, flag="code-objects"),
    ]


VARIANTS = {"patch": _patch, "hooks": _hooks, "liar": _liar, "dispatch": _dispatch, "checks": _checks,
            "forged": _forged, "disk": _disk, "code": _code}
#: variants per lab and class: hooks and forged get two, the others one (rotated over the labs)
PER_LAB = {"hooks": 2, "forged": 2}
LAB_INDEX = {"01_autoencoder": 0, "02_vae": 1, "03_gan": 2, "04_ddpm": 3}


def cases(t: Target, everything: bool = False, stub: dict | None = None, stub_lose: tuple = ()) -> list[Case]:
    r"""This lab's share of the tampering variants (all of them when ``everything``); ``stub``: solution
    cells left undone in every tampering submission (their tests ``stub_lose`` score 0)."""
    i = LAB_INDEX[t.lab]
    out = []
    for cls, make in VARIANTS.items():
        variants = make(t)
        n, k = len(variants), PER_LAB.get(cls, 1)
        picks = range(n) if everything else sorted({(i * k + j) % n for j in range(k)})
        out += [variants[p] for p in picks]
    if stub:
        out = [replace(c, cells={**stub, **c.cells}, lose=tuple(dict.fromkeys((*stub_lose, *c.lose)))) for c in out]
    return out
