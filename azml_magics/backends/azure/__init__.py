"""The Azure ML backend: the chat-completion fine-tuning notebook's flow through the azure-ai-ml SDK.

Importing this package imports no Azure library: the submodules that do are loaded on first use.
The SDK is used unmodified; which cloud it talks to is the SDK's own business (its cloud-metadata
environment variables), so the same code serves Azure, a sovereign cloud or a test emulator.

What our requests do differently from the original notebook's (tests/test_azure_vs_notebook.py
compares the two field by field; everything else is the same):

- job inputs ``train_file_path`` / ``test_file_path``: data assets ``azml-<file stem>`` versioned by
  the file's sha256, uploaded once, instead of an anonymous upload on every submission;
- job parameters: the user's values win over the model's ``model_specific_defaults`` (the original
  lets the tag win: epochs 3 became 1), and defaults that are not inputs of the fetched component
  (``learning_rate_min``/``max``) are dropped and shown instead of breaking the component call;
- job tags ``azml.base_model`` / ``azml.base_model_name`` and model tags ``azml.job``,
  ``azml.base_model``, ``inference_compute_allow_list``: lineage, so registering a job twice finds
  the first registration and deploying checks the base model's inference allow list;
- nothing is created when a check fails: model lifecycle, fine-tune and inference allow lists, the
  region's sizes, an existing cluster's size, the parameter names (the original created the cluster
  first, and only printed a warning for the deployment VM).
"""

from __future__ import annotations

from typing import Callable, Iterator

from ...errors import AzmlError, NotConnected, SpecError
from ..base import ChatParams, ComputeInfo, DataFiles, Endpoint, JobRef, JobStatus, LogChunk, MetricPoint, ModelInfo, ModelRef, Workspace

CHAT_TASK = "chat-completion"
MODEL_LIST_LIMIT = 500


def _print(message: str) -> None:
    print(message, flush=True)


class AzureBackend:
    """Azure ML workspace + the ``azureml`` registry, through ``azure.ai.ml.MLClient``."""

    name = "azure"
    extra = None
    requires = ("azure.ai.ml", "azure.identity")

    def __init__(self) -> None:
        self.clients = None
        self.workspace: Workspace | None = None
        self.progress: Callable[[str], None] = _print
        self.deploy_timeout = 3600.0
        self._models: dict[str, ModelInfo] = {}
        self._component = None
        self._tracking_uri: str | None = None

    # ------------------------------------------------------------------ connect
    def connect(self, options: dict) -> Workspace:
        from . import connection
        from .remote import remote_error

        clients = connection.connect(options)
        try:
            ws = clients.workspace.workspaces.get(clients.workspace_name)
        except Exception as err:
            raise remote_error(err, f"open workspace '{clients.workspace_name}'") from None
        self.clients = clients
        self._tracking_uri = getattr(ws, "mlflow_tracking_uri", None)
        self.workspace = Workspace(
            backend=self.name,
            name=clients.workspace_name,
            key=f"azure:{clients.subscription_id}/{clients.resource_group}/{clients.workspace_name}",
            location=str(getattr(ws, "location", "") or ""),
            registry=clients.registry_name,
            details={
                "subscription": clients.subscription_id,
                "resource group": clients.resource_group,
                "credential": clients.credential_name,
            },
        )
        return self.workspace

    def _ws(self):
        if self.clients is None:
            raise NotConnected("not connected to Azure; run %azml_connect --backend azure first.")
        return self.clients.workspace

    def _registry(self, name: str | None = None):
        self._ws()
        if not name or name == self.clients.registry_name:
            return self.clients.registry
        from azure.ai.ml import MLClient

        return MLClient(self.clients.credential, registry_name=name)

    # ------------------------------------------------------------------ models
    def get_model(self, name: str, version: str | None = None, label: str | None = "latest") -> ModelInfo:
        from . import modelcard
        from .remote import is_not_found, remote_error

        registry, name, version = _parse_model_id(name, version)
        client = self._registry(registry)
        try:
            if version:
                model = client.models.get(name, version=version)
            else:
                model = client.models.get(name, label=label or "latest")
        except Exception as err:
            if is_not_found(err):
                raise SpecError(
                    f"model '{name}'{' version ' + version if version else ''} is not in the "
                    f"'{registry or self.clients.registry_name}' registry; list models with %azml_models."
                ) from None
            raise remote_error(err, f"read model '{name}' from the registry") from None
        info = modelcard.from_sdk(model)
        self._models[info.id] = info
        return info

    def list_models(self, task: str = CHAT_TASK) -> list[ModelInfo]:
        """Registry models whose fine-tuning tasks include ``task`` (archived and retired ones left out)."""
        from . import modelcard
        from .remote import remote_error

        client = self._registry()
        out: list[ModelInfo] = []
        try:
            containers = list(client.models.list())
        except Exception as err:
            raise remote_error(err, "list registry models") from None
        def card(name: str) -> ModelInfo | None:
            try:
                return modelcard.from_sdk(client.models.get(name, label="latest"))
            except Exception:  # a model we cannot read is not one to offer
                return None

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=8) as pool:  # one GET per model: the listing has no tags
            cards = list(pool.map(card, [c.name for c in containers[:MODEL_LIST_LIMIT]]))
        for info in cards:
            if info and modelcard.supports_task(info, task) and not info.archived and not info.deprecated:
                out.append(info)
        return sorted(out, key=lambda m: m.name.lower())

    def tokenizer_for(self, model: ModelInfo):
        """The model's Hugging Face tokenizer when it is cached or reachable, else None."""
        import os

        hf_id = model.tags.get("huggingface_model_id") or model.tags.get("hf_model_id")
        if not hf_id:
            return None
        try:
            from transformers import AutoTokenizer
        except ImportError:
            return None
        for local_only in (True, False):
            if not local_only and os.environ.get("HF_HUB_OFFLINE") == "1":
                break
            try:
                return AutoTokenizer.from_pretrained(hf_id, local_files_only=local_only)
            except Exception:
                continue
        return None

    # ------------------------------------------------------------------ compute
    def check_compute(self, spec, model: ModelInfo) -> ComputeInfo:
        from . import compute

        return compute.check(self._ws(), spec, model)

    def ensure_compute(self, spec, model: ModelInfo) -> ComputeInfo:
        from . import compute

        return compute.ensure(self._ws(), spec, model, self.progress)

    def delete_compute(self, name: str) -> None:
        from . import compute

        compute.delete(self._ws(), name, self.progress)

    # ------------------------------------------------------------------ fine-tune
    def _get_component(self, version: str | None):
        from . import pipeline

        key = version or "latest"
        if self._component is None or self._component[0] != key:
            self._component = (key, pipeline.get_component(self._registry(), version))
        return self._component[1]

    def component_inputs(self, version: str | None = None) -> set[str]:
        from . import pipeline

        return pipeline.input_names(self._get_component(version))

    def ignored_parameters(self) -> dict[str, str]:
        return {}

    def submit(self, spec, effective, data: DataFiles, model: ModelInfo, compute: ComputeInfo) -> JobRef:
        from . import pipeline, upload
        from .remote import remote_error
        from ...spec import pipeline_display_name

        client = self._ws()
        component = self._get_component(spec.pipeline_version)
        inputs = pipeline.input_names(component)
        uploaded = upload.upload_all(client, pipeline.split_files(data), self.progress)
        call = pipeline.call_arguments(effective, inputs, model, compute, pipeline.data_uris(uploaded))
        gpus = compute.gpus_per_node if compute else 1
        display = spec.name or pipeline_display_name(spec.model, effective.values, gpus)
        tags = {**spec.tags, "azml.base_model": model.id, "azml.base_model_name": model.name}
        job = pipeline.build_job(component, call, display, tags)
        try:
            created = client.jobs.create_or_update(job, experiment_name=spec.experiment_name)
        except Exception as err:
            raise remote_error(err, f"submit the {pipeline.COMPONENT} job") from None
        self.progress(f"Submitted {created.name} ({display}) to experiment {spec.experiment_name}.")
        return JobRef(created.name, self.name, display, spec.experiment_name, getattr(created, "studio_url", None))

    # ------------------------------------------------------------------ jobs
    def status(self, job: str) -> JobStatus:
        from . import jobs

        return jobs.status(self._ws(), job)

    def logs(self, job: str, cursor: object = None) -> LogChunk:
        from . import jobs

        return jobs.logs(self._ws(), job, cursor)

    def metrics(self, job: str) -> dict[str, list[MetricPoint]]:
        from . import jobs

        client = self._ws()
        try:
            experiment = client.jobs.get(job).experiment_name
        except Exception:
            return {}
        return jobs.metrics(self.clients.credential, self._tracking_uri, experiment, job)

    def cancel(self, job: str) -> JobStatus:
        from . import jobs

        jobs.cancel(self._ws(), job)
        return jobs.status(self._ws(), job)

    def list_jobs(self) -> list[JobStatus]:
        from . import jobs

        return jobs.list_jobs(self._ws())

    # ------------------------------------------------------------------ register / deploy
    def _foundation(self, model_id: str | None) -> ModelInfo | None:
        if not model_id:
            return None
        if model_id in self._models:
            return self._models[model_id]
        try:
            return self.get_model(model_id)
        except AzmlError:
            return None

    def register(self, job: str, name: str | None = None, version: str | None = None) -> ModelRef:
        from . import deploy

        client = self._ws()
        try:
            base_id = (client.jobs.get(job).tags or {}).get(deploy.TAG_BASE)
        except Exception:
            base_id = None  # register() reads the job again and reports the error
        return deploy.register(client, job, name=name, version=version, foundation=self._foundation(base_id),
                               progress=self.progress)

    def get_registered_model(self, name: str, version: str | None = None, label: str | None = None) -> ModelRef:
        from . import deploy

        return deploy.get_registered(self._ws(), name, version, label)

    def deploy(self, model: ModelRef, spec) -> Endpoint:
        from . import deploy

        allowed = deploy.inference_allow_list(model, self._foundation)
        return deploy.deploy(self._ws(), model, spec, allowed, timeout=self.deploy_timeout, progress=self.progress)

    def get_endpoint(self, name: str) -> Endpoint:
        from . import deploy

        return deploy.get_endpoint(self._ws(), name)

    def list_endpoints(self) -> list[Endpoint]:
        from . import deploy

        return deploy.list_endpoints(self._ws())

    def invoke(self, endpoint: str, request: dict) -> dict:
        from . import deploy

        return deploy.invoke(self._ws(), endpoint, request)

    def stream_chat(self, endpoint: str, messages: list[dict], params: ChatParams) -> Iterator[str]:
        from . import deploy

        return deploy.stream_chat(self._ws(), endpoint, messages, params)

    def delete_endpoint(self, name: str) -> None:
        from . import deploy

        deploy.delete_endpoint(self._ws(), name, self.progress)


def _parse_model_id(ref: str, version: str | None) -> tuple[str | None, str, str | None]:
    """(registry or None, name, version) from a name or an azureml://registries/... id."""
    if ref.startswith("azureml://registries/"):
        parts = ref[len("azureml://"):].split("/")
        registry = parts[1] if len(parts) > 1 else None
        name = parts[3] if len(parts) > 3 and parts[2] == "models" else ref
        ver = parts[5] if len(parts) > 5 and parts[4] == "versions" else version
        return registry, name, ver
    return None, ref, version
