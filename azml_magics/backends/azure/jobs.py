"""Watching a pipeline job without ``jobs.stream``: one status read per poll, steps, log tail, metrics.

``jobs.stream`` blocks the notebook and prints; this module answers one question per call (what
state, which steps, what new log lines, which metric points) so the API's polling loop can draw the
job view, detach on Ctrl-C and re-attach later by name.
"""

from __future__ import annotations

import datetime as _dt

from ..base import (
    CANCELED,
    COMPLETED,
    FAILED,
    FINALIZING,
    NOT_STARTED,
    PREPARING,
    QUEUED,
    RUNNING,
    JobStatus,
    JobStep,
    LogChunk,
    MetricPoint,
)
from .remote import remote_error, scrub, text

_STATES = {
    "notstarted": NOT_STARTED, "queued": QUEUED, "preparing": PREPARING, "starting": PREPARING,
    "provisioning": PREPARING, "running": RUNNING, "finalizing": FINALIZING, "cancelrequested": FINALIZING,
    "completed": COMPLETED, "finished": COMPLETED, "failed": FAILED, "canceled": CANCELED,
    "notresponding": RUNNING, "paused": RUNNING,
}
LOG_TAIL_LINES = 200


def job_state(value: object) -> str:
    """Our state name for the service's (unknown names count as Running: the job is not over)."""
    return _STATES.get(text(value).replace(" ", "").lower(), RUNNING)


def _ts(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    try:
        return _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _runs(client):
    """The SDK's run-history operations (what ``jobs.stream`` reads step errors and logs from)."""
    return client.jobs._runs_operations  # noqa: SLF001 - no public API carries step errors and log files


def run_details(client, run_id: str):
    try:
        return _runs(client).get_run_details(run_id)
    except Exception:  # details are extras for the view; a miss must not break polling
        return None


def error_text(details) -> str | None:
    error = getattr(details, "error", None)
    inner = getattr(error, "error", None) or error
    message = getattr(inner, "message", None)
    return scrub(str(message)) if message else None


def children(client, name: str, depth: int = 2) -> list:
    """The steps under a pipeline job, in submission order. On Azure the job's one child is the
    registry's ``chat_completion_pipeline`` (itself a pipeline) and the five steps are its children, so a
    child that has children of its own is opened once more. Read through run history (what
    ``jobs.list(parent_job_name=...)`` calls after a ``jobs.get``, which the SDK refuses for a pipeline's
    child jobs: they have no properties)."""
    try:
        found = [c for c in _runs(client).get_run_children(name) if c is not None]
    except Exception as err:
        raise remote_error(err, f"list the steps of job '{name}'") from None
    out = []
    for child in found:
        inner = children(client, child.name, depth - 1) if depth > 1 else []
        out.extend(inner or [child])
    return sorted(out, key=lambda c: _ts(getattr(getattr(c, "creation_context", None), "created_at", None)) or 0)


def step_of(child) -> JobStep:
    created = _ts(getattr(getattr(child, "creation_context", None), "created_at", None))
    return JobStep(name=child.display_name or child.name, state=job_state(child.status), started=created)


def status(client, name: str, portal_url: str | None = None) -> JobStatus:
    """The pipeline's state, its steps, and the failed step's own message from the service."""
    try:
        job = client.jobs.get(name)
    except Exception as err:
        raise remote_error(err, f"read job '{name}'") from None
    state = job_state(job.status)
    kids = children(client, name)
    steps = [step_of(c) for c in kids]
    error = None
    for child, step in zip(kids, steps):
        if step.state == FAILED:
            step.error = error_text(run_details(client, child.name)) or "the step failed (no message from the service)"
            error = error or f"step {step.name} failed: {step.error}"
    if state == FAILED and error is None:
        error = error_text(run_details(client, name)) or "the pipeline failed (no message from the service)"
    outputs = {}
    for key, out in (getattr(job, "outputs", None) or {}).items():
        path = getattr(out, "path", None)
        outputs[key] = str(path) if path else f"azureml://jobs/{name}/outputs/{key}"
    done = sum(1 for s in steps if s.state == COMPLETED)
    return JobStatus(
        name=name,
        state=state,
        steps=steps,
        started=_ts(getattr(getattr(job, "creation_context", None), "created_at", None)),
        error=error,
        progress=(done / len(steps)) if steps else None,
        url=getattr(job, "studio_url", None) or portal_url,
        outputs=outputs,
    )


def _fetch_text(url: str) -> str:
    import requests

    response = requests.get(url, timeout=30)
    response.raise_for_status()
    return response.content.decode("utf-8", errors="replace")


def logs(client, name: str, cursor: object = None) -> LogChunk:
    """New lines of the running (or last failed/finished) step's main log since ``cursor``."""
    kids = children(client, name)
    pick = next((c for c in kids if job_state(c.status) == RUNNING), None)
    pick = pick or next((c for c in kids if job_state(c.status) == FAILED), None)
    pick = pick or next((c for c in reversed(kids) if job_state(c.status) == COMPLETED), None)
    if pick is None and kids:
        return LogChunk([], cursor)
    # a job without child runs (a FineTuning job) has its own log
    run, step = (pick.name, pick.display_name) if pick is not None else (name, None)
    details = run_details(client, run)
    files = dict(getattr(details, "log_files", None) or {})
    if not files:
        return LogChunk([], cursor, step=step)
    key = next((k for k in files if k.endswith("std_log.txt")), None) or sorted(files)[0]
    try:
        text = _fetch_text(files[key])
    except Exception:
        return LogChunk([], cursor, step=step)
    previous = cursor if isinstance(cursor, dict) and cursor.get("run") == run else {"offset": 0}
    offset = int(previous.get("offset", 0))
    new = text[offset:] if offset <= len(text) else text
    lines = [scrub(line) for line in new.splitlines()][-LOG_TAIL_LINES:]
    return LogChunk(lines, {"run": run, "offset": len(text)}, step=step)


def cancel(client, name: str) -> None:
    try:
        client.jobs.begin_cancel(name).result()
    except Exception as err:
        raise remote_error(err, f"cancel job '{name}'") from None


def list_jobs(client, limit: int = 50) -> list[JobStatus]:
    """Pipeline and FineTuning jobs in the workspace, newest first (no step details: one request)."""
    out: list[JobStatus] = []
    try:
        for job in client.jobs.list():
            if str(getattr(job, "type", "")).lower() not in ("pipeline", "finetuning"):
                continue
            out.append(JobStatus(
                name=job.name, state=job_state(job.status),
                started=_ts(getattr(getattr(job, "creation_context", None), "created_at", None)),
                url=getattr(job, "studio_url", None),
            ))
            if len(out) >= limit:
                break
    except Exception as err:
        raise remote_error(err, "list jobs") from None
    return sorted(out, key=lambda s: s.started or 0, reverse=True)


# ----------------------------------------------------------------------------- metrics (MLflow REST)
def tracking_base(uri: str | None) -> str | None:
    """``azureml://host/mlflow/v1.0/...`` -> ``https://host/mlflow/v1.0/...`` (the MLflow REST root)."""
    if not uri:
        return None
    if uri.startswith("azureml://"):
        return "https://" + uri[len("azureml://"):].rstrip("/")
    if uri.startswith(("https://", "http://")):
        return uri.rstrip("/")
    return None


def aml_scope() -> str:
    """The token scope of Azure ML's data plane in the current cloud (ml.azure.com on the public one)."""
    try:
        from azure.ai.ml._azure_environments import _get_aml_resource_id_from_metadata

        return _get_aml_resource_id_from_metadata().rstrip("/") + "/.default"
    except Exception:  # an older SDK without the helper: the public cloud's
        return "https://ml.azure.com/.default"


def metrics(credential, tracking_uri: str | None, experiment: str | None, job: str) -> dict[str, list[MetricPoint]]:
    """Metric histories of the runs under the pipeline (tag ``mlflow.rootRunId``), by metric name."""
    base = tracking_base(tracking_uri)
    if not base or not experiment:
        return {}
    import requests

    token = credential.get_token(aml_scope()).token
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    api = f"{base}/api/2.0/mlflow"
    try:
        got = session.get(f"{api}/experiments/get-by-name", params={"experiment_name": experiment}, timeout=30)
        if got.status_code == 404:
            return {}
        got.raise_for_status()
        exp_id = got.json()["experiment"]["experiment_id"]
        found = session.post(f"{api}/runs/search", json={
            "experiment_ids": [exp_id], "filter": f"tags.mlflow.rootRunId = '{job}'", "max_results": 100,
        }, timeout=30)
        found.raise_for_status()
        series: dict[str, list[MetricPoint]] = {}
        for run in found.json().get("runs", []):
            run_id = run["info"]["run_id"]
            for metric in run.get("data", {}).get("metrics", []):
                key = metric["key"]
                if key in series:
                    continue
                hist = session.get(f"{api}/metrics/get-history", params={"run_id": run_id, "metric_key": key},
                                   timeout=30)
                hist.raise_for_status()
                points = [MetricPoint(int(p.get("step", 0)), float(p["value"]), _ts_ms(p.get("timestamp")))
                          for p in hist.json().get("metrics", [])]
                series[key] = sorted(points, key=lambda p: p.step)
        return series
    except (requests.RequestException, KeyError, ValueError):
        return {}  # metrics are an extra: a workspace without MLflow data shows none
    finally:
        session.close()


def _ts_ms(value) -> float | None:
    return float(value) / 1000.0 if value is not None else None
