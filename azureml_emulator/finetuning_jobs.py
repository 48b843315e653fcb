"""FineTuning jobs (``jobType: FineTuning``), the job ``azure.ai.ml.finetuning.create_finetuning_job``
builds: validated as the request body the SDK sends, run on the same clock as pipeline jobs, and,
once Completed, their ``registered_model`` output registered as a workspace model (version 1).

Ground truth:
- The body: azure-ai-ml 1.35.2, ``entities/_job/finetuning/custom_model_finetuning_job.py``
  ``_to_rest_object`` and the REST model ``arm_ml_service.models.FineTuningJob`` /
  ``CustomModelFineTuning`` (sent at api-version 2024-10-01-preview, seen in the request log):
  ``properties.fineTuningDetails`` = ``{taskType: "chatCompletion", modelProvider: "Custom",
  model: {jobInputType: "mlflow_model", uri}, trainingData / validationData: {jobInputType: "uri_file",
  uri}, hyperParameters: {name: str}}``, ``outputs.registered_model = {jobOutputType: "mlflow_model",
  assetName: <output_model_name_prefix>}``, ``resources.instanceTypes`` (managed compute, "model as a
  platform"), ``queueSettings.jobTier``, ``computeId``; neither compute nor instance types = serverless.
- The registered output: Azure/azureml-examples' notebooks
  ``sdk/python/jobs/finetuning/standalone/model-as-a-platform|model-as-a-service/chat-completion/``
  read ``created_job.outputs["registered_model"].name`` and get that model at version "1".
- Serverless needs a model whose card lists ``ServerlessMaaS`` in ``deploymentOptions`` (the card's
  system metadata, vendored azureml-assets specs).

Not verified (no recording found): the service's error texts and status codes for a bad FineTuning
body (the emulator answers 400 UserError with its own text, as for pipelines); which hyperparameter
names the service accepts (the emulator checks only that values are strings, as the REST model types
them); what version the service gives the output model when version 1 exists (the emulator takes the
next free integer).
"""

from __future__ import annotations

import copy
import re
import time

from . import catalog
from .routing import ServiceError
from .resources import ws_scope
from .routes_workspace import VM_SIZE_NAMES, offered

TASKS = ("chatcompletion",)  # FineTuningTaskType.CHAT_COMPLETION as the SDK sends it ("chatCompletion")
REGISTRY_MODEL = re.compile(r"^azureml://registries/([^/]+)/models/([^/]+)/versions/([^/]+)$")


def _bad(message: str, target: str) -> ServiceError:
    return ServiceError(400, "UserError", message, [{"code": "UserError", "message": message, "target": target}])


def is_finetuning(job) -> bool:
    return (job.body.get("properties") or {}).get("jobType") == "FineTuning"


def is_serverless(props: dict) -> bool:
    return not props.get("computeId") and not ((props.get("resources") or {}).get("instanceTypes"))


def registry_model(state, uri: str):
    """The catalog ModelSpec a registry model URI names, or None."""
    m = REGISTRY_MODEL.match(uri or "")
    if not m or m.group(1) != state.emulator.registry:
        return None
    return next((v for v in catalog.models().get(m.group(2), []) if v.version == m.group(3)), None)


def validate(state, props: dict) -> dict:
    """Refuse a FineTuning body the way the pipeline validation does (400 UserError naming the field);
    return the body to store (a copy: the request log keeps what was sent)."""
    props = copy.deepcopy(props)
    details = props.get("fineTuningDetails")
    if not isinstance(details, dict):
        raise _bad("A FineTuning job needs 'fineTuningDetails'.", "fineTuningDetails")
    if details.get("modelProvider") != "Custom":
        raise _bad(f"modelProvider {details.get('modelProvider')!r} is not emulated; only Custom is.",
                   "fineTuningDetails.modelProvider")
    if str(details.get("taskType", "")).lower() not in TASKS:
        raise _bad(f"taskType {details.get('taskType')!r} is not supported; use ChatCompletion.",
                   "fineTuningDetails.taskType")
    # the SDK sends "chatCompletion" (it lowercases the first letter); the REST spec's enum value is
    # "ChatCompletion" (mfe.json FineTuningTaskType), which is what the emulator stores and answers
    details["taskType"] = "ChatCompletion"
    model = details.get("model") or {}
    if model.get("jobInputType") != "mlflow_model":
        raise _bad("The model input must be an mlflow_model.", "fineTuningDetails.model")
    spec = registry_model(state, model.get("uri", ""))
    if spec is None:
        raise _bad(f"Model {model.get('uri')!r} was not found in registry {state.emulator.registry}.",
                   "fineTuningDetails.model")
    options = spec.system_metadata.get("deploymentOptions") or []
    if is_serverless(props) and "ServerlessMaaS" not in options:
        raise _bad(f"Model {spec.name} does not offer serverless fine-tuning (its deploymentOptions are "
                   f"{options}); set compute or resources.instanceTypes.", "fineTuningDetails.model")
    for key, required in (("trainingData", True), ("validationData", False)):
        data = details.get(key)
        if data is None and not required:
            continue
        if not isinstance(data, dict) or data.get("jobInputType") != "uri_file" or not data.get("uri"):
            raise _bad(f"{key} must be a uri_file input with a uri.", f"fineTuningDetails.{key}")
    hyper = details.get("hyperParameters") or {}
    wrong = sorted(k for k, v in hyper.items() if not isinstance(v, str))
    if wrong:
        raise _bad(f"hyperParameters values must be strings; {wrong} are not.", "fineTuningDetails.hyperParameters")
    out = (props.get("outputs") or {}).get("registered_model") or {}
    if out.get("jobOutputType") != "mlflow_model" or not out.get("assetName"):
        raise _bad("outputs.registered_model must be an mlflow_model output with an assetName.",
                   "outputs.registered_model")
    for size in (props.get("resources") or {}).get("instanceTypes") or []:
        if str(size).lower() not in VM_SIZE_NAMES or not offered(VM_SIZE_NAMES[str(size).lower()]):
            raise _bad(f"Instance type {size!r} is not offered in this region.", "resources.instanceTypes")
    compute = (props.get("computeId") or "").split("/")[-1]
    if compute and compute not in state.computes:
        raise _bad(f"Compute '{compute}' was not found in workspace {state.emulator.workspace}.", "computeId")
    return props


def register_outputs(state, now: float | None = None) -> None:
    """Register the output model of every FineTuning job that has Completed and has not been registered."""
    now = now or time.time()
    for job in state.jobs.values():
        if not is_finetuning(job) or getattr(job, "registered", None) or job.state(now) != "Completed":
            continue
        out = job.body["properties"]["outputs"]["registered_model"]
        name = out["assetName"]
        versions = state.models.get(name, {})
        version = "1"
        while version in versions:
            version = str(int(version) + 1)
        base = job.body["properties"]["fineTuningDetails"]["model"]["uri"]
        from .resources import resource, system_data

        props = {"modelUri": f"azureml://jobs/{job.name}/outputs/registered_model", "modelType": "mlflow_model",
                 "jobName": job.name, "description": f"Fine-tuned from {base} by job {job.name}",
                 "tags": {"baseModel": base}, "properties": {}, "flavors": {"python_function": {}},
                 "isArchived": False, "isAnonymous": False, "stage": "Development", "provisioningState": "Succeeded",
                 "autoDeleteSetting": None, "intellectualProperty": None}
        state.models.setdefault(name, {})[version] = resource(
            f"{ws_scope(state)}/models/{name}/versions/{version}", "workspaces/models/versions", version, props,
            systemData=system_data())
        job.registered = (name, version)


def log_text(job, now: float) -> str:
    """The FineTuning job's execution log by NOW (the emulator's own wording: no recording found)."""
    from .resources import iso

    details = job.body["properties"]["fineTuningDetails"]
    lines = [f"[{iso(job.created)}] FineTuning job {job.name}: {details['model']['uri']}, task {details['taskType']}"]
    status = job.state(now)
    if status in ("Running", "Completed", "Failed", "Canceled"):
        lines.append(f"[{iso(job.created + job.duration * 0.2)}] Training started.")
    if status in ("Completed", "Failed", "Canceled"):
        lines.append(f"[{iso(job.end_time(now))}] Training {status.lower()}.")
    return "\n".join(lines) + "\n"
