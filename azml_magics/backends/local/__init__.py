"""The ``local`` backend: the whole lifecycle on this machine, no cloud account.

Fine-tuning is real (transformers + TRL + PEFT in a child process), runs, metrics and the model
registry are a real MLflow store (SQLite under the home folder), and endpoints are real HTTP
servers on 127.0.0.1. Importing this module imports nothing heavy: each method imports what it
needs when it runs.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from ...errors import AzmlError, NotConnected
from ..base import ChatParams, ComputeInfo, DataFiles, Endpoint, JobRef, JobStatus, LogChunk, MetricPoint, ModelInfo, ModelRef, Workspace
from . import jobfiles
from .params import IGNORED

DEFAULT_HOME = "~/.azml_magics"


class LocalBackend:
    """Runs everything on this machine; see the module docstring."""

    name = "local"
    extra = "local"
    requires = ("torch", "transformers", "peft", "trl", "mlflow", "fastapi", "uvicorn")

    def __init__(self, home: str | Path | None = None):
        self.home: Path | None = Path(home).expanduser().resolve() if home else None

    # ------------------------------------------------------------------ workspace
    def connect(self, options: dict) -> Workspace:
        """Use (and create) the home folder: MLflow store, job folders, endpoint records."""
        home = options.get("home") or self.home or os.environ.get("AZML_MAGICS_HOME") or DEFAULT_HOME
        self.home = Path(home).expanduser().resolve()
        try:
            for sub in ("jobs", "endpoints", "mlartifacts"):
                (self.home / sub).mkdir(parents=True, exist_ok=True)
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
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return ComputeInfo(name="local", size=f"this machine ({cpus} CPU cores)", gpus_per_node=1, created=False)

    def ensure_compute(self, spec, model: ModelInfo) -> ComputeInfo:
        return self.check_compute(spec, model)

    def ignored_parameters(self) -> dict[str, str]:
        return dict(IGNORED)

    # ------------------------------------------------------------------ jobs
    def submit(self, spec, effective, data: DataFiles, model: ModelInfo, compute: ComputeInfo | None = None) -> JobRef:
        """Write the job folder and start the trainer process; returns at once."""
        from . import jobs, models, registry

        home = self._home()
        if data is None or not data.train:
            raise AzmlError("the local backend needs prepared training data (data.train); run %azml_data first.")
        resolved = models.resolve(spec.model)
        name = spec.name or self._new_job_name(resolved.name)
        experiment = spec.experiment_name
        experiment_id = registry.ensure_experiment(home, experiment)
        values = dict(effective.values)
        job = {
            "name": name,
            "home": str(home),
            "spec": spec.to_dict(),
            "parameters": values,
            "ignored": {k: v for k, v in IGNORED.items() if k in values},
            "data": asdict(data),
            "model": {"spec": spec.model, "kind": resolved.kind, "ref": resolved.ref, "name": resolved.name},
            "experiment": experiment,
            "experiment_id": experiment_id,
            "submitted": time.time(),
        }
        folder = jobs.create(home, name, job)
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

    def wait(self, job: str, timeout: float | None = None) -> JobStatus:
        """Block until the job ends (scripts, tests)."""
        from . import jobs

        return jobs.to_job_status(jobs.wait(self._job_dir(job), timeout))

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

    def model_dir(self, model: ModelRef) -> Path:
        """The Hugging Face folder of a registered model (what the endpoint loads)."""
        from . import registry

        return registry.hf_model_dir(model.id, home=self._home())

    # ------------------------------------------------------------------ endpoints
    def deploy(self, model: ModelRef, spec) -> Endpoint:
        from . import endpoints

        name = spec.endpoint or f"ultrachat-completion-{int(time.time())}"
        return endpoints.start_endpoint(
            self._home(), name, self.model_dir(model), model_ref=f"{model.name}:{model.version}",
            deployment=spec.deployment,
            server_args=("--request-timeout", str(spec.request_timeout_ms / 1000)),
        )

    def get_endpoint(self, name: str) -> Endpoint:
        from . import endpoints

        return endpoints.get_endpoint(self._home(), name)

    def list_endpoints(self) -> list[Endpoint]:
        from . import endpoints

        return endpoints.list_endpoints(self._home())

    def _client(self, name: str):
        from ...client import EndpointClient
        from . import endpoints

        endpoint = endpoints.get_endpoint(self._home(), name)
        return EndpointClient(endpoint.scoring_uri, endpoints.read_key(self._home(), name),
                              openai_base_url=endpoint.openai_base_url)

    def endpoint_key(self, name: str) -> str:
        """The endpoint's key, for clients the user builds; callers must never print it."""
        from . import endpoints

        return endpoints.read_key(self._home(), name)

    def invoke(self, endpoint: str, request: dict) -> dict:
        return self._client(endpoint).score(request)

    def stream_chat(self, endpoint: str, messages: list[dict], params: ChatParams) -> Iterator[str]:
        return self._client(endpoint).stream_chat(messages, params)

    def delete_endpoint(self, name: str) -> None:
        from . import endpoints

        endpoints.stop_endpoint(self._home(), name)
