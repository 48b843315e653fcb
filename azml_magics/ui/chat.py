"""The chat box of ``%azml_chat``: a conversation with a deployed endpoint, inside the notebook.

The conversation lives in Python (``box.history``, ``box.export(path)``). It is drawn twice: in the
live widget, and in a plain HTML output (``display_id``) kept up to date beside it, hidden by CSS
while the widget is alive. A notebook saved and re-opened without a kernel shows that copy, so the
transcript survives. Text from the model and the user is HTML-escaped; replies render as markdown
with raw HTML disabled.
"""

from __future__ import annotations

import html
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets

from ..backends.base import ChatParams
from ..errors import AzmlError

SAMPLE_FILE = "test_gen.jsonl"
ROLE_STYLE = {
    "user": ("You", "#ddf4ff"),
    "assistant": ("Assistant", "#f6f8fa"),
    "system": ("System", "#fff8c5"),
    "error": ("Error", "#ffebe9"),
}


@dataclass
class Turn:
    role: str  # user | assistant | error
    content: str
    failed: bool = False  # a turn whose request failed: shown, never sent again


def render_markdown(text: str) -> str:
    """Markdown to HTML with raw HTML escaped (never passed through) and unsafe links dropped."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
    return md.render(text)


def sample_prompts(path: str | Path | None = None) -> list[str]:
    """First user messages of the test data: the prepared ``test_gen`` split, else the bundled sample."""
    for candidate in _sample_files(path):
        if candidate.is_file():
            prompts = []
            for line in candidate.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                users = [m.get("content") for m in row.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
                if users and isinstance(users[0], str) and users[0].strip():
                    prompts.append(users[0].strip())
            if prompts:
                return prompts
    return []


def _sample_files(path) -> list[Path]:
    files = []
    if path:
        p = Path(path).expanduser()
        files.append(p / SAMPLE_FILE if p.is_dir() else p)
    files.append(Path("ultrachat_200k_dataset") / SAMPLE_FILE)
    try:
        from ..data import sample_dir

        files.append(Path(sample_dir()) / SAMPLE_FILE)
    except ImportError:
        pass
    files.append(Path(__file__).resolve().parent.parent / "sample_data" / SAMPLE_FILE)
    return files


class ChatBox:
    """A chat widget bound to one endpoint. ``send(text)`` works without a browser, too."""

    def __init__(self, session, endpoint: str, params: ChatParams | None = None, system: str | None = None,
                 *, sample_file: str | Path | None = None, threaded: bool = True, stream: bool = True):
        self.session = session
        self.endpoint = endpoint
        self.turns: list[Turn] = []
        self.stream = stream
        self.threaded = threaded
        self.sample_file = sample_file
        self._uid = uuid.uuid4().hex[:10]
        self._lock = threading.RLock()
        self._worker: threading.Thread | None = None
        self._handle = None
        self._last_draw = float("-inf")
        self.draw_every = 0.1  # seconds between redraws while a reply streams
        self._rng = random.Random()
        params = params or ChatParams()
        self._build(params, system)

    # ------------------------------------------------------------------ widgets
    def _build(self, params: ChatParams, system: str | None) -> None:
        w = widgets
        self.conversation = w.HTML(self.transcript_html(), layout=w.Layout(width="100%"))
        self.input = w.Text(placeholder="Type a message; Enter sends", layout=w.Layout(flex="1 1 auto", width="auto"))
        self.input.add_class("azml-chat-input")
        self.input.on_msg(self._on_input_msg)
        self.send_button = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self.send_button.on_click(lambda _: self._start_send())
        self.sample_button = w.Button(description="Try a sample", tooltip="Send a prompt from the test data")
        self.sample_button.on_click(lambda _: self.try_sample())
        self.clear_button = w.Button(description="Clear", tooltip="Forget the conversation")
        self.clear_button.on_click(lambda _: self.clear())
        self.status = w.HTML("")
        self.temperature = w.FloatSlider(value=params.temperature, min=0.0, max=2.0, step=0.05, description="temperature")
        self.top_p = w.FloatSlider(value=params.top_p, min=0.0, max=1.0, step=0.01, description="top_p")
        self.max_new_tokens = w.BoundedIntText(value=params.max_new_tokens, min=1, max=4096, description="max_new_tokens")
        self.do_sample = w.Checkbox(value=params.do_sample, description="do_sample")
        self.system = w.Textarea(value=system or "", placeholder="System prompt (optional)", description="system",
                                 layout=w.Layout(width="100%"))
        settings = w.VBox([w.HBox([self.temperature, self.top_p]), w.HBox([self.max_new_tokens, self.do_sample]), self.system])
        self.settings = w.Accordion(children=[settings], titles=("Settings",))
        self.settings.selected_index = None
        title = w.HTML(f"<b>Chat with</b> <code>{html.escape(self.endpoint)}</code>")
        self.widget = w.VBox(
            [title, self.conversation, w.HBox([self.input, self.send_button]),
             w.HBox([self.sample_button, self.clear_button, self.status]), self.settings],
            layout=w.Layout(width="100%", max_width="900px"),
        )
        self.widget.add_class("azml-chat")
        self.widget.add_class(f"azml-chat-live-{self._uid}")
        self._controls = [self.input, self.send_button, self.sample_button, self.clear_button]

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
        self._handle = display(self._static(), display_id=True)

    # ------------------------------------------------------------------ state
    @property
    def params(self) -> ChatParams:
        return ChatParams(temperature=float(self.temperature.value), top_p=float(self.top_p.value),
                          do_sample=bool(self.do_sample.value), max_new_tokens=int(self.max_new_tokens.value))

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

    def clear(self) -> None:
        with self._lock:
            self.turns.clear()
            self.status.value = ""
            self._draw(final=True)

    # ------------------------------------------------------------------ sending
    def _on_input_msg(self, _widget, content, _buffers) -> None:
        if content.get("event") == "submit":
            self._start_send()

    def _start_send(self, text: str | None = None) -> None:
        """Send from a button or Enter: in a worker thread, so the kernel stays free while it streams."""
        if self.busy:
            return
        text = self.input.value if text is None else text
        if not text.strip():
            return
        self._set_busy(True)
        if self.threaded:
            self._worker = threading.Thread(target=self.send, args=(text,), name="azml-chat", daemon=True)
            self._worker.start()
        else:
            self.send(text)

    def wait(self, timeout: float | None = 60) -> None:
        """Wait for a reply being sent in the background (tests, scripts)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    @property
    def busy(self) -> bool:
        return self.send_button.disabled

    def _set_busy(self, busy: bool) -> None:
        for control in self._controls:
            control.disabled = busy
        self.status.value = "<i>waiting for the endpoint…</i>" if busy else ""

    def try_sample(self) -> str | None:
        """Send a prompt picked from the test data."""
        prompts = sample_prompts(self.sample_file)
        if not prompts:
            self.status.value = "<span style='color:#cf222e'>no test data found for a sample prompt</span>"
            return None
        prompt = self._rng.choice(prompts)
        self.input.value = prompt
        self._start_send(prompt)
        return prompt

    def send(self, text: str) -> str | None:
        """Send one user message; returns the reply, or None when the request failed (shown inline)."""
        text = text.strip()
        if not text:
            return None
        self._set_busy(True)
        with self._lock:
            messages = self.messages() + [{"role": "user", "content": text}]
            user = Turn("user", text)
            reply = Turn("assistant", "")
            self.turns += [user, reply]
            self.input.value = ""
            self._draw(final=True)
        try:
            for piece in self._reply_pieces(messages):
                with self._lock:
                    reply.content += piece
                    self._draw()
        except Exception as exc:  # every failure stays inside the widget
            message = exc.message if isinstance(exc, AzmlError) else f"{type(exc).__name__}: {exc}"
            with self._lock:
                user.failed = reply.failed = True
                if not reply.content:
                    self.turns.remove(reply)
                self.turns.append(Turn("error", message, failed=True))
                self.input.value = text  # ready to retry
                self._draw(final=True)
            self._set_busy(False)
            return None
        with self._lock:
            self._draw(final=True)
        self._set_busy(False)
        return reply.content

    def _reply_pieces(self, messages: list[dict]):
        """Streamed pieces when the endpoint streams, else the whole reply at once."""
        params = self.params
        if self.stream:
            try:
                pieces = iter(self.session.stream_chat(self.endpoint, messages, params))
                first = next(pieces)
            except StopIteration:
                return
            except NotImplementedError:
                self.stream = False
            else:
                yield first
                yield from pieces
                return
        yield self.session.chat(self.endpoint, messages, params)

    # ------------------------------------------------------------------ drawing
    def _draw(self, final: bool = False) -> None:
        """Redraw the widget (at most ~10 times a second while streaming) and, at the end, the saved copy."""
        now = time.monotonic()
        if not final and now - self._last_draw < self.draw_every:
            return
        self._last_draw = now
        self.conversation.value = self.transcript_html()
        if final and self._handle is not None:
            self._handle.update(self._static())

    def transcript_html(self) -> str:
        if not self.turns:
            return "<div class='azml-chat-empty' style='color:#6e7781;padding:6px'>No messages yet.</div>"
        parts = []
        for turn in self.turns:
            label, color = ROLE_STYLE.get(turn.role, (turn.role, "#fff"))
            if turn.role == "assistant":
                body = render_markdown(turn.content) if turn.content else "<i>…</i>"
            else:
                body = f"<div style='white-space:pre-wrap'>{html.escape(turn.content)}</div>"
            note = " <small>(not sent again)</small>" if turn.failed and turn.role != "error" else ""
            parts.append(
                f"<div class='azml-chat-turn azml-chat-{turn.role}' style='background:{color};border-radius:6px;"
                f"padding:4px 8px;margin:4px 0'><b>{label}</b>{note}{body}</div>"
            )
        return "<div class='azml-chat-transcript'>" + "".join(parts) + "</div>"

    def transcript_text(self) -> str:
        return "\n".join(f"{t.role}: {t.content}" for t in self.turns) or "(no messages)"

    def _static(self):
        """The copy kept in the saved notebook; hidden while the live widget is on the page."""
        from .jobview import Rich

        uid = self._uid
        live, static = f"azml-chat-live-{uid}", f"azml-chat-static-{uid}"
        style = (
            f"<style>.jp-OutputArea:has(.{live}) .{static}, .output:has(.{live}) .{static}"
            "{display:none}</style>"
        )
        body = (
            f"<div class='{static}'><b>Chat with</b> <code>{html.escape(self.endpoint)}</code>"
            f"{self.transcript_html()}</div>"
        )
        return Rich(style + body, f"Chat with {self.endpoint}\n{self.transcript_text()}")
