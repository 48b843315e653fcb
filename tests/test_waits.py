"""Waits the user sits through, as a real IPython shell shows them: one line redrawn, then its final state."""

from __future__ import annotations

import re

import pytest

from azml_magics import waits
from azml_magics.data import sample_dir

from tests.shell import run_cell


def _lines(text: str) -> list[str]:
    """What a terminal ends up showing: each newline-ended line as its last carriage-return redraw."""
    return [line.split("\r")[-1].rstrip() for line in text.split("\n") if line.strip()]


TIMED = """
import time
from azml_magics.waits import wait
with wait("Counting rows", total=6, unit="rows") as w:
    for _ in range(6):
        time.sleep(0.3)
        w.advance()
"""


def test_a_wait_is_one_line_redrawn_that_ends_in_its_final_state(ip):
    result, text, _ = run_cell(ip, TIMED)
    assert result.success
    shown = _lines(text)
    assert len(shown) == 1, shown  # redrawn in place, never a line per update
    assert re.fullmatch(r"Counting rows: done in 1\.\d s · 6 / 6 rows · \d(\.\d)? rows/s", shown[0]), shown
    redraws = text.count("\r")
    assert 2 <= redraws <= 6, text  # throttled: at most one redraw per REDRAW seconds, and it moved
    assert "Counting rows: 50%" in text or "Counting rows: 67%" in text or "Counting rows: 83%" in text


def test_a_fast_wait_stays_silent_and_a_failed_one_says_so(ip):
    _, text, _ = run_cell(ip, "from azml_magics.waits import wait\nwith wait('Quick'):\n    pass")
    assert text == ""
    code = ("import time\nfrom azml_magics.waits import wait\n"
            "with wait('Reading', show_after=0):\n    time.sleep(0.6)\n    raise ValueError('bad file')")
    result, text, _ = run_cell(ip, code)
    assert not result.success
    assert re.search(r"Reading: failed in 0\.\d s", _lines(text)[0]), text


def test_a_nested_wait_gets_a_line_of_its_own(ip):
    code = ("import time\nfrom azml_magics.waits import wait\n"
            "with wait('Outer', show_after=0):\n    time.sleep(0.6)\n"
            "    with wait('Inner', show_after=0):\n        time.sleep(1.6)\n    time.sleep(0.6)")
    _, text, _ = run_cell(ip, code)
    shown = _lines(text)
    assert [s.split(":")[0].split(" ...")[0] for s in shown] == ["Outer", "Inner", "Outer"], shown
    assert shown[1].startswith("Inner: done in") and shown[2].startswith("Outer: done in")


def test_a_worker_threads_wait_is_not_drawn(ip):
    code = ("import threading, time\nfrom azml_magics.waits import wait\n"
            "def work():\n    with wait('In a thread', show_after=0):\n        time.sleep(0.6)\n"
            "t = threading.Thread(target=work); t.start(); t.join()")
    _, text, _ = run_cell(ip, code)
    assert "In a thread" not in text


def test_without_a_reporter_a_wait_costs_nothing():
    waits.set_reporter(None)
    with waits.wait("Silent", total=2, unit="rows", show_after=0) as w:
        w.advance(2)
    assert w.state.outcome == "done" and w.state.done == 2 and w._ticker is None


def test_building_the_tiny_model_and_preparing_data_show_their_waits(ip, tmp_path, monkeypatch):
    """The real first use: the tiny model is built (its tokenizer trained, weights saved) under a wait
    line, then `%azml_data prepare` counts its rows per split with a rate."""
    monkeypatch.setenv("AZML_MAGICS_CACHE", str(tmp_path / "cache"))  # nothing built yet
    monkeypatch.setattr(waits, "SHOW_AFTER", 0.0)  # this machine may build it in under a second
    run_cell(ip, "%azml_connect --backend local")
    result, text, outputs = run_cell(ip, f"%azml_data prepare {sample_dir()} --rows 30 --out {tmp_path / 'data'} "
                                         "--model azml-tiny-phi3")
    assert result.success, text
    shown = _lines(text)
    assert any(re.fullmatch(r"Building the tiny model azml-tiny-phi3 \(once; then cached\): done in [\d.]+ s", s)
               for s in shown), shown
    assert any(s.startswith("Loading the tokenizer of azml-tiny-phi3: done in") for s in shown), shown
    prepared = [s for s in shown if s.startswith("Preparing ")]
    assert len(prepared) == 4, shown  # one final line per split
    assert all(re.search(r": done in [\d.]+ s · 30 rows · [\d,.]+ rows/s$", s) for s in prepared), prepared
    assert (tmp_path / "cache" / "tiny-phi3-1" / "BUILD_OK").exists()
    assert "it/s" not in text and "Map:" not in text  # no Hugging Face bar beside ours


@pytest.mark.parametrize("library", ["transformers", "datasets", "huggingface_hub"])
def test_hugging_face_bars_are_off_inside_a_wait_and_back_after(library):
    import datasets  # noqa: F401
    import huggingface_hub.utils as hub
    import transformers  # noqa: F401
    from transformers.utils import logging as hf_logging

    state = {"transformers": hf_logging.is_progress_bar_enabled,
             "datasets": datasets.is_progress_bar_enabled,
             "huggingface_hub": lambda: not hub.are_progress_bars_disabled()}[library]
    assert state()
    with waits.hf_bars_off():
        assert not state()
    assert state()


def test_a_reporter_that_fails_never_breaks_the_work():
    class Broken:
        def draw(self, wait):
            raise OSError("the front end is gone")

        close = draw

    waits.set_reporter(Broken())
    try:
        with waits.wait("Working", show_after=0) as w:
            import time

            time.sleep(0.6)
            w.advance()
    finally:
        waits.set_reporter(None)
    assert w.state.outcome == "done" and w.reporter is None
