r"""The grading kernel's bubblewrap sandbox (dgm.grading.sandbox): real kernels, real attacks, bounded.

Each test starts a kernel through ``sandbox.kernel_manager`` in a private scratch folder and runs
student-like code in it; every wait has a timeout and every kernel is shut down.
"""
from __future__ import annotations

import os
import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest
from jupyter_client import BlockingKernelClient
from jupyter_core.utils import run_sync

from dgm.grading import kernel as launcher
from dgm.grading import sandbox

STATUS = sandbox.status()
needs_bwrap = pytest.mark.skipif(not STATUS.available, reason=f"no bubblewrap sandbox here: {STATUS.reason}")
REPO = Path(__file__).resolve().parents[1]


def run(kc, code: str, timeout: float = 120) -> tuple[str, str | None]:
    r"""Execute ``code``; return (stdout+stderr text, "Ename: value" of the error or None)."""
    out: list[str] = []
    err: list[str] = []

    def hook(msg):
        c = msg["content"]
        if msg["msg_type"] == "stream":
            out.append(c["text"])
        elif msg["msg_type"] == "error":
            err.append(f"{c['ename']}: {c['evalue']}")

    kc.execute_interactive(textwrap.dedent(code), timeout=timeout, output_hook=hook)
    return "".join(out), (err[0] if err else None)


class Kernel:
    r"""A kernel from ``sandbox.kernel_manager`` (an AsyncKernelManager) driven by a blocking client."""

    def __init__(self, scratch: Path, env: dict | None = None, readonly: tuple = ()):
        self.km = sandbox.kernel_manager(scratch, env=env if env is not None else {"DGM_FAST": "1"},
                                         readonly=readonly)
        run_sync(self.km.start_kernel)(cwd=str(scratch))
        self.kc = BlockingKernelClient(parent=self.km)  # is_alive asks the manager
        self.kc.load_connection_info(self.km.get_connection_info())
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=120)
        except RuntimeError:
            self.close()
            raise

    def run(self, code: str, timeout: float = 120):
        return run(self.kc, code, timeout)

    def interrupt(self) -> None:
        run_sync(self.km.interrupt_kernel)()

    def close(self) -> None:
        self.kc.stop_channels()
        run_sync(self.km.shutdown_kernel)(now=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    r"""A scratch folder and, next to it, what a kernel must not see: the course, another submission."""
    root = tmp_path_factory.mktemp("sbx")
    (root / "course" / "source" / "lab").mkdir(parents=True)
    (root / "course" / "source" / "lab" / "x.ipynb").write_text("HIDDEN TESTS")
    (root / "course" / "gradebook.db").write_text("GRADES")
    (root / "other").mkdir()
    (root / "other" / "other.ipynb").write_text("SOMEONE ELSE")
    (root / "s").mkdir()
    (root / "s" / "lab.ipynb").write_text("{}")
    return root


@pytest.fixture(scope="module")
def kernel(world):
    if not STATUS.available:
        pytest.skip(f"no bubblewrap sandbox here: {STATUS.reason}")
    os.environ["SECRET_TOKEN"] = "s3cret"  # the grader's environment must not leak
    k = Kernel(world / "s")
    yield k
    k.close()
    os.environ.pop("SECRET_TOKEN", None)


@needs_bwrap
def test_cannot_read_or_list_outside_scratch(kernel, world):
    paths = [world / "course" / "source" / "lab" / "x.ipynb", world / "course" / "gradebook.db",
             world / "other" / "other.ipynb", REPO / "course" / "source", REPO / "README.md",
             Path("/root/.bashrc"), Path("/etc/passwd"), Path.home() / ".local" / "share" / "jupyter" / "runtime"]
    out, err = kernel.run(f"""
        import os
        seen = []
        for p in {[str(p) for p in paths]!r}:
            try:
                seen.append(p + ':' + (str(os.listdir(p)) if os.path.isdir(p) else open(p).read()[:20]))
            except OSError:
                pass
        # the repo's own ancestors exist (the venv and the dgm package are bound inside it): not listed
        for p in {[str(world), str(world / "other"), "/root", "/work"]!r}:
            try:
                seen += [p + '/' + n for n in os.listdir(p) if n not in {sorted({'s', '.pyenv', *REPO.parts})!r}]
            except OSError:
                pass
        print('SEEN', seen, 'SECRET' in str(os.environ), os.environ.get('SECRET_TOKEN'))
    """)
    assert err is None, err
    assert "SEEN [] False None" in out, out


@needs_bwrap
def test_writes_only_in_scratch(kernel, world):
    tmp_name = f"dgm-sbx-{os.getpid()}-{time.time_ns()}"
    targets = [world / "x.txt", world / "other" / "x.txt", REPO / "helpers" / "dgm" / "x.py",
               Path(sys.prefix) / "x.txt", Path(sys.base_prefix) / "x.txt"]
    out, err = kernel.run(f"""
        import os
        wrote = []
        for p in {[str(p) for p in targets]!r}:
            try:
                open(p, 'w').write('x'); wrote.append(p)
            except OSError:
                pass
        open('/tmp/{tmp_name}', 'w').write('private tmp')  # allowed: a private tmpfs
        open('result.txt', 'w').write('ok')
        st = os.statvfs('/tmp')
        print('WROTE', wrote, os.getuid(), 'TMP', st.f_blocks * st.f_frsize)
    """)
    assert err is None, err
    assert "WROTE []" in out, out
    assert int(out.split("TMP")[1]) <= sandbox.TMP_MB * 2**20 or not sandbox._knows("/usr/bin/bwrap", "--size")
    assert not any(p.exists() for p in targets)
    assert not (Path("/tmp") / tmp_name).exists()
    assert (world / "s" / "result.txt").read_text() == "ok"


@needs_bwrap
def test_no_network(kernel):
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(0.5)
        port = srv.getsockname()[1]
        out, err = kernel.run(f"""
            import socket
            try:
                socket.create_connection(('127.0.0.1', {port}), timeout=3).close(); print('CONNECTED')
            except OSError as e:
                print('REFUSED', type(e).__name__)
        """, timeout=30)
        assert err is None, err
        assert "REFUSED" in out, out
        with pytest.raises(socket.timeout):
            srv.accept()


@needs_bwrap
def test_course_code_works(kernel):
    out, err = kernel.run("""
        import dgm, torch, matplotlib.pyplot as plt, ipywidgets
        from dgm import data
        x, y = data.load('mnist5k', limit=64)
        w = torch.nn.Linear(784, 8)
        z = w(x.flatten(1)).relu().sum()
        z.backward()
        plt.plot([1, 2]); plt.savefig('fig.png')
        print('OK', tuple(x.shape), w.weight.grad.shape, torch.get_num_threads())
    """, timeout=300)
    assert err is None, err
    assert "OK (64, 1, 28, 28) torch.Size([8, 784])" in out, out


@needs_bwrap
def test_fork_bomb_is_bounded(tmp_path):
    k = Kernel(tmp_path)
    try:
        out, err = k.run("""
            import os, signal
            pids, failed = [], 0
            for _ in range(1000):
                try:
                    pids.append(os.posix_spawn('/bin/sleep', ['sleep', '20'], {}))
                except OSError:
                    failed += 1
            for p in pids:
                os.kill(p, signal.SIGKILL); os.waitpid(p, 0)
            print('SPAWNED', len(pids), 'FAILED', failed)
        """, timeout=120)
        assert err is None, err
        spawned = int(out.split("SPAWNED")[1].split()[0])
        assert spawned < sandbox.NPROC and "FAILED" in out, out
        assert k.run("print(1 + 1)", timeout=30)[0].strip() == "2"  # the kernel survives
    finally:
        k.close()


def _host_pids(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@needs_bwrap
def test_daemon_dies_with_the_kernel(tmp_path):
    marker = f"59.{os.getpid()}{time.time_ns() % 10**6}"  # a unique `sleep` argument
    k = Kernel(tmp_path)
    try:
        out, err = k.run(f"""
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execv('/bin/sleep', ['sleep', '{marker}'])
                os._exit(0)
            time.sleep(1)
            print('FORKED')
        """, timeout=60)
        assert err is None and "FORKED" in out, (out, err)
        assert _host_pids(marker), "the daemon did not start"
    finally:
        k.close()
    deadline = time.monotonic() + 10
    while _host_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _host_pids(marker), "a daemon outlived its kernel"


def test_unsandboxed_fallback(monkeypatch, tmp_path):
    monkeypatch.setenv("DGM_SANDBOX", "0")
    st = sandbox.status()
    assert not st.available and "DGM_SANDBOX=0" in st.reason
    with pytest.raises(sandbox.SandboxUnavailable):
        sandbox.kernel_command(tmp_path, {})
    km = sandbox.kernel_manager(tmp_path, {"DGM_GRADE_PLAN": "p"})
    assert km.kernel_spec.argv == launcher.argv(sys.executable)
    assert km.kernel_spec.env == {"DGM_GRADE_PLAN": "p"}
    k = Kernel(tmp_path, {"DGM_GRADE_PLAN": "p"})  # the plain kernel runs, with the variables it was given
    try:
        out, err = k.run("import os; print(os.environ.get('DGM_GRADE_PLAN'), os.environ.get('DGM_SANDBOXED'))", 60)
        assert (out.strip(), err) == ("p None", None)
    finally:
        k.close()


PLANTED = {  # what student code could leave in its folder for the next kernel (after a restart)
    "dgm/__init__.py": "open('{m}', 'a').write('dgm ')", "dgm/grading/__init__.py": "",
    "dgm/grading/kernel.py": "open('{m}', 'a').write('launcher ')", "sitecustomize.py": "open('{m}', 'a').write('site ')",
    ".ipython/profile_default/startup/00.py": "open('{m}', 'a').write('startup ')",
    ".jupyter/ipython_kernel_config.py": "open('{m}', 'a').write('config ')",
    f".local/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages/x.pth":
        "import os; open('{m}', 'a').write('pth ')",
}


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "unsandboxed"])
def test_nothing_planted_in_scratch_runs_at_start_up(tmp_path, monkeypatch, sandboxed):
    if sandboxed and not STATUS.available:
        pytest.skip(f"no bubblewrap sandbox here: {STATUS.reason}")
    if not sandboxed:
        monkeypatch.setenv("DGM_SANDBOX", "0")
    scratch = tmp_path / "s"
    marker = scratch / "planted-code-ran.txt"
    for rel, code in PLANTED.items():
        (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
        (scratch / rel).write_text(code.format(m=marker) + "\n")
    k = Kernel(scratch)
    try:
        out, err = k.run("import dgm, os; print(dgm.__file__)", timeout=60)
    finally:
        k.close()
    assert err is None and out.strip() == str(REPO / "helpers" / "dgm" / "__init__.py"), (out, err)
    assert not marker.exists(), marker.read_text()


@needs_bwrap
def test_command_shape(tmp_path):
    argv = sandbox.kernel_command(tmp_path, {"DGM_GRADE_PLAN": "p", "HOME": "/root", "DGM_DATA": "/root/x"})
    assert argv[-2:] == ["-f", "{connection_file}"] and "--unshare-net" in argv and "--clearenv" in argv
    env = {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a == "--setenv"}
    assert env["DGM_GRADE_PLAN"] == "p" and env["HOME"] == str(tmp_path)
    assert env["DGM_DATA"].startswith(str(tmp_path))  # the caller cannot move the data cache outside
    binds = {argv[i + 2] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")}
    assert str(REPO) not in binds and str(REPO / "course") not in binds and "/root" not in binds
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"] == [str(tmp_path)]
    # the private /tmp comes before every bind: a venv, a repo or a scratch folder under /tmp stays visible
    first_bind = min(i for i, a in enumerate(argv) if a in ("--bind", "--ro-bind"))
    assert argv.index("--tmpfs") < first_bind and argv[argv.index("--tmpfs") + 1] == "/tmp"


@needs_bwrap
def test_interrupt_reaches_the_kernel(kernel):
    r"""nbclient's cell timeout interrupts the kernel: the cell stops, the kernel lives on."""
    msg_id = kernel.kc.execute("import time\nfor _ in range(600): time.sleep(0.1)")
    time.sleep(2)
    kernel.interrupt()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply = kernel.kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    assert time.monotonic() < deadline
    assert kernel.run("print(6 * 7)", timeout=30)[0].strip() == "42"


@needs_bwrap
def test_nbclient_runs_a_notebook_in_the_sandbox(tmp_path):
    r"""What the grader does: nbclient with the sandbox's kernel manager and a cwd."""
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("import os, torch\nprint(os.getcwd() == os.environ['HOME'], "
                                           "torch.ones(2).sum().item())"),
                             new_code_cell("while True:\n    pass"), new_code_cell("print('after')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    km = sandbox.kernel_manager(tmp_path / "s", env={})
    client = NotebookClient(nb, km=km, timeout=20, startup_timeout=120, interrupt_on_timeout=True,
                            allow_errors=True, resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()  # a km passed in is not shut down by nbclient
        assert nb.cells[0].outputs[0]["text"].strip() == "True 2.0"
        assert nb.cells[1].outputs[-1]["ename"] == "KeyboardInterrupt"  # the cell timeout interrupted it
        assert nb.cells[2].outputs[0]["text"].strip() == "after"
    finally:
        run_sync(km.shutdown_kernel)(now=True)
    assert not (tmp_path / "s" / "kernel.json").exists()


@needs_bwrap
def test_readonly_file_inside_scratch(tmp_path):
    r"""The grade plan lives in scratch but the kernel cannot rewrite, replace or delete it."""
    scratch = tmp_path / "s"
    scratch.mkdir()
    plan = scratch / "plan.json"
    plan.write_text('{"cases": 1}')
    k = Kernel(scratch, {}, readonly=(plan,))
    try:
        out, err = k.run("""
            import os
            done = []
            for name, act in [('write', lambda: open('plan.json', 'w').write('{}')),
                              ('delete', lambda: os.remove('plan.json')),
                              ('replace', lambda: (open('x.json', 'w').write('{}'), os.replace('x.json', 'plan.json'))),
                              ('chmod', lambda: os.chmod('plan.json', 0o666))]:
                try:
                    act(); done.append(name)
                except OSError:
                    pass
            print('DONE', done, open('plan.json').read())
        """, timeout=60)
    finally:
        k.close()
    assert err is None and 'DONE [] {"cases": 1}' in out, (out, err)
    assert plan.read_text() == '{"cases": 1}'
