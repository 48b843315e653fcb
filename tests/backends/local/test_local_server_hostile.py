"""The local endpoint against hostile and clumsy clients, over real HTTP and raw sockets: numbers too long
to read, NaN, one request holding 20,000 conversations, a client that leaves before its answer, a body
that arrives slowly or never whole. Each gets a clear answer (or none, to nobody) and no ERROR log."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from azml_magics.backends.local import endpoints

USER = [{"role": "user", "content": "How many hours are in 5 days?"}]
NAME = "hostile"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("hostile-home")
    ep = endpoints.start_endpoint(home, NAME, tiny_model_dir, model_ref="tiny:1",
                                  server_args=("--body-timeout", "2", "--max-new-tokens", "1024"))
    try:
        yield home, ep, endpoints.read_key(home, NAME)
    finally:
        endpoints.stop_endpoint(home, NAME)


def _url(server, path: str) -> str:
    return server[1].scoring_uri.rsplit("/", 1)[0] + path


def _post(server, body: bytes | dict, path: str = "/score", timeout: float = 120) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(_url(server, path), content=content, timeout=timeout,
                      headers={"Authorization": f"Bearer {server[2]}", "Content-Type": "application/json"})


def _log(server) -> str:
    return "".join(p.read_text(errors="replace") for p in (server[0] / "endpoints").glob(f"{NAME}*.log"))


def _health(server) -> dict:
    return httpx.get(_url(server, "/health"), timeout=10).json()


def _raw(server, head: bytes, body: bytes = b"") -> socket.socket:
    parts = urlsplit(server[1].scoring_uri)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    sock.sendall(head + body)
    return sock


def _head(server, length: int) -> bytes:
    host = urlsplit(server[1].scoring_uri).netloc
    return (f"POST /score HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server[2]}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def _score_body(parameters_json: str) -> bytes:
    return ('{"input_data": {"input_string": [[{"role": "user", "content": "hi"}]], "parameters": '
            + parameters_json + '}}').encode()


def test_a_number_too_long_to_read_is_a_400_not_a_reset(server):
    response = _post(server, _score_body('{"temperature": 1' + "0" * 5000 + "}"))
    assert response.status_code == 400, response.text
    assert "number too long to read" in response.json()["error"]["message"]
    assert "Traceback" not in _log(server)


@pytest.mark.parametrize("value, named", [("NaN", "not NaN"), ("Infinity", "not Infinity"),
                                          ("-Infinity", "not -Infinity")])
def test_nan_and_infinity_are_named_in_the_400(server, value, named):
    response = _post(server, _score_body('{"temperature": ' + value + "}"))
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert f"temperature must be a number, {named}" in message, message


def test_twenty_thousand_conversations_are_refused_and_health_stays_fast(server):
    short = [{"role": "user", "content": "x"}]  # 20,000 of these fit in the 1 MB body limit
    body = {"input_data": {"input_string": [short] * 20_000, "parameters": {"max_new_tokens": 1}}}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(_post, server, body)
        waits = []
        while not future.done():
            started = time.perf_counter()
            _health(server)
            waits.append(time.perf_counter() - started)
        response = future.result()
    assert response.status_code == 400 and "at most 256" in response.json()["error"]["message"], response.text
    assert max(waits) < 1.5, waits  # generous for a loaded machine: tokenizing them all took many seconds


def test_conversations_count_against_the_pending_limit(server):
    many = {"input_data": {"input_string": [USER] * 200, "parameters": {"max_new_tokens": 20, "do_sample": True}}}
    few = {"input_data": {"input_string": [USER] * 100, "parameters": {"max_new_tokens": 1}}}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(_post, server, many)
        deadline = time.monotonic() + 30
        while _health(server)["pending"] < 150 and time.monotonic() < deadline:
            time.sleep(0.02)
        second = _post(server, few)
        assert second.status_code == 503 and second.headers["retry-after"] == "1", second.text
        assert first.result().status_code == 200


def test_a_client_that_leaves_before_its_answer_stops_its_generation(server):
    body = json.dumps({"input_data": {"input_string": [USER] * 8,
                                      "parameters": {"max_new_tokens": 1024, "do_sample": True}}}).encode()
    for _attempt in range(3):  # the random tiny model may sample all 8 ends early: then there is nothing to show
        batches = _health(server)["batches"]
        sock = _raw(server, _head(server, len(body)), body)
        started = time.monotonic()
        while _health(server)["running"] == 0 and time.monotonic() - started < 60:
            time.sleep(0.02)
        time.sleep(0.2)  # the batch of 8 is generating
        if _health(server)["batches"] == batches:
            break
        sock.close()  # it ended on its own before the client left; try again
    else:
        pytest.fail("three batches of 8 ended within 0.2 s of starting: nothing to show")
    assert _health(server)["running"] > 0
    sock.close()  # gives up: nobody will read the 8 replies
    left = time.monotonic()
    while _health(server)["batches"] == batches and time.monotonic() - left < 120:
        time.sleep(0.05)
    assert time.monotonic() - left < 2.0, "the generation went on for a client that had left"


@pytest.mark.parametrize("how", ["slow", "truncated"])
def test_a_body_that_never_arrives_whole_is_timed_out_or_dropped_without_an_error_log(server, how):
    body = _score_body('{"max_new_tokens": 2}')
    before = _log(server)
    sock = _raw(server, _head(server, len(body)), body[:10])
    if how == "slow":
        answer = sock.recv(65536).decode(errors="replace")  # the server gives up first (2 s here)
        assert answer.startswith("HTTP/1.1 408") and "did not arrive within 2 s" in answer, answer
    else:
        time.sleep(0.3)
        sock.close()  # sent part of the body, then left
        time.sleep(0.5)
    sock.close()
    new = _log(server)[len(before):]
    assert " ERROR " not in new and "Traceback" not in new, new
    assert _post(server, body).status_code == 200  # and the server is fine
