"""The chat box, headless: sending, streaming, controls, errors inline, history, export, saved copy."""

from __future__ import annotations

import json
from html import escape

import pytest

from azml_magics.backends.base import ChatParams
from azml_magics.errors import RemoteError
from azml_magics.ui.chat import ChatBox, render_markdown, sample_prompts


def _box(session, **kwargs):
    kwargs.setdefault("threaded", False)
    return ChatBox(session, "demo-ep", **kwargs)


def test_send_streams_a_reply_into_history_and_transcript(scripted):
    session, backend = scripted
    box = _box(session)
    drawn = []
    box.conversation.observe(lambda c: drawn.append(c["new"]), names="value")
    box.draw_every = 0.0
    reply = box.send("What is 2+2?")
    assert reply.startswith("**echo**: What is 2+2? (turns=1")
    assert box.history == [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": reply}]
    assert [c[0] for c in backend.calls] == ["stream_chat"]
    html = box.conversation.value
    assert "<strong>echo</strong>" in html  # markdown rendered
    assert "What is 2+2?" in html
    assert len(drawn) >= 3  # the user turn, at least one partial reply, the final reply
    assert box.input.value == "" and not box.busy


def test_html_from_the_user_and_the_model_is_escaped(scripted):
    session, _backend = scripted
    box = _box(session)
    box.send("<script>alert(1)</script> & <b>bold</b>")
    html = box.conversation.value
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script>" not in render_markdown("<script>x</script> [a](javascript:alert(1))")
    assert "href" not in render_markdown("[a](javascript:alert(1))")
    assert "href=\"https://example.org\"" in render_markdown("[a](https://example.org)")


def test_controls_and_system_prompt_reach_the_endpoint(scripted):
    session, backend = scripted
    box = _box(session, params=ChatParams(temperature=0.2), system="Be terse.")
    assert box.temperature.value == 0.2 and box.system.value == "Be terse."
    box.top_p.value = 0.5
    box.max_new_tokens.value = 33
    box.do_sample.value = False
    box.send("hi")
    _, endpoint, messages, params = backend.calls[-1]
    assert endpoint == "demo-ep"
    assert messages == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]
    assert params == ChatParams(temperature=0.2, top_p=0.5, do_sample=False, max_new_tokens=33)
    box.send("again")
    _, _, messages, _ = backend.calls[-1]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


def test_enter_sends_from_a_worker_thread(scripted):
    session, backend = scripted
    box = ChatBox(session, "demo-ep")  # threaded, as in a notebook
    box.input.value = "typed then Enter"
    box.input._handle_custom_msg({"event": "submit"}, [])  # what the browser sends on Enter
    box.wait(10)
    assert box.history[0] == {"role": "user", "content": "typed then Enter"}
    assert box.history[1]["content"].startswith("**echo**: typed then Enter")
    assert not box.busy


def test_send_button_sends_the_input(scripted):
    session, _backend = scripted
    box = _box(session)
    box.input.value = "via the button"
    box.send_button.click()
    assert box.history[-1]["content"].startswith("**echo**: via the button")
    box.send_button.click()  # empty input: nothing is sent
    assert len(box.history) == 2


@pytest.mark.parametrize("failure", [
    RemoteError("the endpoint refused the key (401 Unauthorized); redeploy it or reconnect."),
    RemoteError("the endpoint did not answer within 90 s (timeout); try a smaller max_new_tokens."),
])
def test_errors_show_inline_and_the_box_keeps_working(scripted, failure):
    session, backend = scripted
    box = _box(session)
    box.send("first")
    backend.chat_failure = failure
    assert box.send("this one fails") is None
    html = box.conversation.value
    assert "azml-chat-error" in html and escape(failure.message) in html
    assert box.input.value == "this one fails"  # ready to retry
    assert [m["content"] for m in box.history if m["role"] == "user"] == ["first"]
    assert not box.busy and not box.send_button.disabled
    reply = box.send("retry")
    assert reply and "turns=3" in reply  # the failed turn was not sent again


def test_endpoint_gone_is_an_inline_error(scripted):
    session, backend = scripted
    box = _box(session)
    backend.delete_endpoint("demo-ep")
    assert box.send("anyone there?") is None
    assert "no endpoint named demo-ep" in box.conversation.value


def test_unexpected_exception_is_shown_not_raised(scripted):
    session, backend = scripted
    box = _box(session)
    backend.chat_failure = ConnectionResetError("peer reset")
    assert box.send("x") is None
    assert "ConnectionResetError: peer reset" in box.conversation.value


def test_falls_back_to_one_shot_chat_when_the_endpoint_does_not_stream(scripted):
    session, backend = scripted
    backend.streams = False
    box = _box(session)
    reply = box.send("no stream")
    assert reply.startswith("**echo**: no stream")
    assert backend.calls[-1][0] == "invoke" and box.stream is False


def test_clear_and_export(scripted, tmp_path):
    session, _backend = scripted
    box = _box(session, system="sys")
    box.send("one")
    row = json.loads(box.export(tmp_path / "chat.jsonl").read_text())
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    record = json.loads(box.export(tmp_path / "chat.json").read_text())
    assert record["endpoint"] == "demo-ep" and record["params"]["max_new_tokens"] == 200
    box.clear_button.click()
    assert box.history == [] and "No messages yet" in box.conversation.value


def test_try_a_sample_sends_a_prompt_from_the_test_data(scripted, tmp_path):
    session, backend = scripted
    data = tmp_path / "test_gen.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"sample question {i}"}, {"role": "assistant", "content": "a"}]}
            for i in range(3)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    box = _box(session, sample_file=data)
    prompt = box.try_sample()
    assert prompt in {f"sample question {i}" for i in range(3)}
    assert box.history[0]["content"] == prompt
    assert backend.calls[-1][2][-1]["content"] == prompt
    assert sample_prompts()  # the bundled sample is always there


def test_saved_copy_is_a_display_output_kept_up_to_date(scripted, ip):
    """In a real shell: widget + one HTML output with a display_id that each finished turn updates."""
    from IPython.display import display
    from IPython.utils.capture import capture_output

    session, _backend = scripted
    box = _box(session)
    with capture_output() as cap:
        display(box)
        box.send("hello <there>")
    kinds = [next(iter(o.data)) for o in cap.outputs]
    assert "application/vnd.jupyter.widget-view+json" in cap.outputs[0].data
    copies = [o for o in cap.outputs if o.transient and "display_id" in o.transient]
    assert len({o.transient["display_id"] for o in copies}) == 1, kinds
    last = copies[-1]
    assert last.update
    assert "hello &lt;there&gt;" in last.data["text/html"]
    assert "<strong>echo</strong>" in last.data["text/html"]
    assert last.data["text/plain"].splitlines()[1] == "user: hello <there>"
    assert ":has(.azml-chat-live-" in last.data["text/html"]  # hidden while the live widget is there


def test_magic_shows_the_box_or_returns_the_reply(scripted, ip):
    from tests.fixtures_core import run_cell

    session, backend = scripted
    ip.azml.session.__dict__.update(session.__dict__)
    result, _out, outputs = run_cell(ip, "%azml_chat demo-ep")
    assert result.success, result.error_in_exec
    assert any("application/vnd.jupyter.widget-view+json" in o.data for o in outputs)
    result, _out, _outputs = run_cell(ip, '%azml_chat demo-ep "quick question"')
    assert result.success and result.result.startswith("**echo**: quick question")
    result, _out, _outputs = run_cell(ip, "%%azml_chat demo-ep\ncell question")
    assert result.success and "cell question" in result.result
