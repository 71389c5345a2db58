"""Real-browser harness: a JupyterLab server on a free port with a token, headless Chromium, helpers.

    from tests.browser.harness import JupyterServer, make_driver, Lab
    with JupyterServer(root, student=True, env={"DGM_FAST": "1"}) as server:
        driver = make_driver()
        lab = Lab(driver, server, screenshots=Path("tests/browser/screenshots"))
        lab.open("01_autoencoder/01_autoencoder.ipynb")
        lab.run_all(); lab.wait_idle()
        lab.errors()                    # texts of error outputs
        for slider in lab.sliders(): lab.drag(slider); lab.keyboard(slider)
        lab.widget_images()             # current src of every ipywidgets Image
        lab.screenshot("01-after-run")

Chromium and chromedriver come from Debian (`apt-get install chromium chromium-driver`), never a
download; Selenium from PyPI (the `browser` extra). Used by tests/browser (make test-browser).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STUDENT_CONFIG = ROOT / "config" / "student"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000"]


def missing() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return "needs Debian's chromium and chromedriver: apt-get install -y chromium chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs selenium: pip install -e 'helpers[browser]' (make test-browser does it)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """``jupyter lab`` on ``root`` (student=True: with config/student, i.e. without nbgrader's extensions)."""

    def __init__(self, root: Path, student: bool = True, env: dict | None = None, cwd: Path | None = None):
        self.root, self.student = Path(root), student
        self.port, self.token = free_port(), os.urandom(12).hex()
        self.scratch = Path(tempfile.mkdtemp(prefix="dgm-jupyter-"))
        self.env = dict(os.environ, **(env or {}))
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        # a scratch settings dir: plain (non-windowed) notebooks, so every cell is in the DOM
        settings = self.scratch / "settings" / "@jupyterlab" / "notebook-extension"
        settings.mkdir(parents=True)
        (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        news = self.scratch / "settings" / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True)  # no "get notified about Jupyter news?" toast over the screenshots
        (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
        self.env.update(JUPYTERLAB_SETTINGS_DIR=str(self.scratch / "settings"),
                        JUPYTERLAB_WORKSPACES_DIR=str(self.scratch / "workspaces"))
        if student:
            self.env["JUPYTER_CONFIG_PATH"] = str(STUDENT_CONFIG)
        self.cwd = Path(cwd or root)
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> int:
        """HTTP status of GET ``path`` (with the token)."""
        sep = "&" if "?" in path else "?"
        try:
            with urllib.request.urlopen(f"{self.url}{path}{sep}token={self.token}", timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as err:
            return err.code

    def start(self, timeout: float = 180) -> "JupyterServer":
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={self.port}",
               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--ServerApp.port_retries=0"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = open(self.scratch / "server.log", "w")
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited:\n{(self.scratch / 'server.log').read_text()[-3000:]}")
            try:
                if self.get("/api/status") == 200:
                    return self
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError(f"jupyter lab did not start in {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def make_driver():
    """Headless Debian Chromium with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='dgm-chromium-')}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # driver.get_log("browser"): the console
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(120)
    return driver


class Lab:
    """One JupyterLab page driven through Selenium."""

    def __init__(self, driver, server: JupyterServer, screenshots: Path | None = None):
        self.d, self.server = driver, server
        self.screenshots = Path(screenshots or ROOT / "tests" / "browser" / "screenshots")
        self.screenshots.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ basics
    def css(self, selector, root=None):
        from selenium.webdriver.common.by import By
        return (root or self.d).find_elements(By.CSS_SELECTOR, selector)

    def wait(self, cond, timeout: float = 60, every: float = 0.5, what: str = "condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                value = cond()
            except Exception:  # stale elements while Lab re-renders
                value = None
            if value:
                return value
            time.sleep(every)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")

    def goto(self, path: str = "/lab") -> None:
        sep = "&" if "?" in path else "?"
        self.d.get(f"{self.server.url}{path}{sep}token={self.server.token}")

    def open(self, notebook: str, timeout: float = 120) -> None:
        """Open ``notebook`` (relative to the server root) alone and wait for its kernel. ``?reset``: JupyterLab
        would otherwise restore every notebook opened before (each with a kernel) and Run All could reach one
        of them instead."""
        self.goto(f"/lab/tree/{notebook}?reset")
        self.wait(lambda: self.css(".jp-Notebook .jp-Cell"), timeout, what="the notebook")
        self.wait(lambda: self.kernel_status() == "idle", timeout, what="the kernel")

    def screenshot(self, name: str) -> Path:
        path = self.screenshots / f"{name}.png"
        self.d.save_screenshot(str(path))
        return path

    def menu(self, menu: str, command: str) -> None:
        """Click ``menu`` in the menu bar, then the item with data-command ``command``."""
        item = self.wait(lambda: [m for m in self.css(".lm-MenuBar-item") if m.text.strip() == menu], what=menu)
        item[0].click()
        self.wait(lambda: self.css(f'.lm-Menu-item[data-command="{command}"]'), 10, what=command)[0].click()

    def menus(self) -> list[str]:
        return [m.text.strip() for m in self.css(".lm-MenuBar-item")]

    # ------------------------------------------------------------ running
    def panel(self):
        """The visible notebook panel (other open notebooks stay in the DOM, hidden)."""
        panels = self.css(".jp-NotebookPanel:not(.lm-mod-hidden)")
        return panels[0] if panels else None

    def _prompts(self) -> list[str]:
        """The input prompts of the visible notebook's code cells that hold code."""
        out = []
        for cell in self.css(".jp-Cell.jp-CodeCell", self.panel()):
            if self.css(".jp-InputArea-editor", cell)[0].text.strip():
                out.append(self.css(".jp-InputPrompt", cell)[0].text.strip())
        return out

    def kernel_status(self) -> str | None:
        ind = self.css(".jp-Notebook-ExecutionIndicator", self.panel())
        return ind[0].get_attribute("data-status") if ind else None

    def run_all(self) -> None:
        self.menu("Run", "runmenu:run-all")

    def wait_idle(self, timeout: float = 900, settle: float = 3) -> None:
        """Until every code cell ran (or one failed) and the kernel is idle (``settle`` seconds in a row)."""
        def idle():
            prompts = self._prompts()
            done = self.kernel_status() == "idle" and not any("*" in p for p in prompts)
            return done and (not any(p.strip() in ("[ ]:", "") for p in prompts) or self.errors())
        calm = None
        deadline = time.time() + timeout
        while time.time() < deadline:
            if idle():
                calm = calm or time.time()
                if time.time() - calm >= settle:
                    return
            else:
                calm = None
            time.sleep(1)
        shot = self.screenshot("timeout")
        prompts = self._prompts()
        dialogs = [e.text[:200] for e in self.css(".jp-Dialog")]
        raise TimeoutError(f"the notebook did not finish in {timeout}s: kernel {self.kernel_status()!r}, "
                           f"{sum('*' in p for p in prompts)} running / {len(prompts)} code cells, "
                           f"unrun {sum(p in ('[ ]:', '') for p in prompts)}, dialogs {dialogs}, screenshot {shot}")

    def errors(self) -> list[str]:
        """Texts of error outputs (tracebacks) in the open notebook."""
        return [e.text[-1500:] for e in
                self.css('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]', self.panel())]

    def unexecuted(self) -> int:
        """Code cells without an execution count (a Run All that stopped)."""
        return sum(1 for p in self._prompts() if p in ("[ ]:", ""))

    def save(self) -> None:
        self.menu("File", "docmanager:save")

    def close_all(self) -> None:
        """Shut every kernel down (the next notebook gets the CPU)."""
        self.d.execute_script("""
            const t = arguments[0];
            return fetch('/api/kernels?token=' + t).then(r => r.json()).then(ks => Promise.all(
              ks.map(k => fetch('/api/kernels/' + k.id + '?token=' + t, {method: 'DELETE'}))));""", self.server.token)

    # ------------------------------------------------------------ widgets
    def widget_images(self, root=None) -> list[str]:
        """The src of every ipywidgets Image (a blob: or data: URL that changes with the picture)."""
        return [img.get_attribute("src") for img in self.css("img.widget-image, .widget-image img", root)]

    def widget_outputs(self):
        """Outputs that hold at least one slider (a widget with a control to move)."""
        return [o for o in self.css(".jp-OutputArea-output", self.panel()) if self.css(".widget-slider", o)]

    def sliders(self, root=None):
        return self.css(".widget-slider .noUi-handle, .widget-slider .slider-container .ui-slider-handle", root)

    def _scroll(self, el) -> None:
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)

    def drag(self, handle, dx: int = 60) -> None:
        """Drag a slider's handle ``dx`` pixels to the right (and back left when it is at the end)."""
        from selenium.webdriver.common.action_chains import ActionChains

        self._scroll(handle)
        before = handle.location["x"]
        ActionChains(self.d).click_and_hold(handle).move_by_offset(dx // 2, 0).move_by_offset(dx - dx // 2, 0) \
            .release().perform()
        time.sleep(0.3)
        if abs(handle.location["x"] - before) < 2:  # already at the right end: go left
            ActionChains(self.d).click_and_hold(handle).move_by_offset(-dx, 0).release().perform()

    def keyboard(self, handle, keys=("ARROW_RIGHT",) * 3) -> None:
        """Move a slider from the keyboard (focus on its handle): arrows, PAGE_UP/DOWN, HOME/END."""
        from selenium.webdriver.common.keys import Keys

        self._scroll(handle)
        handle.click()
        for key in keys:
            handle.send_keys(getattr(Keys, key))
            time.sleep(0.1)
        if not self.d.execute_script("return document.activeElement === arguments[0]", handle):
            raise AssertionError("the slider handle did not take keyboard focus")

    def progress_widgets(self) -> int:
        """tqdm bars rendered as ipywidgets (not as text) on the page now."""
        return len(self.css(".widget-hprogress, .jupyter-widgets.widget-hprogress"))

    def watch_progress(self) -> None:
        """Remember any tqdm widget bar that appears from now on (dgm.train's bars close when done: leave=False)."""
        self.d.execute_script("""
            window.__dgmProgress = 0;
            new MutationObserver(() => {
              const n = document.querySelectorAll('.widget-hprogress').length;
              if (n > window.__dgmProgress) window.__dgmProgress = n;
            }).observe(document.body, {childList: true, subtree: true});""")

    def saw_progress(self) -> int:
        """The most tqdm widget bars seen at once since :meth:`watch_progress`."""
        return int(self.d.execute_script("return window.__dgmProgress || 0") or 0)
