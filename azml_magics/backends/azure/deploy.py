"""Register the trained model, deploy it to a managed online endpoint, score it, delete it.

The notebook's cells, with what it left out: registration finds an earlier registration of the same
job instead of adding a duplicate, the instance type is checked against the inference allow list
before anything is created (the notebook only printed a warning, and the wrong list), and the
endpoint key is fetched by the SDK and used in memory only.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Callable, Iterator

from ...defaults import MODEL_NAME_SUFFIX
from ...errors import NotFound, RemoteError, SpecError
from ..base import Endpoint, ModelInfo, ModelRef
from .modelcard import check_size, sku_list
from .remote import is_not_found, remote_error, text

TAG_JOB = "azml.job"
TAG_BASE = "azml.base_model"
TAG_INFERENCE = "inference_compute_allow_list"
TAG_REGISTRY = "azml.registry_model"
TRAINED_OUTPUT = "trained_model"


def base_name(model_id_or_name: str) -> str:
    """'azureml://registries/azureml/models/Phi-3/versions/15' -> 'Phi-3'."""
    parts = [p for p in str(model_id_or_name).split("/") if p]
    if "models" in parts and parts.index("models") + 1 < len(parts):
        return parts[parts.index("models") + 1]
    return parts[-1].split(":")[0] if parts else str(model_id_or_name)


def model_ref(model) -> ModelRef:
    tags = {str(k): str(v) for k, v in (model.tags or {}).items()}
    job = tags.get(TAG_JOB) or getattr(model, "job_name", None)  # a FineTuning job's output names its job
    return ModelRef(name=model.name, version=str(model.version), id=model.id, job=job, tags=tags)


def _find_registration(client, name: str, job: str):
    try:
        for model in client.models.list(name=name):
            if (model.tags or {}).get(TAG_JOB) == job:
                return model
    except Exception as err:
        if not is_not_found(err):
            raise remote_error(err, f"list versions of model '{name}'") from None
    return None


def _refuse_taken_version(client, name: str, version: str) -> None:
    """Azure answers a PUT of an existing model version with 200 and overwrites it (recorded), so a
    version another job registered must be refused here, before anything is written."""
    try:
        taken = client.models.get(name=name, version=version)
    except Exception as err:
        if is_not_found(err):
            return
        raise remote_error(err, f"read model {name}:{version}") from None
    owner = (taken.tags or {}).get(TAG_JOB)
    raise SpecError(f"model {name}:{version} already exists{f' (registered from job {owner})' if owner else ''}; "
                    "choose another --version, or leave it out for a new one.")


def register(
    client, job_name: str, *, name: str | None, version: str | None, foundation: ModelInfo | None,
    progress: Callable[[str], None],
) -> ModelRef:
    """Register ``azureml://jobs/<job>/outputs/trained_model`` as an MLflow model, once per job."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    try:
        job = client.jobs.get(job_name)
    except Exception as err:
        raise remote_error(err, f"read job '{job_name}'") from None
    if text(job.status) != "Completed":
        raise SpecError(
            f"job {job_name} is {text(job.status)}; a model can be registered once it has Completed "
            f"(watch it with %azml_jobs {job_name})."
        )
    tags = dict(job.tags or {})
    base = foundation.name if foundation else tags.get("azml.base_model_name") or base_name(tags.get(TAG_BASE, job_name))
    name = name or f"{base}{MODEL_NAME_SUFFIX}".replace("/", "-")
    existing = _find_registration(client, name, job_name)
    if existing is not None:
        progress(f"Job {job_name} is already registered as {existing.name}:{existing.version}; reusing it.")
        return model_ref(existing)
    if version:
        _refuse_taken_version(client, name, version)
    lineage = {TAG_JOB: job_name}
    if foundation is not None:
        lineage[TAG_BASE] = foundation.id
        if foundation.inference_allow_list is not None:
            lineage[TAG_INFERENCE] = str(foundation.inference_allow_list)
    elif tags.get(TAG_BASE):
        lineage[TAG_BASE] = tags[TAG_BASE]
    model = Model(
        path=f"azureml://jobs/{job_name}/outputs/{TRAINED_OUTPUT}",
        type=AssetTypes.MLFLOW_MODEL,
        name=name,
        version=version or str(int(time.time())),
        description=f"{base} fine tuned model for ultrachat 200k chat-completion",
        tags=lineage,
    )
    progress(f"Registering {model.path} as {name}:{model.version} ...")
    try:
        return model_ref(client.models.create_or_update(model))
    except Exception as err:
        raise remote_error(err, f"register model {name}:{model.version}") from None


def registry_ref(info: ModelInfo) -> ModelRef:
    """A registry model deployed as it is (the notebook deploys the workspace model; Azure ML deploys a
    registry model id the same way). Its own id is its base-model tag, so the allow list is its own."""
    tags = {TAG_BASE: info.id, TAG_REGISTRY: "true"}
    if info.inference_allow_list is not None:
        tags[TAG_INFERENCE] = str(info.inference_allow_list)
    return ModelRef(name=info.name, version=info.version, id=info.id, tags=tags)


def get_registered(client, name: str, version: str | None, label: str | None) -> ModelRef:
    try:
        if version:
            return model_ref(client.models.get(name=name, version=version))
        return model_ref(client.models.get(name=name, label=label or "latest"))
    except Exception as err:
        if is_not_found(err):
            raise NotFound(
                f"model {name}{':' + version if version else ''} is not registered in this workspace; "
                "register one with %azml_register."
            ) from None
        raise remote_error(err, f"read model {name}") from None


def inference_allow_list(model: ModelRef, foundation_lookup: Callable[[str], ModelInfo | None]) -> list[str] | None:
    """The foundation model's inference allow list: copied at registration, else read from the registry."""
    if TAG_INFERENCE in model.tags:
        return sku_list(model.tags[TAG_INFERENCE], TAG_INFERENCE)
    base = model.tags.get(TAG_BASE)
    info = foundation_lookup(base) if base else None
    return info.inference_allow_list if info else None


def cost_line(spec) -> str:
    return (
        f"{spec.endpoint} bills {spec.instance_count} x {spec.instance_type} for every hour it exists, "
        f"used or not; delete it with %azml_delete {spec.endpoint} when done."
    )


def _wait(poller, what: str, timeout: float, progress: Callable[[str], None]) -> None:
    """Wait for a long-running operation with progress lines and a deadline; raise if it failed."""
    start = time.monotonic()
    last = start
    while not poller.done():
        now = time.monotonic()
        if now - start > timeout:
            raise RemoteError(
                f"{what} is still in progress after {int(timeout)} s; it goes on in Azure: check it in the studio, "
                "or remove it with %azml_delete."
            )
        if now - last >= 30:
            progress(f"  ... {what}: {int(now - start)} s")
            last = now
        poller.wait(timeout=min(5.0, max(0.1, timeout - (now - start))))
    poller.wait()  # re-raises the operation's own error, if it failed


def deploy(client, model: ModelRef, spec, allowed: list[str] | None, *, timeout: float,
           progress: Callable[[str], None], tags: dict[str, str] | None = None) -> Endpoint:
    """Endpoint (key auth), deployment, traffic; every check done before the first create. ``tags`` (our
    ownership tags) go on the endpoint and the deployment."""
    from azure.ai.ml.entities import (
        ManagedOnlineDeployment,
        ManagedOnlineEndpoint,
        OnlineRequestSettings,
        ProbeSettings,
    )

    info = ModelInfo(name=model.tags.get(TAG_BASE, model.name), version=model.version, id=model.id)
    unchecked = check_size(spec.instance_type, allowed, "inference compute", info, "set instance_type to")
    if unchecked:
        progress(f"Warning: {unchecked}")
    endpoint = ManagedOnlineEndpoint(
        name=spec.endpoint,
        description=spec.description or (f"Online endpoint for base model {model.name}" if model.tags.get(TAG_REGISTRY)
                                         else f"Online endpoint for {model.name}, fine tuned model for ultrachat-200k-chat-completion"),
        auth_mode="key",
        tags=dict(tags or {}) or None,
    )
    settings = {"request_timeout_ms": spec.request_timeout_ms}
    if spec.max_concurrent_requests_per_instance != 1:
        settings["max_concurrent_requests_per_instance"] = spec.max_concurrent_requests_per_instance
    deployment = ManagedOnlineDeployment(
        name=spec.deployment,
        endpoint_name=spec.endpoint,
        model=model.id,
        instance_type=spec.instance_type,
        instance_count=spec.instance_count,
        liveness_probe=ProbeSettings(initial_delay=spec.liveness_initial_delay),
        request_settings=OnlineRequestSettings(**settings),
        tags=dict(tags or {}) or None,
    )
    progress(cost_line(spec))
    try:
        progress(f"Creating endpoint {spec.endpoint} (key auth) ...")
        _wait(client.begin_create_or_update(endpoint), f"endpoint {spec.endpoint}", timeout, progress)
        progress(f"Creating deployment {spec.deployment}: {model.name}:{model.version} on "
                 f"{spec.instance_count} x {spec.instance_type} ...")
        _wait(client.online_deployments.begin_create_or_update(deployment), f"deployment {spec.deployment}",
              timeout, progress)
        endpoint.traffic = {spec.deployment: spec.traffic}
        progress(f"Routing {spec.traffic}% of traffic to {spec.deployment} ...")
        _wait(client.begin_create_or_update(endpoint), f"endpoint {spec.endpoint} traffic", timeout, progress)
    except (SpecError, RemoteError):
        raise
    except Exception as err:
        raise remote_error(err, f"deploy {model.name}:{model.version} to {spec.endpoint}") from None
    found = get_endpoint(client, spec.endpoint)
    found.details["cost"] = cost_line(spec)
    progress(f"Endpoint {spec.endpoint} is {found.state}: {found.scoring_uri}")
    return found


def _endpoint_of(client, ep) -> Endpoint:
    traffic = dict(ep.traffic or {})
    deployment = max(traffic, key=traffic.get) if traffic else "demo"
    instance_type, count, model = None, 1, None
    try:
        dep = client.online_deployments.get(name=deployment, endpoint_name=ep.name)
        instance_type, count = dep.instance_type, int(dep.instance_count or 1)
        model = str(dep.model) if dep.model else None
    except Exception:  # an endpoint without a deployment yet
        pass
    return Endpoint(
        name=ep.name, backend="azure", scoring_uri=ep.scoring_uri or "", state=text(ep.provisioning_state),
        deployment=deployment, model=model, instance_type=instance_type, instance_count=count,
        openai_base_url=None, details={"traffic": traffic, "auth_mode": ep.auth_mode},
    )


def get_endpoint(client, name: str) -> Endpoint:
    try:
        return _endpoint_of(client, client.online_endpoints.get(name=name))
    except Exception as err:
        if is_not_found(err):
            raise NotFound(f"endpoint {name} does not exist in this workspace; see %azml_endpoints.") from None
        raise remote_error(err, f"read endpoint {name}") from None


def list_endpoints(client) -> list[Endpoint]:
    try:
        return [_endpoint_of(client, ep) for ep in client.online_endpoints.list()]
    except Exception as err:
        raise remote_error(err, "list endpoints") from None


def invoke(client, endpoint: str, request: dict, deployment: str | None = None) -> dict:
    """The notebook's ``online_endpoints.invoke`` (request file, key fetched by the SDK)."""
    fd, path = tempfile.mkstemp(prefix="azml-score-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(request, fh)
        kwargs = {"deployment_name": deployment} if deployment else {}
        raw = client.online_endpoints.invoke(endpoint_name=endpoint, request_file=path, **kwargs)
    except Exception as err:
        _raise_if_not_ready(client, endpoint)
        raise remote_error(err, f"score endpoint {endpoint}") from None
    finally:
        os.unlink(path)
    try:
        parsed = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    except ValueError:
        return {"output": str(raw)}
    if isinstance(parsed, str):
        return {"output": parsed}
    if isinstance(parsed, list):
        return {"output": parsed[0] if len(parsed) == 1 else parsed}
    return parsed


def _raise_if_not_ready(client, endpoint: str) -> None:
    """An endpoint still being created has no scoring URI yet (as recorded), so the SDK's own error names
    a URL 'None'; say what is going on instead."""
    try:
        ep = client.online_endpoints.get(name=endpoint)
    except Exception:
        return
    state = text(ep.provisioning_state)
    if not ep.scoring_uri or state not in ("Succeeded", ""):
        raise RemoteError(f"endpoint {endpoint} is {state or 'not ready'} and has no scoring URI yet; wait for "
                          f"it to finish (%azml_endpoints shows its state) and send again.")


def delete_endpoint(client, name: str, progress: Callable[[str], None]) -> None:
    progress(f"Deleting endpoint {name} ...")
    try:
        client.online_endpoints.begin_delete(name=name).result()
    except Exception as err:
        if is_not_found(err) and not _endpoint_exists(client, name):
            return  # already gone
        raise remote_error(err, f"delete endpoint {name}") from None


def _endpoint_exists(client, name: str) -> bool:
    try:
        client.online_endpoints.get(name=name)
        return True
    except Exception as err:
        return not is_not_found(err)


def stream_chat(client, endpoint: str, messages: list[dict], params) -> Iterator:
    """A chat turn through ``/score``: a managed MLflow deployment answers whole, so one piece, then
    the finished Reply (finish reason and usage where the server reports them; older servers answer
    ``{"output": text}`` only, and the Reply then says None)."""
    from ... import scoring

    request = scoring.build_score_request(messages, params)
    response = invoke(client, endpoint, request)
    try:
        reply = scoring.score_reply(response)
    except ValueError as exc:
        raise RemoteError(f"endpoint {endpoint} answered in an unknown shape: {exc}") from None
    yield reply.text
    yield reply
