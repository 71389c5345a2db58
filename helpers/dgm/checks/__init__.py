r"""Checks called by the labs' nbgrader test cells, one submodule per lab.

    from dgm.checks import ae as checks
    checks.check_reconstruction_loss(reconstruction_loss)

Each ``check_*`` prints one friendly line on success and raises :class:`Mistake` (an
``AssertionError``) naming the mistake otherwise. See :mod:`dgm.checks._core` for the rules.
"""
from ._core import Mistake, ok  # noqa: F401

import importlib as _importlib

_LABS = ("ae", "vae", "gan", "ddpm", "flows")
#: lab → its checks module. Each module declares ``CELLS``: test cell grade_id → the checks it runs
#: (each a :class:`dgm.checks._check.Check`, run on its visible case and its hidden cases).
LABS = {"01_autoencoder": "ae", "02_vae": "vae", "03_gan": "gan", "04_ddpm": "ddpm", "05_flows": "flows"}


def cells(lab: str) -> dict:
    """The declared test cells of ``lab``: ``{grade_id: (Check, …)}`` (no regex over notebook JSON)."""
    if lab not in LABS:
        raise KeyError(f"unknown lab {lab!r}; the labs with checks are {sorted(LABS)}")
    return _importlib.import_module(f"{__name__}.{LABS[lab]}").CELLS


def _short_tracebacks() -> None:
    """In a notebook, show a failed check as one red line with its message, not 30 lines of dgm internals.

    When the student's own code crashed (the Mistake has a ``__cause__``), the full traceback stays:
    it points at the line to fix. Either way the cell's output is an error, so nbgrader scores it 0.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None or not hasattr(ip, "set_custom_exc"):
        return

    def handler(shell, etype, value, tb, tb_offset=None):
        if value.__cause__ is not None:
            shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        else:
            shell._showtraceback(etype, value, [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"])
        return None

    ip.set_custom_exc((Mistake,), handler)


_short_tracebacks()


def __getattr__(name):  # `dgm.checks.vae` imports lazily
    if name in _LABS:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'dgm.checks' has no attribute {name!r}")
