"""Jobs: ARM pipeline job create (validated like the service) / get / list / cancel, and the run-history
and log calls ``jobs.stream`` makes. Each job runs on a clock (see ``state.Job``) with five child
steps; logs grow with the clock.
"""

from __future__ import annotations

import time
import uuid

from . import catalog, finetuning_jobs
from .faults import STEPS
from .routing import Req, ServiceError, ok, route
from .resources import check_workspace, iso, operation_urls, page, resource, system_data, ws_scope
from .routes_workspace import DATASTORES, WS, tracking_uri
from .training_curve import finetune_curve, log_line

# The fault/state keys -> the node names of the published chat_completion_pipeline (its `jobs:`, in order);
# a step's display name is its node name, the names the step tree lists.
STEP_DISPLAY = dict(zip(STEPS, catalog.pipeline_steps(catalog.latest_component_version(catalog.PIPELINE))))
assert len(STEP_DISPLAY) == len(STEPS), "the published pipeline has a different number of steps"
SUB = "chat_completion_pipeline"  # the job's one child run: the registry pipeline component, itself a pipeline
HISTORY = "/history/v1.0" + WS


# -- validation ------------------------------------------------------------------------------------
def _bad(message: str, target: str | None = None):
    details = [{"code": "UserError", "message": message, "target": target}] if target else None
    return ServiceError(400, "UserError", message, details)


def _check_literal(name: str, spec: dict, value) -> None:
    kind = spec["type"]
    text = str(value)
    if text.startswith("${{"):
        return  # a binding to a parent input
    try:
        if kind == "integer":
            int(text)
        elif kind == "number":
            float(text)
        elif kind == "boolean" and text.lower() not in ("true", "false"):
            raise ValueError
    except ValueError:
        raise _bad(f"Input '{name}' has type {kind} but got value {text!r} that cannot be parsed as {kind}.",
                   f"inputs.{name}") from None
    if spec.get("enum") and text not in spec["enum"]:
        raise _bad(f"Input '{name}' must be one of {spec['enum']}, got {text!r}.", f"inputs.{name}")


def _validate_step(state, step_name: str, step: dict) -> None:
    component_id = step.get("componentId") or ""
    prefix = f"azureml://registries/{state.emulator.registry}/components/"
    if not component_id.startswith(prefix):
        raise _bad(f"Component {component_id!r} of step {step_name!r} was not found.", f"jobs.{step_name}")
    cname, _, version = component_id[len(prefix):].partition("/versions/")
    if version not in catalog.component_versions(cname):
        raise _bad(f"Component {component_id!r} of step {step_name!r} was not found.", f"jobs.{step_name}")
    spec_inputs = catalog.component_spec(cname, version)["inputs"]
    given = step.get("inputs") or {}
    unknown = sorted(set(given) - set(spec_inputs))
    if unknown:
        raise _bad(f"Step {step_name!r}: input(s) {unknown} are not defined in component {cname}:{version}.",
                   f"jobs.{step_name}.inputs.{unknown[0]}")
    for name, value in given.items():
        spec = spec_inputs[name]
        kind = value.get("job_input_type") or value.get("jobInputType")
        if spec["type"] in ("string", "integer", "number", "boolean"):
            if kind != "literal":
                raise _bad(f"Input '{name}' has type {spec['type']} but got a {kind} asset.", f"inputs.{name}")
            _check_literal(name, spec, value.get("value"))
            if name.startswith("compute_") and value.get("value") not in ("serverless", None):
                if value["value"] not in state.computes:
                    raise _bad(f"Compute '{value['value']}' (input {name}) was not found in workspace "
                               f"{state.emulator.workspace}. Create it or use an existing compute.", f"inputs.{name}")
        else:
            if kind != spec["type"]:
                raise _bad(f"Input '{name}' must be a {spec['type']} asset, got {kind}.", f"inputs.{name}")
            _check_asset_uri(state, name, value.get("uri") or "")
    missing = [n for n, s in spec_inputs.items() if not s.get("optional") and "default" not in s and n not in given]
    if missing:
        raise _bad(f"Required input(s) {missing} of component {cname} are missing.", f"jobs.{step_name}.inputs")


def _check_asset_uri(state, name: str, uri: str) -> None:
    if uri.startswith("azureml://datastores/"):
        store = uri.split("/")[3]
        if store not in DATASTORES:
            raise _bad(f"Input '{name}': datastore '{store}' was not found.", f"inputs.{name}")
    elif not (uri.startswith("azureml://registries/") or uri.startswith("azureml:") or uri.startswith("https://")):
        raise _bad(f"Input '{name}': {uri!r} is not a valid asset URI.", f"inputs.{name}")


def validate_job(state, body: dict) -> dict:
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict):
        raise _bad("The request body must be a job with 'properties'.")
    job_type = props.get("jobType")
    if job_type == "FineTuning":
        return finetuning_jobs.validate(state, props)
    if job_type != "Pipeline":
        if not props.get("computeId"):
            raise _bad("Compute is required: set 'computeId' on the job.", "computeId")
        raise _bad(f"Job type {job_type!r} is not emulated; only Pipeline and FineTuning jobs are.", "jobType")
    jobs = props.get("jobs") or {}
    if not jobs:
        raise _bad("A pipeline job needs at least one step in 'jobs'.", "jobs")
    default_compute = (props.get("settings") or {}).get("default_compute")
    if default_compute and default_compute.split("/")[-1] not in state.computes:
        raise _bad(f"Default compute '{default_compute}' was not found.", "settings.default_compute")
    for step_name, step in jobs.items():
        _validate_step(state, step_name, step)
    return props


# -- bodies ----------------------------------------------------------------------------------------
def _job_body(state, name: str) -> dict:
    job = state.jobs[name]
    now = time.time()
    finetuning_jobs.register_outputs(state, now)
    props = dict(job.body["properties"])
    base = state.emulator.base_url
    props["status"] = job.state(now)
    props["experimentName"] = job.experiment
    props["services"] = {
        "Tracking": {"jobServiceType": "Tracking", "endpoint": tracking_uri(state) + "?"},
        "Studio": {"jobServiceType": "Studio", "endpoint": f"{base}/studio/runs/{name}?wsid={ws_scope(state)}"},
    }
    outputs = {}
    for out_name, out in (props.get("outputs") or {}).items():
        out = dict(out)
        out.setdefault("uri", f"azureml://datastores/workspaceblobstore/paths/azureml/{name}/{out_name}/")
        out.setdefault("mode", "ReadWriteMount")
        outputs[out_name] = out
    props["outputs"] = outputs
    props.setdefault("isArchived", False)
    props["properties"] = {**(props.get("properties") or {}), "azureml.runsource": "azureml.PipelineRun",
                           "runSource": "MFE", "runType": "HTTP", "azureml.parameters": "{}"}
    return resource(f"{ws_scope(state)}/jobs/{name}", "workspaces/jobs", name, props,
                    systemData=system_data(iso(job.created)))


@route("PUT", WS + "/jobs/{name}", "job_create")
def job_create(state, req: Req):
    check_workspace(state, req.params)
    name = req.params["name"]
    if name in state.jobs:
        return _job_update(state, name, req)
    props = validate_job(state, req.json)
    state.new_job(name, {"properties": props}, props.get("experimentName") or "Default")
    return ok(_job_body(state, name), status=201)


# What a PUT may change on an existing job, and Azure's answer when it changes anything else: the text users
# quote from the service (MicrosoftDocs/azure-docs#122250, Azure/azure-sdk-for-python#47389; no SDK recording
# has it). Status 400 is inferred: the SDK raised HttpResponseError there, not the ResourceExistsError a 409 maps to.
JOB_MUTABLE = ("description", "tags", "displayName", "properties", "isArchived")
JOB_IMMUTABLE_MESSAGE = (
    "A job with this name already exists. If you are trying to create a new job, use a different name. If you are "
    "trying to update an existing job, the existing job's Settings,  Inputs,  Outputs,  Jobs,  InputBindings,  "
    "OutputBindings cannot be changed. Only description, tags, displayName, properties, and isArchived can be updated.")


def _job_update(state, name: str, req: Req):
    sent = validate_job(state, req.json)  # normalised as the stored body was
    stored = state.jobs[name].body["properties"]
    fixed = [k for k in ("jobType", "inputs", "outputs", "jobs", "settings", "computeId", "component_id", "componentId")
             if k in sent and sent[k] != stored.get(k)]
    if fixed:
        from starlette.responses import JSONResponse

        return JSONResponse({"error": {"code": "UserError", "message": JOB_IMMUTABLE_MESSAGE,
                                       "innerError": {"code": "Immutable", "innerError": {"code": "JobPropertyImmutable"}}}},
                            status_code=400, headers={"x-ms-error-code": "UserError"})
    for key in JOB_MUTABLE:
        if key in sent and key != "properties":
            stored[key] = sent[key]
    return ok(_job_body(state, name), status=200)


@route("GET", WS + "/jobs/{name}", "job_get")
def job_get(state, req: Req):
    check_workspace(state, req.params)
    if req.params["name"] not in state.jobs:
        raise ServiceError(404, "UserError", f"Job {req.params['name']} not found.")
    return ok(_job_body(state, req.params["name"]))


@route("GET", WS + "/jobs", "job_list")
def job_list(state, req: Req):
    check_workspace(state, req.params)
    names = sorted(state.jobs, key=lambda n: state.jobs[n].created, reverse=True)
    return page([_job_body(state, n) for n in names])


@route("POST", WS + "/jobs/{name}/cancel", "job_cancel")
def job_cancel(state, req: Req):
    check_workspace(state, req.params)
    job = state.jobs.get(req.params["name"])
    if job is None:
        raise ServiceError(404, "UserError", f"Job {req.params['name']} not found.")
    if job.state(time.time()) in ("Completed", "Failed", "Canceled"):
        raise ServiceError(400, "UserError", f"Job {job.name} is already in a terminal state and cannot be canceled.")
    job.canceled_at = time.time() + 0.2
    from starlette.responses import Response

    op = state.new_operation()
    _, url = operation_urls(state, op, api_version=req.query.get("api-version"))
    return Response(status_code=202, headers={"Location": url, "x-ms-retry-after-ms": "100"})


# -- run history -----------------------------------------------------------------------------------
def _job_or_step(state, run_id: str):
    """(job, None) for the job's own run, (job, SUB) for its chat_completion_pipeline child, (job, step)."""
    if run_id in state.jobs:
        return state.jobs[run_id], None
    for job in state.jobs.values():
        if job.pipeline_run_id == run_id:
            return job, SUB
        for step, rid in job.run_ids.items():
            if rid == run_id:
                return job, step
    raise ServiceError(404, "UserError", f"Run {run_id} was not found.")


def _run_status(job, step, now):
    if step is None:
        return job.state(now), job.created + job.duration * 0.2, job.end_time(now)
    if step == SUB:
        return job.pipeline_state(now)
    return job.step_state(step, now)


def run_id_of(job, step) -> str:
    return job.name if step is None else job.pipeline_run_id if step == SUB else job.run_ids[step]


def _run(state, job, step) -> dict:
    now = time.time()
    status, start, end = _run_status(job, step, now)
    run_id = run_id_of(job, step)
    parent = None if step is None else job.name if step == SUB else job.pipeline_run_id
    display = job.body["properties"].get("displayName") if step is None else SUB if step == SUB else STEP_DISPLAY[step]
    is_pipeline = step in (None, SUB)
    run = {
        "runId": run_id, "runUuid": str(uuid.uuid5(uuid.NAMESPACE_URL, run_id)), "rootRunId": job.name,
        "parentRunId": parent, "experimentId": str(uuid.uuid5(uuid.NAMESPACE_URL, job.experiment)),
        "status": status, "createdUtc": iso(job.created), "startTimeUtc": iso(start) if status != "NotStarted" and start else None,
        "endTimeUtc": iso(end) if end else None, "displayName": display,
        "name": None if step is None else display, "runType": "azureml.PipelineRun" if is_pipeline else "azureml.StepRun",
        "target": None if is_pipeline else "gpu-cluster-big", "tags": {}, "properties": {}, "hidden": False,
        "logFiles": _log_files(state, job, step, now),
    }
    if status == "Failed":
        message = job.fail_error if step == job.fail_step else "Canceled due to a failure of a previous step."
        run["error"] = {"error": {"code": "UserError", "message": message}}
        if is_pipeline:
            run["error"]["error"]["message"] = (f"Pipeline has failed child jobs. Failed nodes: "
                                                f"/{STEP_DISPLAY[job.fail_step]}. {job.fail_error}")
    run["warnings"] = []
    return run


def _log_files(state, job, step: str | None, now: float) -> dict:
    """Log file name -> read SAS URL of its blob (see run_logs), with the text written by NOW."""
    run_id = run_id_of(job, step)
    if step in (None, SUB):
        path = "logs/azureml/executionlogs.txt"
        return {path: state.run_logs.url(run_id, path, log_text(job, None, now))}
    path = "user_logs/std_log.txt"
    return {path: state.run_logs.url(run_id, path, log_text(job, step, now))}


@route("GET", HISTORY + "/runs/{runId}/details", "run_details")
def run_details(state, req: Req):
    job, step = _job_or_step(state, req.params["runId"])
    return ok(_run(state, job, step))


@route("GET", HISTORY + "/runs/{runId}", "run_get")
def run_get(state, req: Req):
    job, step = _job_or_step(state, req.params["runId"])
    return ok(_run(state, job, step))


@route("GET", HISTORY + "/runs/{runId}/children", "run_children")
def run_children(state, req: Req):
    job, step = _job_or_step(state, req.params["runId"])
    now = time.time()
    if finetuning_jobs.is_finetuning(job):
        children = []  # no child runs are published for a FineTuning job
    elif step is None:  # the job's one child: the registry pipeline, once its first step has started
        children = [_run(state, job, SUB)] if job.pipeline_state(now)[1] is not None else []
    elif step == SUB:
        children = [_run(state, job, s) for s in STEPS if job.step_state(s, now)[0] != "NotStarted"]
    else:
        children = []
    return ok({"value": children, "continuationToken": None})


def log_text(job, step: str | None, now: float) -> str:
    """The log a run has written by NOW: pipeline execution log or a step's std_log."""
    lines = []
    if finetuning_jobs.is_finetuning(job):
        return finetuning_jobs.log_text(job, now)
    if step is None:
        lines.append(f"[{iso(job.created)}] Submitting {len(STEPS)} runs, first five are: "
                     + ", ".join(f"{STEP_DISPLAY[s]}:{job.run_ids[s]}" for s in STEPS))
        for s in STEPS:
            status, start, end = job.step_state(s, now)
            if start:
                lines.append(f"[{iso(start)}] Execution of step {STEP_DISPLAY[s]} ({job.run_ids[s]}) started.")
            if end and status in ("Completed", "Failed", "Canceled"):
                lines.append(f"[{iso(end)}] Execution of step {STEP_DISPLAY[s]} ({job.run_ids[s]}) {status.lower()}.")
        if job.state(now) == "Completed":
            lines.append(f"[{iso(job.end_time(now))}] The activity completed successfully. Finalizing run...")
        return "\n".join(lines) + "\n"
    status, start, end = job.step_state(step, now)
    if not start:
        return ""
    lines.append(f"{iso(start)} INFO  {STEP_DISPLAY[step]} started on gpu-cluster-big")
    if step == "finetune":
        lines += [log_line(point) for point in finetune_curve(job, now)]
    if status == "Failed":
        lines.append(job.fail_error)
    elif status == "Completed":
        lines.append(f"{iso(end)} INFO  {STEP_DISPLAY[step]} completed")
    return "\n".join(lines) + "\n"


@route("GET", "/_logs/{runId}/{path:path}", "log_download")
def log_download(state, req: Req):
    job, step = _job_or_step(state, req.params["runId"])
    from starlette.responses import PlainTextResponse

    return PlainTextResponse(log_text(job, None if step == SUB else step, time.time()))
