"""What the user sees: tables, rich outputs and short messages, as HTML for notebooks and text elsewhere.

One convention for everything shown: a display object subclasses :class:`Displayable` and gives
``__str__`` (the text: terminals, logs, ``print``, a notebook's ``text/plain``) and ``html()`` (the
notebook's ``text/html``). Every piece of user text goes through :func:`escape`, so a data row or a
job name can never inject markup. Low in the layers: stdlib only, so the magics, the UI and the
data objects can all use it and ``%load_ext`` stays light.
"""

from __future__ import annotations

import base64
import html as _html
import io
from dataclasses import dataclass, field

# Colours of states and messages (GitHub's palette, readable on light and dark themes).
ERROR_COLOR, OK_COLOR, WARN_COLOR = "#cf222e", "#1a7f37", "#9a6700"
MESSAGE_COLORS = {"error": ERROR_COLOR, "ok": OK_COLOR, "warning": WARN_COLOR, "note": "inherit"}


def escape(value) -> str:
    """User text made safe inside HTML, quotes included (``None`` is empty)."""
    return "" if value is None else _html.escape(str(value))


NO_MATHJAX = "tex2jax_ignore mathjax_ignore"  # the classes MathJax 2 and 3 skip


class Displayable:
    """Base of every display object: IPython shows ``html()`` in notebooks and ``str()`` as text."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # IPython's pretty printer stops at the first class of the MRO with a __repr__ of its own (a
        # dataclass has one), so every display class carries _repr_pretty_ itself.
        if "_repr_pretty_" not in cls.__dict__:
            cls._repr_pretty_ = Displayable._repr_pretty_

    def html(self) -> str:  # pragma: no cover - every display object overrides it
        raise NotImplementedError

    def _repr_html_(self) -> str:
        # JupyterLab typesets $...$ in HTML outputs with MathJax ("$5 and $10" became a formula); ours hold
        # prices, paths and shell variables, never TeX (the chat renders its math itself: ui/chat_math.py)
        return f"<div class='{NO_MATHJAX}'>{self.html()}</div>"

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython's text/plain
        printer.text(str(self))


class Rich(Displayable):
    """Markup already built (a job view, a chat transcript, a table cell) with its plain-text twin."""

    def __init__(self, html_text: str, text: str):
        self._html_text, self.text = html_text, text

    def html(self) -> str:
        return self._html_text

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _cell_html(value) -> str:
    return value.html() if isinstance(value, Displayable) else escape(_text(value))


@dataclass
class Table(Displayable):
    """Rows under column names, with an optional title and notes (lines under the table).

    Cells are escaped; a display object as a cell (or title), e.g. :class:`Rich`, brings its own markup.
    """

    columns: list[str]
    rows: list[list[object]]
    title: object = None
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        cells = [[_text(v) for v in row] for row in self.rows]
        widths = [len(c) for c in self.columns]
        for row in cells:
            for i, v in enumerate(row):
                widths[i] = max(widths[i], len(v))
        lines = []
        if self.title:
            lines.append(_text(self.title))
        lines.append("  ".join(c.ljust(w) for c, w in zip(self.columns, widths)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        for row in cells:
            lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        if not self.rows:
            lines.append("(none)")
        lines.extend(self.notes)
        return "\n".join(lines)

    __repr__ = __str__

    def table_html(self) -> str:
        """The ``<table>`` alone, for composing into a larger output."""
        head = "".join(f"<th style='text-align:left'>{escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{_cell_html(v)}</td>" for v in row) + "</tr>"
            for row in self.rows
        ) or f"<tr><td colspan='{len(self.columns)}'><i>none</i></td></tr>"
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def html(self) -> str:
        title = "" if not self.title else (
            self.title.html() if isinstance(self.title, Displayable) else f"<b>{escape(self.title)}</b>")
        notes = "".join(f"<div>{escape(n)}</div>" for n in self.notes)
        return f"<div class='azml-table'>{title}{self.table_html()}{notes}</div>"


def message_html(text: str, kind: str = "note") -> str:
    """A one-line note or error as an inline coloured span (status lines, field errors).

    ``kind``: note, ok, warning or error. In a terminal the same message is the bare line.
    """
    return f"<span style='color:{MESSAGE_COLORS.get(kind, 'inherit')}'>{escape(text)}</span>"


def figure_png(fig) -> bytes:
    """A matplotlib ``Figure`` as PNG bytes (no pyplot: safe from a background thread)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def png_img(png: bytes, alt: str) -> str:
    """An ``<img>`` with the PNG inline, so the picture survives in a saved notebook."""
    data = base64.b64encode(png).decode("ascii")
    return f"<img alt='{escape(alt)}' src='data:image/png;base64,{data}'/>"


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def saved_twin(live_class: str, twin_class: str, body_html: str, text: str) -> Rich:
    """The plain output kept beside a live widget (whose class is ``live_class``) so a saved notebook
    shows the result without a kernel. While the widget is on the page the twin is hidden; once the
    widget cannot be drawn (no kernel, or a fresh one: JupyterLab then writes "Loading widget..." or
    "Error displaying widget" into an empty output), that empty widget output is hidden instead."""
    twin = twin_class
    style = (
        f"<style>.jp-OutputArea:has(.{live_class}) .{twin}, .output:has(.{live_class}) .{twin}{{display:none}}"
        # JupyterLab's widget renderer is the one output node without a data-mime-type attribute
        f".jp-OutputArea:has(.{twin}) .jp-OutputArea-output:not([data-mime-type]):not(:has(*)),"
        f".jp-OutputArea:has(.{twin}) .jp-OutputArea-output[data-mime-type='{WIDGET_MIME}']:not(:has(*))"
        "{display:none}"
        f".output:has(.{twin}) .output_subarea.jupyter-widgets-view:not(:has(*)){{display:none}}</style>"
    )
    return Rich(f"{style}<div class='{twin}'>{body_html}</div>", text)


def local_time(ts) -> str:
    """A Unix time as the user's local 'YYYY-MM-DD HH:MM' ('' for none): the created/started columns."""
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(ts))) if ts else ""
