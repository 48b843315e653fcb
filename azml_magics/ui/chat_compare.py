"""Side by side: ``%azml_chat EP1 EP2 [...]``, one input and one column per endpoint.

Each column is a :class:`~.chat.ChatBox` (its own transcript, Stop, settings and reply footers);
the shared input is a :class:`~.chat_panel.ChatPanel` without a transcript, so the typed text still
travels with the Enter event. A message goes to every column at once, each in its own worker
thread, so the slower model does not hold the faster one back: the base model and the fine-tuned
one answer the same prompt while you watch both.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from ..display import message_html
from ..errors import AzmlError
from ..scoring import GenerationParams
from .chat import ChatBox
from .chat_samples import samples


class ChatCompare:
    """One input, one :class:`ChatBox` column per endpoint. ``send(text)`` works without a browser."""

    def __init__(self, session, endpoints: list[str], params: GenerationParams | None = None,
                 system: str | None = None, *, threaded: bool = True, sample_file=None):
        if len(endpoints) < 2 or len(set(endpoints)) != len(endpoints):
            raise AzmlError("side by side needs two or more different endpoints: %azml_chat EP1 EP2 [...]")
        self.sample_file = sample_file
        self.boxes = [ChatBox(session, name, params=params, system=system, threaded=threaded,
                              sample_file=sample_file, column=True) for name in endpoints]
        from .chat_panel import ChatPanel

        self.input = ChatPanel(log_shown=False, placeholder="One message to every endpoint; Enter sends")
        self.input.on_msg(self._on_input_msg)
        for box in self.boxes:
            box.panel.observe(self._sync_busy, names="busy")
        self.sample_button = widgets.Button(description="Try a sample", tooltip="The same test prompt to every endpoint")
        self.sample_button.on_click(lambda _: self.try_sample())
        columns = widgets.HBox([box.widget for box in self.boxes], layout=widgets.Layout(width="100%"))
        columns.add_class("azml-chat-columns")
        names = ", ".join(f"<code>{html.escape(n)}</code>" for n in endpoints)
        self.widget = widgets.VBox([
            widgets.HTML(f"<b>Side by side:</b> {names}"),
            columns,
            self.input, self.sample_button,
        ], layout=widgets.Layout(width="100%"))
        self.widget.add_class("azml-chat-compare")

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
        for box in self.boxes:  # each column's saved copy, for a notebook opened without a kernel
            box._handle = display(box._static(), display_id=True)

    @property
    def busy(self) -> bool:
        return any(box.busy for box in self.boxes)

    def _sync_busy(self, _change=None) -> None:
        self.input.busy = self.busy  # the shared Stop stops every column; each column's Stop only its own

    def _on_input_msg(self, _widget, content, _buffers) -> None:
        event = content.get("event") if isinstance(content, dict) else None
        if event == "submit" and isinstance(content.get("text"), str):
            self.send(content["text"])  # the text as it was when Enter was pressed
        elif event == "stop":
            self.stop()

    def send(self, text: str, reference: str | None = None) -> list[str | None] | None:
        """Send ``text`` to every column. Threaded (as in a notebook): starts them all and returns None
        (``wait()`` joins them); else sends in turn and returns the replies. ``reference``: a sample's
        answer from the data, shown under each column's reply."""
        if self.busy or not text.strip():
            return None
        if self.boxes[0].threaded:
            for box in self.boxes:
                box._start(text, reference=reference)
            return None
        return [box.send(text, reference) for box in self.boxes]

    def try_sample(self) -> str | None:
        """The same prompt from the test data to every column, each reply followed by the reference."""
        found = samples(self.sample_file)
        if not found:
            self.boxes[0].status.value = message_html("no test data found for a sample prompt", "error")
            return None
        sample = self.boxes[0]._rng.choice(found)
        self.send(sample.prompt, sample.reference)
        return sample.prompt

    def stop(self) -> None:
        for box in self.boxes:
            box.stop()

    def wait(self, timeout: float | None = 60) -> None:
        for box in self.boxes:
            box.wait(timeout)

    @property
    def histories(self) -> dict[str, list[dict]]:
        """Each endpoint's conversation, by endpoint name."""
        return {box.endpoint: box.history for box in self.boxes}
