"""%azml_status in a fresh kernel: the saved state, each job and endpoint checked live where it can be."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from azml_magics.api import Session
from azml_magics.data import sample_dir
from azml_magics.state import WorkspaceState
from tests.paths import REPO


def _fresh_kernel_status(home) -> str:
    """%azml_status in a new IPython process (nothing connected, nothing in memory)."""
    code = "get_ipython().run_line_magic('load_ext', 'azml_magics'); get_ipython().run_line_magic('azml_status', '')"
    env = dict(os.environ, AZML_MAGICS_HOME=str(home), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "IPython", "--quick", "--no-banner", "--colors=NoColor", "-c", code],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def _row(text: str, name: str) -> str:
    """The table row of ``name``, its cells collapsed to single spaces."""
    line = next(line for line in text.splitlines() if f" {name} " in f" {line} ")
    return " ".join(line.split())


def test_fresh_kernel_shows_saved_state_and_what_still_runs(azml_home, tiny_model_dir):
    d = sample_dir()
    s = Session(home=azml_home, poll_interval=0.2)
    s.connect("local")
    spec = {"model": "azml-tiny-phi3", "data": {"train": f"{d}/train_sft.jsonl"},
            "parameters": {"max_steps": 5000, "logging_steps": 50}}
    running = s.finetune(spec)
    s.state.add("endpoints", "old-endpoint", deployment="default", model="m:1")  # recorded, long gone
    azure = WorkspaceState(azml_home, "azure:sub-1/rg-1/ws-1")
    azure.add("endpoints", "chat-ep", deployment="blue", model="ft:1", instance_type="Standard_NC6s_v3")
    try:
        deadline = time.time() + 120
        while s.job(running.name).state != "Running" and time.time() < deadline:
            time.sleep(0.2)
        assert s.job(running.name).state == "Running"
        out = _fresh_kernel_status(azml_home)
        assert "Not connected" not in out
        assert f"local: {azml_home.resolve()}" in out
        assert re.search(r" (Preparing|Running) yes ", _row(out, running.name)), out  # live state, still running
        assert " gone no " in _row(out, "old-endpoint") + " ", out
        # Azure: not connected here, so saved rows are shown unchecked with how to check, and the billing note
        assert "azure: sub-1/rg-1/ws-1" in out and "chat-ep" in out
        assert "%azml_connect --backend azure to check" in out
        assert "Billing: an Azure online endpoint bills for its instances while it is deployed (chat-ep)" in out
        assert "Billing" not in out.split("azure: sub-1")[0]  # no billing note on the local workspace
    finally:
        s.cancel(running.name)
    out = _fresh_kernel_status(azml_home)
    assert " Canceled no " in _row(out, running.name), out


def test_status_in_a_fresh_kernel_with_nothing_saved_says_how_to_start(tmp_path):
    out = _fresh_kernel_status(tmp_path / "empty-home")
    assert "Nothing recorded under" in out and "%azml_connect" in out


@pytest.mark.parametrize("check", [False, True])
def test_api_status_needs_no_connection(azml_home, check):
    WorkspaceState(azml_home, f"local:{azml_home.resolve()}").add("jobs", "gone-job", state="Running")
    s = Session(home=azml_home)
    [ws] = s.status(check=check)
    assert not s.connected  # reading (and checking the local backend) does not connect the session
    [item] = ws.items
    assert (item.name, item.details["state"]) == ("gone-job", "Running")
    assert (item.live, item.running) == (("gone", False) if check else (None, None))


def test_an_endpoint_whose_server_died_shows_as_down_and_its_port_gets_no_request(azml_home, tiny_model_dir):
    """Kill one local endpoint's server by its recorded pid and let something else take its port:
    %azml_status in a fresh kernel shows it Down and not running (the live one Succeeded and running),
    and the newcomer on the port is not even probed."""
    import http.server
    import signal
    import threading

    import psutil

    from azml_magics.backends.local import endpoints

    s = Session(home=azml_home)
    s.connect("local")
    started = {}
    try:
        for name in ("ep-alive", "ep-killed"):
            started[name] = endpoints.start_endpoint(azml_home, name, tiny_model_dir, model_ref="tiny:1")
            s.state.add("endpoints", name, deployment="demo", model="tiny:1")
        pid, port = started["ep-killed"].details["pid"], started["ep-killed"].details["port"]
        os.kill(pid, signal.SIGKILL)
        try:
            psutil.Process(pid).wait(timeout=30)  # reaped if it is our child, gone either way
        except psutil.NoSuchProcess:
            pass
        probes = []

        class Impostor(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                probes.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        impostor = http.server.HTTPServer(("127.0.0.1", port), Impostor)
        threading.Thread(target=impostor.serve_forever, daemon=True).start()
        try:
            out = _fresh_kernel_status(azml_home)
        finally:
            impostor.shutdown()
            impostor.server_close()
        assert " Down no " in _row(out, "ep-killed") + " ", out
        assert " Succeeded yes " in _row(out, "ep-alive") + " ", out
        assert probes == []  # a dead endpoint's port is not ours: nothing was sent there
        [ws] = s.status()
        states = {i.name: (i.live, i.running) for i in ws.items if i.kind == "endpoint"}
        assert states == {"ep-alive": ("Succeeded", True), "ep-killed": ("Down", False)}
    finally:
        for name in started:
            endpoints.stop_endpoint(azml_home, name)


def test_status_details_stay_short():
    from azml_magics.overview import Item, _short_details

    item = Item("jobs", "job-1", 0.0, {"display_name": "job-1", "experiment": "chat_completion_" + "x" * 80,
                                        "parameters": {"lora_r": 8}, "url": "/very/long/path", "state": "Running",
                                        "model": "azml-tiny-phi3"})
    text = _short_details(item)
    assert text.startswith("experiment=chat_completion_") and "…" in text and len(text.split(", ")[0]) == 48 + 11
    assert "model=azml-tiny-phi3" in text
    assert "lora_r" not in text and "/very/long" not in text and "display_name" not in text and "Running" not in text
