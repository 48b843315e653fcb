"""What the three forms share: a field per spec path, its error line, a status line, number reading.

A field's path is the spec's own dotted key (``data.fraction``, ``parameters.learning_rate``), the
same path a :class:`~azml_magics.errors.SpecError` carries, so an error is shown at its field by
looking the path up, never by reading the message.
"""

from __future__ import annotations

import html
import re
import uuid
from dataclasses import dataclass

import ipywidgets as widgets

from ...display import message_html
from ...errors import SpecError

LABEL_WIDTH = "230px"


@dataclass
class Field:
    """One input of a form: where it goes in the spec, its widget and its error line."""

    path: str  # "model", "data.fraction", "parameters.learning_rate", ...
    widget: widgets.Widget
    error: widgets.HTML
    row: widgets.Box

    @property
    def text(self) -> str:
        value = self.widget.value
        return "" if value is None else str(value).strip()


class Form:
    """Fields, their error lines, a status line; shared by the three forms."""

    def __init__(self):
        self.fields: dict[str, Field] = {}
        self.errors: dict[str, str] = {}
        self.status = widgets.HTML("")
        self.result = widgets.HTML("")
        self._quiet = False  # no validation while the form fills itself
        self.widget: widgets.Widget | None = None
        self.live_class = f"azml-form-live-{uuid.uuid4().hex[:12]}"  # ties the widget to its saved twin

    def _ipython_display_(self):
        """The widget, and beside it a plain HTML output that mirrors the result: a saved notebook,
        reopened without a kernel (so without the widget), still shows what the form produced."""
        from IPython.display import display

        self.widget.add_class(self.live_class)
        display(self.widget)
        self._record = display(self._record_output(), display_id=True)

    _record = None

    def _record_output(self):
        from ...display import saved_twin

        body = self.result.value
        return saved_twin(self.live_class, "azml-form-record", body or self._empty_record(),
                          _plain(body) or self._empty_record())

    def _empty_record(self) -> str:
        """What the saved twin says before the form produced anything."""
        return f"({self.title} form: nothing submitted)"

    title = "azml"

    def publish(self, html_text: str) -> None:
        """Show ``html_text`` as the form's result, in the widget and in the saved output beside it."""
        self.result.value = html_text
        if self._record is not None:
            self._record.update(self._record_output())

    @property
    def result_target(self) -> "_Mirror":
        """What a JobView draws into: the result widget and the saved output alike."""
        return _Mirror(self)

    def add(self, path: str, widget: widgets.Widget, label: str, help: str = "") -> Field:
        label_w = widgets.HTML(f"<span title='{html.escape(help, quote=True)}'>{html.escape(label)}</span>",
                               layout=widgets.Layout(width=LABEL_WIDTH))
        error = widgets.HTML("", layout=widgets.Layout(margin="0 0 0 8px"))
        row = widgets.HBox([label_w, widget, error], layout=widgets.Layout(align_items="center"))
        row.add_class("azml-field-" + re.sub(r"[^A-Za-z0-9_-]", "-", path))  # a handle for browser tests
        field = Field(path, widget, error, row)
        self.fields[path] = field
        widget.observe(lambda _change: self._changed(path), names="value")
        return field

    def text(self, path: str, label: str, value: str = "", help: str = "", placeholder: str = "") -> Field:
        return self.add(path, widgets.Text(value=value, placeholder=placeholder), label, help)

    def combo(self, path: str, label: str, value: str, options, help: str = "", continuous: bool = True) -> Field:
        w = widgets.Combobox(value=value, options=tuple(options), ensure_option=False, continuous_update=continuous)
        return self.add(path, w, label, help)

    def dropdown(self, path: str, label: str, value: str, options, help: str = "") -> Field:
        return self.add(path, widgets.Dropdown(value=value, options=tuple(options)), label, help)

    def set_text(self, path: str, value) -> None:
        """Put ``value`` in a field as text; a dropdown gains it as an option (the check names it)."""
        widget = self.fields[path].widget
        text = "" if value is None else str(value)
        if isinstance(widget, widgets.Dropdown):
            if text not in widget.options:
                widget.options = tuple(widget.options) + (text,)
        widget.value = text

    def rows(self, prefix: str) -> list[widgets.Box]:
        return [f.row for p, f in self.fields.items() if p.startswith(prefix)]

    def _changed(self, path: str) -> None:
        if not self._quiet:
            self.validate()

    def validate(self):  # pragma: no cover - every form overrides it
        raise NotImplementedError

    def show_errors(self, errors: dict[str, str]) -> None:
        """Put each message next to its field; the rest in the status line."""
        self.errors = errors
        for path, field in self.fields.items():
            message = errors.get(path)
            field.error.value = message_html(message, "error") if message else ""
        loose = [m for p, m in errors.items() if p not in self.fields]
        if loose:
            self.status.value = "<span style='color:#cf222e'>" + "<br>".join(html.escape(m) for m in loose) + "</span>"
        elif errors:
            self.status.value = message_html(f"{len(errors)} field(s) to fix", "error")
        else:
            self.status.value = message_html("✔ valid", "ok")

    @staticmethod
    def by_path(errors: list[SpecError]) -> dict[str, str]:
        """The spec's collected errors by the path they carry (the first per path); a whole-spec one
        goes under 'spec'. Keys that are fields are marked at the field, the rest go to the status."""
        out: dict[str, str] = {}
        for error in errors:
            out.setdefault(error.path or "spec", error.message)
        return out

    def say(self, text: str, error: bool = False) -> None:
        self.status.value = message_html(text, "error" if error else "note")


class _Mirror:
    def __init__(self, form: Form):
        self.form = form

    @property
    def value(self) -> str:
        return self.form.result.value

    @value.setter
    def value(self, html_text: str) -> None:
        self.form.publish(html_text)


def _plain(html_text: str) -> str:
    """Rough text of an HTML result, for the text/plain twin of the saved output."""
    text = re.sub(r"<img[^>]*>", "[chart]", html_text or "")
    text = re.sub(r"</(tr|div|p|table)>", "\n", text)
    return html.unescape(re.sub(r"<[^>]+>", " ", text)).strip()


def backend_name(session) -> str | None:
    """The backend the form's spec will run on: the connected one, else the default the session connects to."""
    ws = session.workspace
    return ws.backend if ws is not None else session.default_backend


def parse_tags(text: str) -> dict[str, str] | str:
    """'a=1, b=2' -> {'a': '1', 'b': '2'}; text that is not key=value pairs comes back as is (the check names it)."""
    tags: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            return text
        key, value = part.split("=", 1)
        tags[key.strip()] = value.strip()
    return tags


def _parse_number(text: str):
    """'3' -> 3, '5e-6' -> 5e-06, else the text itself (the spec check then says what is wrong)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _fmt_param(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)

