"""The UI on the real local backend: a chat box on a real endpoint process, a job view of a real job."""

from __future__ import annotations

import base64
import re

import pytest

from azml_magics.scoring import GenerationParams
from azml_magics.ui.chat import ChatBox
from azml_magics.ui.jobview import JobView

pytestmark = pytest.mark.slow


@pytest.fixture
def served_session(served):
    from azml_magics.api import Session

    session = Session(home=served.home)
    session.connect("local", home=str(served.home))
    return session


def test_chat_box_streams_from_a_real_endpoint(served_session, served):
    box = ChatBox(served_session, served.endpoint.name, params=GenerationParams(max_new_tokens=12), threaded=False)
    pieces = []
    box.panel.observe(lambda c: pieces.append(c["new"]), names="transcript")
    box.draw_every = 0.0
    reply = box.send("What is 2+2?")
    assert reply, box.panel.transcript
    assert box.stream is True  # the local endpoint streams
    assert box.history == [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": reply}]
    assert "azml-chat-error" not in box.panel.transcript
    assert served.key not in box.panel.transcript and served.key not in box.transcript_text()


def test_stop_ends_the_generation_on_the_server(served_session, served):
    """Stop mid-reply: the partial reply is kept and marked, and the endpoint's engine frees the row
    (its /health 'running' drops to 0) long before the 500 asked-for tokens could be generated."""
    import time

    import httpx

    health = f"{served.endpoint.scoring_uri.rsplit('/', 1)[0]}/health"
    box = ChatBox(served_session, served.endpoint.name,
                  params=GenerationParams(max_new_tokens=500, temperature=1.5, top_p=1.0))  # threaded, as in a notebook
    box.draw_every = 0.0
    for _attempt in range(5):  # the random tiny model may end a reply on its own before Stop lands: ask again
        cancelled = httpx.get(health, timeout=5).json()["cancelled"]
        box.panel._handle_custom_msg({"event": "submit", "text": "Tell me a very long story."}, [])
        deadline = time.monotonic() + 60
        while len(box.turns[-1].content) < 5 and box.busy and time.monotonic() < deadline:
            time.sleep(0.005)
        box.panel._handle_custom_msg({"event": "stop"}, [])
        stopped_at = time.monotonic()
        box.wait(30)
        if box.turns[-1].stopped:
            break
    else:
        pytest.fail("five long replies in a row ended before Stop could land")
    while httpx.get(health, timeout=5).json()["running"] and time.monotonic() - stopped_at < 10:
        time.sleep(0.01)
    freed_after = time.monotonic() - stopped_at
    after = httpx.get(health, timeout=5).json()
    assert after["running"] == 0 and after["cancelled"] == cancelled + 1  # the server freed the row for the Stop
    reply = box.turns[-1]
    assert reply.stopped and reply.content and "[stopped]" in box.panel.transcript
    assert box.history[-1] == {"role": "assistant", "content": reply.content}
    assert freed_after < 2.0, freed_after
    assert box.send("and now?") is not None  # the endpoint answers the next message


def test_wrong_key_and_gone_endpoint_are_inline_errors(served_session, served):
    from azml_magics.backends.local import endpoints

    box = ChatBox(served_session, served.endpoint.name, params=GenerationParams(max_new_tokens=4), threaded=False)
    key_file = endpoints.endpoints_dir(served.home) / f"{served.endpoint.name}.key"
    key = key_file.read_text()
    key_file.write_text("not-the-key")
    try:
        assert box.send("hello?") is None
    finally:
        key_file.write_text(key)
    html = box.panel.transcript
    assert "azml-chat-error" in html and ("401" in html or "key" in html)
    assert "not-the-key" not in html
    assert box.send("hello again") is not None  # the widget still works

    gone = ChatBox(served_session, "no-such-endpoint", threaded=False)
    assert gone.send("anyone?") is None
    assert "no-such-endpoint" in gone.panel.transcript


def test_job_view_of_a_real_tiny_fine_tune(trained_job, tmp_path):
    from azml_magics.api import Session

    backend, job = trained_job
    session = Session(home=backend.home, poll_interval=0.1)
    session.connect("local", home=str(backend.home))
    view = JobView(session, job, render_every=0.0, chart_every=0.0)
    view.run()
    assert view.finished and view.status.state == "Completed"
    html = view.html
    for step in (s.name for s in view.status.steps):
        assert step in html
    assert ">loss</td>" in html
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html).group(1))
    assert png.startswith(b"\x89PNG")
    assert view.log_tail  # the last lines of the job's log
