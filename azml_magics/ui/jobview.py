"""The live job view: one notebook output that updates in place while a job runs, then a summary.

The view is a single display output (``display_id``) rather than a widget: updates reach it from the
cell that started it, from a button callback or from a background thread alike, and whatever it
showed last is what the saved notebook keeps. When the job ends it becomes a static summary (steps
table, metrics table and the loss chart as an inline PNG), readable without a kernel.

All rendering goes through one lock; the background thread never prints.
"""

from __future__ import annotations

import html
import threading
import time
from collections import deque

from ..backends.base import COMPLETED, FAILED, RUNNING, JobStatus, MetricPoint
from ..display import Rich
from ..errors import AzmlError
from ..api import Detached
from .charts import loss_chart_png, loss_series, png_img_tag
from .progress import StepRate, clean_log_lines

# the live output of the latest view of each job in this kernel: a re-attach replaces it
_VIEWS: dict[str, object] = {}

STATE_COLORS = {COMPLETED: "#1a7f37", FAILED: "#cf222e", "Canceled": "#6e7781", RUNNING: "#0969da"}
# metric -> (how "best" reads, unit): loss is best low, accuracy high; the others have no best
SUMMARY_METRICS = {"loss": (min, ""), "eval_loss": (min, ""), "train_loss": (min, ""),
                   "mean_token_accuracy": (max, ""), "eval_mean_token_accuracy": (max, ""),
                   "learning_rate": (None, ""), "grad_norm": (None, ""), "epoch": (None, "epochs"),
                   "tokens_per_second": (None, "tokens/s"), "train_runtime": (None, "s"),
                   "train_samples_per_second": (None, "rows/s")}
STATE_ICONS = {COMPLETED: "✔", FAILED: "✖", "Canceled": "⊘", RUNNING: "▶", "Queued": "…", "Preparing": "…",
               "Finalizing": "…", "NotStarted": "·"}


class JobView:
    """Watches one job: polls status, new log lines and metrics, and redraws one output in place.

    ``target`` (an ``ipywidgets.HTML``) replaces the display output, for views shown inside a form.
    """

    def __init__(self, session, job: str, *, interval: float | None = None, log_lines: int = 12,
                 render_every: float = 1.0, chart_every: float = 5.0, target=None):
        self.session = session
        self.job = job
        self.interval = session.poll_interval if interval is None else float(interval)
        self.render_every = render_every
        self.chart_every = chart_every
        self.status: JobStatus | None = None
        self.metrics: dict[str, list[MetricPoint]] = {}
        self.log_tail: deque[str] = deque(maxlen=log_lines)
        self.log_step: str | None = None
        self.error: str | None = None
        self.detached = False
        self.detached_at: float | None = None
        self.rate = StepRate()
        self._max_progress = 0.0
        self.finished = False
        self.html = ""
        self.renders = 0
        self._target = target
        self._handle = None  # None outside IPython: display() just prints there
        self._shown = False
        self._cursor = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen = time.time()
        self._last_render = float("-inf")
        self._last_metrics = float("-inf")
        self._chart: bytes | None = None
        self._chart_key: tuple | None = None

    # ------------------------------------------------------------------ running
    def show(self) -> None:
        """Create the output this view updates (once)."""
        with self._lock:
            if not self._shown and self._target is None:
                from IPython.display import display

                self._shown = True
                earlier = _VIEWS.get(self.job)
                if earlier is not None:  # the detached view of this job says where it went
                    earlier.update(Rich(f"<div class='azml-jobview'><i>{html.escape(self.job)}: re-attached at "
                                        f"{time.strftime('%H:%M')}; the view is in a later cell.</i></div>",
                                        f"{self.job}: re-attached at {time.strftime('%H:%M')}"))
                self._handle = display(self._rich(self._live_html()), display_id=True)
                if self._handle is not None:
                    _VIEWS[self.job] = self._handle

    def run(self, background: bool = False) -> None:
        """Watch until the job ends. Ctrl-C detaches (the job goes on); ``background`` returns at once."""
        self.show()
        if background:
            self._thread = threading.Thread(target=self._loop, name=f"azml-jobview-{self.job}", daemon=True)
            self._thread.start()
            return None
        if isinstance(self._loop(raise_errors=True), Detached):
            self.detach()
            if self._handle is None and self._target is None:  # no output to say it in: say it once here
                print(self.detached_text())
        return None

    def wait(self, timeout: float | None = None) -> JobStatus | None:
        """Wait for a background view to end; returns the last status seen."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.status

    def stop(self) -> None:
        """Stop a background view without touching the job."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.interval + 5)

    def detach(self) -> None:
        self._stop.set()
        with self._lock:
            self.detached, self.detached_at = True, time.time()
            self._publish(force=True)

    def detached_text(self) -> str:
        at = time.strftime("%H:%M", time.localtime(self.detached_at or time.time()))
        return (f"{self.job}: detached at {at}; the job goes on. Re-attach with %azml_jobs attach {self.job}; "
                f"cancel with %azml_jobs cancel {self.job}")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self, raise_errors: bool = False):
        """Session.watch is the one poll loop; this view only draws what each round brings."""
        try:
            result = self.session.watch(self.job, on_update=self.update, interval=self.interval, stop=self._stop)
        except Exception as exc:  # shown inline: a background thread has nowhere else to report
            with self._lock:
                self.error = exc.message if isinstance(exc, AzmlError) else f"{type(exc).__name__}: {exc}"
                self._publish(force=True)
            if raise_errors and isinstance(exc, AzmlError):
                raise
            return None
        if not isinstance(result, Detached) and result is not None and result.done:
            self.finish()
        return result

    # ------------------------------------------------------------------ polling
    def poll(self) -> JobStatus:
        """One round by hand: the job's status, then what :meth:`update` draws."""
        status = self.session.job(self.job)
        self.update(status)
        return status

    def update(self, status: JobStatus) -> None:
        """Take one status: fetch new log lines and metrics (throttled) through the session; redraw if due."""
        chunk = self.session.logs(self.job, self._cursor)
        now = time.monotonic()
        metrics = None
        if status.done or now - self._last_metrics >= self.chart_every:
            metrics = self.session.metrics(self.job)
            self._last_metrics = now
        with self._lock:
            changed = self.status is None or self.status.state != status.state or _step_states(self.status) != _step_states(status)
            self.status = status
            self.error = None
            self._cursor = chunk.cursor
            if chunk.step and chunk.step != self.log_step:
                self.log_step = chunk.step
                self.log_tail.clear()
            self.log_tail.extend(clean_log_lines(chunk.lines))
            self.rate.see(status.train_step)
            if metrics is not None:
                self.metrics = metrics
            self._publish(force=changed)

    def finish(self) -> None:
        """Replace the live view with the static summary (kept in the saved notebook)."""
        with self._lock:
            self.finished = True
            self._publish(force=True)

    # ------------------------------------------------------------------ drawing
    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_render < self.render_every:
            return
        self._last_render = now
        self.html = self.summary_html() if self.finished else self._live_html()
        self.renders += 1
        if self._target is not None:
            self._target.value = self.html
        elif self._handle is not None:
            self._handle.update(self._rich(self.html))

    def _rich(self, html_text: str) -> Rich:
        return Rich(html_text, self.text_line())

    def text_line(self) -> str:
        st = self.status
        state = st.state if st else "starting"
        steps = ", ".join(f"{s.name}: {s.state}" for s in st.steps) if st and st.steps else ""
        if self.detached:
            return self.detached_text()
        return f"{self.job}: {state}" + (f" ({steps})" if steps else "") + f", {_duration(self.elapsed())}"

    def elapsed(self) -> float:
        st = self.status
        start = st.started if st and st.started else self._seen
        end = st.ended if st and st.ended and st.done else time.time()
        return max(0.0, end - start)

    def progress(self) -> float | None:
        """0..1, never lower than shown before: pipeline steps done, the running one counted by its
        training steps where the backend counts them; else the backend's own figure."""
        st = self.status
        if st is None:
            return None
        if st.done and st.state == COMPLETED:
            return 1.0
        train = (st.train_step or 0) / st.train_steps if st.train_steps else None
        if st.steps and (train is not None or st.progress is None):
            # pipeline steps done, the running one counted by its training steps where known: monotonic
            running = train if train is not None and any(s.state == RUNNING for s in st.steps) else 0.0
            p = (sum(s.state == COMPLETED for s in st.steps) + running) / len(st.steps)
        elif train is not None:
            p = train
        elif st.progress is not None:
            p = float(st.progress)
        else:
            return None
        self._max_progress = max(self._max_progress, min(1.0, max(0.0, p)))
        return self._max_progress

    def eta(self) -> float | None:
        """Seconds left, from the training steps' rate (None where the backend does not count steps)."""
        st = self.status
        if st is None or st.done or not st.train_steps:
            return None
        return self.rate.left(st.train_steps)

    def chart_png(self) -> bytes | None:
        """The loss chart, redrawn only when the loss series grew."""
        key = tuple((name, len(pts)) for name, pts in loss_series(self.metrics).items())
        if key != self._chart_key:
            self._chart_key = key
            self._chart = loss_chart_png(self.metrics, title=f"{self.job}: loss")
        return self._chart

    def _header(self) -> str:
        st = self.status
        state = st.state if st else "starting"
        color = STATE_COLORS.get(state, "#9a6700")
        if self.detached and not (st and st.done):
            state += f" when detached at {time.strftime('%H:%M', time.localtime(self.detached_at or time.time()))}"
        url = (st.url if st and st.url else None) or _session_url(self.session, self.job)
        name = html.escape(self.job)
        if url and url.startswith(("https://", "http://")):
            link = f"<a href='{html.escape(url, quote=True)}' target='_blank'>{name}</a>"
        else:  # a local job's "url" is its folder: no link a browser could follow
            link = f"<code>{name}</code>" + (f" <small>({html.escape(url)})</small>" if url else "")
        evals = f"<div><small>eval loss on {html.escape(st.eval_split)}</small></div>" if st and st.eval_split else ""
        return (
            f"<div><b>Job</b> {link} &nbsp; <span style='color:{color};font-weight:bold'>{html.escape(state)}</span>"
            f" &nbsp; elapsed {_duration(self.elapsed())}</div>{evals}"
        )

    def _steps_table(self) -> str:
        st = self.status
        if not st or not st.steps:
            return ""
        rows = []
        for s in st.steps:
            icon = STATE_ICONS.get(s.state, "·")
            color = STATE_COLORS.get(s.state, "inherit")
            took = ""
            if s.started:
                took = _duration((s.ended or time.time()) - s.started)
            rows.append(
                f"<tr><td style='color:{color}'>{icon}</td><td style='text-align:left'>{html.escape(s.name)}</td>"
                f"<td style='color:{color};text-align:left'>{html.escape(s.state)}</td><td>{took}</td>"
                f"<td style='text-align:left'>{html.escape(s.error or '')}</td></tr>"
            )
        return (
            "<table class='azml-steps'><thead><tr><th></th><th style='text-align:left'>step</th>"
            "<th style='text-align:left'>state</th><th style='text-align:left'>time</th>"
            "<th style='text-align:left'>error</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        )

    def _progress_bar(self) -> str:
        p = self.progress()
        if p is None:
            return ""
        st, eta = self.status, self.eta()
        pct = int(round(p * 100))
        left = ""
        if st.train_steps and not st.done:
            rate = self.rate.rate()
            left = f" · step {st.train_step or 0} of {st.train_steps}"
            left += f" · {rate:.2f} steps/s" if rate else ""
            left += (f" · about {_duration(eta)} left" if eta >= 1 else " · finishing") if eta is not None else ""
        return (
            "<div style='display:flex;align-items:center;gap:8px;margin:4px 0'>"
            "<div style='width:240px;height:10px;background:#eaeef2;border-radius:5px;overflow:hidden'>"
            f"<div style='width:{pct}%;height:100%;background:#0969da'></div></div>"
            f"<span>{pct}%{left}</span></div>"
        )

    def _log_block(self) -> str:
        if not self.log_tail:
            return ""
        title = f"log: {html.escape(self.log_step)}" if self.log_step else "log"
        body = html.escape("\n".join(self.log_tail))
        return (
            f"<div style='margin-top:4px'><b>{title}</b> (last {len(self.log_tail)} lines)</div>"
            "<pre style='max-height:14em;overflow:auto;font-size:85%;margin:2px 0;white-space:pre-wrap;"
            f"overflow-wrap:anywhere'>{body}</pre>"
        )

    def _chart_block(self) -> str:
        png = self.chart_png()
        return f"<div>{png_img_tag(png)}</div>" if png else ""

    def _notes(self) -> str:
        parts = []
        if self.error:
            parts.append(f"<div style='color:#cf222e'>Could not poll the job: {html.escape(self.error)}</div>")
        if self.detached:
            at = time.strftime("%H:%M", time.localtime(self.detached_at or time.time()))
            parts.append(
                f"<div><i>Detached at {at}; the job goes on. Re-attach with <code>%azml_jobs attach "
                f"{html.escape(self.job)}</code> &nbsp; Cancel: <code>%azml_jobs cancel {html.escape(self.job)}</code>"
                "</i></div>"
            )
        return "".join(parts)

    def _live_html(self) -> str:
        if self.detached:  # a saved notebook must not claim it still runs: what was seen, and when
            return ("<div class='azml-jobview azml-job-detached'>" + self._header() + self._steps_table()
                    + self._chart_block() + self._notes() + "</div>")
        return (
            "<div class='azml-jobview'>" + self._header() + self._progress_bar() + self._steps_table()
            + self._log_block() + self._chart_block() + self._notes() + "</div>"
        )

    def summary_html(self) -> str:
        """The static record of a finished job: steps, metrics, chart, what to do next."""
        st = self.status
        parts = ["<div class='azml-jobview azml-job-summary'>", self._header()]
        if st and st.error:
            parts.append(f"<div style='color:#cf222e'><b>Error:</b> {html.escape(st.error)}</div>")
        parts.append(self._steps_table())
        parts.append(_metrics_table(self.metrics))
        parts.append(self._chart_block())
        if st and st.state == FAILED and self.log_tail:
            parts.append(self._log_block())
        if st and st.state == COMPLETED:
            parts.append(
                f"<div>Next: <code>%azml_register {html.escape(self.job)}</code>, then <code>%azml_deploy</code>.</div>"
            )
        parts.append(self._notes())
        parts.append("</div>")
        return "".join(parts)


def _step_states(status: JobStatus) -> tuple:
    return tuple((s.name, s.state) for s in status.steps)


def _session_url(session, job: str) -> str | None:
    state = getattr(session, "state", None)
    if state is None:
        return None
    for record in state.list("jobs"):
        if record.name == job:
            return record.info.get("url")
    return None


def _metrics_table(metrics: dict[str, list[MetricPoint]]) -> str:
    """First, last and min of the metrics people read (all of them when none of those is there)."""
    names = [n for n in SUMMARY_METRICS if metrics.get(n)] or sorted(n for n, pts in metrics.items() if pts)
    rows = []
    for name in names:
        points = metrics[name]
        values = [p.value for p in points]
        best, unit = SUMMARY_METRICS.get(name, (None, ""))
        shown = f"{_num(best(values))} ({'lowest' if best is min else 'highest'})" if best and len(values) > 1 else ""
        rows.append(
            f"<tr><td style='text-align:left'>{html.escape(name)}</td><td>{len(points)}</td><td>{_num(values[0])}</td>"
            f"<td>{_num(values[-1])}</td><td>{shown}</td><td>{html.escape(unit)}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<table class='azml-metrics'><thead><tr><th style='text-align:left'>metric</th><th>points</th>"
        "<th>first</th><th>last</th><th>best</th><th>unit</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _num(x: float) -> str:
    return f"{x:.4g}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{s:02d}s"
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m"
