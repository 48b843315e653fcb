"""The live job view, headless: polling, throttling, summary, Ctrl-C, background thread, IPython output."""

from __future__ import annotations

import base64
import re
import threading
import time

import pytest

from azml_magics.backends.base import MetricPoint
from azml_magics.ui.charts import loss_chart_png, loss_series
from azml_magics.ui.jobview import JobView

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _img_png(html_text: str) -> bytes:
    match = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html_text)
    assert match, "no inline PNG in the output"
    return base64.b64decode(match.group(1))


def test_blocking_run_ends_with_a_static_summary(scripted):
    session, backend = scripted
    backend.add_job("job-a")
    session.state.add("jobs", "job-a", url="https://ml.azure.com/runs/job-a")
    view = JobView(session, "job-a", interval=0.001, render_every=0.0, chart_every=0.0)
    view.run()
    assert view.finished and view.status.state == "Completed"
    html = view.html
    assert "azml-job-summary" in html
    for step in ("validation", "model import", "preprocess", "fine-tune", "convert"):
        assert f"{step}</td>" in html
    assert "https://ml.azure.com/runs/job-a" in html
    # metrics table: loss from the fine-tune ticks, first and min values
    assert re.search(r">loss</td><td>\d+</td><td>2</td>", html)
    assert ">learning_rate</td>" in html
    assert _img_png(html).startswith(PNG_MAGIC)
    assert "%azml_register job-a" in html
    assert session.state.get("jobs", "job-a").info["state"] == "Completed"
    # log lines are escaped, never raw HTML
    assert "&lt;ok&gt;" in html or "<ok>" not in html


def test_live_view_shows_steps_log_progress_and_eta(scripted):
    session, backend = scripted
    job = backend.add_job("job-b")
    job.started = time.time() - 30  # 30 s ago
    view = JobView(session, "job-b", render_every=0.0, chart_every=0.0)
    for _ in range(4):  # validation, model import, preprocess done; fine-tune running
        view.poll()
    html = view.html
    assert "Running" in html and "fine-tune" in html
    assert "[fine-tune] tick 4 &lt;ok&gt;" in html
    assert "log: fine-tune" in html
    assert view.progress() == pytest.approx(3 / 5)
    assert view.eta() is None  # this backend counts no training steps: no guessed time left
    assert "60%" in html and " left<" not in html and "about" not in html
    assert _img_png(html).startswith(PNG_MAGIC)  # the loss chart grows while it runs


def test_log_tail_keeps_only_the_running_steps_last_lines(scripted):
    session, backend = scripted
    backend.add_job("job-c")
    view = JobView(session, "job-c", log_lines=2, render_every=0.0)
    for _ in range(4):
        view.poll()
    assert list(view.log_tail) == ["[fine-tune] tick 4 <ok>"]  # previous steps' lines dropped
    view.poll()
    view.poll()
    assert len(view.log_tail) <= 2


def test_redraws_are_throttled_but_state_changes_always_show(scripted):
    session, backend = scripted
    backend.add_job("job-d")
    view = JobView(session, "job-d", render_every=3600, chart_every=3600)
    polls = 0
    while not (view.status and view.status.done):
        view.poll()
        polls += 1
    # every poll changed a step state here, so each one redrew
    assert view.renders == polls
    backend.add_job("job-e")
    view = JobView(session, "job-e", render_every=3600, chart_every=3600)
    view.poll()
    backend.jobs["job-e"].ticks = 0  # same state again: no redraw within the throttle window
    view.poll()
    assert view.renders == 1
    # metrics are fetched once per chart interval, not on every poll
    assert sum(1 for c in backend.calls if c == ("metrics", "job-e")) == 1


def test_failed_job_summary_shows_error_and_log(scripted):
    session, backend = scripted
    backend.add_job("job-f", fail_at="preprocess")
    view = JobView(session, "job-f", interval=0.001, render_every=0.0)
    view.run()
    assert view.status.state == "Failed"
    assert "CUDA out of memory" in view.html
    assert "[preprocess] tick 3" in view.html
    assert "%azml_register" not in view.html


def test_ctrl_c_detaches_and_says_how_to_reattach_and_cancel(scripted, capsys):
    session, backend = scripted
    backend.add_job("job-g")

    def interrupt(job):
        if job.ticks == 2:
            raise KeyboardInterrupt

    backend.status_hook = interrupt
    view = JobView(session, "job-g", interval=0.001, render_every=0.0)
    view.run()
    out = capsys.readouterr().out
    assert out.count("%azml_jobs attach job-g") == 1 and "%azml_jobs cancel job-g" in out  # said once
    assert re.search(r"job-g: detached at \d\d:\d\d; the job goes on", out)
    assert view.detached and not view.finished
    assert re.search(r"Detached at \d\d:\d\d; the job goes on. Re-attach with <code>%azml_jobs attach job-g", view.html)
    assert "%" not in view.html.split("Detached at")[0].replace("%azml", "")  # no stale percentage or ETA
    assert "when detached at" in view.html
    assert not backend.jobs["job-g"].canceled  # the job goes on


def test_background_view_updates_from_its_thread_while_the_main_thread_works(scripted, capsys):
    session, backend = scripted
    backend.add_job("job-h")
    gate = threading.Event()
    backend.status_hook = lambda job: gate.wait(5) if job.ticks == 1 else None
    from IPython.utils.capture import capture_output

    view = JobView(session, "job-h", interval=0.001, render_every=0.0)
    view.show()
    capsys.readouterr()
    # display updates go to the display publisher (captured here whether or not a shell exists in this
    # test process); nothing may reach stdout
    with capture_output() as cap:
        assert view.run(background=True) is None
        assert view.running  # returned at once; the thread is waiting on the gate
        gate.set()
        busy = sum(i * i for i in range(20000))  # the "other cell"
        assert busy > 0
        status = view.wait(10)
    assert status.state == "Completed" and view.finished and not view.running
    assert cap.stdout == "" and capsys.readouterr().out == ""  # the thread never prints


def test_background_poll_error_is_shown_inline(scripted):
    session, _backend = scripted
    view = JobView(session, "no-such-job", interval=0.001)
    view.run(background=True)
    view.wait(10)
    assert "Could not poll the job: no job named no-such-job" in view.html
    assert not view.running


def test_blocking_poll_error_raises_the_one_line_error(scripted):
    from azml_magics.errors import NotFound

    session, _backend = scripted
    with pytest.raises(NotFound, match="no job named nope"):
        JobView(session, "nope").run()


def test_in_ipython_one_output_is_updated_in_place(scripted, ip):
    """In a real shell: one display_data with a display_id, then updates to that same id."""
    from IPython.utils.capture import capture_output

    session, backend = scripted
    backend.add_job("job-i")
    with capture_output() as cap:
        JobView(session, "job-i", interval=0.001, render_every=0.0).run()
    outputs = cap.outputs
    ids = {o.transient["display_id"] for o in outputs if o.transient}
    assert len(ids) == 1
    assert not outputs[0].update and all(o.update for o in outputs[1:])
    final = outputs[-1].data
    assert "azml-job-summary" in final["text/html"]
    assert final["text/plain"].startswith("job-i: Completed")


def test_stop_ends_a_background_view(scripted):
    session, backend = scripted
    backend.add_job("job-j")
    backend.status_hook = lambda job: time.sleep(0.01)
    view = JobView(session, "job-j", interval=0.5)
    view.run(background=True)
    view.stop()
    assert not view.running and not view.finished


def test_loss_chart_png_and_series():
    metrics = {"loss": [MetricPoint(2, 1.5), MetricPoint(1, 2.0)], "eval_loss": [MetricPoint(2, 1.7)],
               "learning_rate": [MetricPoint(1, 1e-5)]}
    series = loss_series(metrics)
    assert list(series) == ["train loss", "eval loss"]
    assert [p.step for p in series["train loss"]] == [1, 2]
    assert loss_chart_png(metrics).startswith(PNG_MAGIC)
    assert loss_chart_png({"learning_rate": [MetricPoint(1, 1e-5)]}) is None


def test_chart_is_redrawn_only_when_the_loss_grows(scripted):
    session, backend = scripted
    job = backend.add_job("job-k")
    view = JobView(session, "job-k")
    view.metrics = {"loss": [MetricPoint(1, 2.0)]}
    first = view.chart_png()
    assert view.chart_png() is first
    view.metrics = {"loss": [MetricPoint(1, 2.0), MetricPoint(2, 1.0)]}
    assert view.chart_png() is not first
    assert job.ticks == 0


def test_a_local_jobs_folder_is_shown_not_linked_and_metrics_are_the_readable_ones(scripted):
    session, backend = scripted
    backend.add_job("job-l")
    view = JobView(session, "job-l", interval=0.001, render_every=0.0)
    view.run()
    view.status.url = "/home/me/.azml_magics/jobs/job-l"
    view.metrics["total_flos"] = [MetricPoint(1, 8e8)]
    html = view.summary_html()
    assert "href='/home" not in html and "(/home/me/.azml_magics/jobs/job-l)" in html
    assert ">total_flos</td>" not in html  # noise metrics stay out when the usual ones are there
    assert ">eval_loss</td>" in html


def _local_like(name, train_step, train_steps, running="fine-tune", done=3):
    """A status shaped as the local backend reports one: five steps, training steps counted."""
    from azml_magics.backends.base import JobStatus, JobStep

    names = ["validate data", "load model", "preprocess", "fine-tune", "save MLflow model"]
    steps = [JobStep(n, "Completed" if i < done else ("Running" if n == running else "NotStarted"))
             for i, n in enumerate(names)]
    return JobStatus(name=name, state="Running", steps=steps, started=time.time() - 60,
                     train_step=train_step, train_steps=train_steps,
                     eval_split="the last 20% of train, in file order (Azure's train[80%:100%] when no validation file is given)")


def test_progress_counts_training_steps_and_never_goes_back(scripted):
    session, backend = scripted
    backend.add_job("job-m")
    view = JobView(session, "job-m", render_every=0.0, chart_every=3600)
    loading = _local_like("job-m", None, None, running="load model", done=1)
    view.update(loading)
    assert view.progress() == pytest.approx(1 / 5)  # one pipeline step done
    seen = [view.progress()]
    for k in (0, 5, 50, 100):
        view.update(_local_like("job-m", k, 100))
        seen.append(view.progress())
    assert seen == sorted(seen) and seen[1] == pytest.approx(3 / 5) and seen[-1] == pytest.approx(4 / 5)
    assert "eval loss on the last 20% of train" in view.html


def test_header_says_step_k_of_n_with_rate_and_a_time_left_that_never_grows(scripted):
    from azml_magics.ui.progress import StepRate

    session, backend = scripted
    backend.add_job("job-n")
    view = JobView(session, "job-n", render_every=0.0, chart_every=3600)
    now = [1000.0]
    view.rate = StepRate(clock=lambda: now[0])
    lefts = []
    for k, t in ((10, 0), (20, 5), (30, 10), (32, 20), (60, 25)):  # a slow patch at step 32
        now[0] = 1000.0 + t
        view.update(_local_like("job-n", k, 100))
        lefts.append(view.eta())
    assert lefts[0] is None  # no rate from one observation
    assert lefts[1] == pytest.approx((100 - 20) / 2.0)  # 2 steps/s over the training steps seen
    rest = lefts[1:]
    assert all(b <= a for a, b in zip(rest, rest[1:])), rest
    assert re.search(r"step 60 of 100 · 2\.00 steps/s · about \d+s left", view.html), view.html


def test_log_tail_drops_bars_and_repeats_and_wraps_long_lines():
    from azml_magics.ui.progress import clean_log_lines

    raw = ["[10:00:01] step 2/6: {\"loss\": 2.1}", "  0%|          | 0/6 [00:00<?, ?it/s]\r 33%|###3      | 2/6 [00:01<00:02, 1.9it/s]",
           "Map: 100%", "Tokenizing train dataset: 100%|##########| 80/80 [00:00<00:00, 900.1 examples/s]",
           "[10:00:01] step 2/6: {\"loss\": 2.1}", "", "x" * 400]
    assert clean_log_lines(raw) == ["[10:00:01] step 2/6: {\"loss\": 2.1}", "x" * 400]


def test_long_log_lines_wrap_in_the_view(scripted):
    session, backend = scripted
    job = backend.add_job("job-o")
    view = JobView(session, "job-o", render_every=0.0)
    job.logs.append(("fine-tune", "y" * 500))
    view.poll()
    assert "white-space:pre-wrap" in view.html and "y" * 500 in view.html


def test_reattach_replaces_the_detached_output(scripted, ip):
    from IPython.utils.capture import capture_output

    session, backend = scripted
    backend.add_job("job-p")
    backend.status_hook = lambda job: (_ for _ in ()).throw(KeyboardInterrupt) if job.ticks == 1 else None
    with capture_output() as first:
        JobView(session, "job-p", interval=0.001, render_every=0.0).run()
    first_id = first.outputs[0].transient["display_id"]
    backend.status_hook = None
    with capture_output() as second:
        JobView(session, "job-p", interval=0.001, render_every=0.0).run()
    replaced = [o for o in second.outputs if o.transient and o.transient["display_id"] == first_id]
    assert replaced and replaced[0].update
    assert "re-attached at" in replaced[0].data["text/html"]
    assert "azml-job-summary" in second.outputs[-1].data["text/html"]
