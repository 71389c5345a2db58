r"""Checks called by the labs' nbgrader test cells, one submodule per lab.

    from dgm.checks import ae as checks
    checks.check_reconstruction_loss(reconstruction_loss)

Each ``check_*`` prints one friendly line on success and raises :class:`Mistake` (an
``AssertionError``) naming the mistake otherwise. See :mod:`dgm.checks._core` for the rules.
"""
from ._core import Mistake, ok  # noqa: F401

import importlib as _importlib

_LABS = ("ae", "vae", "gan", "ddpm")


def __getattr__(name):  # `dgm.checks.vae` imports lazily
    if name in _LABS:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'dgm.checks' has no attribute {name!r}")
