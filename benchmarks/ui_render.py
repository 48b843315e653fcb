"""Benchmark: does the UI keep up? The chat box while a long reply streams, the job view on a long job.

(a) Chat: a 1,000-piece reply streamed into a ChatBox (no network: an in-process endpoint yields the
    pieces as fast as it can). Measured: the box's own cost per piece with its redraw throttle (the
    default, at most ~10 redraws a second) against redrawing on every piece (markdown re-rendered each
    time, as a naive box would).
(b) Job view: one poll + redraw of the live view for a job with 5,000 loss points (chart included),
    and the same poll when the chart is not due (the usual case between chart redraws).
Last line: ui_render: chat_ms_per_piece=<throttled> throttle_speedup=<naive/throttled>
           jobview_poll_ms=<with chart> jobview_poll_nochart_ms=<without>
Targets: chat_ms_per_piece <= 1 (a 30 tokens/s endpoint is never slowed), throttle_speedup >= 10,
         jobview_poll_ms <= 500, jobview_poll_nochart_ms <= 20.

Run: python benchmarks/ui_render.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from azml_magics.backends.base import (  # noqa: E402
    COMPLETED, RUNNING, JobStatus, JobStep, LogChunk, MetricPoint,
)

PIECES = 1000
POINTS = 5000


class StreamingEndpoint:
    """The two session methods the chat box calls, answering from memory."""

    def stream_chat(self, endpoint, messages, params):
        words = ("The **answer** is `42`; here is why, with a list:\n- one\n- two\n").split(" ")
        return iter(words[i % len(words)] + " " for i in range(PIECES))

    def chat(self, endpoint, messages, params):  # pragma: no cover - not used: the endpoint streams
        raise AssertionError


class LongJob:
    """A running job with a long loss history (what the job view polls)."""

    def __init__(self):
        self.loss = [MetricPoint(i, 3.0 / (1 + i / 100)) for i in range(1, POINTS + 1)]
        self.eval = [MetricPoint(i, 3.1 / (1 + i / 100)) for i in range(100, POINTS + 1, 100)]

    def require(self):
        return self

    def status(self, job):
        steps = [JobStep("validation", COMPLETED), JobStep("fine-tune", RUNNING, started=time.time() - 60)]
        return JobStatus(job, RUNNING, steps, started=time.time() - 100, progress=0.5)

    def logs(self, job, cursor=None):
        return LogChunk([f"step {i}: loss 1.0" for i in range(20)], (cursor or 0) + 20, "fine-tune")

    def metrics(self, job):
        return {"loss": self.loss, "eval_loss": self.eval}


def chat_seconds(draw_every: float) -> float:
    from azml_magics.ui.chat import ChatBox

    box = ChatBox(StreamingEndpoint(), "bench", threaded=False)
    box.draw_every = draw_every
    t0 = time.perf_counter()
    reply = box.send("go")
    took = time.perf_counter() - t0
    assert reply and len(reply) > PIECES
    return took


def jobview_ms(chart: bool) -> float:
    from azml_magics.ui.jobview import JobView

    session = LongJob()
    session.poll_interval = 1.0
    times = []
    for _ in range(5):
        view = JobView(session, "bench-job", render_every=0.0, chart_every=0.0 if chart else 3600)
        view.poll()  # the first poll always draws the chart
        if chart:
            session.loss.append(MetricPoint(len(session.loss) + 1, 0.5))  # the series grew: redraw
        t0 = time.perf_counter()
        view.poll()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    chat_ms_per_piece = min(chat_seconds(0.1) for _ in range(3)) / PIECES * 1000
    naive = chat_seconds(0.0) / PIECES * 1000
    poll_chart = jobview_ms(chart=True)
    poll_plain = jobview_ms(chart=False)
    print(f"chat: {PIECES} pieces, throttled {chat_ms_per_piece:.3f} ms/piece, every piece {naive:.3f} ms/piece")
    print(f"job view: {POINTS} loss points, poll+redraw {poll_chart:.1f} ms with chart, {poll_plain:.1f} ms without")
    print(
        f"ui_render: chat_ms_per_piece={chat_ms_per_piece:.3f} throttle_speedup={naive / chat_ms_per_piece:.1f} "
        f"jobview_poll_ms={poll_chart:.1f} jobview_poll_nochart_ms={poll_plain:.1f}"
    )


if __name__ == "__main__":
    main()
