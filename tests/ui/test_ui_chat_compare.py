"""Side by side, headless: one input, a column per endpoint, streamed concurrently, each with its own Stop."""

from __future__ import annotations

import threading
import time

import pytest

from azml_magics.errors import AzmlError
from azml_magics.ui.chat_compare import ChatCompare

from .scripted import ModelRef


@pytest.fixture
def two(scripted):
    """(session, backend) with two endpoints: 'base-ep' beside the fixture's 'demo-ep'."""
    session, backend = scripted
    backend.deploy(ModelRef("base-model", "1", "azureml:base-model:1"),
                   type("S", (), {"endpoint": "base-ep", "instance_type": "Standard_NC6s_v3"})())
    backend.calls.clear()
    return session, backend


def _until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_one_message_reaches_every_column_concurrently(two):
    session, backend = two
    both_streaming = threading.Barrier(2, timeout=10)  # passes only if the two streams run at the same time

    def stream(endpoint, messages, params):
        backend.calls.append(("stream_chat", endpoint, messages, params))
        yield f"{endpoint} "
        both_streaming.wait()
        yield f"answers: {messages[-1]['content']}"

    backend.stream_chat = stream
    compare = ChatCompare(session, ["base-ep", "demo-ep"])
    compare.input._handle_custom_msg({"event": "submit", "text": "Capital of Italy?"}, [])  # the shared Enter
    assert _until(lambda: not compare.busy)
    compare.wait(10)
    assert compare.histories == {
        "base-ep": [{"role": "user", "content": "Capital of Italy?"},
                    {"role": "assistant", "content": "base-ep answers: Capital of Italy?"}],
        "demo-ep": [{"role": "user", "content": "Capital of Italy?"},
                    {"role": "assistant", "content": "demo-ep answers: Capital of Italy?"}],
    }
    assert sorted(c[1] for c in backend.calls) == ["base-ep", "demo-ep"]
    for box in compare.boxes:  # each its own transcript and footer, and no input of its own
        assert "answers: Capital of Italy?" in box.panel.transcript and box.endpoint in box.panel.transcript
        assert box.turns[-1].footer.startswith("tokens not reported")  # this stream ends without a Reply
        assert box.panel.input_shown is False
    assert compare.input.log_shown is False and not compare.input.busy


def test_stop_on_one_column_leaves_the_other_streaming(two):
    session, backend = two
    gates = {"base-ep": threading.Event(), "demo-ep": threading.Event()}
    closed = {"base-ep": threading.Event(), "demo-ep": threading.Event()}

    def stream(endpoint, messages, params):  # a partial reply, then waits for its gate
        try:
            yield f"{endpoint} partial"
            gates[endpoint].wait(10)
            yield " and the rest"
        finally:
            closed[endpoint].set()

    backend.stream_chat = stream
    compare = ChatCompare(session, ["base-ep", "demo-ep"])
    for box in compare.boxes:
        box.draw_every = 0.0
    compare.send("a long one")
    base, demo = compare.boxes
    assert _until(lambda: all("partial" in b.turns[-1].content for b in compare.boxes))
    assert compare.input.busy  # the shared input waits for every column
    demo.panel._handle_custom_msg({"event": "stop"}, [])  # the Stop of the fine-tuned column only
    assert not demo.busy and base.busy and compare.input.busy
    gates["base-ep"].set()
    assert _until(lambda: not base.busy)
    gates["demo-ep"].set()
    compare.wait(10)
    assert base.turns[-1].content == "base-ep partial and the rest" and not base.turns[-1].stopped
    assert demo.turns[-1].content == "demo-ep partial" and demo.turns[-1].stopped
    assert closed["demo-ep"].is_set()  # the stopped request was closed
    assert not compare.input.busy


def test_the_shared_stop_stops_every_column(two):
    session, backend = two
    gate = threading.Event()

    def stream(endpoint, messages, params):
        yield "part"
        gate.wait(10)
        yield " never"

    backend.stream_chat = stream
    compare = ChatCompare(session, ["base-ep", "demo-ep"])
    compare.send("x")
    assert _until(lambda: all(b.turns[-1].content == "part" for b in compare.boxes))
    compare.input._handle_custom_msg({"event": "stop"}, [])
    assert not compare.busy and all(b.turns[-1].stopped for b in compare.boxes)
    gate.set()
    compare.wait(10)
    assert all(b.turns[-1].content == "part" for b in compare.boxes)


def test_side_by_side_needs_two_different_endpoints(two):
    session, _backend = two
    with pytest.raises(AzmlError, match="two or more different endpoints"):
        ChatCompare(session, ["demo-ep", "demo-ep"])


def test_the_magic_opens_side_by_side_or_returns_each_reply(two, ip):
    from tests.shell import run_cell

    session, backend = two
    ip.azml.session.__dict__.update(session.__dict__)
    result, _out, outputs = run_cell(ip, "%azml_chat base-ep demo-ep")
    assert result.success, result.error_in_exec
    assert any("application/vnd.jupyter.widget-view+json" in o.data for o in outputs)
    assert sum("text/html" in o.data and "azml-chat-static-" in o.data["text/html"] for o in outputs) == 2
    result, _out, _outputs = run_cell(ip, "%%azml_chat base-ep demo-ep --greedy\nsame prompt")
    assert result.success and set(result.result) == {"base-ep", "demo-ep"}
    assert all(r.startswith("**echo**: same prompt") for r in result.result.values())
    result, out, _outputs = run_cell(ip, "%azml_chat demo-ep hello world")  # unquoted text: one clear line
    assert "put the message in quotes" in out and "not an endpoint here: hello, world" in out
    result, _out, _outputs = run_cell(ip, '%azml_chat demo-ep "quick question"')  # one endpoint still works
    assert result.success and result.result.startswith("**echo**: quick question")


def test_a_sample_side_by_side_shows_its_reference_under_each_reply(two):
    """The bundled sample: each column's reply is followed by the data's own answer, labelled."""
    from azml_magics.ui.chat_samples import samples

    session, _backend = two
    compare = ChatCompare(session, ["base-ep", "demo-ep"])
    prompt = compare.try_sample()
    compare.wait(10)
    reference = next(s.reference for s in samples() if s.prompt == prompt)
    for box in compare.boxes:
        assert [t.role for t in box.turns[-3:]] == ["user", "assistant", "reference"]
        assert box.turns[-1].content == reference and "Reference answer" in box.panel.transcript
        assert box.history[-1]["role"] == "assistant"  # never sent to the model
