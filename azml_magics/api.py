"""The Python API behind every magic: usable from scripts and tests without IPython.

A :class:`Session` holds the connected backend, the workspace and its state record. The module-level
:func:`session` returns the one the magics share. Every method checks what the user asked for
completely before it creates, uploads or bills anything, and raises :class:`AzmlError` (one line)
for user mistakes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from . import backends as backend_registry
from .backends.base import (
    TERMINAL_STATES,
    ChatParams,
    ComputeInfo,
    DataFiles,
    Endpoint,
    JobRef,
    JobStatus,
    ModelInfo,
    ModelRef,
    Workspace,
)
from .errors import AzmlError, NotConnected, NotFound, RemoteError, SpecError
from .spec import DeploySpec, EffectiveParameters, FinetuneSpec, merge_parameters, parse_deploy, parse_finetune
from .state import WorkspaceState

DEFAULT_HOME = "~/.azml_magics"


def default_home() -> Path:
    return Path(os.environ.get("AZML_MAGICS_HOME", DEFAULT_HOME)).expanduser()


@dataclass
class FinetunePlan:
    """Everything that will be submitted, checked, before anything is created."""

    spec: FinetuneSpec
    model: ModelInfo
    compute: ComputeInfo | None
    effective: EffectiveParameters
    data: DataFiles | None = None
    data_report: object = None  # azml_magics.data.ValidationReport, when data was checked
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def display_name(self) -> str:
        from .spec import pipeline_display_name

        if self.spec.name:
            return self.spec.name
        gpus = self.compute.gpus_per_node if self.compute else 1
        return pipeline_display_name(self.spec.model, self.effective.values, gpus)


@dataclass
class StatusReport:
    workspace: Workspace | None
    jobs: list[dict]
    models: list[dict]
    endpoints: list[dict]
    computes: list[dict]
    data: list[dict]


@dataclass
class Detached:
    """Returned by :meth:`Session.watch` when the user pressed Ctrl-C: the job keeps running."""

    job: str
    status: JobStatus | None


class Session:
    """One connection to a backend, plus the state of what it created."""

    def __init__(self, *, home: str | Path | None = None, default_backend: str = "local",
                 poll_interval: float = 5.0, registry: str = "azureml"):
        self.home = (Path(home).expanduser() if home else default_home()).resolve()
        self.default_backend = default_backend
        self.poll_interval = poll_interval
        self.registry = registry
        self.backend = None
        self.workspace: Workspace | None = None
        self.state: WorkspaceState | None = None

    # ------------------------------------------------------------------ connect
    def connect(self, backend: str | None = None, **options) -> Workspace:
        name = backend or self.default_backend
        instance = backend_registry.load(name)
        options = {k: v for k, v in options.items() if v is not None}
        if "home" in options:
            self.home = Path(options["home"]).expanduser().resolve()
        options["home"] = str(self.home)
        options.setdefault("registry", self.registry)
        workspace = instance.connect(options)
        self.backend, self.workspace = instance, workspace
        self.state = WorkspaceState(self.home, workspace.key)
        return workspace

    @property
    def connected(self) -> bool:
        return self.backend is not None

    def require(self):
        """The connected backend, connecting to the default one on first use."""
        if self.backend is None:
            self.connect()
        return self.backend

    def _state(self) -> WorkspaceState:
        self.require()
        return self.state

    # ------------------------------------------------------------------ models
    def model(self, name: str) -> ModelInfo:
        name, version, label = split_model_ref(name)
        return self.require().get_model(name, version=version, label=label)

    def models(self, task: str = "chat-completion") -> list[ModelInfo]:
        return self.require().list_models(task)

    # ------------------------------------------------------------------ data
    def prepare_data(self, source: str | None = None, *, model: str | None = None, **kwargs):
        from . import data

        if model and "tokenizer" not in kwargs:
            info = self.model(model)
            kwargs["tokenizer"] = self._tokenizer(info)
            kwargs.setdefault("supports_system_role", info.supports_system_role)
        return data.prepare(source or data.DEFAULT_SOURCE, **kwargs)

    def validate_data(self, files, *, model: str | None = None, **kwargs):
        from . import data

        if model and "tokenizer" not in kwargs:
            info = self.model(model)
            kwargs["tokenizer"] = self._tokenizer(info)
            kwargs.setdefault("supports_system_role", info.supports_system_role)
        return data.validate(files, **kwargs)

    def summarize_data(self, files, *, model: str | None = None, **kwargs):
        from . import data

        if isinstance(files, (str, Path)) and not Path(files).expanduser().exists():
            raise NotFound(f"no such file or folder: {Path(files).expanduser().resolve()}")
        if model and "tokenizer" not in kwargs:
            kwargs["tokenizer"] = self._tokenizer(self.model(model))
        return data.summarize(files, **kwargs)

    def _tokenizer(self, info: ModelInfo):
        loader = getattr(self.backend, "tokenizer_for", None)
        if loader is None:
            return None
        try:
            return loader(info)
        except AzmlError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken model folder is the user's to fix
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SpecError(f"cannot load the tokenizer of model {info.name}: {first}") from None

    # ------------------------------------------------------------------ fine-tune
    def plan_finetune(self, spec: FinetuneSpec | str | dict, *, check_data: bool = True,
                      dry_run: bool = False) -> FinetunePlan:
        """Check the spec against the model, the compute allow list, the component and the data."""
        spec = _as_finetune_spec(spec)
        backend = self.require()
        model = self.model(spec.model)
        if model.archived or model.deprecated:
            why = "archived" if model.archived else f"deprecated ({model.deprecated})"
            raise SpecError(
                f"model {model.name} version {model.version} is {why} in the registry and cannot be fine-tuned; "
                "pick another with %azml_models (models that support chat-completion fine-tuning)."
            )
        compute = backend.check_compute(spec.compute, model)
        inputs = backend.component_inputs(spec.pipeline_version)
        derived = {}
        if compute is not None and compute.gpus_per_node:
            derived["number_of_gpu_to_use_finetuning"] = compute.gpus_per_node
        effective = merge_parameters(spec.parameters, model.model_defaults, inputs, derived)
        effective.ignored = dict(backend.ignored_parameters())
        plan = FinetunePlan(spec, model, compute, effective)
        if effective.dropped_model_defaults:
            plan.notes.append(
                "model defaults that are not inputs of the component were dropped: "
                + ", ".join(f"{k}={v}" for k, v in effective.dropped_model_defaults.items())
            )
        if check_data:
            if dry_run:  # prepare hub data in a scratch folder: a dry run writes nothing of the user's
                import tempfile

                with tempfile.TemporaryDirectory(prefix="azml-dry-run-") as scratch:
                    plan.data_report = self._check_spec_data(spec, model, effective, out=scratch)
                plan.dry_run = True
            else:
                plan.data_report = self._check_spec_data(spec, model, effective)
        return plan

    def _check_spec_data(self, spec: FinetuneSpec, model: ModelInfo, effective: EffectiveParameters,
                         out: str | None = None):
        """Validate every row (strict: raise; drop: count) without writing anything of ours."""
        from . import data

        d = spec.data
        if d.is_local_files:
            files = {d.train_split: d.train}
            if d.test:
                files[d.test_split] = d.test
            if d.validation:
                files["validation"] = d.validation
        else:
            splits = (d.train_split, d.test_split) if out else data.SPLITS
            prepared = data.prepare(d.source, fraction=d.fraction, rows=d.rows, out=out or d.folder,
                                    splits=splits, train_split=d.train_split, test_split=d.test_split)
            files = {k: str(v) for k, v in prepared.files.items() if k in (d.train_split, d.test_split)}
        max_len = effective.values.get("max_seq_length", -1)
        report = data.validate(
            files,
            tokenizer=self._tokenizer(model),
            max_seq_length=None if max_len in (-1, None) else int(max_len),
            supports_system_role=model.supports_system_role,
            policy=d.policy,
            train_split=d.train_split,
            test_split=d.test_split,
        )
        report.raise_for_problems()
        return report

    def _write_spec_data(self, plan: FinetunePlan) -> DataFiles:
        # one folder per submission: a running job keeps reading its own files while the next is prepared
        clean_dir = self.home / "data" / time.strftime("%Y%m%d-%H%M%S") / f"{time.time_ns() % 10**6:06d}"
        # a model without a system role gets the system text folded into the first user turn
        return plan.data_report.write_clean(clean_dir, fold_system=not plan.model.supports_system_role)

    def finetune(self, spec: FinetuneSpec | str | dict, *, plan: FinetunePlan | None = None) -> JobRef:
        """Check everything, then create the compute (if needed) and submit. Returns at once."""
        if plan is not None and plan.dry_run:
            raise SpecError("that plan came from a dry run (its data was not kept); plan again without dry_run.")
        plan = plan or self.plan_finetune(spec)
        backend = self.require()
        if plan.data is None and plan.data_report is not None:
            plan.data = self._write_spec_data(plan)
        compute = backend.ensure_compute(plan.spec.compute, plan.model)
        if compute is not None and compute.created:
            self.state.add("computes", compute.name, size=compute.size)
        if plan.data is not None:
            self.state.add("data", plan.data.fingerprint[:16] or "data", train=plan.data.train,
                           test=plan.data.test, fingerprint=plan.data.fingerprint)
        job = backend.submit(plan.spec, plan.effective, plan.data, plan.model, compute)
        self.state.add(
            "jobs", job.name, display_name=job.display_name or plan.display_name, experiment=job.experiment,
            model=plan.model.id, url=job.url, state="Submitted",
        )
        return job

    # ------------------------------------------------------------------ jobs
    def jobs(self) -> list[JobStatus]:
        found = self.require().list_jobs()
        for job in found:  # keep %azml_status current
            if self.state.get("jobs", job.name) is not None:
                self.state.update("jobs", job.name, state=job.state)
        return found

    def job(self, name: str | None = None) -> JobStatus:
        return self.require().status(self._job_name(name))

    def _job_name(self, name: str | None) -> str:
        if name:
            return name
        latest = self._state().latest("jobs")
        if latest is None:
            raise NotFound("no job yet in this workspace; submit one with %%azml_finetune.")
        return latest.name

    def _last_completed_job(self) -> str:
        """The newest job of this workspace that completed (a canceled or failed one has no model)."""
        records = sorted(self._state().list("jobs"), key=lambda r: r.created, reverse=True)
        for record in records:
            try:
                if self.require().status(record.name).state == "Completed":
                    return record.name
            except AzmlError:
                continue
        if not records:
            raise NotFound("no job yet in this workspace; submit one with %%azml_finetune.")
        raise NotFound("no completed job in this workspace yet; wait for one (%azml_jobs) or name the job.")

    def logs(self, name: str | None = None, cursor=None):
        return self.require().logs(self._job_name(name), cursor)

    def metrics(self, name: str | None = None):
        return self.require().metrics(self._job_name(name))

    def cancel(self, name: str | None = None) -> JobStatus:
        name = self._job_name(name)
        status = self.require().cancel(name)
        self._state().update("jobs", name, state=status.state)
        return status

    def watch(self, name: str | None = None, on_update: Callable[[JobStatus], None] | None = None,
              interval: float | None = None, timeout: float | None = None) -> JobStatus | Detached:
        """Poll until the job ends, calling ``on_update`` each time; Ctrl-C detaches (the job goes on)."""
        name = self._job_name(name)
        interval = self.poll_interval if interval is None else interval
        start = time.monotonic()
        status = None
        try:
            while True:
                status = self.require().status(name)
                if on_update:
                    on_update(status)
                if status.state in TERMINAL_STATES:
                    self._state().update("jobs", name, state=status.state)
                    return status
                if timeout is not None and time.monotonic() - start > timeout:
                    return status
                time.sleep(interval)
        except KeyboardInterrupt:
            return Detached(name, status)

    # ------------------------------------------------------------------ models
    def register(self, job: str | None = None, name: str | None = None, version: str | None = None) -> ModelRef:
        job = job or self._last_completed_job()
        ref = self.require().register(job, name=name, version=version)
        self.state.add("models", f"{ref.name}:{ref.version}", id=ref.id, job=job)
        return ref

    def _resolve_registered(self, model: str) -> ModelRef:
        """A model for deployment: 'name:version', 'name@latest', or the last one registered here."""
        if model in (None, "", "last"):
            latest = self._state().latest("models")
            if latest is None:
                raise NotFound("no model registered in this workspace yet; run %azml_register first.")
            model = latest.name
        resolver = getattr(self.require(), "get_registered_model", None)
        name, version, label = split_model_ref(model)
        if resolver is None:
            return ModelRef(name=name, version=version or "latest", id=model)
        return resolver(name, version=version, label=label)

    # ------------------------------------------------------------------ endpoints
    def deploy(self, spec: DeploySpec | str | dict) -> Endpoint:
        if isinstance(spec, str):
            spec = parse_deploy(spec)
        elif isinstance(spec, dict):
            from .spec import deploy_from_dict

            spec = deploy_from_dict(spec)
        if spec.endpoint is None:
            spec.endpoint = f"ultrachat-completion-{int(time.time())}"
        model = self._resolve_registered(spec.model)
        backend = self.require()
        known_before = self.state.get("endpoints", spec.endpoint) is not None
        try:
            endpoint = backend.deploy(model, spec)
        except SpecError:
            raise  # refused before anything was created
        except BaseException:
            # a half-made endpoint bills too: remember it so %azml_delete --all removes it; but a
            # refusal that created nothing (or an endpoint we already knew) leaves the record alone
            if not known_before and self._endpoint_exists(spec.endpoint):
                self.state.add("endpoints", spec.endpoint, deployment=spec.deployment,
                               model=f"{model.name}:{model.version}", state="failed to deploy")
            raise
        self.state.add(
            "endpoints", endpoint.name, deployment=endpoint.deployment, model=f"{model.name}:{model.version}",
            instance_type=endpoint.instance_type, instance_count=endpoint.instance_count,
        )
        return endpoint

    def _endpoint_exists(self, name: str) -> bool:
        try:
            self.require().get_endpoint(name)
            return True
        except AzmlError:
            return False
        except Exception:  # noqa: BLE001 - unknown: assume it may exist, so it gets cleaned up
            return True

    def endpoints(self) -> list[Endpoint]:
        return self.require().list_endpoints()

    def _endpoint_name(self, name: str | None) -> str:
        if name:
            return name
        latest = self._state().latest("endpoints")
        if latest is None:
            raise NotFound("no endpoint in this workspace; deploy one with %azml_deploy.")
        return latest.name

    def invoke(self, endpoint: str | None, request: dict | str | Path) -> dict:
        if isinstance(request, (str, Path)):
            request = _read_request_file(Path(request))
        return self.require().invoke(self._endpoint_name(endpoint), request)

    def chat(self, endpoint: str | None, messages: list[dict] | str, params: ChatParams | None = None) -> str:
        messages = [{"role": "user", "content": messages}] if isinstance(messages, str) else messages
        from . import scoring

        response = self.invoke(endpoint, scoring.build_score_request(messages, params or ChatParams()))
        try:
            return scoring.score_output(response)
        except ValueError as exc:
            raise RemoteError(f"the endpoint answered in an unknown shape: {exc}") from None

    def openai_client(self, endpoint: str | None = None):
        """An ``openai.OpenAI`` client for a local endpoint's OpenAI route, holding its key (never printed)."""
        name = self._endpoint_name(endpoint)
        backend = self.require()
        key_of = getattr(backend, "endpoint_key", None)
        ep = backend.get_endpoint(name)
        if key_of is None or not ep.openai_base_url:
            raise SpecError(f"the {backend.name} backend's endpoints have no OpenAI route; use %azml_chat or invoke().")
        import openai

        return openai.OpenAI(base_url=ep.openai_base_url, api_key=key_of(name))

    def stream_chat(self, endpoint: str | None, messages: list[dict], params: ChatParams | None = None) -> Iterator[str]:
        return self.require().stream_chat(self._endpoint_name(endpoint), messages, params or ChatParams())

    def delete(self, endpoint: str | None = None, *, all: bool = False, compute: str | None = None) -> list[str]:
        """Delete an endpoint (or everything this workspace's state says we created). Returns what went."""
        backend = self.require()
        removed: list[str] = []
        if all:
            for record in self.state.list("endpoints"):
                backend.delete_endpoint(record.name)
                self.state.remove("endpoints", record.name)
                removed.append(f"endpoint {record.name}")
            for record in self.state.list("jobs"):
                status = None
                try:
                    status = backend.status(record.name)
                except AzmlError:
                    pass
                if status is not None and status.state not in TERMINAL_STATES:
                    status = backend.cancel(record.name)
                    removed.append(f"job {record.name} (canceled)")
                if status is not None:
                    self.state.update("jobs", record.name, state=status.state)
            for record in self.state.list("computes"):
                delete_compute = getattr(backend, "delete_compute", None)
                if delete_compute:
                    delete_compute(record.name)
                    self.state.remove("computes", record.name)
                    removed.append(f"compute {record.name}")
            return removed
        if compute:
            delete_compute = getattr(backend, "delete_compute", None)
            if delete_compute is None:
                raise SpecError(f"the {backend.name} backend has no compute clusters to delete.")
            delete_compute(compute)
            self.state.remove("computes", compute)
            removed.append(f"compute {compute}")
            if not endpoint:
                return removed
        name = self._endpoint_name(endpoint)
        if not self._endpoint_exists(name):
            known = self.state.remove("endpoints", name)
            if not known:
                raise NotFound(f"no endpoint named '{name}' in this workspace; %azml_status lists them.")
            removed.append(f"record of endpoint {name} (it was already gone)")
            return removed
        backend.delete_endpoint(name)
        self.state.remove("endpoints", name)
        removed.append(f"endpoint {name}")
        return removed

    # ------------------------------------------------------------------ status
    def status(self) -> StatusReport:
        if self.state is None:
            return StatusReport(None, [], [], [], [], [])
        self.state.reload()

        def rows(kind):
            return [{"name": r.name, "created": r.created, **r.info} for r in self.state.list(kind)]

        return StatusReport(self.workspace, rows("jobs"), rows("models"), rows("endpoints"), rows("computes"), rows("data"))


def _read_request_file(path: Path) -> dict:
    import json

    if not path.is_file():
        raise NotFound(f"request file not found: {path}")
    try:
        request = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"request file {path} is not valid JSON ({exc}); write the scoring request as a JSON object.") from None
    if not isinstance(request, dict):
        raise SpecError(f"request file {path} must hold a JSON object such as "
                        '{"input_data": {"input_string": [...], "parameters": {...}}}.')
    return request


def split_model_ref(ref: str) -> tuple[str, str | None, str | None]:
    """'name', 'name:3', 'name@latest' -> (name, version, label). URIs and paths pass through whole."""
    if "://" in ref or ref.startswith((".", "/", "~")):
        return ref, None, None
    if "@" in ref:
        name, label = ref.rsplit("@", 1)
        return name, None, label or "latest"
    if ":" in ref:
        name, version = ref.rsplit(":", 1)
        return name, version, None
    return ref, None, "latest"


def _as_finetune_spec(spec) -> FinetuneSpec:
    if isinstance(spec, FinetuneSpec):
        return spec
    if isinstance(spec, str):
        return parse_finetune(spec)
    if isinstance(spec, dict):
        from .spec import finetune_from_dict

        return finetune_from_dict(spec)
    raise SpecError(f"a fine-tune spec is YAML text, a dict or a FinetuneSpec (got {type(spec).__name__}).")


_SESSION: Session | None = None


def session() -> Session:
    """The session the magics share (created on first use)."""
    global _SESSION
    if _SESSION is None:
        _SESSION = Session()
    return _SESSION


def reset_session(new: Session | None = None) -> Session:
    global _SESSION
    _SESSION = new or Session()
    return _SESSION


def require_connected(s: Session) -> None:
    if not s.connected:
        raise NotConnected("not connected; run %azml_connect first (or %azml_connect --backend local).")
