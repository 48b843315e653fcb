"""The loss chart as PNG bytes (matplotlib's Agg canvas, no pyplot: safe from a background thread)."""

from __future__ import annotations

import base64
import io

from ..backends.base import MetricPoint

# Series drawn on the loss chart, in order, with their legend labels.
LOSS_SERIES = (("loss", "train loss"), ("train_loss", "train loss"), ("eval_loss", "eval loss"))


def loss_series(metrics: dict[str, list[MetricPoint]]) -> dict[str, list[MetricPoint]]:
    """The series of ``metrics`` the loss chart shows, keyed by legend label (train before eval)."""
    out: dict[str, list[MetricPoint]] = {}
    for name, label in LOSS_SERIES:
        points = metrics.get(name) or []
        if points and label not in out:
            out[label] = sorted(points, key=lambda p: p.step)
    return out


def loss_chart_png(metrics: dict[str, list[MetricPoint]], title: str = "loss") -> bytes | None:
    """A small line chart of train and eval loss by step; None when there is nothing to draw."""
    series = loss_series(metrics)
    if not series:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 2.6), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, points in series.items():
        style = "o-" if len(points) < 12 else "-"
        ax.plot([p.step for p in points], [p.value for p in points], style, label=label, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def png_img_tag(png: bytes, alt: str = "loss chart") -> str:
    """An <img> with the PNG inline, so the chart survives in a saved notebook."""
    data = base64.b64encode(png).decode("ascii")
    return f"<img alt='{alt}' src='data:image/png;base64,{data}'/>"
