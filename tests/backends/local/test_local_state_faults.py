"""Nothing lost, nobody let in: a damaged state file while endpoints run, two deploys of one name at
once, and a client that must not talk to whatever took a dead endpoint's port."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from azml_magics.backends.local import endpoints
from azml_magics.errors import RemoteError
from tests.paths import REPO
from tests.shell import run_cell


@pytest.fixture
def home(azml_home):
    yield azml_home
    for record in (azml_home / "endpoints").glob("*.json"):  # never leave a server behind
        endpoints.stop_endpoint(azml_home, record.stem)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_damaged_state_while_endpoints_run_then_delete_all_stops_every_one(ip, home, tiny_model_dir):
    run_cell(ip, "%azml_connect --backend local")
    session = ip.azml.session
    pids = []
    for name in ("ep-one", "ep-two"):
        ep = endpoints.start_endpoint(home, name, tiny_model_dir, model_ref="tiny:1")
        session.state.add("endpoints", name, model="tiny:1")
        pids.append(ep.details["pid"])
    session.state.path.write_bytes(b'{"endpoints": {"ep-one": {"created": 1')  # half-written, say

    _, out, _ = run_cell(ip, "%azml_connect --backend local")  # a restarted (or second) kernel
    result, deleted, _ = run_cell(ip, "%azml_delete --all")
    assert result.success, deleted
    out += deleted
    assert "Deleted: endpoint ep-one, endpoint ep-two" in out
    [warning] = [line for line in out.splitlines() if line.startswith("Warning:")]
    assert "was damaged" in warning and "found again: 2 endpoints" in warning
    assert not [pid for pid in pids if _alive(pid)]
    assert not list((home / "endpoints").glob("*.json"))
    kept = [p for p in session.state.path.parent.iterdir() if ".broken-" in p.name]
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b'{"endpoints"')


_DEPLOY = """
import sys, time
from azml_magics.backends.local import endpoints
from azml_magics.errors import AzmlError
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # every contender starts at the same moment
try:
    ep = endpoints.start_endpoint(sys.argv[1], "ep-race", sys.argv[2], model_ref="tiny:1")
    print("started", ep.details["pid"])
except AzmlError as exc:
    print("refused", exc)
"""


def test_two_kernels_deploying_one_name_at_once_leave_one_server(home, tiny_model_dir):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    at = str(time.time() + 15)
    procs = [subprocess.Popen([sys.executable, "-c", _DEPLOY, str(home), str(tiny_model_dir), at], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    lines = sorted(o.strip().splitlines()[-1] if o.strip() else e[-300:] for o, e in outs)
    assert [line.split()[0] for line in lines] == ["refused", "refused", "started"], outs
    assert all("already running" in line for line in lines[:2]), lines
    pid = int(lines[2].split()[1])
    servers = [p for p in psutil.process_iter(["cmdline"])
               if endpoints.SERVER_MODULE in (p.info["cmdline"] or []) and "ep-race" in p.info["cmdline"]]
    assert [p.pid for p in servers] == [pid]  # no orphan still holding a key
    assert endpoints.get_endpoint(home, "ep-race").details["pid"] == pid


class _Listener(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802 - the http.server name
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        _Listener.seen.append((self.headers.get("authorization"), body))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"output": "hello from someone else"}')

    do_GET = do_POST

    def log_message(self, *args):
        pass


def _bind_when_free(port: int, timeout: float = 30.0):
    """Another program takes the dead server's port (once the kernel has let go of it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http.server.HTTPServer(("127.0.0.1", port), _Listener)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_client_sends_nothing_to_whatever_took_a_dead_endpoints_port(home, tiny_model_dir):
    from azml_magics.backends.local import LocalBackend

    backend = LocalBackend()
    backend.connect({"home": str(home)})
    ep = endpoints.start_endpoint(home, "ep-dead", tiny_model_dir, model_ref="tiny:1")
    key = endpoints.read_key(home, "ep-dead")
    os.kill(ep.details["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(ep.details["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    impostor = _bind_when_free(ep.details["port"])
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    try:
        _Listener.seen.clear()
        request = {"input_data": {"input_string": [[{"role": "user", "content": "my secret prompt"}]]}}
        with pytest.raises(RemoteError, match=r"local endpoint 'ep-dead' is Down: .* nothing was sent") as err:
            backend.invoke("ep-dead", request)
        assert "\n" not in str(err.value) and key not in str(err.value)
        with pytest.raises(RemoteError, match="is Down"):
            list(backend.stream_chat("ep-dead", [{"role": "user", "content": "my secret prompt"}], None))
        with pytest.raises(RemoteError, match="is Down"):
            backend.endpoint_key("ep-dead")
        assert _Listener.seen == []  # neither the key nor the prompt reached the listener
    finally:
        impostor.shutdown()
        impostor.server_close()


def test_the_endpoints_folder_and_server_logs_are_private(home, tiny_model_dir):
    import stat

    from azml_magics.backends.local import LocalBackend

    LocalBackend().connect({"home": str(home)})
    assert stat.S_IMODE((home / "endpoints").stat().st_mode) == 0o700
    endpoints.start_endpoint(home, "ep-private", tiny_model_dir, model_ref="tiny:1")
    assert stat.S_IMODE((home / "endpoints" / "ep-private.log").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "endpoints" / "ep-private.key").stat().st_mode) == 0o600
