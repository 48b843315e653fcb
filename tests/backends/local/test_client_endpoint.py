"""EndpointClient against a real local endpoint, a dead port and a server that never answers."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from azml_magics.backends.local.client import EndpointClient
from azml_magics.backends.local.endpoints import free_port
from azml_magics.errors import RemoteError
from azml_magics.scoring import GenerationParams

USER = [{"role": "user", "content": "How many hours are in 5 days?"}]
GREEDY = GenerationParams(do_sample=False, max_new_tokens=10)


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
    *pieces, final = client.stream_chat(USER, GREEDY)
    assert "".join(pieces) == reply == final.text
    assert len(pieces) >= 1 and all(isinstance(p, str) for p in pieces)
    # the stream ends with the server's own count and finish reason, as /score reports them
    whole = client.chat_reply(USER, GREEDY)
    assert (final.finish_reason, final.completion_tokens, final.prompt_tokens) == \
        (whole.finish_reason, whole.completion_tokens, whole.prompt_tokens)
    assert final.finish_reason in ("stop", "length") and 1 <= final.completion_tokens <= GREEDY.max_new_tokens


def test_stream_chat_without_an_openai_route_yields_the_whole_reply(served):
    with EndpointClient(served.endpoint.scoring_uri, served.key) as plain:
        text, final = plain.stream_chat(USER, GREEDY)
        assert text == plain.chat(USER, GREEDY) == final.text and final.completion_tokens >= 1


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
        list(client.stream_chat(USER, GenerationParams(max_new_tokens=4000)))
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


def test_the_chat_box_caps_max_new_tokens_at_what_the_endpoint_reports(served, tmp_path):
    """/health says the server's cap; the backend declares endpoint_limits; the box's field stops there."""
    import httpx

    from azml_magics.api import Session
    from azml_magics.backends.local import LocalBackend
    from azml_magics.ui.chat import ChatBox

    health = httpx.get(served.endpoint.scoring_uri.rsplit("/", 1)[0] + "/health", timeout=10).json()
    assert health["max_new_tokens"] == 512  # the fixture starts the server with --max-new-tokens 512
    backend = LocalBackend()
    backend.connect({"home": str(served.home)})
    session = Session(home=tmp_path / "session-home")
    session.backend = backend
    assert session.endpoint_limits(served.endpoint.name) == {"max_new_tokens": 512}
    box = ChatBox(session, served.endpoint.name, params=GenerationParams(max_new_tokens=1500), threaded=False)
    assert box.max_tokens == 512 and box.max_new_tokens.max == 512 and box.max_new_tokens.value == 512
    assert box.send("Say hi") and box.turns[-1].role == "assistant"  # the capped request is accepted
