"""The workspace's MLflow tracking API (read side), as Azure ML serves it for pipeline jobs.

Root: ``https://<emulator>/mlflow/v1.0/<workspace scope>`` (the https form of the workspace's
``mlflow_tracking_uri``), then the standard MLflow REST paths under ``/api/2.0/mlflow/``. Each pipeline
job is a root run (run id = job name) in its experiment, and each started step a child run tagged
``mlflow.rootRunId`` = the job name; the fine-tune run carries ``loss``, ``eval_loss`` and
``learning_rate`` series that grow on the job's clock (``training_curve``). Errors use MLflow's
``{"error_code", "message"}`` body. A FineTuning job is a root run with no child runs and no
metrics: no recording or published source shows where the service logs a FineTuning job's training
curve, so the emulator invents none (the backend reads the same ``mlflow.rootRunId`` runs either way).
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.responses import JSONResponse

from . import finetuning_jobs
from .faults import STEPS
from .resources import PROVIDER
from .routes_jobs import STEP_DISPLAY, SUB, run_id_of
from .routing import Req, ok, route
from .training_curve import finetune_curve

_SCOPE = ("/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
          f"{PROVIDER}/workspaces/{{workspaceName}}/api/2.0/mlflow")
# The workspace URI names /mlflow/v1.0; azureml-mlflow (1.62.0.post6, _store/azureml_reststore.py,
# get_host_credentials) swaps in /mlflow/v2.0 for MLflow 2 and 3, so the service answers both.
API = "/mlflow/v1.0" + _SCOPE
API_V2 = "/mlflow/v2.0" + _SCOPE


def mlflow_route(method: str, tail: str, name: str):
    """Register a handler under both MLflow API roots (v1.0 and v2.0 of the same workspace scope)."""

    def deco(fn):
        route(method, API + tail, name)(fn)
        route(method, API_V2 + tail, name + "_v2")(fn)
        return fn

    return deco

_RUN_STATUS = {"NotStarted": "SCHEDULED", "Queued": "SCHEDULED", "Preparing": "SCHEDULED", "Running": "RUNNING",
               "Finalizing": "RUNNING", "CancelRequested": "RUNNING", "Completed": "FINISHED",
               "Failed": "FAILED", "Canceled": "KILLED"}


class MlflowError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return JSONResponse({"error_code": self.code, "message": self.message}, status_code=self.status)


def mlflow_handler(fn):
    """Check the workspace scope and turn MlflowError into MLflow's error body."""

    def handler(state, req: Req):
        emu = state.emulator
        scope = (req.params["subscriptionId"], req.params["resourceGroupName"].lower(), req.params["workspaceName"])
        try:
            if scope != (emu.subscription_id, emu.resource_group.lower(), emu.workspace):
                raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", "Workspace not found.")
            return fn(state, req)
        except MlflowError as err:
            return err.response()

    return handler


def _ms(ts: float | None) -> int | None:
    return int(ts * 1000) if ts else None


def experiment_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))  # the id run history reports too


def _experiment(state, name: str) -> dict:
    if name in state.mlflow.experiments:  # created by a client (mlflow_runs.py)
        return state.mlflow.experiments[name]
    jobs = [j for j in state.jobs.values() if j.experiment == name]
    created = min(j.created for j in jobs)
    return {"experiment_id": experiment_id(name), "name": name, "lifecycle_stage": "active",
            "artifact_location": f"azureml://experiments/{name}", "creation_time": _ms(created),
            "last_update_time": _ms(max(j.created for j in jobs)), "tags": []}


def _experiment_names(state) -> list[str]:
    return sorted({j.experiment for j in state.jobs.values()} | set(state.mlflow.experiments))


def experiment_named(state, name: str) -> dict:
    if name not in _experiment_names(state):
        raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name '{name}'")
    return _experiment(state, name)


def experiment_with_id(state, wanted: str | None) -> dict:
    for name in _experiment_names(state):
        found = _experiment(state, name)
        if found["experiment_id"] == wanted:
            return found
    raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"No experiment with id {wanted!r}.")


def _runs(state, now: float) -> list[tuple[object, str | None]]:
    """(job, step) for every run that exists by NOW: each job's root run and its started steps."""
    out: list[tuple[object, str | None]] = []
    for job in state.jobs.values():
        out.append((job, None))
        if finetuning_jobs.is_finetuning(job):
            continue  # its run history publishes no child runs (routes_jobs.run_children), so no step runs here
        if job.pipeline_state(now)[1] is not None:
            out.append((job, SUB))  # the registry pipeline's own run, parent of the steps
        out += [(job, s) for s in STEPS if job.step_state(s, now)[0] != "NotStarted"]
    return out


def _series(job, step: str | None, now: float) -> dict[str, list[dict]]:
    if step != "finetune":
        return {}
    series: dict[str, list[dict]] = {"loss": [], "learning_rate": [], "eval_loss": []}
    for p in finetune_curve(job, now):
        for key, value in (("loss", p.loss), ("learning_rate", p.learning_rate), ("eval_loss", p.eval_loss)):
            if value is not None:
                series[key].append({"key": key, "value": value, "timestamp": _ms(p.time), "step": p.step})
    return {k: v for k, v in series.items() if v}


def _run(job, step: str | None, now: float) -> dict:
    if step is None:
        status, start, end = job.state(now), job.created + job.duration * 0.2, job.end_time(now)
        run_id, name = job.name, job.body["properties"].get("displayName") or job.name
    elif step == SUB:
        status, start, end = job.pipeline_state(now)
        run_id, name = job.pipeline_run_id, SUB
    else:
        status, start, end = job.step_state(step, now)
        run_id, name = job.run_ids[step], STEP_DISPLAY[step]
    tags = {"mlflow.rootRunId": job.name, "mlflow.runName": name, "mlflow.user": "emulator-client",
            "azureml.pipeline": job.name}
    if step == SUB:
        tags.update({"mlflow.parentRunId": job.name, "azureml.nodeid": SUB})
    elif step is not None:  # a step's parent is the job's chat_completion_pipeline child run
        tags.update({"mlflow.parentRunId": job.pipeline_run_id, "azureml.nodeid": step})
    info = {"run_id": run_id, "run_uuid": run_id, "run_name": name, "experiment_id": experiment_id(job.experiment),
            "user_id": "emulator-client", "status": _RUN_STATUS.get(status, "RUNNING"),
            "start_time": _ms(start) if status not in ("NotStarted", "Queued") else None,
            "end_time": _ms(end), "artifact_uri": f"azureml://experiments/{job.experiment}/runs/{run_id}/artifacts",
            "lifecycle_stage": "active"}
    metrics = [points[-1] for points in _series(job, step, now).values()]
    return {"info": {k: v for k, v in info.items() if v is not None},
            "data": {"metrics": metrics, "params": [], "tags": [{"key": k, "value": v} for k, v in tags.items()]},
            "inputs": {}}


def _find_run(state, run_id: str, now: float) -> tuple[dict, dict[str, list[dict]]]:
    """The run's JSON and its metric histories, whether a job's or a client's."""
    if run_id in state.mlflow.runs:
        run = state.mlflow.runs[run_id]
        return run.as_json(), run.metrics
    for job, step in _runs(state, now):
        if run_id_of(job, step) == run_id:
            return _run(job, step, now), _series(job, step, now)
    raise MlflowError(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found.")


def client_run(state, run_id: str):
    """A run a client created, to write to (a job's runs are the service's own: read-only here)."""
    if run_id in state.mlflow.runs:
        return state.mlflow.runs[run_id]
    _find_run(state, run_id, time.time())  # a job's run: exists, but the emulator does not let clients edit it
    raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"Run '{run_id}' belongs to a job; the emulator keeps "
                      "job runs read-only (not known how Azure ML treats client writes to them).")


# -- search filter: ``a = 'x' and b != 'y'`` over tags.*, attributes.* (status, run_id, run_name) -----
_CLAUSE = re.compile(r"""^\s*(?P<key>[\w.`"]+(?:\.(?:`[^`]+`|"[^"]+"|[\w.]+))?)\s*(?P<op>=|!=)\s*'(?P<value>[^']*)'\s*$""")


def _matcher(text: str):
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE) if text.strip() else []:
        m = _CLAUSE.match(part)
        if not m:
            raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"Unsupported filter clause {part!r}: the emulator "
                              "understands `tags.<key> = 'v'`, `attributes.status = 'v'` joined by AND.")
        kind, _, key = m["key"].partition(".")
        if kind not in ("tags", "tag", "attributes", "attribute", "attr", "run"):
            raise MlflowError(400, "INVALID_PARAMETER_VALUE", f"Unsupported filter key {m['key']!r}.")
        clauses.append((kind.startswith("tag"), key.strip('`"'), m["op"], m["value"]))

    def matches(run: dict) -> bool:
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        for is_tag, key, op, value in clauses:
            got = tags.get(key) if is_tag else run["info"].get(key)
            if (got == value) != (op == "="):
                return False
        return True

    return matches


@mlflow_route("POST", "/runs/search", "mlflow_runs_search")
@mlflow_handler
def runs_search(state, req: Req):
    body = req.json if isinstance(req.json, dict) else {}
    wanted = set(body.get("experiment_ids") or [])
    matches = _matcher(body.get("filter") or "")
    now = time.time()
    runs = [_run(job, step, now) for job, step in _runs(state, now)] + [r.as_json() for r in state.mlflow.runs.values()]
    runs = [r for r in runs if r["info"]["experiment_id"] in wanted and matches(r)]
    runs.sort(key=lambda r: r["info"].get("start_time") or 0, reverse=True)
    start = int(body.get("page_token") or 0)
    size = int(body.get("max_results") or 1000)
    page = {"runs": runs[start:start + size]}
    if start + size < len(runs):
        page["next_page_token"] = str(start + size)
    return ok(page)


@mlflow_route("GET", "/runs/get", "mlflow_run_get")
@mlflow_handler
def run_get(state, req: Req):
    now = time.time()
    run, _ = _find_run(state, req.query.get("run_id") or req.query.get("run_uuid") or "", now)
    return ok({"run": run})


@mlflow_route("GET", "/metrics/get-history", "mlflow_metric_history")
@mlflow_handler
def metric_history(state, req: Req):
    now = time.time()
    _, series = _find_run(state, req.query.get("run_id") or req.query.get("run_uuid") or "", now)
    points = series.get(req.query.get("metric_key", ""), [])
    start = int(req.query.get("page_token") or 0)
    size = int(req.query.get("max_results") or 25000)
    page = {"metrics": points[start:start + size]}
    if start + size < len(points):
        page["next_page_token"] = str(start + size)
    return ok(page)


@mlflow_route("GET", "/experiments/get-by-name", "mlflow_experiment_by_name")
@mlflow_handler
def experiment_by_name(state, req: Req):
    return ok({"experiment": experiment_named(state, req.query.get("experiment_name", ""))})


@mlflow_route("GET", "/experiments/get", "mlflow_experiment_get")
@mlflow_handler
def experiment_get(state, req: Req):
    return ok({"experiment": experiment_with_id(state, req.query.get("experiment_id"))})


@mlflow_route("POST", "/experiments/search", "mlflow_experiments_search")
@mlflow_handler
def experiments_search(state, req: Req):
    return ok({"experiments": [_experiment(state, n) for n in _experiment_names(state)]})
