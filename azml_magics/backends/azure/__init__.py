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
- tags ``azml.created_by`` / ``azml.record`` on the cluster, endpoint, deployment and job (owned.py):
  a damaged state record is rebuilt from them, so ``%azml_delete --all`` still finds what bills;
- nothing is created when a check fails: model lifecycle, fine-tune and inference allow lists, the
  region's sizes, an existing cluster's size, the parameter names, and the upload itself (data goes
  up before the cluster is created, so a missing Storage Blob Data Contributor role on an identity-based
  datastore is one line with nothing created; the original created the cluster first, and only printed
  a warning for the deployment VM).
"""

from __future__ import annotations

from typing import Callable, Iterator

from ...errors import AzmlError, NotConnected, NotFound, SpecError
from ...scoring import GenerationParams
from ..base import COMPUTE_DELETION, DATA_UPLOAD, ENDPOINT_KEY, ESTIMATE, FINETUNING_JOBS, OWNED_RESOURCES, REGISTERED_MODELS, REGISTRY_DEPLOY, TERMINAL_STATES, TOKENIZER, TRACKING, ComputeInfo, Endpoint, JobRef, JobStatus, LogChunk, MetricPoint, ModelInfo, ModelRef, Tracking, Workspace

CHAT_TASK = "chat-completion"
MODEL_LIST_LIMIT = 500


def _print(message: str) -> None:
    print(message, flush=True)


class AzureBackend:
    """Azure ML workspace + the ``azureml`` registry, through ``azure.ai.ml.MLClient``."""

    name = "azure"
    extra = None
    requires = ("azure.ai.ml", "azure.identity")
    capabilities = frozenset({TOKENIZER, REGISTERED_MODELS, COMPUTE_DELETION, REGISTRY_DEPLOY, OWNED_RESOURCES,
                              TRACKING, DATA_UPLOAD, FINETUNING_JOBS, ENDPOINT_KEY, ESTIMATE})

    def __init__(self) -> None:
        self.clients = None
        self.workspace: Workspace | None = None
        self.progress: Callable[[str], None] = _print
        self.deploy_timeout = 3600.0
        self._models: dict[str, ModelInfo] = {}
        self._component = None
        self._uploaded: tuple[dict, dict] | None = None  # (files, upload.Uploaded per split) of upload_data
        self._tracking_uri: str | None = None
        self._tokenizers: dict[str, object] = {}  # Hugging Face id -> tokenizer (None: not at hand)
        self.record: str | None = None  # the state record's id, tagged on what we create (owned.py)
        self._serverless: dict[str, bool] = {}  # endpoint name -> whether it is a serverless endpoint

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
        from ... import defaults
        from ...state import record_id

        self.record = record_id(options.get("home") or defaults.default_home(), self.workspace.key)
        return self.workspace

    def _owner_tags(self) -> dict[str, str]:
        from .owned import owner_tags

        self._ws()
        return owner_tags(self.record)

    def tracking(self) -> Tracking:
        """The workspace's MLflow, signed with this connection's credential (tracking.py)."""
        from . import tracking

        self._ws()
        if not self._tracking_uri:
            raise AzmlError(f"workspace {self.workspace.name} reports no mlflow_tracking_uri; evaluation runs "
                            "cannot be logged there.")
        return Tracking(tracking.client(self._tracking_uri, self.clients.credential),
                        where=f"workspace {self.workspace.name}'s MLflow", artifacts=False,
                        no_artifacts="Azure ML run files need the azureml-mlflow plugin, whose newest release "
                                     "(1.62.0.post6) pins mlflow-skinny<=3.15.0")

    def owned_resources(self) -> dict[str, dict[str, dict]]:
        """The endpoints, jobs and clusters tagged with this home's record id (see owned.py)."""
        from . import owned

        return owned.owned_resources(self._ws(), self.record)

    def _ws(self):
        if self.clients is None:
            raise NotConnected("not connected to Azure; run %azml_connect --backend azure first.")
        return self.clients.workspace

    def _registry(self, name: str | None = None):
        self._ws()
        if not name or name == self.clients.registry_name:
            return self.clients.registry
        from azure.ai.ml import MLClient

        from .connection import SDK_BARS

        return MLClient(self.clients.credential, registry_name=name, show_progress=SDK_BARS)

    # ------------------------------------------------------------------ models
    def get_model(self, name: str, version: str | None = None, label: str | None = "latest") -> ModelInfo:
        from . import modelcard
        from .remote import is_not_found, remote_error

        registry, name, version = modelcard.parse_model_id(name, version)
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
        info = modelcard.from_sdk(model, modelcard.raw_properties(client, name, str(model.version)))
        self._models[info.id] = info
        return info

    def list_models(self, task: str = CHAT_TASK) -> list[ModelInfo]:
        """Registry models whose fine-tuning tasks include ``task``, live ones first; each card carries
        its state (live, archived, retiring on a date), allow lists and minimum SKU."""
        from . import modelcard
        from .remote import remote_error

        client = self._registry()
        out: list[ModelInfo] = []
        try:
            # "All": the default view (ActiveOnly) hides archived models, which the list shows with their state.
            # A plain string: SDK 1.35's registry list sends an enum member as 'ListViewType.ALL'.
            containers = list(client.models.list(list_view_type="All"))
        except Exception as err:
            raise remote_error(err, "list registry models") from None
        def card(name: str) -> ModelInfo | None:
            try:
                model = client.models.get(name, label="latest")
                return modelcard.from_sdk(model, modelcard.raw_properties(client, name, str(model.version)))
            except Exception:  # a model we cannot read is not one to offer
                return None

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=8) as pool:  # one GET per model: the listing has no tags
            cards = list(pool.map(card, [c.name for c in containers[:MODEL_LIST_LIMIT]]))
        for info in cards:
            if info and modelcard.supports_task(info, task):
                out.append(info)
        return sorted(out, key=lambda m: (bool(m.archived or m.deprecated), m.name.lower()))

    def estimate(self, plan):
        """Rows, tokens and optimizer steps of a pipeline run (plan_estimate.py says what it cannot know)."""
        from . import plan_estimate

        return plan_estimate.estimate_plan(plan, self.tokenizer_for(plan.model))

    def tokenizer_for(self, model: ModelInfo):
        """The model's Hugging Face tokenizer when it is cached or reachable, else None."""
        hf_id = model.tags.get("huggingface_model_id") or model.tags.get("hf_model_id")
        if not hf_id:
            return None
        if hf_id not in self._tokenizers:  # one load per kernel: the data checks and the estimate share it
            from .hf import load_tokenizer

            self._tokenizers[hf_id] = load_tokenizer(model.name, hf_id)
        return self._tokenizers[hf_id]

    # ------------------------------------------------------------------ compute
    def check_compute(self, spec, model: ModelInfo) -> ComputeInfo:
        from . import compute

        return compute.check(self._ws(), spec, model)

    def ensure_compute(self, spec, model: ModelInfo) -> ComputeInfo:
        from . import compute

        return compute.ensure(self._ws(), spec, model, self.progress, tags=self._owner_tags())

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

    def check_finetuning(self, spec, model: ModelInfo, mode: str) -> ComputeInfo | None:
        from . import finetuning

        return finetuning.check(self._ws(), spec, model, mode)

    def delete_subscription(self, name: str) -> None:
        from . import finetuning

        finetuning.delete_subscription(self._ws(), name, self.progress)

    def upload_data(self, plan) -> None:
        """Upload the plan's data (data assets named by content hash) before any cluster is created."""
        from . import pipeline, upload

        files = pipeline.split_files(plan.data)
        self._uploaded = (files, upload.upload_all(self._ws(), files, self.progress))

    def submit(self, plan) -> JobRef:
        """Submit the chat_completion_pipeline job on the data upload_data sent (uploaded here if not)."""
        from . import pipeline
        from .remote import remote_error

        spec, effective, data, model, compute = plan.spec, plan.effective, plan.data, plan.model, plan.compute
        client = self._ws()
        if plan.mode != "pipeline":
            from . import finetuning

            subscriptions = finetuning.ensure_subscription(client, model, self.progress)
            try:
                if self._uploaded is None or self._uploaded[0] != pipeline.split_files(data):
                    self.upload_data(plan)
                uploaded = self._uploaded[1]
                tags = {**spec.tags, "azml.base_model": model.id, "azml.base_model_name": model.name, **self._owner_tags()}
                return finetuning.submit(client, plan, pipeline.data_uris(uploaded), tags, self.progress, subscriptions)
            except BaseException:  # nothing was recorded yet: a subscription made for this job goes with it
                for name in subscriptions:
                    finetuning.delete_subscription(client, name, self.progress)
                raise
        component = self._get_component(spec.pipeline_version)
        inputs = pipeline.input_names(component)
        if self._uploaded is None or self._uploaded[0] != pipeline.split_files(data):
            self.upload_data(plan)
        uploaded = self._uploaded[1]
        call = pipeline.call_arguments(effective, inputs, model, compute, pipeline.data_uris(uploaded))
        display = plan.display_name
        tags = {**spec.tags, "azml.base_model": model.id, "azml.base_model_name": model.name, **self._owner_tags()}
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
        """Cancel JOB; one that ended meanwhile (the service refuses to cancel it) is simply its final status."""
        from ...errors import AzmlError
        from . import jobs

        try:
            jobs.cancel(self._ws(), job)
        except AzmlError:
            status = jobs.status(self._ws(), job)
            if status.state in TERMINAL_STATES:
                return status
            raise
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

        from . import finetuning

        client = self._ws()
        try:
            found = client.jobs.get(job)
            base_id = (found.tags or {}).get(deploy.TAG_BASE)
        except Exception:
            found = base_id = None  # register() reads the job again and reports the error
        if found is not None and finetuning.is_finetuning_job(found):
            return finetuning.register(client, found, self.progress)
        return deploy.register(client, job, name=name, version=version, foundation=self._foundation(base_id),
                               progress=self.progress)

    def get_registered_model(self, name: str, version: str | None = None, label: str | None = None) -> ModelRef:
        from . import deploy

        return deploy.get_registered(self._ws(), name, version, label)

    def registry_model(self, model_id: str) -> ModelRef:
        """A registry model (a base model) as a ref that deploy() takes: the registry id is the deployment's
        model, and the card's inference allow list is checked as for a fine-tuned one."""
        from . import deploy

        return deploy.registry_ref(self.get_model(model_id))

    def deploy(self, model: ModelRef, spec) -> Endpoint:
        from . import deploy, finetuning

        if spec.engine not in (None, "auto"):  # before anything is created
            raise SpecError(f"engine: {spec.engine} is the local endpoint's setting; an Azure endpoint serves with the "
                            "model's own inference container. Remove engine from the deploy spec.", path="engine")
        if finetuning.is_serverless_model(self._ws(), model):
            endpoint = finetuning.deploy(self._ws(), model, spec, self.progress, self._owner_tags())
            self._serverless[endpoint.name] = True
            return endpoint

        allowed = deploy.inference_allow_list(model, self._foundation)
        return deploy.deploy(self._ws(), model, spec, allowed, timeout=self.deploy_timeout, progress=self.progress,
                             tags=self._owner_tags())

    def _is_serverless(self, name: str) -> bool:
        """Whether endpoint NAME is a serverless one (asked once per name, then remembered)."""
        from . import finetuning

        if name not in self._serverless:
            self._serverless[name] = finetuning.get(self._ws(), name) is not None
        return self._serverless[name]

    def get_endpoint(self, name: str) -> Endpoint:
        from . import deploy, finetuning

        if self._is_serverless(name):
            found = finetuning.get(self._ws(), name)
            if found is not None:
                return found
            self._serverless.pop(name, None)
            raise NotFound(f"endpoint {name} does not exist in this workspace; see %azml_endpoints.")
        return deploy.get_endpoint(self._ws(), name)

    def list_endpoints(self) -> list[Endpoint]:
        from . import deploy, finetuning

        try:
            serverless = [finetuning.endpoint_of(ep) for ep in self._ws().serverless_endpoints.list()]
        except Exception:  # noqa: BLE001 - a workspace without serverless endpoints still lists its online ones
            serverless = []
        return deploy.list_endpoints(self._ws()) + serverless

    def endpoint_key(self, name: str) -> str:
        """The endpoint's primary key, for a client the user builds (openai_client); never shown."""
        from . import finetuning
        from .remote import remote_error

        if self._is_serverless(name):
            return finetuning.key(self._ws(), name)
        try:
            return self._ws().online_endpoints.get_keys(name=name).primary_key
        except Exception as err:
            raise remote_error(err, f"read the keys of endpoint {name}") from None

    def invoke(self, endpoint: str, request: dict) -> dict:
        from . import deploy, finetuning

        if not self._is_serverless(endpoint):
            return deploy.invoke(self._ws(), endpoint, request)
        from ... import scoring

        if "messages" in request:  # already an OpenAI chat body
            return finetuning.chat(self._ws(), endpoint, request)
        parsed = scoring.parse_score_request(request)  # a /score body: sent as the chat route's
        reply = finetuning.chat(self._ws(), endpoint, scoring.build_chat_request(parsed.conversations[0], parsed.params))
        return {"output": reply["choices"][0]["message"]["content"]}

    def stream_chat(self, endpoint: str, messages: list[dict], params: GenerationParams) -> Iterator:
        from . import deploy, finetuning

        if not self._is_serverless(endpoint):
            return deploy.stream_chat(self._ws(), endpoint, messages, params)
        from ... import scoring

        body = finetuning.chat(self._ws(), endpoint, scoring.build_chat_request(messages, params))
        choice = body["choices"][0]
        prompt_tokens, completion_tokens = scoring.usage_counts(body.get("usage"))
        reply = scoring.Reply(choice["message"]["content"], choice.get("finish_reason"), prompt_tokens, completion_tokens)
        return iter([reply.text, reply])  # answered whole: one piece, then the finished Reply

    def delete_endpoint(self, name: str) -> None:
        from . import deploy, finetuning

        if self._is_serverless(name):
            finetuning.delete(self._ws(), name, self.progress)
            self._serverless.pop(name, None)
            return
        deploy.delete_endpoint(self._ws(), name, self.progress)

