"""%azml_jobs list and compare: final losses and key parameters per job, and two jobs side by side.

Both are plain HTML (tables and an inline PNG) with a text twin, so they read the same in a saved
notebook as in the live one.
"""

from __future__ import annotations

import html

from ..backends.base import MetricPoint
from ..display import Rich, Table, local_time
from ..errors import AzmlError
from .charts import overlay_png, png_img_tag


def final(metrics: dict[str, list[MetricPoint]], name: str):
    points = metrics.get(name) or []
    return round(points[-1].value, 4) if points else ""


def _parameters(session, job: str) -> dict:
    record = session.state.get("jobs", job) if session.state is not None else None
    return dict(record.info.get("parameters") or {}) if record else {}


def _metrics(session, job: str) -> dict:
    try:
        return session.metrics(job)
    except AzmlError:
        return {}


def jobs_table(session) -> Table:
    """Every job with its state, when it started, final train and eval loss, and the key parameters."""
    rows = []
    for j in session.jobs():
        metrics = _metrics(session, j.name) if j.state not in ("Queued", "NotStarted", "Preparing") else {}
        params = ", ".join(f"{k}={v}" for k, v in _parameters(session, j.name).items())
        started = local_time(j.started)
        rows.append([j.name, j.state, started, final(metrics, "loss") or final(metrics, "train_loss"),
                     final(metrics, "eval_loss"), params, j.error or ""])
    return Table(["job", "state", "started", "final loss", "final eval loss", "key parameters", "error"], rows,
                 title="Jobs", notes=["compare two: %azml_jobs compare JOB_A JOB_B"] if len(rows) > 1 else [])


def compare(session, a: str, b: str) -> Rich:
    """The loss curves of jobs ``a`` and ``b`` on one chart, and the parameters that differ."""
    for job in (a, b):
        session.job(job)  # an unknown name is one clear line before anything is drawn
    ma, mb = _metrics(session, a), _metrics(session, b)
    curves = {}
    for job, m in ((a, ma), (b, mb)):
        curves[f"{job} train"] = m.get("loss") or m.get("train_loss") or []
        curves[f"{job} eval"] = m.get("eval_loss") or []
    png = overlay_png(curves, title=f"{a} vs {b}: loss")
    pa, pb = _parameters(session, a), _parameters(session, b)
    differ = [[k, pa.get(k, ""), pb.get(k, "")] for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)]
    same = [k for k in sorted(set(pa) & set(pb)) if pa[k] == pb[k]]
    losses = Table(["", a, b], [["final loss", final(ma, "loss"), final(mb, "loss")],
                                ["final eval loss", final(ma, "eval_loss"), final(mb, "eval_loss")]])
    params = Table(["parameter", a, b], differ, title="Parameters that differ",
                   notes=[f"the same: {', '.join(f'{k}={pa[k]}' for k in same)}"] if same else [])
    chart = f"<div>{png_img_tag(png, alt=f'loss of {a} and {b}')}</div>" if png else "<div><i>no loss points yet</i></div>"
    body = (f"<div class='azml-compare'><b>{html.escape(a)} vs {html.escape(b)}</b>{losses.html()}{chart}"
            f"{params.html()}</div>")
    return Rich(body, f"{a} vs {b}\n{losses}\n{params}")


def metrics_table(metrics: dict[str, list[MetricPoint]], title: str = "Metrics") -> Table:
    """Each metric's points, first and last value, the best one where "best" means something, and its unit."""
    from .jobview import SUMMARY_METRICS

    rows = []
    for name, points in sorted(metrics.items()):
        if not points:
            continue
        values = [p.value for p in points]
        best, unit = SUMMARY_METRICS.get(name, (None, ""))
        shown = f"{best(values):.4g} ({'lowest' if best is min else 'highest'})" if best and len(values) > 1 else ""
        rows.append([name, len(points), f"{values[0]:.4g}", f"{values[-1]:.4g}", shown, unit])
    notes = [] if rows else ["none yet: no run of this job has logged a metric to the workspace's MLflow"]
    return Table(["metric", "points", "first", "last", "best", "unit"], rows, title=title, notes=notes)
