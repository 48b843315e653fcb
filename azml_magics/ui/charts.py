"""The loss chart as PNG bytes (matplotlib's Agg canvas, no pyplot: safe from a background thread)."""

from __future__ import annotations

from ..backends.base import MetricPoint
from ..display import figure_png, png_img

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
    return _line_chart_png(series, title, size=(5.0, 2.6), dpi=90) if series else None


def _line_chart_png(curves: dict[str, list[MetricPoint]], title: str, *, size: tuple, dpi: int) -> bytes:
    """Loss curves by step on one chart (markers while a curve is short), as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, points in curves.items():
        ax.plot([p.step for p in points], [p.value for p in points], "o-" if len(points) < 12 else "-",
                label=label, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def png_img_tag(png: bytes, alt: str = "loss chart") -> str:
    """The chart as an inline ``<img>`` (display.png_img, with the chart's alt text)."""
    return png_img(png, alt)


def overlay_png(curves: dict[str, list[MetricPoint]], title: str = "loss by job") -> bytes | None:
    """Several jobs' loss curves on one chart (``curves``: legend label -> points); None when empty."""
    curves = {label: sorted(points, key=lambda p: p.step) for label, points in curves.items() if points}
    return _line_chart_png(curves, title, size=(6.4, 3.2), dpi=100) if curves else None
