r"""The integrity scan's rule table and records: which classes of tampering exist, how each is recognised
(dotted names after alias resolution, attribute names), and the :class:`Flag` / :class:`Integrity` results.
The scanner that applies them is :mod:`dgm.grading.integrity`.
"""
from __future__ import annotations

import builtins
import re
from dataclasses import dataclass, field

__all__ = ["Rule", "RULES", "CLASSES", "Flag", "Integrity"]


@dataclass(frozen=True)
class Rule:
    meaning: str
    names: tuple[str, ...]  # dotted names after alias resolution; "x" also matches "x.y"; * is a wildcard
    attrs: frozenset[str]  # attribute (or def/class) names, wherever they appear


def _rule(meaning: str, names: str, attrs: str = "") -> Rule:
    return Rule(meaning, tuple(names.split()), frozenset(attrs.split()))


#: class of tampering → how it is recognised (in report order). Some classes also have structural
#: detection in :class:`dgm.grading.integrity._Scanner`: file reads, writes to imported names, graded names, magics.
RULES = {
    "dynamic-code": _rule(
        "runs code built at run time (exec/eval/compile/__import__/importlib, %run)",
        "exec eval compile __import__ importlib runpy marshal codeop code.interact code.Interactive* builtins.exec "
        "builtins.eval builtins.compile builtins.__import__ pickle.loads dill breakpoint pdb"),
    "code-objects": _rule(
        "builds or edits code/function objects (__code__, types.CodeType/FunctionType)",
        "types.CodeType types.FunctionType types.LambdaType types.CellType",
        "__code__ co_code co_consts co_names __globals__ __closure__ cell_contents __defaults__ __kwdefaults__"),
    "introspection": _rule(
        "inspects the caller or the interpreter (inspect, frames, gc referrers, globals())",
        "inspect gc.get_referrers gc.get_referents gc.get_objects sys._getframe sys._current_frames globals locals "
        "traceback.walk_stack", "f_back f_globals f_locals f_code f_builtins tb_frame gi_frame cr_frame __subclasses__"),
    "interpreter-hooks": _rule(
        "hooks the interpreter (settrace/setprofile, sys.modules, builtins, ctypes, signals, os.environ writes)",
        "sys.setprofile sys.settrace sys.setrecursionlimit sys.addaudithook sys.modules sys.meta_path sys.path_hooks "
        "sys.path_importer_cache sys.excepthook sys.displayhook sys.monitoring threading.settrace threading.setprofile "
        "ctypes cffi builtins __builtins__ signal atexit faulthandler os.putenv os.unsetenv resource"),
    "ipython-hooks": _rule(
        "hooks the IPython shell (get_ipython().events, custom exceptions, transformers)",
        "ipykernel IPython.core.interactiveshell IPython.core.events IPython.core.inputtransformer* "
        "IPython.core.magic IPython.core.ultratb"),
    "dispatch-override": _rule(
        "overrides torch dispatch (__torch_function__, torch.library, dispatch modes)",
        "torch.library torch.overrides torch.utils._python_dispatch torch._C torch._ops torch._dynamo torch.fx",
        "__torch_function__ __torch_dispatch__ TorchFunctionMode TorchDispatchMode __array_function__ __array_ufunc__"),
    "reads-sources": _rule(
        "reads notebooks, package sources or the grader's files (__file__, *.ipynb, site-packages)",
        "linecache pkgutil.get_data importlib.resources nbformat nbgrader tokenize.open site.getsitepackages",
        "__file__ __spec__ __loader__ __path__ __cached__"),
    "monkeypatch": _rule("rebinds library or grading names (torch.x = …, setattr(module, …), checks = …)", "",
                         "__setattr__ __delattr__"),
    "shell": _rule("runs processes (subprocess, os.system, !cmd, %%bash)",
                   "subprocess os.system os.popen os.exec* os.spawn* os.posix_spawn* os.fork* os.kill os.killpg pty "
                   "multiprocessing get_ipython().system get_ipython().getoutput"),
    "network": _rule("opens network connections (socket, urllib, requests)",
                     "socket urllib requests http ftplib smtplib telnetlib ssl xmlrpc aiohttp httpx websocket "
                     "asyncio.open_connection"),
    "forged-output": _rule("publishes raw display data (raw=True, MIME dicts), as the checks publish evidence",
                           "*publish_display_data", "_repr_mimebundle_ _ipython_display_ display_pub"),
    "uses-reference": _rule("uses the lab's dgm reference implementation of a graded function or class", ""),
    "checker-internals": _rule("reaches into dgm.checks or the grader beyond the check_* functions",
                               "dgm.grading dgm.grade dgm.checks._* dgm.checks.evidence dgm.checks.cells "
                               "dgm.checks.LABS"),
    "unscannable": _rule("valid code too deeply nested for the scan to read (it could hide anything)", ""),
}
CLASSES = {cls: rule.meaning for cls, rule in RULES.items()}  #: class → what it means
MAGICS = {"system": "shell", "sx": "shell", "bash": "shell", "sh": "shell", "script": "shell", "!": "shell",
           "run": "dynamic-code", "writefile": "dynamic-code", "load_ext": "dynamic-code", "edit": "dynamic-code",
           "macro": "dynamic-code", "load": "reads-sources", "loadpy": "reads-sources", "pycat": "reads-sources"}
CODE_MAGICS = {"time", "timeit", "capture", "prun", "debug"}  # their argument is code: scan it too
REFERENCE = ("dgm.ae", "dgm.vae", "dgm.gan", "dgm.ddpm", "dgm.flows")
FILE_CALLS = ("open", "io.open", "os.open", "os.listdir", "os.scandir", "os.walk", "glob", "shutil.copy*",
               "numpy.load*", "torch.load", "json.load", "pathlib.Path", "pathlib.PurePath")
FILE_METHODS = {"read_text", "read_bytes", "open", "glob", "rglob", "iterdir", "listdir", "scandir", "walk"}
SENSITIVE = re.compile(r"\.ipynb|\.pyc?\b|site-packages|dist-packages|gradebook|(^|/)\.\.(/|$)|"
                        r"(^|/)(source|release|submitted|autograded|feedback|dgm|checks)(/|$)")
SAFE_SETTINGS = ("torch.backends.", "rcParams", "numpy.set_printoptions")
# A bare name means itself only when it is a builtin; any other unimported name is the student's own.
GLOBAL_NAMES = set(dir(builtins)) | {"__builtins__", "__file__", "get_ipython", "display"}


@dataclass(frozen=True)
class Flag:
    cls: str  # a key of RULES
    cell: str  # nbgrader grade_id, or "#<index>" for a cell without one
    line: int  # line in the cell (1-based)
    snippet: str  # the offending source line, trimmed


@dataclass
class Integrity:
    flags: list[Flag] = field(default_factory=list)

    def summary(self) -> str:
        r"""``"ok"``, or ``"flagged: "`` and the classes found, in :data:`RULES` order."""
        found = {f.cls for f in self.flags}
        return "ok" if not found else "flagged: " + ", ".join(c for c in RULES if c in found)
