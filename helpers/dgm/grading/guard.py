r"""Runs inside the grading kernel: keeps the checks honest when student code monkeypatches.

The grader calls :func:`install` before the first cell (before any student code), which imports
the lab's checks and takes a snapshot of the attributes the checks rely on (``torch``,
``torch.nn.functional``, ``builtins``, ``torch.Tensor``, every loaded ``dgm`` module, ...).
Before each test cell it calls the returned ``restore`` function (stored under a random name
in ``builtins``): everything patched since the snapshot is put back, the notebook's ``checks``
name is rebound to the real checks module, and the list of restored names is returned so the
grader can report it.

This is a speed bump, not a sandbox: see docs/grading.md ("What the autograder isolates").
"""
from __future__ import annotations

import builtins
import gc
import importlib
import sys

_SYS_NAMES = ("setprofile", "getprofile", "settrace", "gettrace")


def _public(mod, private: bool = False) -> dict:
    """The attributes worth guarding: functions, classes and constants (not caches or IPython's extras)."""
    out = {}
    for k, v in vars(mod).items():
        if k.startswith("__") or (k.startswith("_") and not private):
            continue
        if mod is builtins and getattr(v, "__module__", None) != "builtins":
            continue
        out[k] = v
    return out


def _wraps(new, old) -> bool:
    """True when ``new`` is torch/dgm's own wrapper around ``old`` (not a student's patch)."""
    if not str(getattr(new, "__module__", "") or "").startswith(("torch", "dgm")):
        return False
    for _ in range(5):
        new = getattr(new, "__wrapped__", None)
        if new is None:
            return False
        if new is old:
            return True
    return False


def _release(ip) -> None:
    """Drop the last traceback: its frames can pin a failed cell's memory blow-up (a local list of
    huge tensors) and make the next, innocent test run out of memory."""
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            setattr(sys, name, None)
    tb = getattr(ip, "InteractiveTB", None)
    for holder in (tb, getattr(tb, "verbose_TB", None)):
        if holder is not None and hasattr(holder, "tb"):
            holder.tb = None
    ip.last_execution_result = None
    gc.collect()


def install(key: str, checks: str = "", alias: str = "") -> None:
    import torch
    import torch.nn.functional as F

    import dgm
    import dgm.checks

    if checks:
        importlib.import_module(f"dgm.checks.{checks}")
    modules = {m: sys.modules[m] for m in list(sys.modules)
               if m == "dgm" or m.startswith("dgm.") and not m.startswith("dgm.grading")}
    modules.update({"torch": torch, "torch.nn.functional": F, "torch.testing": torch.testing,
                    "torch.nn": torch.nn, "builtins": builtins})
    snap = {name: (mod, _public(mod, private=name.startswith("dgm.checks"))) for name, mod in modules.items()}
    classes = {"torch.Tensor": (torch.Tensor, dict(vars(torch.Tensor))),
               "torch.nn.Module": (torch.nn.Module, dict(vars(torch.nn.Module)))}
    sys_funcs = {n: getattr(sys, n) for n in _SYS_NAMES}
    checks_mod = sys.modules.get(f"dgm.checks.{checks}") if checks else None
    ip = get_ipython()  # noqa: F821 (IPython kernel)
    setattr_, getattr_, vars_ = setattr, getattr, vars

    def restore() -> list:
        fixed = []
        for name, (mod, saved) in snap.items():
            if sys.modules.get(name, mod) is not mod:
                sys.modules[name] = mod
                fixed.append(f"sys.modules[{name!r}]")
            now = vars_(mod)
            for attr, value in saved.items():
                if attr in now and now[attr] is not value and _wraps(now[attr], value):
                    saved[attr] = now[attr]  # torch's own wrapping (e.g. dynamo's manual_seed)
                elif attr not in now or now[attr] is not value:
                    setattr_(mod, attr, value)
                    fixed.append(f"{name}.{attr}")
        for name, (cls, saved) in classes.items():
            now = dict(vars_(cls))
            for attr in now.keys() - saved.keys():
                delattr(cls, attr)
                fixed.append(f"{name}.{attr}")
            for attr, value in saved.items():
                if now.get(attr, value) is not value:
                    setattr_(cls, attr, value)
                    fixed.append(f"{name}.{attr}")
        for attr, fn in sys_funcs.items():
            if getattr_(sys, attr) is not fn:
                setattr_(sys, attr, fn)
                fixed.append(f"sys.{attr}")
        if checks_mod is not None and alias and ip.user_ns.get(alias, checks_mod) is not checks_mod:
            ip.user_ns[alias] = checks_mod
            fixed.append(f"the name `{alias}`")
        _release(ip)
        return fixed

    setattr(builtins, key, restore)
