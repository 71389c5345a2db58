r"""The integrity scan (dgm.grading.integrity): every class of tampering is flagged however it is
written, honest lab code is never flagged, and IPython syntax never crashes the scan."""
from __future__ import annotations

import copy
import inspect
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from dgm.grading import integrity

REPO = Path(__file__).resolve().parents[1]
LABS = ("01_autoencoder", "02_vae", "03_gan", "04_ddpm")
RELEASE = {lab: nbformat.read(REPO / "labs" / lab / f"{lab}.ipynb", as_version=4) for lab in LABS}


def submission(code: str, lab: str = "02_vae", cell: str | None = None):
    r"""The lab's release with ``code`` in solution cell ``cell`` (grade_id), or in a cell the student added."""
    nb = copy.deepcopy(RELEASE[lab])
    if cell is None:
        nb.cells.append(new_code_cell(code))
    else:
        [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell][0].source = code
    return nb


def classes(code: str, lab: str = "02_vae", cell: str | None = None) -> set[str]:
    result = integrity.scan(submission(code, lab, cell), release=RELEASE[lab])
    return {f.cls for f in result.flags}


# Two or more differently written examples per class.
TAMPERING = {
    "dynamic-code": ['exec("x = 1")', 'run = eval\nrun("1 + 1")', 'import importlib\nm = importlib.import_module("os")',
                     'os_ = __import__("os")', '%run helper.py', 'code = compile("1", "<s>", "eval")',
                     "import pdb\npdb.run('x')"],
    "code-objects": ["reparameterize.__code__ = (lambda mu, logvar, eps=None: mu).__code__",
                     "import types\nf = types.FunctionType(g.__code__, {})", "raw = f.__code__.co_code",
                     "from types import CodeType"],
    "introspection": ["import inspect\nsrc = inspect.getsource(checks.check_vae_model)",
                      "import sys\nup = sys._getframe(1).f_globals", "import gc\nrefs = gc.get_referrers(x)",
                      "g = globals()", "from inspect import currentframe as cf\ncf().f_back"],
    "interpreter-hooks": ["import sys\nsys.settrace(tracer)", "from sys import setprofile\nsetprofile(p)",
                          "import sys\nsys.modules['dgm.checks.vae'] = fake", "import builtins\nbuiltins.len = f",
                          "__builtins__.len = f", "import ctypes", "import signal\nsignal.signal(14, handler)",
                          "import os\nos.environ['DGM_FAST'] = '0'", "import os\nos.environ.update(DGM_FAST='0')"],
    "ipython-hooks": ["get_ipython().events.register('pre_run_cell', f)",
                      "ip = get_ipython()\nip.set_custom_exc((Exception,), handler)",
                      "get_ipython().ast_transformers.append(t)", "shell = get_ipython()\nshell.run_cell = f",
                      "from IPython import get_ipython as g\ng().input_transformers_post.append(f)"],
    "dispatch-override": ["class T(torch.Tensor):\n    @classmethod\n    def __torch_function__(cls, f, t, a=(), k=None):\n"
                          "        return True", "from torch.overrides import TorchFunctionMode",
                          "from torch.utils._python_dispatch import TorchDispatchMode",
                          "lib = torch.library.Library('aten', 'IMPL')", "import torch.library as L\nL.impl"],
    "reads-sources": ["text = open('../source/02_vae/02_vae.ipynb').read()",
                      "from pathlib import Path\nsrc = Path(dgm.__file__).read_text()",
                      "import glob\nnbs = glob.glob('**/*.ipynb', recursive=True)", "f = open(checks.__file__)",
                      "from pathlib import Path\nPath('/v/lib/site-packages/dgm/vae.py').read_text()",
                      "%load dgm/vae.py"],
    "monkeypatch": ["torch.allclose = lambda *a, **k: True", "setattr(checks, 'check_vae_model', lambda *a: None)",
                    "checks = None", "def check_vae_model(*args):\n    pass", "del checks",
                    "import torch.nn.functional as F\nF.mse_loss = lambda a, b: 0", "dgm.checks.vae.check_elbo_loss = f",
                    "globals()['checks'] = fake", "nn.Module.__call__ = f", "torch.Tensor.sum = f",
                    "torch.__dict__['allclose'] = f", "vars(checks).update(check_vae_model=f)",
                    "type(torch).__setattr__(torch, 'allclose', f)"],
    "shell": ["!ls ..", "%%bash\ncat /etc/passwd\n", "import subprocess as sp\nsp.run(['ls'])",
              "import os\nos.system('ls')", "files = !ls", "from os import popen\npopen('ls')"],
    "network": ["import socket\nsocket.create_connection(('example.org', 80))",
                "from urllib.request import urlopen\nurlopen('http://x')", "import requests"],
    "forged-output": ["display({'application/vnd.dgm.evidence+json': {}}, raw=True)",
                      "from IPython.display import publish_display_data\npublish_display_data({'text/plain': 'ok'})",
                      "class Fake:\n    def _repr_mimebundle_(self, **kw):\n        return {}",
                      "print('application/vnd.dgm.evidence+json')",
                      "from IPython.display import display as show\nshow(bundle, raw=True)"],
    "uses-reference": ["import dgm.vae as V\nz = V.reparameterize(mu, logvar)", "from dgm.vae import kl_divergence as kl",
                       "r = getattr(dgm.vae, 'reparameterize')", "loss = dgm.vae.elbo_loss(a, b, c, d)"],
    "checker-internals": ["from dgm.checks import _core", "ref = checks.ref", "from dgm.checks.evidence import MIME",
                          "import dgm.grading.guard", "cells = checks.CELLS"],
}
CASES = [(cls, code) for cls, codes in TAMPERING.items() for code in codes]


def test_every_class_is_tested():
    assert set(TAMPERING) | {"unscannable"} == set(integrity.CLASSES)
    assert all(len(set(v)) >= 2 for v in TAMPERING.values())


@pytest.mark.parametrize("cls,code", CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CASES)])
def test_tampering_is_flagged(cls, code):
    assert cls in classes(code), code


@pytest.mark.parametrize("cls,code", [(c, v[0]) for c, v in TAMPERING.items()])
def test_flagged_inside_a_solution_cell_too(cls, code):
    body = "def reparameterize(mu, logvar, eps=None):\n" + "\n".join("    " + ln for ln in code.splitlines())
    assert cls in classes(body + "\n    return mu\n", cell="reparameterize"), body


def test_flag_record_and_summary():
    result = integrity.scan(submission("x = 1\n!ls\nimport socket"), release=RELEASE["02_vae"])
    assert result.summary() == "flagged: shell, network"
    shell = [f for f in result.flags if f.cls == "shell"][0]
    assert shell.line == 2 and shell.cell.startswith("#") and "ls" in shell.snippet
    sol = integrity.scan(submission("def kl_divergence(mu, logvar):\n    exec('')\n", cell="kl_divergence"),
                         release=RELEASE["02_vae"])
    assert [(f.cls, f.cell, f.line) for f in sol.flags] == [("dynamic-code", "kl_divergence", 2)]
    assert integrity.scan(RELEASE["02_vae"], release=RELEASE["02_vae"]).summary() == "ok"


@pytest.mark.parametrize("lab", LABS)
def test_solutions_are_not_flagged(lab):
    for path in (REPO / "solutions" / lab / f"{lab}.ipynb", REPO / "course" / "source" / lab / f"{lab}.ipynb"):
        result = integrity.scan(nbformat.read(path, as_version=4), release=RELEASE[lab])
        assert result.summary() == "ok", (path, result.flags)


HONEST = [
    "torch.backends.cudnn.benchmark = True", "plt.rcParams['figure.dpi'] = 120", "vae.eval()",
    "signal = x + 0.1 * torch.randn_like(x)", "class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.encoder = nn.Linear(2, 2)", "open('results.txt', 'w').write('done')",
    "torch.save(vae.state_dict(), 'checkpoints/vae.pt')", "d = dgm.vae.kl_per_dim(vae, x_eval)",
    "h = dgm.train.fit(ae, x_train, step_fn=lambda x, s: dgm.ae.train_step(ae, opt, x), optimizer=opt, steps=5)",
    "from IPython.display import display, clear_output\ndisplay(fig)\nclear_output(wait=True)",
    "x = x_test[:8]\nx.requires_grad = True", "checks.check_vae_model(VAE)", "%matplotlib inline",
    "%timeit torch.randn(3)", "%%time\nz = reparameterize(mu, logvar)\n", "from dgm import data, plot, widgets",
    "import numpy as np\nnp.random.seed(0)", "dgm.widgets.latent_explorer(vae, x=x_test[0], data=x_eval)",
    "import os\nprint(os.environ.get('DGM_FAST'))", "model = VAE(8)\nmodel.reparameterize = reparameterize",
    "print(vars(model).keys(), model.__dict__.keys())",
]


@pytest.mark.parametrize("code", HONEST)
def test_honest_code_is_not_flagged(code):
    assert classes(code) == set(), code


def test_locked_and_read_only_cells_are_not_scanned():
    nb = submission("")
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "test_reparameterize":
            c.source = "import subprocess\nexec('1')"  # nbgrader restores test cells before grading
    nb.cells.append(new_code_cell("import socket", metadata={"nbgrader": {"locked": True, "solution": False,
                                                                           "grade": False, "grade_id": "ro"}}))
    assert integrity.scan(nb, release=RELEASE["02_vae"]).summary() == "ok"


@pytest.mark.parametrize("code", ["%%writefile x.py\nprint(1)\n", "x = (", "%%nonsense\n???\n", "get_ipython?",
                                  "!", "%time", "def f(:\n  pass", "\x00", "%%time\nx = (\n", "   \n"])
def test_odd_cells_do_not_crash(code):
    integrity.scan(submission(code), release=RELEASE["02_vae"])
    integrity.scan(submission(code))


def test_too_deep_to_scan_is_flagged_not_fatal():
    deep = "x = " + "[" * 150 + "exec('1')" + "]" * 150  # valid Python (< 200 levels), deeper than the scan goes
    nb, old = submission(deep), sys.getrecursionlimit()
    assert integrity.scan(nb, release=RELEASE["02_vae"]).summary() == "flagged: dynamic-code"
    sys.setrecursionlimit(len(inspect.stack()) + 250)  # too shallow for this cell: a platform with a small stack
    try:
        result = integrity.scan(nb, release=RELEASE["02_vae"])
    finally:
        sys.setrecursionlimit(old)
    assert result.summary() == "flagged: unscannable"


def test_without_release_the_setup_cell_counts():
    r"""Without the release, the setup cell's pip fallback is the student's code too: pass release=."""
    flagged = {f.cls for f in integrity.scan(RELEASE["01_autoencoder"]).flags}
    assert "shell" in flagged and integrity.scan(RELEASE["01_autoencoder"], release=RELEASE["01_autoencoder"]).summary() == "ok"
