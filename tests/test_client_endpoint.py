"""EndpointClient against a real local endpoint, a dead port and a server that never answers."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from azml_magics.backends.base import ChatParams
from azml_magics.backends.local.endpoints import free_port
from azml_magics.client import EndpointClient
from azml_magics.errors import RemoteError

USER = [{"role": "user", "content": "How many hours are in 5 days?"}]
GREEDY = ChatParams(do_sample=False, max_new_tokens=10)


@pytest.fixture
def client(served):
    with EndpointClient(served.endpoint.scoring_uri, served.key, openai_base_url=served.endpoint.openai_base_url,
                        timeout=60) as c:
        yield c


def test_score_sends_the_notebook_file(client, notebook_request_file):
    response = client.score(json.loads(notebook_request_file.read_text()))
    assert isinstance(response["output"], str) and response["usage"]["completion_tokens"] >= 1


def test_chat_and_stream_chat_agree_on_a_greedy_reply(client):
    reply = client.chat(USER, GREEDY)
    assert isinstance(reply, str)
    pieces = list(client.stream_chat(USER, GREEDY))
    assert "".join(pieces) == reply
    assert len(pieces) >= 1


def test_stream_chat_without_an_openai_route_yields_the_whole_reply(served):
    with EndpointClient(served.endpoint.scoring_uri, served.key) as plain:
        assert list(plain.stream_chat(USER, GREEDY)) == [plain.chat(USER, GREEDY)]


def test_repr_and_errors_never_show_the_key(served):
    wrong = "not-the-key-0123456789"
    c = EndpointClient(served.endpoint.scoring_uri, wrong, openai_base_url=served.endpoint.openai_base_url)
    assert wrong not in repr(c) and "key=***" in repr(c)
    assert served.key not in repr(EndpointClient(served.endpoint.scoring_uri, served.key))
    for call in (lambda: c.chat(USER), lambda: list(c.stream_chat(USER))):
        with pytest.raises(RemoteError) as info:
            call()
        message = str(info.value)
        assert "refused the key (401)" in message and "Authorization: Bearer" in message
        assert wrong not in message and "\n" not in message


def test_a_refused_request_carries_the_servers_message(client):
    with pytest.raises(RemoteError) as info:
        client.score({"input_data": {"input_string": [{"role": "robot", "content": "x"}]}})
    message = str(info.value)
    assert "refused the request (400)" in message and "role must be one of system, user, assistant" in message
    with pytest.raises(RemoteError, match=r"\(400\).*over this endpoint's limit of 512"):
        list(client.stream_chat(USER, ChatParams(max_new_tokens=4000)))
    with pytest.raises(RemoteError, match=r"too large \(413\)"):
        client.chat([{"role": "user", "content": "x" * 200_000}], GREEDY)


def test_a_dead_endpoint_is_one_line_that_says_so():
    port = free_port()  # nothing listens there
    c = EndpointClient(f"http://127.0.0.1:{port}/score", "secret-key-xyz", openai_base_url=f"http://127.0.0.1:{port}/v1")
    for call in (lambda: c.chat(USER), lambda: list(c.stream_chat(USER))):
        with pytest.raises(RemoteError) as info:
            call()
        assert "connection refused" in str(info.value) and "down or was deleted" in str(info.value)
        assert "secret-key-xyz" not in str(info.value)


@pytest.fixture
def silent_server():
    """A real TCP server that accepts and reads but never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()
    held = []

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_timeout_is_one_line_with_the_fix(silent_server):
    c = EndpointClient(f"http://127.0.0.1:{silent_server}/score", "k-123456", timeout=0.5)
    with pytest.raises(RemoteError) as info:
        c.chat(USER)
    assert "no answer within 0.5 s" in str(info.value) and "\n" not in str(info.value)
