"""UI fixtures: a session on the scripted backend, and for the browser tests a real JupyterLab on
127.0.0.1 with Debian's headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .browser import CHROMIUM, CHROMIUM_ARGS, Lab, _free_port
from .scripted import ModelRef, ScriptedBackend


@pytest.fixture
def scripted(tmp_path):
    """(session, backend): an azml_magics Session connected to a ScriptedBackend, with an endpoint 'demo-ep'."""
    from azml_magics.api import Session
    from azml_magics.state import WorkspaceState

    backend = ScriptedBackend(tmp_path)
    session = Session(home=tmp_path / "home", poll_interval=0.01)
    session.backend = backend
    session.workspace = backend.connect({})
    session.state = WorkspaceState(session.home, session.workspace.key)
    backend.deploy(ModelRef("ft-model", "1", "azureml:ft-model:1"),
                   type("S", (), {"endpoint": "demo-ep", "instance_type": "Standard_NC6s_v3"})())
    backend.calls.clear()
    return session, backend


@pytest.fixture
def jupyter_lab(tmp_path) -> Lab:
    """JupyterLab serving ``tmp_path/root`` on a free loopback port with a random token."""
    import httpx

    root, private = tmp_path / "root", tmp_path / "jupyter"
    root.mkdir()
    env = dict(os.environ)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        env[var] = str(private / sub)
    env.pop("JUPYTER_PLATFORM_DIRS", None)
    news = private / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)  # no "news?" popup over the page: every browser test's screenshots stay clear
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           f"--LabApp.workspaces_dir={private / 'workspaces'}", f"--LabApp.user_settings_dir={private / 'settings'}",
           "--ServerApp.open_browser=False", "--ServerApp.port_retries=0"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp_path / "jupyter-lab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not start in 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Lab(url, token, root, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def chromium_page(tmp_path):
    """A page in a fresh headless Chromium (Debian's, with its own user-data-dir)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent; install it with .ci/browser.sh (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            page = browser.pages[0] if browser.pages else browser.new_page()
            yield page
        finally:
            browser.close()
