"""The workspace's MLflow tracking API, write side: what a client needs to log its own run (an
evaluation run, say) next to the job's runs.

Paths and bodies are MLflow's REST API (mlflow/protos/service.proto: CreateExperiment, CreateRun,
UpdateRun, LogMetric, LogParam, SetTag, LogBatch; the calls ``mlflow.store.tracking.rest_store.RestStore``
makes) under the workspace's MLflow root, both /mlflow/v1.0 and /mlflow/v2.0 (routes_mlflow.py says why).
Errors use MLflow's ``{"error_code", "message"}`` body; the codes are MLflow's own
(RESOURCE_ALREADY_EXISTS for a taken experiment name, INVALID_PARAMETER_VALUE for a changed parameter,
as MLflow's tracking server answers). Not known, and not emulated: which of these Azure ML refuses or
limits beyond MLflow (its support matrix lists runs and metrics as supported).
"""

from __future__ import annotations

import math
import time
import uuid

from .routes_mlflow import (
    MlflowError, client_run, experiment_named, experiment_with_id, mlflow_handler, mlflow_route,
)
from .routing import Req, ok

_TERMINAL = {"FINISHED", "FAILED", "KILLED"}
_STATUSES = {"RUNNING", "SCHEDULED"} | _TERMINAL


def _body(req: Req) -> dict:
    if not isinstance(req.json, dict):
        raise MlflowError(400, "MALFORMED_REQUEST", "The request body must be a JSON object.")
    return req.json


def _required(body: dict, key: str) -> str:
    value = body.get(key)
    if value in (None, ""):
        raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"Missing value for required parameter '{key}'.")
    return str(value)


def _run_of(state, body: dict):
    return client_run(state, str(body.get("run_id") or body.get("run_uuid") or ""))


def _tags(items) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in items or [] if isinstance(t, dict) and "key" in t}


@mlflow_route("POST", "/experiments/create", "mlflow_experiment_create")
@mlflow_handler
def experiment_create(state, req: Req):
    body = _body(req)
    name = _required(body, "name")
    try:
        experiment_named(state, name)
    except MlflowError:
        pass
    else:
        raise MlflowError(400, "RESOURCE_ALREADY_EXISTS", f"Experiment '{name}' already exists.")
    created = state.mlflow.create_experiment(name, str(uuid.uuid4()), body.get("tags") or [])
    return ok({"experiment_id": created["experiment_id"]})


@mlflow_route("POST", "/runs/create", "mlflow_run_create")
@mlflow_handler
def run_create(state, req: Req):
    body = _body(req)
    experiment = experiment_with_id(state, _required(body, "experiment_id"))
    run = state.mlflow.create_run(experiment, body.get("run_name"), body.get("start_time"),
                                  str(body.get("user_id") or "emulator-client"), _tags(body.get("tags")))
    return ok({"run": run.as_json()})


@mlflow_route("POST", "/runs/update", "mlflow_run_update")
@mlflow_handler
def run_update(state, req: Req):
    body = _body(req)
    run = _run_of(state, body)
    status = body.get("status")
    if status is not None:
        if status not in _STATUSES:
            raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"Invalid run status {status!r}.")
        run.info["status"] = status
        if status in _TERMINAL:
            run.info["end_time"] = body.get("end_time") or int(time.time() * 1000)
    if body.get("run_name"):
        run.info["run_name"] = run.tags["mlflow.runName"] = str(body["run_name"])
    return ok({"run_info": dict(run.info)})


def _log_metric(run, item: dict) -> None:
    key = _required(item, "key")
    try:
        value = float(item.get("value"))
    except (TypeError, ValueError):
        raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"Metric '{key}' has no numeric value.") from None
    point = {"key": key, "value": value if math.isfinite(value) else str(value),
             "timestamp": int(item.get("timestamp") or time.time() * 1000), "step": int(item.get("step") or 0)}
    run.metrics.setdefault(key, []).append(point)


def _log_param(run, item: dict) -> None:
    key, value = _required(item, "key"), str(item.get("value", ""))
    if key in run.params and run.params[key] != value:
        raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"Changing param values is not allowed. Param with "
                          f"key='{key}' was already logged with value='{run.params[key]}' for run ID="
                          f"'{run.info['run_id']}'. Attempted logging new value '{value}'.")
    run.params[key] = value


def _set_tag(run, item: dict) -> None:
    run.tags[_required(item, "key")] = str(item.get("value", ""))


def _one(write):
    """A handler that applies ``write(run, body)`` to the body's run and answers MLflow's empty message."""

    def handler(state, req: Req):
        body = _body(req)
        write(_run_of(state, body), body)
        return ok({})

    return mlflow_handler(handler)


mlflow_route("POST", "/runs/log-metric", "mlflow_log_metric")(_one(_log_metric))
mlflow_route("POST", "/runs/log-parameter", "mlflow_log_param")(_one(_log_param))
mlflow_route("POST", "/runs/set-tag", "mlflow_set_tag")(_one(_set_tag))


@mlflow_route("POST", "/runs/log-batch", "mlflow_log_batch")
@mlflow_handler
def log_batch(state, req: Req):
    body = _body(req)
    run = client_run(state, _required(body, "run_id"))
    for item in body.get("params") or []:
        _log_param(run, item)
    for item in body.get("metrics") or []:
        _log_metric(run, item)
    run.tags.update(_tags(body.get("tags")))
    return ok({})
