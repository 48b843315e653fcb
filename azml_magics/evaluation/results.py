"""What an evaluation found, shown in the notebook (plain HTML that a saved notebook keeps, and text)
and logged to MLflow as an evaluation run linked to the job and the registered model."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..display import Displayable, Table, escape
from ..files import write_json
from .judge import JudgeResult
from .metrics import HIGHER_IS_BETTER

CELL_CHARS = 280
SORTS = ("diff", "bleu", "row")
ORDER = ("rougeL", "bleu", "loss", "perplexity", "stop_rate", "reply_words", "reply_tokens", "latency_s", "tokens_per_s")


@dataclass
class EvalRow:
    """One held-out row: the prompt, the reference reply and each candidate's reply and scores."""

    index: int
    prompt: list[dict]
    reference: str
    replies: dict[str, str] = field(default_factory=dict)
    finish: dict[str, str | None] = field(default_factory=dict)
    rougeL: dict[str, float] = field(default_factory=dict)
    bleu: dict[str, float] = field(default_factory=dict)
    conversation: list[dict] = field(default_factory=list)  # the whole row (the loss reads it)

    @property
    def question(self) -> str:
        users = [m["content"] for m in self.prompt if m["role"] == "user"]
        return users[-1] if users else self.prompt[-1]["content"]


@dataclass
class EvaluationResult(Displayable):
    """The numbers per candidate (``metrics[metric][candidate]``), the rows, the judge, and the run."""

    candidates: list[str]
    data: str
    rows: list[EvalRow]
    metrics: dict[str, dict[str, float]]
    judge: JudgeResult | None = None
    notes: list[str] = field(default_factory=list)
    run_id: str | None = None
    settings: dict = field(default_factory=dict)
    examples_shown: int = 5
    sort: str = "diff"

    def delta(self, metric: str) -> float | None:
        """Last candidate minus first (fine-tuned minus base, by default)."""
        values = self.metrics.get(metric, {})
        first, last = self.candidates[0], self.candidates[-1]
        if first in values and last in values:
            return values[last] - values[first]
        return None

    def ahead(self, metric: str) -> str | None:
        """The candidate with the better value, where the metric has a direction."""
        direction = HIGHER_IS_BETTER.get(metric)
        values = {c: v for c, v in self.metrics.get(metric, {}).items() if not math.isnan(v)}
        if direction is None or len(values) < 2 or len(set(values.values())) == 1:
            return None
        return (max if direction else min)(values, key=values.get)

    def metrics_table(self) -> Table:
        names = [m for m in ORDER if m in self.metrics] + sorted(set(self.metrics) - set(ORDER))
        rows = [[m, *[_num(self.metrics[m].get(c)) for c in self.candidates], _num(self.delta(m), signed=True),
                 self.ahead(m) or ""] for m in names]
        title = f"Evaluation on {len(self.rows)} rows of {self.data}"
        return Table(["metric", *self.candidates, "delta", "ahead"], rows, title=title,
                     notes=[f"delta: {self.candidates[-1]} minus {self.candidates[0]}", *self.notes])

    def sorted_rows(self, sort: str | None = None) -> list[EvalRow]:
        """The rows, those where the first and last candidates differ most first ('diff': ROUGE-L,
        'bleu': sentence BLEU), or in data order ('row')."""
        sort = sort or self.sort
        if sort == "row":
            return list(self.rows)
        scores = "bleu" if sort == "bleu" else "rougeL"
        first, last = self.candidates[0], self.candidates[-1]
        return sorted(self.rows, key=lambda r: -abs(getattr(r, scores).get(last, 0) - getattr(r, scores).get(first, 0)))

    def examples(self, n: int | None = None, sort: str | None = None) -> Table:
        """Side by side: prompt, reference and each reply, with the ROUGE-L difference."""
        first, last = self.candidates[0], self.candidates[-1]
        rows = []
        for r in self.sorted_rows(sort)[: n or self.examples_shown]:
            rows.append([r.index, _cut(r.question), _cut(r.reference), *[_cut(r.replies.get(c, "")) for c in self.candidates],
                         _num(r.rougeL.get(last, 0) - r.rougeL.get(first, 0), signed=True)])
        return Table(["row", "prompt", "reference", *self.candidates, "Δ ROUGE-L"], rows,
                     title=f"Examples, largest difference first (sort={sort or self.sort})")

    def html(self) -> str:
        parts = [self.metrics_table().html()]
        if self.judge is not None:
            parts.append(f"<div><b>{escape(self.judge.line())}</b></div><details><summary>judge prompt</summary>"
                         f"<pre>{escape(self.judge.prompt)}</pre></details>")
        parts.append(self.examples().html())
        if self.run_id:
            parts.append(f"<div>MLflow run {escape(self.run_id)}</div>")
        return "<div class='azml-eval'>" + "".join(parts) + "</div>"

    def __str__(self) -> str:
        parts = [str(self.metrics_table())]
        if self.judge is not None:
            parts.append(self.judge.line())
        parts.append(str(self.examples()))
        if self.run_id:
            parts.append(f"MLflow run {self.run_id}")
        return "\n\n".join(parts)

    __repr__ = __str__

    def table_records(self) -> list[dict]:
        """The per-row table (the MLflow artifact): one record per row, a column per candidate."""
        out = []
        for r in self.rows:
            record = {"row": r.index, "prompt": r.question, "reference": r.reference}
            for c in self.candidates:
                record.update({f"reply[{c}]": r.replies.get(c), f"rougeL[{c}]": r.rougeL.get(c),
                               f"bleu[{c}]": r.bleu.get(c), f"finish[{c}]": r.finish.get(c)})
            out.append(record)
        if self.judge is not None and len(self.judge.verdicts) == len(out):
            for record, v in zip(out, self.judge.verdicts):
                record["judge"] = v
        return out


def _num(value, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _cut(text: str) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


# ----------------------------------------------------------------------------- MLflow
def log_to_mlflow(result: EvaluationResult, tracking, *, models: dict[str, object], jobs: dict[str, str],
                  fallback_experiment: str = "azml-evaluations", table_file: Path | None = None) -> str:
    """Log ``result`` as an evaluation run in ``tracking`` (a backends.base.Tracking): metrics
    ``<candidate>.<metric>`` and ``delta.<metric>``, the settings, the per-row table
    (``eval_table.json``; written to ``table_file`` instead where the store takes no files), the judge
    prompt; tagged with the job, its run and the registered model, and the model version tagged back with
    the run where the store keeps MLflow model versions (local)."""
    from urllib.parse import urlparse

    mc = tracking.client
    tags = {"azml.kind": "evaluation", "azml.candidates": json.dumps(result.candidates), "azml.data": result.data}
    experiment_id = None
    for label, ref in models.items():
        if ref is None:
            continue
        tags["azml.model"] = f"{ref.name}:{ref.version}"
        job = jobs.get(label) or getattr(ref, "job", None)
        if job:
            tags["azml.job"] = job
        if str(ref.id).startswith("models:/"):  # an MLflow model version: its run is the job's training run
            name, version = ref.id[len("models:/"):].split("/", 1)
            run_id = mc.get_model_version(name, version).run_id
        else:  # Azure ML: a job's root run has the job's name as its run id
            run_id = job
        if run_id:
            try:
                experiment_id = mc.get_run(run_id).info.experiment_id
                tags["azml.job_run_id"] = run_id
            except Exception:  # noqa: BLE001 - a job whose run is gone: the evaluation goes to its own experiment
                pass
    if experiment_id is None:
        exp = mc.get_experiment_by_name(fallback_experiment)
        if exp is not None:
            experiment_id = exp.experiment_id
        else:
            location = None
            parsed = urlparse(mc.tracking_uri)
            if parsed.scheme == "sqlite":  # artifacts beside the database, never in the working folder
                location = (Path(parsed.path).parent / "mlartifacts" / fallback_experiment).as_uri()
            experiment_id = mc.create_experiment(fallback_experiment, artifact_location=location)
    run = mc.create_run(experiment_id, run_name=f"eval-{time.strftime('%Y%m%d-%H%M%S')}", tags=tags)
    run_id = run.info.run_id
    keys = {c: _key(c) for c in result.candidates}
    for metric, values in result.metrics.items():
        for c, v in values.items():
            if not math.isnan(v):
                mc.log_metric(run_id, f"{keys[c]}.{metric}", v)
        d = result.delta(metric)
        if d is not None and not math.isnan(d):
            mc.log_metric(run_id, f"delta.{metric}", d)
    for k, v in result.settings.items():
        mc.log_param(run_id, k, str(v)[:500])
    if table_file is None:
        mc.log_table(run_id, data=_columns(result.table_records()), artifact_file="eval_table.json")
    else:
        write_json(table_file, _columns(result.table_records()))
        mc.set_tag(run_id, "azml.table_file", str(table_file))
    if result.judge is not None:
        if table_file is None:
            mc.log_text(run_id, result.judge.prompt, "judge_prompt.txt")
        else:
            mc.set_tag(run_id, "azml.judge_prompt", result.judge.prompt[:5000])
        if result.judge.win_rate is not None:
            mc.log_metric(run_id, "judge.win_rate", result.judge.win_rate)
            low, high = result.judge.interval
            mc.log_metric(run_id, "judge.win_rate_low", low)
            mc.log_metric(run_id, "judge.win_rate_high", high)
    mc.set_terminated(run_id)
    for ref in models.values():
        if ref is not None and str(ref.id).startswith("models:/"):
            name, version = ref.id[len("models:/"):].split("/", 1)
            mc.set_model_version_tag(name, version, "azml.eval_run", run_id)
    return run_id


def _key(label: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "candidate"


def _columns(records: list[dict]) -> dict[str, list]:
    names = list(records[0]) if records else ["row"]
    return {n: [r.get(n) for r in records] for n in names}
