"""The browser half of the chat box: an anywidget holding the transcript, the input, Send and Stop.

Why a widget of our own: ipywidgets' Text sends its value as state updates that the frontend holds
back while the kernel has not acknowledged the previous one, but its Enter event goes at once, so
the kernel saw the submit before the last keystrokes (cut-off messages on a busy kernel). Here the
submit message carries the text itself (``{"event": "submit", "text": ...}``).
"""

from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

from .chat_render import CSS


class ChatPanel(anywidget.AnyWidget):
    _esm = (Path(__file__).with_name("chat_panel.js")).read_text(encoding="utf-8")
    _css = CSS
    transcript = traitlets.Unicode("").tag(sync=True)
    busy = traitlets.Bool(False).tag(sync=True)
    placeholder = traitlets.Unicode("Type a message; Enter sends, Shift+Enter starts a new line").tag(sync=True)
    draft = traitlets.Unicode("").tag(sync=True)  # text the kernel puts back in the input (edit, failed send)
    draft_serial = traitlets.Int(0).tag(sync=True)
    input_shown = traitlets.Bool(True).tag(sync=True)  # False in a side-by-side column (one shared input)
    log_shown = traitlets.Bool(True).tag(sync=True)  # False for the shared input itself
    host = traitlets.Unicode("").tag(sync=True)  # model id of the box's outer widget: finds its cell

    def put_draft(self, text: str) -> None:
        """Put ``text`` in the browser's input (a change the kernel makes, never read back)."""
        self.draft = text
        self.draft_serial += 1
