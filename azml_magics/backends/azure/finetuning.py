"""FineTuning jobs (mode job / serverless) and serverless endpoints, through the SDK's own calls.

The flow of Microsoft's model-as-a-platform and model-as-a-service notebooks (Azure/azureml-examples,
``sdk/python/jobs/finetuning/standalone/``): ``create_finetuning_job`` (task chat-completion, the
hyperparameters as strings, ``instance_types`` and the queue tier for managed compute, nothing for
serverless) submitted with ``jobs.create_or_update``; the service registers the output model
``registered_model`` at version 1; a serverless model is deployed as a ``ServerlessEndpoint`` whose
``scoring_uri`` serves ``/v1/chat/completions``. A marketplace subscription is made first for a model
outside Microsoft's own registry (the notebooks: "skip this step for 1P (Microsoft) models").

Worked around, not copied: the notebooks' ``break`` outside a loop and undefined ``foundation_model`` /
``auth_key``; the SDK's ``create_finetuning_job`` fails on a missing ``validation_data`` (it reads an
unbound name), so the test split is always sent as validation data.
"""

from __future__ import annotations

import uuid
from typing import Callable

from ...errors import NotFound, RemoteError, SpecError
from ..base import ComputeInfo, Endpoint, JobRef, ModelInfo, ModelRef
from . import owned
from .remote import is_not_found, remote_error, text

TAG_MODE = "azml.mode"
OUTPUT = "registered_model"
MICROSOFT_REGISTRY = "azureml"
MAAS_OPTION = "ServerlessMaaS"


def check(client, spec, model: ModelInfo, mode: str) -> ComputeInfo | None:
    """Mode job: the VM size against the model's fine-tune allow list and the region's sizes (GETs only)."""
    if mode == "serverless":
        return None
    from .compute import gpus_for
    from .modelcard import check_size

    size = spec.compute.size
    unchecked = check_size(size, model.finetune_allow_list, "fine-tune compute", model, "set compute.size to")
    notes = [unchecked] if unchecked else []
    return ComputeInfo(name="managed compute", size=size, gpus_per_node=gpus_for(client, size), notes=notes)


def subscription_needed(model: ModelInfo) -> bool:
    """Models outside Microsoft's registry need a marketplace subscription (the notebooks' rule)."""
    return model.id.startswith("azureml://registries/") and model.id.split("/")[3] != MICROSOFT_REGISTRY


def ensure_subscription(client, model: ModelInfo, progress: Callable[[str], None]) -> dict[str, dict]:
    """The marketplace subscription MODEL needs, created when missing: {name: info} of one created now
    (for the state record), else {} (none needed, or one that was there already)."""
    if not subscription_needed(model):
        return {}
    from azure.ai.ml.entities import MarketplaceSubscription

    model_id = "/".join(model.id.split("/")[:-2])  # without /versions/N, as the service takes it
    name = f"{model.name.replace('.', '-')}-sub"
    if existing_subscription(client, name) is not None:
        return {}
    progress(f"Subscribing to {model.name} in the Azure Marketplace ({name}) ...")
    try:
        client.marketplace_subscriptions.begin_create_or_update(MarketplaceSubscription(model_id=model_id, name=name)).result()
    except Exception as err:
        raise remote_error(err, f"create marketplace subscription {name}") from None
    return {name: {"model": model_id}}


def existing_subscription(client, name: str):
    """The marketplace subscription NAME, or None when the workspace has none of that name."""
    try:
        return client.marketplace_subscriptions.get(name)
    except Exception as err:
        if is_not_found(err):
            return None
        raise remote_error(err, f"read marketplace subscription {name}") from None


def delete_subscription(client, name: str, progress: Callable[[str], None]) -> None:
    progress(f"Deleting marketplace subscription {name} ...")
    try:
        client.marketplace_subscriptions.begin_delete(name).result()
    except Exception as err:
        if not is_not_found(err):
            raise remote_error(err, f"delete marketplace subscription {name}") from None


def subscription_tag(created: dict[str, dict] | None) -> dict[str, str]:
    """The tag a FineTuning job carries when its submission created marketplace subscriptions: how a
    damaged state finds them again (a subscription has no tags of its own; one that was there
    before us is never named here, so it is never taken for ours)."""
    return {owned.TAG_SUBSCRIPTIONS: ",".join(sorted(created))} if created else {}


def submit(client, plan, data_uris: dict[str, str], tags: dict[str, str], progress: Callable[[str], None],
           subscriptions: dict[str, dict] | None = None) -> JobRef:
    """Send the plan as a FineTuning job (no compute for serverless; instance types for mode job)."""
    from azure.ai.ml.finetuning import FineTuningTaskType, create_finetuning_job

    spec, model = plan.spec, plan.model
    short = uuid.uuid4().hex[:8]
    base = model.name.replace(".", "-")
    name = (spec.name or f"{base}-ft-{short}").lower()
    kwargs = {}
    if plan.mode == "job":
        kwargs["instance_types"] = [plan.compute.size if plan.compute else spec.compute.size]
        if spec.compute.job_tier:
            kwargs["job_tier"] = spec.compute.job_tier
    validation = data_uris.get("validation") or data_uris.get("test") or data_uris["train"]
    job = create_finetuning_job(
        task=FineTuningTaskType.CHAT_COMPLETION, model=model.id, training_data=data_uris["train"],
        validation_data=validation, hyperparameters=plan.hyperparameters, name=name,
        display_name=plan.display_name, experiment_name=spec.experiment_name,
        output_model_name_prefix=f"{base}-{short}-ft", tags={**tags, TAG_MODE: plan.mode, **subscription_tag(subscriptions)},
        **kwargs,
    )
    try:
        created = client.jobs.create_or_update(job)
    except Exception as err:
        raise remote_error(err, f"submit the FineTuning job ({plan.mode})") from None
    progress(f"Submitted FineTuning job {created.name} ({plan.mode}) to experiment {spec.experiment_name}.")
    return JobRef(created.name, "azure", plan.display_name, spec.experiment_name, getattr(created, "studio_url", None),
                  created={"subscriptions": subscriptions} if subscriptions else {})


def is_finetuning_job(job) -> bool:
    return type(job).__name__.endswith("FineTuningJob")


def register(client, job, progress: Callable[[str], None]) -> ModelRef:
    """The model the service registered from a completed FineTuning job (its ``registered_model`` output)."""
    from .deploy import TAG_BASE, TAG_JOB

    if text(job.status) != "Completed":
        raise SpecError(f"job {job.name} is {text(job.status)}; its model exists once it has Completed "
                        f"(watch it with %azml_jobs {job.name}).")
    out = (job.outputs or {}).get(OUTPUT)
    name = getattr(out, "name", None) or (out.get("name") if isinstance(out, dict) else None)
    if not name:
        raise RemoteError(f"job {job.name} has no registered_model output name; nothing to register.")
    try:
        model = next((m for m in client.models.list(name=name) if getattr(m, "job_name", None) == job.name), None)
        model = model or client.models.get(name=name, version="1")
    except Exception as err:
        raise remote_error(err, f"read the model job {job.name} registered ({name})") from None
    progress(f"Job {job.name} registered its model as {model.name}:{model.version}.")
    tags = {str(k): str(v) for k, v in (model.tags or {}).items()}
    tags.update({TAG_JOB: job.name, TAG_MODE: str((job.tags or {}).get(TAG_MODE, "")),
                 TAG_BASE: str((job.tags or {}).get(TAG_BASE, ""))})
    return ModelRef(name=model.name, version=str(model.version), id=model.id, job=job.name, tags=tags)


def is_serverless_model(client, model: ModelRef) -> bool:
    """A model a serverless FineTuning job made (the job's mode tag), or a registry model offered serverless."""
    if model.tags.get(TAG_MODE):
        return model.tags[TAG_MODE] == "serverless"
    job = model.job or model.tags.get("azml.job")
    if not job:
        return False
    try:
        return (client.jobs.get(job).tags or {}).get(TAG_MODE) == "serverless"
    except Exception:
        return False


def deploy(client, model: ModelRef, spec, progress: Callable[[str], None], tags: dict[str, str]) -> Endpoint:
    """A serverless endpoint for a workspace model (its location-scoped id, as the notebook builds it)."""
    from azure.ai.ml.entities import ServerlessEndpoint

    try:
        ws = client.workspaces.get(client.workspace_name)
    except Exception as err:
        raise remote_error(err, "read the workspace") from None
    model_id = (f"azureml://locations/{ws.location}/workspaces/{ws._workspace_id}"  # noqa: SLF001 - the notebook's own
                f"/models/{model.name}/versions/{model.version}")
    progress(f"Creating serverless endpoint {spec.endpoint} for {model.name}:{model.version} (billed per token) ...")
    try:
        ep = client.serverless_endpoints.begin_create_or_update(
            ServerlessEndpoint(name=spec.endpoint, model_id=model_id, tags=tags)).result()
    except Exception as err:
        raise remote_error(err, f"create serverless endpoint {spec.endpoint}") from None
    return endpoint_of(ep)


def endpoint_of(ep) -> Endpoint:
    uri = str(ep.scoring_uri or "")
    return Endpoint(name=ep.name, backend="azure", scoring_uri=uri, state=text(ep.provisioning_state).capitalize(),
                    deployment="serverless", model=ep.model_id, instance_type="serverless (per token)",
                    openai_base_url=f"{uri.rstrip('/')}/v1" if uri else None, details={"kind": "serverless"})


def get(client, name: str) -> Endpoint | None:
    """The serverless endpoint NAME, or None when there is none of that name."""
    try:
        return endpoint_of(client.serverless_endpoints.get(name))
    except Exception as err:
        if is_not_found(err):
            return None
        raise remote_error(err, f"read serverless endpoint {name}") from None


def key(client, name: str) -> str:
    """The endpoint's primary key (handed to a client, never printed or stored)."""
    try:
        return client.serverless_endpoints.get_keys(name).primary_key
    except Exception as err:
        raise remote_error(err, f"read the keys of serverless endpoint {name}") from None


def delete(client, name: str, progress: Callable[[str], None]) -> None:
    progress(f"Deleting serverless endpoint {name} ...")
    try:
        client.serverless_endpoints.begin_delete(name).result()
    except Exception as err:
        if not is_not_found(err):
            raise remote_error(err, f"delete serverless endpoint {name}") from None


def chat(client, name: str, body: dict) -> dict:
    """POST BODY to the endpoint's ``/v1/chat/completions`` with its key (the notebook's request)."""
    import requests

    ep = get(client, name)
    if ep is None:
        raise NotFound(f"serverless endpoint {name} does not exist in this workspace; see %azml_endpoints.")
    try:
        r = requests.post(f"{ep.openai_base_url}/chat/completions", json=body, timeout=300,
                          headers={"Content-Type": "application/json", "Authorization": key(client, name)})
    except requests.RequestException as err:
        raise RemoteError(f"serverless endpoint {name} did not answer: {type(err).__name__}") from None
    if r.status_code != 200:
        from ...scoring import error_message

        try:
            detail = error_message(r.json()) or r.text[:200]
        except ValueError:
            detail = r.text[:200]
        raise RemoteError(f"serverless endpoint {name} answered {r.status_code}: {detail}")
    return r.json()
