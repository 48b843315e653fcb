"""The ``local`` backend: the whole lifecycle on this machine, no cloud account.

Fine-tuning is real (transformers + TRL + PEFT in a child process), runs, metrics and the model
registry are a real MLflow store (SQLite under the home folder), and endpoints are real HTTP
servers on 127.0.0.1. Importing this module imports nothing heavy: each method imports what it
needs when it runs.
"""

from __future__ import annotations

import re
import secrets
import time
import weakref
from pathlib import Path
from typing import Iterator

from ... import defaults
from ...errors import AzmlError, NotConnected, SpecError
from ...scoring import GenerationParams
from ..base import ENDPOINT_KEY, ENDPOINT_LIMITS, ESTIMATE, LOCAL_WEIGHTS, OWNED_RESOURCES, REGISTERED_MODELS, TOKENIZER, TRACKING, ComputeInfo, Endpoint, JobRef, JobStatus, LogChunk, MetricPoint, ModelInfo, ModelRef, Tracking, Workspace
from . import jobfiles
from .client import EndpointClient, EndpointClients
from .params import IGNORED

class LocalBackend:
    """Runs everything on this machine; see the module docstring."""

    name = "local"
    extra = "local"
    requires = ("torch", "transformers", "peft", "trl", "mlflow", "fastapi", "uvicorn")
    capabilities = frozenset({TOKENIZER, REGISTERED_MODELS, ENDPOINT_KEY, OWNED_RESOURCES, LOCAL_WEIGHTS, ESTIMATE,
                              ENDPOINT_LIMITS, TRACKING})

    def __init__(self, home: str | Path | None = None):
        self.home: Path | None = Path(home).expanduser().resolve() if home else None
        self._clients = EndpointClients()  # one per endpoint, reused by every chat message
        weakref.finalize(self, self._clients.close)  # a backend dropped without close() still closes them

    def close(self) -> None:
        """Close the endpoint clients this backend holds (a disconnect); the endpoints keep running."""
        self._clients.close()

    # ------------------------------------------------------------------ workspace
    def connect(self, options: dict) -> Workspace:
        """Use (and create) the home folder: MLflow store, job folders, endpoint records."""
        home = options.get("home") or self.home or defaults.default_home()
        self.home = Path(home).expanduser().resolve()
        try:
            for sub in ("jobs", "endpoints", "mlartifacts"):
                (self.home / sub).mkdir(parents=True, exist_ok=True)
            (self.home / "endpoints").chmod(0o700)  # keys and logs of our servers: this user's only
        except OSError as exc:
            raise AzmlError(f"cannot use {self.home} as the local home ({exc.strerror}); pass --home DIR.") from None
        from . import registry

        return Workspace(
            backend=self.name,
            name=self.home.name,
            key=f"local:{self.home}",
            location=str(self.home),
            details={"home": str(self.home), "mlflow_tracking_uri": registry.tracking_uri(self.home)},
        )

    def tracking(self) -> Tracking:
        """The home's own MLflow store (the one jobs and registered models live in)."""
        from mlflow import MlflowClient

        from . import registry

        uri = registry.tracking_uri(self._home())
        return Tracking(MlflowClient(uri, registry_uri=uri), where=f"the local MLflow store ({uri})")

    def owned_resources(self) -> dict[str, dict[str, dict]]:
        """Every endpoint record and job folder of this home (all of them are ours), read from disk."""
        from . import endpoints, jobs

        home = self._home()
        found_endpoints = {r["name"]: {"model": r.get("model"), "deployment": r.get("deployment")}
                           for r in endpoints.records(home)}
        found_jobs = {}
        for name in jobs.list_names(home):
            status = jobfiles.read_json(jobfiles.job_dir(home, name) / "status.json")
            found_jobs[name] = {"state": status.get("state")}
        return {"endpoints": found_endpoints, "jobs": found_jobs}

    def _home(self) -> Path:
        if self.home is None:
            raise NotConnected("the local backend is not connected; run %azml_connect --backend local first.")
        return self.home

    # ------------------------------------------------------------------ models
    def get_model(self, name: str, version: str | None = None, label: str | None = "latest") -> ModelInfo:
        from . import models

        return models.model_info(name)

    def list_models(self, task: str = "chat-completion") -> list[ModelInfo]:
        from . import models, tiny_model

        found = [models.model_info(tiny_model.NAME)]
        for alias, hub_id in sorted(models.ALIASES.items()):
            m = models.resolve(hub_id)
            found.append(ModelInfo(name=m.name, version=m.version, id=f"local://{hub_id}", tasks=[models.TASK],
                                   model_defaults=dict(models.CPU_DEFAULTS), description=f"hub: {hub_id}",
                                   tags={"source": "hub", "ref": hub_id}))
        return [m for m in found if task in m.tasks]

    def tokenizer_for(self, info: ModelInfo):
        """The model's tokenizer, for data checks before submitting (lengths, chat template)."""
        from . import models

        return models.load_tokenizer(models.resolve(info.tags.get("ref") or info.name))

    def component_inputs(self, version: str | None = None) -> set[str]:
        from ...pipeline_inputs import PIPELINE_INPUTS

        return set(PIPELINE_INPUTS)

    def check_compute(self, spec, model: ModelInfo) -> ComputeInfo:
        """This machine: its GPUs (CUDA), Apple MPS, or its CPU cores."""
        from . import device

        found = device.detect()
        return ComputeInfo(name="local", size=found.describe(), gpus_per_node=found.count, created=False)

    def estimate(self, plan):
        """Tokens, optimizer steps, peak memory per device and time (a measured probe) for ``plan``;
        refuses in one line a local option this machine cannot run (a missing extra, QLoRA on a CPU)."""
        from . import probe

        return probe.estimate_plan(plan)

    def ensure_compute(self, spec, model: ModelInfo) -> ComputeInfo:
        return self.check_compute(spec, model)

    def ignored_parameters(self) -> dict[str, str]:
        return dict(IGNORED)

    # ------------------------------------------------------------------ jobs
    def submit(self, plan) -> JobRef:
        """Write the job folder for ``plan`` (a FinetunePlan) and start the trainer process; returns at once."""
        from . import jobs, models, registry

        spec, effective, data = plan.spec, plan.effective, plan.data
        home = self._home()
        if data is None or not data.train:
            raise AzmlError("the local backend needs prepared training data (data.train); run %azml_data first.")
        resolved = models.resolve(spec.model)
        name = spec.name or self._new_job_name(resolved.name)
        experiment = spec.experiment_name
        experiment_id = registry.ensure_experiment(home, experiment)
        values = dict(effective.values)
        from . import device

        launch = device.plan_launch(values, spec.local, device.detect(), effective.source_of("precision") == "your spec")
        estimate = getattr(plan, "estimate", None)
        job = jobfiles.JobRecord(
            name=name, home=str(home), spec=spec.to_dict(), parameters=values, data=data,
            model=jobfiles.JobModel(spec=spec.model, kind=resolved.kind, ref=resolved.ref, name=resolved.name),
            experiment=experiment, experiment_id=experiment_id,
            ignored={k: v for k, v in IGNORED.items() if k in values},
            launch=launch.to_json(), estimate=estimate.to_json() if estimate is not None else {},
        )
        folder = jobs.create(home, job)
        jobs.launch(folder)
        return JobRef(name=name, backend=self.name, display_name=name, experiment=experiment, url=str(folder))

    @staticmethod
    def _new_job_name(model_name: str) -> str:
        base = re.sub(r"[^A-Za-z0-9-]+", "-", model_name).strip("-").lower()[:40]
        return f"{base}-ft-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"

    def _job_dir(self, job: str) -> Path:
        from ...errors import NotFound

        folder = jobfiles.job_dir(self._home(), job)
        if not (folder / "status.json").exists():
            raise NotFound(f"no local job named '{job}' in {self._home()}; list jobs with %azml_status.")
        return folder

    def status(self, job: str) -> JobStatus:
        from . import jobs

        folder = self._job_dir(job)
        out = jobs.to_job_status(jobs.read_status(folder))
        out.url = str(folder)
        return out

    def logs(self, job: str, cursor: object = None) -> LogChunk:
        from . import jobs

        return jobs.read_log(self._job_dir(job), cursor)

    def metrics(self, job: str) -> dict[str, list[MetricPoint]]:
        """Series by name (loss, eval_loss, learning_rate, tokens_per_second, epoch, ...) from MLflow."""
        from . import registry

        status = jobfiles.read_json(self._job_dir(job) / "status.json")
        run_id = status.get("run_id")
        if not run_id:
            return {}
        mc = registry.client(self._home())
        out: dict[str, list[MetricPoint]] = {}
        for key in sorted(mc.get_run(run_id).data.metrics):
            history = mc.get_metric_history(run_id, key)
            out[key] = [MetricPoint(m.step, m.value, m.timestamp / 1000) for m in sorted(history, key=lambda m: (m.step, m.timestamp))]
        return out

    def cancel(self, job: str) -> JobStatus:
        from . import jobs

        return jobs.to_job_status(jobs.cancel(self._job_dir(job)))

    def list_jobs(self) -> list[JobStatus]:
        from . import jobs

        return [self.status(name) for name in jobs.list_names(self._home())]

    # ------------------------------------------------------------------ registry
    def register(self, job: str, name: str | None = None, version: str | None = None) -> ModelRef:
        from . import registry

        self._job_dir(job)
        return registry.register(self._home(), job, name, version)

    def get_registered_model(self, name: str, version: str | None = None, label: str | None = None) -> ModelRef:
        from . import registry

        ref = name if version is None else f"{name}:{version}"
        if label and label != "latest" and version is None:
            ref = f"{name}@{label}"
        return registry.resolve_model(self._home(), ref)

    def model_folder(self, ref: str) -> str:
        """The Hugging Face folder of a registered model (``models:/name/version``) or of a base model
        name (the tiny model, a cached hub id, a folder): what evaluation loads and a base deploy serves."""
        from . import models, registry

        if ref.startswith("models:/"):
            return str(registry.hf_model_dir(ref, home=self._home()))
        resolved = models.resolve(ref)
        models.check_available(resolved)
        if resolved.kind == "hub":
            from huggingface_hub import snapshot_download

            return snapshot_download(resolved.ref, local_files_only=True)
        return resolved.load_path

    def model_dir(self, model: ModelRef) -> Path:
        """The Hugging Face folder of a registered model (what the endpoint loads)."""
        from . import registry

        return registry.hf_model_dir(model.id, home=self._home())

    # ------------------------------------------------------------------ endpoints
    def deploy(self, model: ModelRef, spec) -> Endpoint:
        from . import endpoints, registry

        folder = self.model_dir(model)
        server_args = ["--request-timeout", str(spec.request_timeout_ms / 1000), "--engine",
                       self._engine_for(spec.engine or "auto", folder, model)]
        if server_args[-1] == "vllm" and registry.is_adapter_folder(folder):
            server_args += ["--base-model-dir", self.model_folder(_adapter_base(folder))]
        name = spec.endpoint or defaults.default_endpoint_name()
        self._clients.drop(name)  # a redeploy gets a new port and key
        return endpoints.start_endpoint(
            self._home(), name, folder, model_ref=f"{model.name}:{model.version}",
            deployment=spec.deployment, server_args=tuple(server_args),
        )

    @staticmethod
    def _engine_for(requested: str, folder: Path, model: ModelRef) -> str:
        """The endpoint's engine, decided here so that a refusal comes before any process starts."""
        from . import registry
        from .engines import EngineUnavailable, choose_engine

        try:
            engine = choose_engine(requested)
        except EngineUnavailable as exc:
            raise SpecError(f"cannot deploy with engine {requested}: {exc}.", path="engine") from None
        if registry.is_adapter_folder(folder) and engine != "vllm":
            raise SpecError(
                f"{model.name}:{model.version} is a LoRA adapter (fine-tuned with merge_lora_weights: false) and the "
                f"{engine} engine serves merged models only: fine-tune with merge_lora_weights: true, or deploy it "
                "with engine: vllm on a CUDA GPU.", path="engine")
        return engine

    def get_endpoint(self, name: str) -> Endpoint:
        from . import endpoints

        return endpoints.get_endpoint(self._home(), name)

    def list_endpoints(self) -> list[Endpoint]:
        from . import endpoints

        return endpoints.list_endpoints(self._home())

    def endpoint_client(self, name: str) -> EndpointClient:
        """The open client for endpoint ``name``: the same one for every message while its address and
        key stay the same (the record is read, the server is not probed)."""
        from . import endpoints

        scoring_uri, openai_base_url, key = endpoints.client_target(self._home(), name)
        return self._clients.get(name, scoring_uri, key, openai_base_url=openai_base_url)

    def endpoint_key(self, name: str) -> str:
        """The endpoint's key, for clients the user builds; callers must never print it."""
        from . import endpoints

        endpoints.verified_record(self._home(), name)  # a Down endpoint's port may be anyone's now
        return endpoints.read_key(self._home(), name)

    def endpoint_limits(self, name: str) -> dict:
        """The running server's caps, read from its /health (the server enforces them)."""
        from . import endpoints

        return endpoints.limits(self._home(), name)

    def invoke(self, endpoint: str, request: dict) -> dict:
        return self.endpoint_client(endpoint).score(request)

    def stream_chat(self, endpoint: str, messages: list[dict], params: GenerationParams) -> Iterator:
        """Text pieces, then the finished Reply (see EndpointClient.stream_chat)."""
        return self.endpoint_client(endpoint).stream_chat(messages, params)

    def delete_endpoint(self, name: str) -> None:
        from . import endpoints

        self._clients.drop(name)
        endpoints.stop_endpoint(self._home(), name)


def _adapter_base(folder: Path) -> str:
    import json

    base = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        raise SpecError(f"the adapter in {folder} names no base model (base_model_name_or_path in adapter_config.json).")
    return base
