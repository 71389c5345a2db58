r"""Run the grading kernel inside a bubblewrap sandbox (Linux), or say why it cannot.

API (all the grader needs)::

    from dgm.grading import sandbox

    st = sandbox.status()      # SandboxStatus(available: bool, reason: str); probed once per process
    km = sandbox.kernel_manager(scratch, env={"DGM_GRADE_PLAN": "..."})   # an AsyncKernelManager, not started
    await km.start_kernel(extra_arguments=[...], cwd=...)   # what nbclient does; the kernel runs in scratch
    if not st.available: report("unsandboxed: " + st.reason)

* ``scratch``: the one folder the kernel may write. It is bound read-write at the same path, is the
  kernel's working directory and ``HOME``, and holds the connection file and the IPC sockets. It must
  hold only what the student may see (the notebook and its files) — never the gradebook, ``source/``
  or other submissions. Keep its path short (unix socket paths: ≤ 92 characters for ``scratch``).
* ``env``: extra variables for the kernel. It also gets ``DGM_*``, ``NBGRADER_EXECUTION`` and
  ``PYTHONWARNINGS`` from ``os.environ`` and a fixed minimal set (PATH, HOME, MPLBACKEND=Agg,
  OMP_NUM_THREADS=1, …), nothing else; HOME, DGM_DATA, config folders and limits cannot be overridden.
* ``data=``: optional folder with a pre-filled dataset cache, bound read-only as ``DGM_DATA``
  (default: ``scratch/.cache/dgm``; fast mode reads the mnist5k digits from the read-only venv).
* ``readonly=``: files or folders the kernel may read but not change, bound read-only at the same
  path — e.g. the grade plan inside ``scratch`` (it cannot be rewritten, replaced or deleted).
* Without the sandbox (:func:`status` says why; ``DGM_SANDBOX=0`` turns it off on purpose)
  :func:`kernel_manager` returns a plain manager for the same limited launcher (``env`` added to the
  grader's environment) and :func:`kernel_command` raises :class:`SandboxUnavailable`.

The kernel sees, read-only: ``/usr`` (and the ``/bin``, ``/lib*`` links), the dynamic loader's
``/etc`` files, the Python installation, the venv, the ``dgm`` package folder and
``/sys/devices/system/cpu``; fresh ``/dev``, ``/proc`` (own PID namespace) and ``/tmp`` (a 512 MB
tmpfs). It has no network (an empty network namespace), its own session, IPC and hostname, no
environment but the above, and dies with the grader; a shut-down kernel takes all its processes along.
When the grader runs as root, the kernel drops to a uid/gid of its own (:func:`kernel_uid`; no such
user exists) so that ``RLIMIT_NPROC`` (the fork-bomb bound, :mod:`dgm.grading.kernel`) applies and
counts only that kernel's processes; it owns nothing but ``scratch``, which :func:`kernel_manager`
hands to it. Interrupts go over the control channel (``interrupt_mode="message"``).
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

from .kernel import argv as kernel_argv

__all__ = ["SandboxStatus", "SandboxUnavailable", "status", "kernel_command", "kernel_manager", "kernel_uid",
           "NPROC"]

NPROC = 256  # RLIMIT_NPROC inside the sandbox (processes + threads of the kernel's uid)
TMP_MB = 512  # size of the private /tmp (a tmpfs: memory)
_UID_BASE = 2**30  # kernel uids (root grader only): 2**30 + 16 * grader pid + a counter; no such user exists
_uids = itertools.count()
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime")
_FORWARD = ("NBGRADER_EXECUTION", "PYTHONWARNINGS")
_MAX_SOCKET = 100  # sun_path is 108 bytes; "<scratch>/k-<port>" must fit


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot run here; ``status().reason`` says why."""


@dataclass(frozen=True)
class SandboxStatus:
    available: bool
    reason: str  # why not (or what is used, when available)


def _root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def kernel_uid() -> int:
    r"""A fresh uid/gid for one sandboxed kernel (used only when the grader runs as root)."""
    return _UID_BASE + (os.getpid() % 2**22) * 16 + next(_uids) % 16


@lru_cache(maxsize=None)
def _knows(bwrap: str, option: str) -> bool:
    try:
        return option in subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _dirs(args: list[str]) -> list[str]:
    r"""Insert ``--perms 0755 --dir`` for the parents of every mount point (bwrap makes them 0700,
    which a kernel that dropped to its own uid could not traverse)."""
    out: list[str] = []
    made: set[str] = {"/"}
    i = 0
    while i < len(args):
        op = args[i]
        width = 3 if op in ("--ro-bind", "--ro-bind-try", "--bind", "--symlink") else 2
        if op in ("--tmpfs", "--proc", "--dev"):
            made.add(args[i + 1])
        if width == 3 or op in ("--tmpfs", "--proc", "--dev"):
            dest = Path(args[i + width - 1])
            for parent in reversed(dest.parents):
                if str(parent) not in made:
                    out += ["--perms", "0755", "--dir", str(parent)]
                    made.add(str(parent))
            made.add(str(dest))
        out += args[i:i + width]
        i += width
    return out


def _mounts(python: str) -> list[str]:
    r"""The read-only part of the file system: system libraries, Python, the venv, the dgm package."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu"]  # torch's cpuinfo
    bound = [Path("/usr")]
    exe = Path(python).absolute()
    venv = exe.parent.parent if (exe.parent.parent / "pyvenv.cfg").exists() else None
    dgm_dir = Path(__file__).resolve().parent.parent  # the dgm package (an editable install lives in the repo)
    wanted = [Path(sys.base_prefix), Path(sys.base_exec_prefix), exe.resolve().parent.parent, venv, dgm_dir]
    for path in wanted:
        if path is not None and path.is_dir() and not _under(path, bound):
            args += ["--ro-bind", str(path), str(path)]
            bound.append(path)
    return args


def _env(scratch: Path, python: str, env: Mapping[str, str] | None, uid: int | None) -> dict[str, str]:
    forwarded = {k: v for k, v in os.environ.items() if k.startswith("DGM_") or k in _FORWARD}
    defaults = {"LANG": "C.UTF-8", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    fixed = {  # the caller's env cannot move these out of scratch or lift the limits
        "PATH": f"{Path(python).absolute().parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(scratch), "USER": "student", "LOGNAME": "student", "TMPDIR": "/tmp",
        "MPLCONFIGDIR": str(scratch / ".config" / "matplotlib"), "XDG_CACHE_HOME": str(scratch / ".cache"),
        "DGM_DATA": str(scratch / ".cache" / "dgm"),
        # configuration that runs code at start-up, before the grader's guard: fresh and empty on every
        # start (the private /tmp), never what student code wrote into scratch during an earlier kernel
        "IPYTHONDIR": "/tmp/ipython", "JUPYTER_CONFIG_DIR": "/tmp/jupyter", "JUPYTER_NO_CONFIG": "1",
        "JUPYTER_DATA_DIR": "/tmp/jupyter-data", "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
        "XDG_CONFIG_HOME": "/tmp/config",
        "JPY_PARENT_PID": "1",  # no parent poller (ppid is 1 in the PID namespace; bwrap ties the lifetimes)
        "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "DGM_GRADE_NPROC": str(NPROC),
        "DGM_SANDBOXED": "1",
    }
    if uid is not None:
        fixed["DGM_GRADE_UID"] = str(uid)
    return {**defaults, **forwarded, **{k: str(v) for k, v in (env or {}).items()}, **fixed}


def _bwrap_args(scratch: Path, python: str, env: Mapping[str, str] | None, data: Path | None,
                uid: int | None, readonly: Sequence[Path] = ()) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    scratch = Path(scratch).absolute()
    size = ["--size", str(TMP_MB * 2**20)] if _knows(bwrap, "--size") else []  # bubblewrap >= 0.7
    # the private /tmp first: a venv or scratch folder under /tmp is bound on top of it, not hidden by it
    mounts = ["--perms", "1777", *size, "--tmpfs", "/tmp", *_mounts(python), "--dev", "/dev", "--proc", "/proc"]
    if data is not None:  # a pre-filled dataset cache, read-only
        mounts += ["--ro-bind", str(Path(data).absolute()), str(Path(data).absolute())]
    protect = [a for p in readonly for a in ("--ro-bind", str(Path(p).absolute()), str(Path(p).absolute()))]
    args = [bwrap, *_dirs(mounts + ["--bind", str(scratch), str(scratch)] + protect), "--chdir", str(scratch),
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", "grader", "--die-with-parent", "--new-session", "--clearenv"]
    if uid is not None:  # kernel.py drops to uid, so RLIMIT_NPROC applies (root is exempt from it)
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    variables = _env(scratch, python, env, uid)
    if data is not None:
        variables["DGM_DATA"] = str(Path(data).absolute())
    for key, value in variables.items():
        args += ["--setenv", key, value]
    return args + ["--"]


@lru_cache(maxsize=None)
def _probe(python: str) -> SandboxStatus:
    if not sys.platform.startswith("linux"):
        return SandboxStatus(False, f"bubblewrap needs Linux (this is {sys.platform})")
    probe_dir = Path("/tmp") / f"dgm-sandbox-probe-{os.getpid()}"
    try:
        probe_dir.mkdir(exist_ok=True)
        uid = kernel_uid() if _root() else None
        drop = f"import os; os.setgroups([]); os.setresgid({uid}, {uid}, {uid}); os.setresuid({uid}, {uid}, {uid})"
        argv = _bwrap_args(probe_dir, python, {}, None, uid) + [python, "-I", "-S", "-c", drop if uid else "pass"]
        run = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except SandboxUnavailable as err:
        return SandboxStatus(False, str(err))
    except (OSError, subprocess.TimeoutExpired) as err:
        return SandboxStatus(False, f"bubblewrap could not start: {type(err).__name__}: {err}")
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    if run.returncode != 0:
        said = (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[-1]
        return SandboxStatus(False, f"bubblewrap does not work here (user namespaces off?): {said}")
    return SandboxStatus(True, f"bubblewrap {shutil.which('bwrap')}")


def status(python: str = sys.executable) -> SandboxStatus:
    r"""Can the kernel be sandboxed? Runs ``bwrap … python`` once per process (cached), dropping root."""
    if os.environ.get("DGM_SANDBOX", "1") == "0":
        return SandboxStatus(False, "turned off by DGM_SANDBOX=0")
    return _probe(python)


def kernel_command(scratch: Path, env: Mapping[str, str] | None = None, python: str = sys.executable,
                   data: Path | None = None, uid: int | None = None, readonly: Sequence[Path] = ()) -> list[str]:
    r"""``bwrap … -- python -c <dgm.grading.kernel launcher> -f {connection_file}``: the sandboxed kernel's argv.

    ``data``: an optional folder with a pre-filled dataset cache, bound read-only as ``DGM_DATA``
    (default: ``DGM_DATA`` is ``scratch/.cache/dgm``, writable). As root, the kernel drops to ``uid``
    (default: a fresh :func:`kernel_uid`), which must then own ``scratch`` and the connection file —
    :func:`kernel_manager` sees to that. Raises :class:`SandboxUnavailable`.
    """
    st = status(python)
    if not st.available:
        raise SandboxUnavailable(st.reason)
    if _root() and uid is None:
        uid = kernel_uid()
    return _bwrap_args(Path(scratch), python, env, data, uid if _root() else None, readonly) + kernel_argv(python)


def kernel_manager(scratch: Path, env: Mapping[str, str] | None = None, python: str = sys.executable,
                   data: Path | None = None, readonly: Sequence[Path] = ()):
    r"""A ready, not yet started ``jupyter_client.AsyncKernelManager`` (what nbclient expects) for the
    grading kernel in ``scratch``; outside an event loop use ``jupyter_core.utils.run_sync``.

    Sandboxed when :func:`status` allows (IPC transport, connection file and sockets in ``scratch``),
    else a plain manager for the same limited launcher with ``env`` added to the environment.
    Start it with ``km.start_kernel(...)`` (nbclient does); interrupts go over the control channel.
    """
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec

    scratch = Path(scratch).absolute()
    scratch.mkdir(parents=True, exist_ok=True)
    spec = dict(display_name="Python 3 (dgm grading)", language="python", interrupt_mode="message")
    if not status(python).available:
        extra = {k: str(v) for k, v in (env or {}).items()}
        km = AsyncKernelManager(kernel_name="python3")  # an ipykernel: nbclient keeps its history in memory
        km._kernel_spec = KernelSpec(argv=kernel_argv(python), env=extra, **spec)
        return km
    if len(str(scratch)) + 8 > _MAX_SOCKET:
        raise ValueError(f"scratch path too long for unix sockets ({len(str(scratch))} chars): {scratch}")
    km = _manager_class()(kernel_name="python3", transport="ipc", ip=str(scratch / "k"),
                          connection_file=str(scratch / "kernel.json"))
    km.scratch, km.uid = scratch, (kernel_uid() if _root() else None)
    km._kernel_spec = KernelSpec(argv=kernel_command(scratch, env, python, data, km.uid, readonly), **spec)
    return km


def _give(path: Path, uid: int) -> None:
    r"""chown ``path`` (recursively) to ``uid``, the uid the sandboxed kernel drops to."""
    os.chown(path, uid, uid, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


@lru_cache(maxsize=1)
def _manager_class():  # jupyter_client is imported only when a manager is needed
    from jupyter_client import AsyncKernelManager

    class SandboxedKernelManager(AsyncKernelManager):
        r"""Writes the connection file into scratch and, as root, hands scratch to the kernel's uid."""

        scratch: Path
        uid: int | None  # the kernel's uid when the grader is root

        def write_connection_file(self, **kwargs) -> None:
            super().write_connection_file(**kwargs)
            if self.uid is not None:
                _give(self.scratch, self.uid)

    return SandboxedKernelManager


