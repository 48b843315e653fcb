"""How a wait (:mod:`azml_magics.waits`) is drawn: a widget bar in a notebook, one redrawn line in a
terminal.

In a notebook the bar is an ipywidgets ``FloatProgress`` with the wait's line beside it, and under it
its saved twin (``display.saved_twin``): a plain HTML output that ends holding the final state line, so
a notebook reopened without a kernel shows "Loading model ...: done in 4.2 s" instead of "Error
displaying widget". In a terminal (IPython, a script) it is one line redrawn with a carriage return,
then the final line and a newline: one line per wait, never a line per update.
"""

from __future__ import annotations

import sys
import uuid

from ..display import message_html, saved_twin
from ..waits import Wait

_KIND = {"done": "ok", "failed": "error", "interrupted": "warning"}


class TextReporter:
    """One line per wait on ``stream`` (default: the current ``sys.stdout``), redrawn in place. A wait
    inside another (the tiny model built while a tokenizer loads) takes the line until it ends; the
    outer one then goes on below it."""

    def __init__(self, stream=None):
        self._stream = stream
        self._open: tuple[int, int] | None = None  # (wait, width) of the line that has no newline yet
        self._nested: list[int] = []  # the waits drawn and not closed, innermost last

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    def _write(self, wait: Wait, end: str) -> None:
        line = wait.line()
        if self._open is not None and self._open[0] == id(wait):
            text = "\r" + line + " " * max(0, self._open[1] - len(line))  # over its own last state
        else:
            text = ("\n" if self._open is not None else "") + line  # someone else's line stays as it is
        self.stream.write(text + end)
        self.stream.flush()
        self._open = None if end else (id(wait), len(line))

    def draw(self, wait: Wait) -> None:
        if id(wait) not in self._nested:
            self._nested.append(id(wait))
        elif self._nested[-1] != id(wait):
            return  # an inner wait has the line
        self._write(wait, "")

    def close(self, wait: Wait) -> None:
        if id(wait) in self._nested:
            self._nested.remove(id(wait))
        self._write(wait, "\n")


class WidgetBar:
    """The widget of one wait and its saved twin."""

    def __init__(self, wait: Wait):
        import ipywidgets as widgets
        from IPython.display import display

        self.live = f"azml-wait-live-{uuid.uuid4().hex[:12]}"
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info",
                                         layout=widgets.Layout(width="240px"))
        self.text = widgets.HTML("")
        self.box = widgets.HBox([self.bar, self.text], layout=widgets.Layout(align_items="center"))
        self.box.add_class(self.live)
        self.update(wait)
        display(self.box)
        self.twin = display(self.saved(wait), display_id=True)

    def saved(self, wait: Wait):
        kind = _KIND.get(wait.outcome, "note")
        return saved_twin(self.live, "azml-wait-record", message_html(wait.line(), kind), wait.line())

    def update(self, wait: Wait) -> None:
        fraction = wait.fraction
        if wait.outcome:
            self.bar.value = 1.0 if wait.outcome == "done" else (fraction or 0.0)
            self.bar.bar_style = {"done": "success", "failed": "danger"}.get(wait.outcome, "warning")
        else:
            # no total: a full, pale bar and a moving clock beside it (ipywidgets has no indeterminate bar)
            self.bar.value = fraction if fraction is not None else 1.0
        self.text.value = message_html(wait.line(), _KIND.get(wait.outcome, "note"))

    def close(self, wait: Wait) -> None:
        self.update(wait)
        self.twin.update(self.saved(wait))


class WidgetReporter:
    """Widget bars with saved twins, one per wait, for a notebook kernel."""

    def __init__(self):
        self._bars: dict[int, WidgetBar] = {}

    def draw(self, wait: Wait) -> None:
        bar = self._bars.get(id(wait))
        if bar is None:
            self._bars[id(wait)] = WidgetBar(wait)
        else:
            bar.update(wait)

    def close(self, wait: Wait) -> None:
        bar = self._bars.pop(id(wait), None) or WidgetBar(wait)
        bar.close(wait)


def for_shell(shell) -> TextReporter | WidgetReporter:
    """The widget bar in a notebook kernel that has ipywidgets, a text line anywhere else."""
    from importlib.util import find_spec

    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell" and find_spec("ipywidgets"):
        return WidgetReporter()
    return TextReporter()
