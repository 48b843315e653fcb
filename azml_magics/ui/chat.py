"""The chat box of ``%azml_chat``: a conversation with a deployed endpoint, inside the notebook.

The conversation lives in Python (``box.history``, ``box.export(path)``). It is drawn twice: in the
live panel (:mod:`.chat_panel`, whose Enter sends the typed text with the event itself), and in a
plain HTML output (``display_id``) kept up to date beside it, hidden by CSS while the widget is
alive, so a notebook re-opened without a kernel still shows the transcript. Stop ends the request
(the local endpoint then frees the row) and keeps the partial reply, marked stopped. The stream ends
with the finished :class:`~azml_magics.scoring.Reply`, which the reply's footer reads.
"""

from __future__ import annotations

import html
import json
import random
import threading
import time
import uuid
from pathlib import Path

import ipywidgets as widgets

from ..display import message_html
from ..errors import AzmlError
from ..files import iter_jsonl
from ..scoring import GenerationParams, Reply
from .chat_render import CSS, Turn, transcript_html
from .chat_samples import reply_footer, samples

MAX_TOKENS_FALLBACK = 4096  # when the endpoint does not say its cap


def endpoint_max_tokens(session, endpoint: str) -> int:
    """The endpoint's own cap on max_new_tokens (its backend reads it live), else the fallback."""
    try:
        cap = session.endpoint_limits(endpoint).get("max_new_tokens")
    except AzmlError:  # a Down endpoint: the box still opens and says why on the first send
        cap = None
    return cap if isinstance(cap, int) and cap > 0 else MAX_TOKENS_FALLBACK


class _Run:
    """One request in flight: its reply turn, and the flag Stop sets."""

    def __init__(self, reply: Turn):
        self.reply = reply
        self.stop = threading.Event()


class ChatBox:
    """A chat widget bound to one endpoint. ``send(text)`` works without a browser, too."""

    def __init__(self, session, endpoint: str, params: GenerationParams | None = None, system: str | None = None,
                 *, sample_file: str | Path | None = None, threaded: bool = True, stream: bool = True,
                 max_tokens: int | None = None, column: bool = False):
        self.session = session
        self.endpoint = endpoint
        self.turns: list[Turn] = []
        self.stream = stream
        self.threaded = threaded
        self.sample_file = sample_file
        self._uid = uuid.uuid4().hex[:10]
        self._lock = threading.RLock()
        self._worker: threading.Thread | None = None
        self._run: _Run | None = None
        self._handle = None
        self._last_draw = float("-inf")
        self._recorded: str | None = None  # the settings line last written into the transcript
        self.draw_every = 0.1  # seconds between redraws while a reply streams
        self._rng = random.Random()
        self.max_tokens = max_tokens or endpoint_max_tokens(session, endpoint)
        params = params or GenerationParams()
        self._build(params, system)
        if column:  # one column of a side-by-side view (.chat_compare): its input and sample are shared
            self.panel.input_shown = False
            self.sample_button.layout.display = "none"
            self.widget.layout = widgets.Layout(flex="1 1 0", min_width="0")

    # ------------------------------------------------------------------ widgets
    def _build(self, params: GenerationParams, system: str | None) -> None:
        from .chat_panel import ChatPanel

        w = widgets
        self.panel = ChatPanel(transcript=self.transcript_html())
        self.panel.on_msg(self._on_panel_msg)
        self.sample_button = w.Button(description="Try a sample", tooltip="Send a prompt from the test data")
        self.sample_button.on_click(lambda _: self.try_sample())
        self.clear_button = w.Button(description="Clear", tooltip="Forget the conversation")
        self.clear_button.on_click(lambda _: self.clear())
        self.status = w.HTML("")
        label = {"style": {"description_width": "initial"}}
        self.temperature = w.FloatSlider(value=params.temperature, min=0.0, max=2.0, step=0.05,
                                         description="temperature", **label)
        self.top_p = w.FloatSlider(value=params.top_p, min=0.0, max=1.0, step=0.01, description="top_p", **label)
        self.max_new_tokens = w.BoundedIntText(value=min(params.max_new_tokens, self.max_tokens), min=1,
                                               max=self.max_tokens, description="max_new_tokens",
                                               tooltip=f"at most {self.max_tokens}: the endpoint's limit", **label)
        self.do_sample = w.Checkbox(value=params.do_sample, description="do_sample", indent=False)
        self.system = w.Textarea(value=system or "", placeholder="System prompt (optional)", description="system",
                                 layout=w.Layout(width="100%"), **label)
        settings = w.VBox([w.HBox([self.temperature, self.top_p]), w.HBox([self.max_new_tokens, self.do_sample]),
                           w.HTML(f"<small>max_new_tokens: at most {self.max_tokens} (the endpoint's limit)</small>"),
                           self.system])
        settings.add_class("azml-chat-settings-box")
        self.settings = w.Accordion(children=[settings], titles=("Settings",))
        self.settings.selected_index = None
        title = w.HTML(f"<b>Chat with</b> <code>{html.escape(self.endpoint)}</code>")
        self.widget = w.VBox(
            [title, self.panel, w.HBox([self.sample_button, self.clear_button, self.status]), self.settings],
            layout=w.Layout(width="100%", max_width="900px"),
        )
        self.widget.add_class("azml-chat")
        self.widget.add_class(f"azml-chat-live-{self._uid}")
        self.panel.host = self.widget.model_id
        self._controls = [self.sample_button, self.clear_button]

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
        self._handle = display(self._static(), display_id=True)

    # ------------------------------------------------------------------ state
    @property
    def params(self) -> GenerationParams:
        return GenerationParams(temperature=float(self.temperature.value), top_p=float(self.top_p.value),
                                do_sample=bool(self.do_sample.value),
                                max_new_tokens=min(int(self.max_new_tokens.value), self.max_tokens))

    @property
    def history(self) -> list[dict]:
        """The conversation as chat messages (user and assistant turns that went through)."""
        with self._lock:
            return [{"role": t.role, "content": t.content} for t in self.turns
                    if t.role in ("user", "assistant") and not t.failed]

    def messages(self) -> list[dict]:
        """What the next request sends: the system prompt, then the history."""
        system = self.system.value.strip()
        return ([{"role": "system", "content": system}] if system else []) + self.history

    def export(self, path: str | Path) -> Path:
        """Write the conversation: ``.jsonl`` as one training row ``{"messages": [...]}``, else JSON."""
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jsonl":
            path.write_text(json.dumps({"messages": self.messages()}, ensure_ascii=False) + "\n", encoding="utf-8")
        else:
            record = {"endpoint": self.endpoint, "params": vars(self.params), "messages": self.messages()}
            path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    def load(self, source) -> int:
        """Load a history back: messages (a list of dicts), or a file written by ``export`` (``.jsonl``
        rows of ``{"messages": [...]}``, the last row is used, or ``.json``). Returns the turns loaded."""
        if isinstance(source, (str, Path)):
            path = Path(source).expanduser()
            if path.suffix == ".jsonl":
                rows = [r for r in iter_jsonl(path) if isinstance(r, dict)]
                source = rows[-1].get("messages") if rows else None
            else:
                source = json.loads(path.read_text(encoding="utf-8")).get("messages")
        if not isinstance(source, list) or not all(
                isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
                for m in source):
            raise AzmlError("a chat history is a list of {'role': system|user|assistant, 'content': text} messages; "
                            "load a file written by box.export(path).")
        with self._lock:
            self.turns = [Turn(m["role"], m["content"]) for m in source if m["role"] != "system"]
            system = [m["content"] for m in source if m["role"] == "system"]
            if system:
                self.system.value = system[0]
            self._draw(final=True)
        return len(self.turns)

    def clear(self) -> None:
        self.stop()
        with self._lock:
            self.turns.clear()
            self._recorded = None
            self.status.value = ""
            self._draw(final=True)

    # ------------------------------------------------------------------ browser events
    def _on_panel_msg(self, _widget, content, _buffers) -> None:
        event = content.get("event") if isinstance(content, dict) else None
        if event == "submit" and isinstance(content.get("text"), str):
            self._start(content["text"])  # the text as it was when Enter was pressed
        elif event == "stop":
            self.stop()
        elif event == "regenerate":
            self._start(None, regenerate=True)
        elif event == "edit":
            self.edit_last()

    def _start(self, text: str | None, regenerate: bool = False, reference: str | None = None) -> None:
        """Send from the browser: in a worker thread, so the kernel stays free while it streams."""
        if self.busy or (text is not None and not text.strip()):
            return
        target, args = (self.regenerate, ()) if regenerate else (self.send, (text, reference))
        self._set_busy(True)
        if self.threaded:
            self._worker = threading.Thread(target=target, args=args, name="azml-chat", daemon=True)
            self._worker.start()
        else:
            target(*args)

    def wait(self, timeout: float | None = 60) -> None:
        """Wait for a reply being sent in the background (tests, scripts)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    @property
    def busy(self) -> bool:
        return self.panel.busy

    def _set_busy(self, busy: bool) -> None:
        self.panel.busy = busy
        for control in self._controls:
            control.disabled = busy
        self.status.value = "<i>waiting for the endpoint…</i>" if busy else ""

    # ------------------------------------------------------------------ actions
    def stop(self) -> None:
        """Stop the reply being generated: the request is closed, the partial reply kept and marked."""
        with self._lock:
            run, self._run = self._run, None
            if run is None:
                return
            run.stop.set()
            run.reply.stopped = True
            self._draw(final=True)
        self._set_busy(False)

    def try_sample(self) -> str | None:
        """Send a prompt picked from the test data; its reference answer is shown after the reply."""
        found = samples(self.sample_file)
        if not found:
            self.status.value = message_html("no test data found for a sample prompt", "error")
            return None
        sample = self._rng.choice(found)
        if self.threaded:
            self._start(sample.prompt, reference=sample.reference)
        else:
            self.send(sample.prompt, reference=sample.reference)
        return sample.prompt

    def regenerate(self) -> str | None:
        """Drop the last reply and ask again with the same conversation."""
        with self._lock:
            users = [i for i, t in enumerate(self.turns) if t.role == "user"]
            if not users:
                self._set_busy(False)
                return None
            user = self.turns[users[-1]]
            reference = next((t.content for t in self.turns[users[-1]:] if t.role == "reference"), None)
            del self.turns[users[-1]:]
        return self.send(user.content, reference)

    def edit_last(self) -> str | None:
        """Take the last message (and its reply) back into the input, to change and send again."""
        with self._lock:
            if self.busy:
                return None
            users = [i for i, t in enumerate(self.turns) if t.role == "user"]
            if not users:
                return None
            text = self.turns[users[-1]].content
            del self.turns[users[-1]:]
            self._draw(final=True)
        self.panel.put_draft(text)
        return text

    def send(self, text: str, reference: str | None = None) -> str | None:
        """Send one user message; returns the reply (partial if stopped), or None when the request
        failed (shown inline). ``reference`` (a sample's answer from the data) is shown after the reply."""
        text = text.strip()
        if not text:
            return None
        self._set_busy(True)
        params = self.params
        with self._lock:
            self._record_settings(params)
            messages = self.messages() + [{"role": "user", "content": text}]
            user = Turn("user", text)
            reply = Turn("assistant", "")
            run = self._run = _Run(reply)
            self.turns += [user, reply]
            self._draw(final=True)
        started = time.monotonic()
        first = final = None
        pieces = self._reply_pieces(messages, params)
        try:
            for piece in pieces:
                if run.stop.is_set():
                    break
                if isinstance(piece, Reply):  # the end of the stream: finish reason and usage
                    final = piece
                    continue
                first = first or time.monotonic()
                with self._lock:
                    if first and not reply.content:
                        self.status.value = ""  # tokens are arriving: no longer waiting
                    reply.content += piece
                    self._draw()
        except Exception as exc:  # every failure stays inside the widget
            message = exc.message if isinstance(exc, AzmlError) else f"{type(exc).__name__}: {exc}"
            with self._lock:
                if run.stop.is_set():
                    return reply.content
                user.failed = reply.failed = True
                if not reply.content:
                    self.turns.remove(reply)
                self.turns.append(Turn("error", message, failed=True))
                self._run = None
                self._draw(final=True)
            self.panel.put_draft(text)  # ready to retry
            self._set_busy(False)
            return None
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # a stopped stream: closing it closes the request, and the server frees the row
        with self._lock:
            reply.footer = reply_footer(final, reply.stopped, started, first, time.monotonic())
            if reference:
                self.turns.append(Turn("reference", reference))
            if self._run is run:
                self._run = None
                self._draw(final=True)
                self._set_busy(False)
            else:
                self._draw(final=True)
        return reply.content

    def _record_settings(self, params: GenerationParams) -> None:
        """Write the system prompt and parameters into the transcript when they change."""
        system = self.system.value.strip()
        line = (f"temperature={params.temperature:g}, top_p={params.top_p:g}, max_new_tokens={params.max_new_tokens}, "
                f"do_sample={params.do_sample}" + (f"; system prompt: {system}" if system else "; no system prompt"))
        if line != self._recorded:
            self._recorded = line
            self.turns.append(Turn("settings", line))

    def _reply_pieces(self, messages: list[dict], params: GenerationParams):
        """Streamed pieces when the endpoint streams, else the whole reply at once."""
        if self.stream:
            try:
                pieces = iter(self.session.stream_chat(self.endpoint, messages, params))
                first = next(pieces)
            except StopIteration:
                return
            except NotImplementedError:
                self.stream = False
            else:
                try:
                    yield first
                    yield from pieces
                finally:
                    close = getattr(pieces, "close", None)
                    if close is not None:
                        close()
                return
        from ..scoring import build_score_request, score_reply

        response = self.session.invoke(self.endpoint, build_score_request(messages, params))
        try:
            reply = score_reply(response)  # finish reason and usage where the /score server reports them
        except ValueError as exc:
            raise AzmlError(f"the endpoint answered in an unknown shape: {exc}") from None
        yield reply.text
        yield reply

    # ------------------------------------------------------------------ drawing
    def _draw(self, final: bool = False) -> None:
        """Redraw the panel (at most ~10 times a second while streaming) and, at the end, the saved copy."""
        now = time.monotonic()
        if not final and now - self._last_draw < self.draw_every:
            return
        self._last_draw = now
        self.panel.transcript = self.transcript_html()
        if final and self._handle is not None:
            self._handle.update(self._static())

    def transcript_html(self, buttons: bool = True) -> str:
        return transcript_html(self.turns, buttons=buttons)

    def transcript_text(self) -> str:
        return "\n".join(f"{t.role}: {t.content}" + (" [stopped]" if t.stopped else "") for t in self.turns) \
            or "(no messages)"

    def _static(self):
        """The copy kept in the saved notebook; hidden while the live widget is on the page."""
        from ..display import saved_twin

        uid = self._uid
        live, static = f"azml-chat-live-{uid}", f"azml-chat-static-{uid}"
        body = (f"<style>{CSS}.{static} button{{display:none}}</style><b>Chat with</b> <code>{html.escape(self.endpoint)}</code>"
                f"{self.transcript_html(buttons=False)}")
        return saved_twin(live, static, body, f"Chat with {self.endpoint}\n{self.transcript_text()}")

