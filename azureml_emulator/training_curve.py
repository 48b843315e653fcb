"""The fine-tune step's training curve, on the job's clock: what its std_log prints and what the
MLflow routes serve as the ``loss``, ``eval_loss`` and ``learning_rate`` series (so both agree).

Ten logging steps spread evenly over the step's running window; a point exists once its time has come
(a cancel cuts the curve short). The learning rate decays linearly from the job's ``learning_rate``
input; evaluation runs every fifth step.
"""

from __future__ import annotations

from dataclasses import dataclass

from .faults import STEPS

LOGGING_STEPS = 10
EVAL_EVERY = 5
DEFAULT_LEARNING_RATE = 5e-6


@dataclass(frozen=True)
class CurvePoint:
    step: int
    time: float  # seconds since the epoch
    epoch: float
    loss: float
    learning_rate: float
    eval_loss: float | None


def job_learning_rate(job) -> float:
    """The ``learning_rate`` literal the pipeline's step was submitted with (the default otherwise)."""
    for step in ((job.body.get("properties") or {}).get("jobs") or {}).values():
        value = ((step.get("inputs") or {}).get("learning_rate") or {}).get("value")
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return DEFAULT_LEARNING_RATE


def finetune_curve(job, now: float) -> list[CurvePoint]:
    """The points the fine-tune step has logged by NOW."""
    status, start, end = job.step_state("finetune", now)
    if not start:
        return []
    window_start, window_end = job._window(STEPS.index("finetune"))
    cutoff = min(now, end) if end else now
    lr0 = job_learning_rate(job)
    points = []
    for i in range(1, LOGGING_STEPS + 1):
        at = window_start + (window_end - window_start) * i / LOGGING_STEPS
        if at > cutoff + 1e-6:
            break
        loss = round(2.5 / (1 + 0.3 * i), 4)
        points.append(CurvePoint(
            step=i, time=at, epoch=round(i / LOGGING_STEPS, 2), loss=loss,
            learning_rate=lr0 * (1 - (i - 1) / LOGGING_STEPS),
            eval_loss=round(loss * 1.05 + 0.02, 4) if i % EVAL_EVERY == 0 else None,
        ))
    return points


def log_line(point: CurvePoint) -> str:
    """The Hugging Face Trainer's log line for one point."""
    line = (f"{{'loss': {point.loss:.4f}, 'learning_rate': {point.learning_rate:.3e}, "
            f"'epoch': {point.epoch}, 'step': {point.step}}}")
    if point.eval_loss is not None:
        line += f"\n{{'eval_loss': {point.eval_loss:.4f}, 'epoch': {point.epoch}, 'step': {point.step}}}"
    return line
