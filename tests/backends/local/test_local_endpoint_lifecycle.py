"""Endpoint processes: start, state, kill, redeploy, restart-proof records, safe delete."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from azml_magics.backends.local import endpoints
from azml_magics.errors import AzmlError, NotFound, SpecError


@pytest.fixture
def home(tmp_path):
    yield tmp_path / "home"
    for record in (tmp_path / "home" / "endpoints").glob("*.json"):  # never leave a server behind
        endpoints.stop_endpoint(tmp_path / "home", record.stem)


def wait_until(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_start_records_the_process_and_keeps_the_key_private(home, tiny_model_dir):
    ep = endpoints.start_endpoint(home, "ep-a", tiny_model_dir, model_ref="tiny:1")
    assert ep.state == "Succeeded" and ep.backend == "local" and ep.model == "tiny:1"
    assert ep.scoring_uri.startswith("http://127.0.0.1:") and ep.scoring_uri.endswith("/score")
    key_file = home / "endpoints" / "ep-a.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = endpoints.read_key(home, "ep-a")
    assert len(key) >= 32
    record = json.loads((home / "endpoints" / "ep-a.json").read_text())
    assert record["pid"] == ep.details["pid"] and record["port"] == ep.details["port"]
    assert "azml_magics.backends.local.server" in record["cmdline"]
    for path in (home / "endpoints").iterdir():
        if path.suffix != ".key":
            assert key not in path.read_text(errors="replace"), path  # not in the record, not in the log
    assert key not in repr(ep) and key not in json.dumps(ep.to_dict())
    server = psutil.Process(ep.details["pid"])
    assert server.net_connections() and all(c.laddr.ip == "127.0.0.1" for c in server.net_connections() if c.status == "LISTEN")
    assert os.getsid(ep.details["pid"]) != os.getsid(0)  # its own session: Ctrl-C in the kernel does not reach it
    assert endpoints.get_endpoint(home, "ep-a").state == "Succeeded"
    assert [e.name for e in endpoints.list_endpoints(home)] == ["ep-a"]

    with pytest.raises(AzmlError, match="already running"):
        endpoints.start_endpoint(home, "ep-a", tiny_model_dir, model_ref="tiny:1")

    assert endpoints.stop_endpoint(home, "ep-a") is True
    assert not psutil.pid_exists(ep.details["pid"]) or psutil.Process(ep.details["pid"]).status() == psutil.STATUS_ZOMBIE
    assert list((home / "endpoints").iterdir()) == []
    assert endpoints.stop_endpoint(home, "ep-a") is False
    with pytest.raises(NotFound, match="no local endpoint named 'ep-a'"):
        endpoints.get_endpoint(home, "ep-a")
    with pytest.raises(NotFound, match="deploy it again"):
        endpoints.read_key(home, "ep-a")


def test_killed_endpoint_shows_down_and_a_redeploy_works(home, tiny_model_dir):
    ep = endpoints.start_endpoint(home, "ep-k", tiny_model_dir, model_ref="tiny:1")
    old_key = endpoints.read_key(home, "ep-k")
    os.kill(ep.details["pid"], signal.SIGKILL)
    assert wait_until(lambda: endpoints.get_endpoint(home, "ep-k").state == "Down")
    down = endpoints.get_endpoint(home, "ep-k")
    assert "deploy again" in down.details["reason"]
    # the state check collects the dead child: no zombie is left in this (kernel) process
    assert wait_until(lambda: endpoints.get_endpoint(home, "ep-k").state == "Down"
                      and ep.details["pid"] not in [c.pid for c in psutil.Process().children()])

    again = endpoints.start_endpoint(home, "ep-k", tiny_model_dir, model_ref="tiny:2")
    assert again.state == "Succeeded" and again.details["pid"] != ep.details["pid"] and again.model == "tiny:2"
    new_key = endpoints.read_key(home, "ep-k")
    assert new_key != old_key
    body = {"input_data": {"input_string": [{"role": "user", "content": "hi"}], "parameters": {"max_new_tokens": 2}}}
    assert httpx.post(again.scoring_uri, json=body, headers={"Authorization": f"Bearer {new_key}"}).status_code == 200
    assert httpx.post(again.scoring_uri, json=body, headers={"Authorization": f"Bearer {old_key}"}).status_code == 401


def test_a_fresh_process_lists_and_deletes_endpoints(home, tiny_model_dir):
    """What a new kernel sees after a restart: the records on disk and the still-running servers."""
    first = endpoints.start_endpoint(home, "ep-r1", tiny_model_dir, model_ref="tiny:1")
    second = endpoints.start_endpoint(home, "ep-r2", tiny_model_dir, model_ref="tiny:1")
    code = (
        "import json, sys; from azml_magics.backends.local import endpoints as e; h = sys.argv[1];"
        "print(json.dumps([(x.name, x.state) for x in e.list_endpoints(h)]));"
        "print(json.dumps([e.stop_endpoint(h, x.name) for x in e.list_endpoints(h)]))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listed, stopped = (json.loads(line) for line in out.stdout.splitlines())
    assert listed == [["ep-r1", "Succeeded"], ["ep-r2", "Succeeded"]]
    assert stopped == [True, True]
    for ep in (first, second):
        assert wait_until(lambda: not psutil.pid_exists(ep.details["pid"])
                          or psutil.Process(ep.details["pid"]).status() == psutil.STATUS_ZOMBIE)
        endpoints._reap(ep.details["pid"])  # it was our child: collect it
    assert endpoints.list_endpoints(home) == []


def test_delete_never_signals_a_process_that_is_not_our_server(home, tiny_model_dir):
    ep = endpoints.start_endpoint(home, "ep-p", tiny_model_dir, model_ref="tiny:1")
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record_path = home / "endpoints" / "ep-p.json"
        record = json.loads(record_path.read_text())
        server_pid = record["pid"]
        # the pid was recycled: the record now points at an unrelated process with our start time
        record.update(pid=bystander.pid, create_time=psutil.Process(bystander.pid).create_time())
        record_path.write_text(json.dumps(record))
        assert endpoints.get_endpoint(home, "ep-p").state == "Down"
        assert endpoints.stop_endpoint(home, "ep-p") is True
        assert bystander.poll() is None  # untouched
        # even a process with our exact command line but another start time is left alone
        record.update(pid=server_pid, create_time=0.0)
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record))
        assert endpoints.stop_endpoint(home, "ep-p") is True
        assert psutil.Process(server_pid).status() != psutil.STATUS_ZOMBIE
    finally:
        bystander.kill()
        bystander.wait()
        os.kill(ep.details["pid"], signal.SIGKILL)
        os.waitpid(ep.details["pid"], 0)


def test_a_server_that_cannot_load_its_model_fails_fast_with_the_log_tail(home, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "phi3", "vocab_size": "many"}')
    started = time.monotonic()
    with pytest.raises(AzmlError) as info:
        endpoints.start_endpoint(home, "ep-b", broken, model_ref="broken:1", timeout=120)
    message = str(info.value)
    assert "failed to start (the server exited)" in message and "cannot load the model" in message
    assert "\n" not in message and str(home / "endpoints" / "ep-b.log") in message
    assert time.monotonic() - started < 90
    assert not (home / "endpoints" / "ep-b.json").exists() and not (home / "endpoints" / "ep-b.key").exists()


def test_user_mistakes_are_one_line_before_anything_starts(home, tmp_path):
    with pytest.raises(AzmlError, match="not a Hugging Face model folder"):
        endpoints.start_endpoint(home, "ep-x", tmp_path, model_ref="m:1")
    with pytest.raises(SpecError):
        endpoints.start_endpoint(home, "../escape", tmp_path, model_ref="m:1")
    with pytest.raises(SpecError):
        endpoints.read_key(home, "../../etc/passwd")
    assert not (home / "endpoints").exists() or list((home / "endpoints").iterdir()) == []


def test_an_unhealthy_server_is_reported_as_such(home, tiny_model_dir):
    ep = endpoints.start_endpoint(home, "ep-u", tiny_model_dir, model_ref="tiny:1")
    os.kill(ep.details["pid"], signal.SIGSTOP)  # alive but not answering
    try:
        assert endpoints.get_endpoint(home, "ep-u").state == "Unhealthy"
    finally:
        os.kill(ep.details["pid"], signal.SIGCONT)
    assert wait_until(lambda: endpoints.get_endpoint(home, "ep-u").state == "Succeeded")


def test_a_request_over_the_timeout_gets_408_and_the_server_carries_on(home, tiny_model_dir):
    ep = endpoints.start_endpoint(home, "ep-t", tiny_model_dir, model_ref="tiny:1",
                                  server_args=("--request-timeout", "0.2", "--max-batch", "1"))
    headers = {"Authorization": f"Bearer {endpoints.read_key(home, 'ep-t')}"}

    def body(tokens):
        return {"input_data": {"input_string": [{"role": "user", "content": "hi"}],
                               "parameters": {"max_new_tokens": tokens, "do_sample": False}}}

    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(3) as pool:  # one runs, two time out while queued
        slow = list(pool.map(lambda _: httpx.post(ep.scoring_uri, json=body(1000), headers=headers, timeout=60), range(3)))
    assert {r.status_code for r in slow} == {408}
    assert "request timeout of 0.2 s" in slow[0].json()["error"]["message"]
    quick = httpx.post(ep.scoring_uri, json=body(1), headers=headers, timeout=60)
    assert quick.status_code == 200, quick.text
