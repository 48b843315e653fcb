"""The notebook's wait bar: an ipywidgets bar, and beside it the saved twin that a notebook reopened
without a kernel shows (the final state line, never "Error displaying widget")."""

from __future__ import annotations

import re

from azml_magics import waits
from azml_magics.display import WIDGET_MIME
from azml_magics.ui.waitbar import TextReporter, WidgetReporter, for_shell

from tests.shell import run_cell

TIMED = """
import time
from azml_magics.waits import wait
with wait("Uploading train_sft", total=4, unit="rows", show_after=0) as w:
    for _ in range(4):
        time.sleep(0.3)
        w.advance()
"""


def test_the_widget_bar_ends_full_and_its_saved_twin_holds_the_final_line(ip):
    reporter = WidgetReporter()
    waits.set_reporter(reporter)
    result, text, outputs = run_cell(ip, TIMED)
    assert result.success, text
    widget_outputs = [o for o in outputs if WIDGET_MIME in o.data]
    assert len(widget_outputs) == 1  # one bar, redrawn in place
    twins = [o for o in outputs if "azml-wait-record" in o.data.get("text/html", "")]
    assert len(twins) == 2  # the twin shown with the bar, then its update to the final state
    final = twins[-1]
    assert final.update  # the same output, updated: the saved notebook keeps only this
    line = final.data["text/plain"]
    assert re.fullmatch(r"Uploading train_sft: done in 1\.\d s · 4 / 4 rows · \d(\.\d)? rows/s", line), line
    assert line in final.data["text/html"]
    # the twin is tied to its widget: hidden while that widget is drawn, shown when it cannot be
    from ipywidgets.widgets.widget import _instances  # the live widgets by model id (Widget.widgets is deprecated)

    box = _instances[widget_outputs[0].data[WIDGET_MIME]["model_id"]]
    live = next(c for c in box._dom_classes if c.startswith("azml-wait-live-"))
    assert f".jp-OutputArea:has(.{live}) .azml-wait-record" in final.data["text/html"]
    bar, label = box.children
    assert bar.value == 1.0 and bar.bar_style == "success"
    assert line in label.value


def test_a_failed_wait_leaves_a_red_bar_and_says_failed(ip):
    waits.set_reporter(WidgetReporter())
    code = ("import time\nfrom azml_magics.waits import wait\n"
            "with wait('Loading model m', show_after=0):\n    time.sleep(0.6)\n    raise OSError('no such model')")
    result, _, outputs = run_cell(ip, code)
    assert not result.success
    twin = [o for o in outputs if "azml-wait-record" in o.data.get("text/html", "")][-1]
    assert twin.data["text/plain"].startswith("Loading model m: failed in")
    assert "#cf222e" in twin.data["text/html"]  # the error colour


def test_a_terminal_shell_gets_the_text_line_and_a_kernel_the_widget(ip):
    assert isinstance(for_shell(ip), TextReporter)

    class ZMQInteractiveShell:  # the kernel's shell class, by name, as for_shell checks it
        pass

    assert isinstance(for_shell(ZMQInteractiveShell()), WidgetReporter)
