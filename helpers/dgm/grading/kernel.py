r"""The grading kernel: an IPython kernel started under resource limits.

    argv = dgm.grading.kernel.argv(python)   # [python, "-c", <launcher>, "-f", "{connection_file}"]

(``python -m dgm.grading.kernel -f …`` works too but imports from the working directory: see ``argv``.)

The grader points jupyter's ``python3`` kernelspec at this launcher (a private JUPYTER_PATH), so
only the student's code — not the grader — runs under the limits, read from the environment:

* ``DGM_GRADE_MEMORY_MB``: RLIMIT_DATA (heap and anonymous mappings). A memory blow-up fails
  with ``MemoryError`` / "can't allocate memory" inside the cell instead of taking down the machine;
* ``DGM_GRADE_CPU_S``: RLIMIT_CPU, a backstop against a kernel that ignores interrupts;
* ``DGM_GRADE_NPROC``: RLIMIT_NPROC, a fork-bomb bound (processes and threads of the kernel's uid).
  Set only inside the sandbox (:mod:`dgm.grading.sandbox`): outside it, the count would include all
  of the grader's own processes;
* ``DGM_GRADE_UID``: when started as root (the sandbox keeps only CAP_SETUID/CAP_SETGID), first drop
  to this uid/gid — root is exempt from RLIMIT_NPROC, and the kernel should own nothing;
* core dumps are off, and the kernel dies with its grading worker (``PR_SET_PDEATHSIG``, set after
  the uid change, which would clear it).
"""
from __future__ import annotations

import os
import resource
import signal
import sys


def _limit(which: int, value: int) -> None:
    soft, hard = resource.getrlimit(which)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(which, (value, hard))


def drop_privileges() -> None:
    r"""As root with ``DGM_GRADE_UID`` set: become that uid/gid, with no supplementary groups."""
    uid = int(os.environ.get("DGM_GRADE_UID", "-1") or -1)
    if uid >= 0 and hasattr(os, "getuid") and os.getuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)


def apply_limits() -> None:
    mb = int(os.environ.get("DGM_GRADE_MEMORY_MB", "0") or 0)
    if mb > 0:
        _limit(resource.RLIMIT_DATA, mb * 2**20)
    cpu = int(os.environ.get("DGM_GRADE_CPU_S", "0") or 0)
    if cpu > 0:
        _limit(resource.RLIMIT_CPU, cpu)
    nproc = int(os.environ.get("DGM_GRADE_NPROC", "0") or 0)
    if nproc > 0:
        _limit(resource.RLIMIT_NPROC, nproc)
    _limit(resource.RLIMIT_CORE, 0)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the worker
        except (OSError, AttributeError):
            pass


def main() -> None:
    r"""Drop root (if asked), apply the limits, then run the IPython kernel (argv: ``-f <connection file>``)."""
    drop_privileges()
    apply_limits()
    if sys.path and (sys.path[0] in ("", ".", os.getcwd())):
        del sys.path[0]  # like ipykernel_launcher: the notebook's folder is added back by IPython
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


# ``python -m dgm.grading.kernel`` puts the working directory (the student's folder) first on sys.path
# BEFORE importing dgm: a ``dgm/`` folder written there by an earlier kernel would run in place of this
# launcher, before the limits. ``-c`` adds "" only after start-up, and the launcher removes it first.
_LAUNCH = "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; import dgm.grading.kernel as k; k.main()"


def argv(python: str = sys.executable) -> list[str]:
    r"""The kernel's argv (a kernelspec's ``argv``), safe from modules planted in the working directory."""
    return [python, "-c", _LAUNCH, "-f", "{connection_file}"]


if __name__ == "__main__":
    main()
