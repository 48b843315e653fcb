"""Progress of a wait the user sits through: building the tiny model, loading a model, preparing or
validating data, starting an endpoint, uploading. One concept for every layer.

Code that waits opens a :class:`Wait` with :func:`wait` and advances it; what draws it is the
:class:`Reporter` the front end installed with :func:`set_reporter` (the notebook's widget bar or a
terminal line, both in ``ui/waitbar.py``). Without one (a script, the trainer or server child
process) a wait costs a counter. A wait is shown only once it has lasted ``SHOW_AFTER`` seconds (a
fast step stays silent), redrawn every ``REDRAW`` seconds by a ticker thread (counting is only a counter), and a wait that was shown always ends with its final state line. Stdlib only: any layer can
use it and ``%load_ext`` stays light.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol

SHOW_AFTER = 1.0  # seconds before a wait is worth a line
REDRAW = 0.5  # seconds between two redraws at most


@dataclass
class Wait:
    """One wait as the user sees it: what, how far (``done`` of ``total`` ``unit``), since when, how it ended."""

    label: str
    total: float | None = None
    unit: str = ""
    done: float = 0
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    outcome: str = ""  # "" while running; then "done", "failed" or "interrupted"
    note: str = ""  # what the final line adds ("5 rows kept")

    @property
    def seconds(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    @property
    def fraction(self) -> float | None:
        """0..1 where the total is known."""
        return min(1.0, self.done / self.total) if self.total else None

    def rate(self) -> float | None:
        """Units per second: while running once there is half a second to measure over, at the end always."""
        secs = self.seconds
        return self.done / secs if self.unit and self.done and secs > 0 and (secs >= 0.5 or self.outcome) else None

    def counts(self) -> str:
        """'1,200 / 5,000 rows · 850 rows/s' (what there is of it)."""
        if not self.unit:
            return ""
        done = f"{self.done:,.0f}"
        text = f"{done} / {self.total:,.0f} {self.unit}" if self.total else f"{done} {self.unit}"
        rate = self.rate()
        if rate is None:
            return text
        return f"{text} · {rate:,.0f} {self.unit}/s" if rate >= 10 else f"{text} · {rate:.1f} {self.unit}/s"

    def line(self) -> str:
        """The one line: while running, '<label>: 45% · 9 / 20 rows · 3 rows/s · 3.1 s';
        at the end, '<label>: done in 4.2 s · 20 rows · 5 rows/s'."""
        counts = self.counts()
        if self.outcome:
            parts = [f"{self.label}: {self.outcome} in {_secs(self.seconds)}", counts, self.note]
        else:
            pct = f"{self.fraction:.0%}" if self.fraction is not None else ""
            parts = [f"{self.label}: {pct}".rstrip(": ") if pct else f"{self.label} ...", counts, _secs(self.seconds)]
        return " · ".join(p for p in parts if p)


def _secs(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class Reporter(Protocol):
    """What draws waits. ``draw`` shows a wait (the first call) or redraws it; ``close`` draws its final
    state, after which the wait is not drawn again. Both are called under the wait's lock, throttled."""

    def draw(self, wait: Wait) -> None: ...

    def close(self, wait: Wait) -> None: ...


_reporter: Reporter | Callable[[], Reporter | None] | None = None


def set_reporter(reporter: Reporter | Callable[[], Reporter | None] | None) -> None:
    """Install what draws waits: a Reporter, or a function that makes one on the first wait (so a front
    end can install a widget reporter without importing ipywidgets yet). None: waits are silent."""
    global _reporter
    _reporter = reporter


def current_reporter() -> Reporter | None:
    global _reporter
    if _reporter is not None and not hasattr(_reporter, "draw"):
        _reporter = _reporter()
    return _reporter  # type: ignore[return-value]


class Waiting:
    """An open wait: ``advance(n)``, ``set(done=, total=)``; closed by the ``with`` block that opened it."""

    def __init__(self, state: Wait, reporter: Reporter | None, show_after: float):
        self.state, self.reporter, self.show_after = state, reporter, show_after
        self._lock = threading.Lock()
        self._shown = False
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.outcome: str | None = None  # set by the code that waits when it caught the end itself

    def end_as(self, outcome: str, note: str = "") -> None:
        """Say how the wait ended where the code caught it (a Ctrl-C that keeps what was done)."""
        self.outcome, self.state.note = outcome, note

    def advance(self, n: float = 1) -> None:
        """Count ``n`` more; only a counter (the ticker draws), so it is cheap for every row."""
        self.state.done += n

    def set(self, done: float | None = None, total: float | None = None) -> None:
        if total is not None:
            self.state.total = total
        if done is not None:
            self.state.done = done

    def _maybe_draw(self) -> None:
        with self._lock:
            if self.reporter is None or self.state.outcome or time.monotonic() - self.state.started < self.show_after:
                return
            self._shown = True
            self._report(self.reporter.draw)

    def _report(self, call) -> None:
        """Draw; a reporter that fails (a closed stream, a broken front end) is dropped for this wait,
        and the work it reports on goes on untouched."""
        try:
            call(self.state)
        except Exception:  # noqa: BLE001 - progress must never break the work it shows
            self.reporter = None

    def _tick(self) -> None:  # every redraw happens here, so counting stays off the hot path
        while not self._stop.wait(REDRAW):
            self._maybe_draw()

    def _open(self) -> "Waiting":
        if self.reporter is not None:
            self._ticker = threading.Thread(target=self._tick, name="azml-wait", daemon=True)
            self._ticker.start()
        return self

    def _close(self, outcome: str) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            self.state.ended, self.state.outcome = time.monotonic(), outcome
            if self.reporter is not None and (self._shown or self.state.seconds >= self.show_after):
                self._report(self.reporter.close)


@contextmanager
def wait(label: str, *, total: float | None = None, unit: str = "",
         show_after: float | None = None) -> Iterator[Waiting]:
    """Open a wait for the block, shown once it lasts ``show_after`` seconds (default ``SHOW_AFTER``).
    The final line says done, failed (an exception) or interrupted (Ctrl-C); the exception goes on.
    Drawn only in the main thread: a worker thread's wait (a form's deploy) has its own status line,
    and its bar would land in whatever cell runs meanwhile."""
    main = threading.current_thread() is threading.main_thread()
    reporter = current_reporter() if main else None
    handle = Waiting(Wait(label, total=total, unit=unit), reporter, SHOW_AFTER if show_after is None else show_after)
    handle._open()
    outcome = "done"
    try:
        yield handle
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    except BaseException:
        outcome = "failed"
        raise
    finally:
        handle._close(handle.outcome or outcome)


def counted(items: Iterable, waiting: Waiting) -> Iterator:
    """``items`` as they are, advancing ``waiting`` by one for each."""
    for item in items:
        waiting.advance(1)
        yield item


_HF_BARS = {  # module -> (are bars on?, turn off, turn on), each a dotted name in that module
    "transformers": ("utils.logging.is_progress_bar_enabled", "utils.logging.disable_progress_bar",
                     "utils.logging.enable_progress_bar"),
    "datasets": ("utils.logging.is_progress_bar_enabled", "disable_progress_bars", "enable_progress_bars"),
    "huggingface_hub": ("utils.are_progress_bars_disabled", "utils.disable_progress_bars",
                        "utils.enable_progress_bars"),
}


def _attr(module, dotted: str):
    for part in dotted.split("."):
        module = getattr(module, part, None)
    return module


@contextmanager
def hf_bars_off() -> Iterator[None]:
    """Hugging Face's own tqdm bars (transformers' weight loading, datasets' splits, the hub's
    downloads) off for the block, so only our wait line shows in the cell; restored after. Acts on the
    libraries already imported: call it after the imports it concerns."""
    restore = []
    for name, (query, off, on) in _HF_BARS.items():
        module = sys.modules.get(name)
        if module is None or _attr(module, off) is None:
            continue
        enabled = _attr(module, query)
        was_on = enabled() if callable(enabled) else True
        if name == "huggingface_hub":
            was_on = not was_on  # the hub asks the other way round
        _attr(module, off)()
        if was_on:
            restore.append(_attr(module, on))
    try:
        yield
    finally:
        for turn_on in restore:
            turn_on()
