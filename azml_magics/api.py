"""The Python API behind every magic: usable from scripts and tests without IPython.

A :class:`Session` holds the connected backend, the workspace and its state record. The module-level
:func:`session` returns the one the magics share. Every method checks what the user asked for
completely before it creates, uploads or bills anything, and raises :class:`AzmlError` (one line)
for user mistakes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from . import backends as backend_registry
from . import defaults, model_refs
from .backends.base import DATA_UPLOAD, ENDPOINT_KEY, ENDPOINT_LIMITS, ESTIMATE, FINETUNING_JOBS, OWNED_RESOURCES, TERMINAL_STATES, TOKENIZER
from .backends.base import DataFiles, Endpoint, JobRef, JobStatus, ModelInfo, ModelRef, Workspace
from .errors import AzmlError, NotFound, RemoteError, SpecError
from .plan import FinetunePlan, check_plan_data, make_plan, refuse_unusable_model
from .scoring import GenerationParams
from .spec import DeploySpec, FinetuneSpec, as_deploy_spec, as_finetune_spec
from .spec_modes import choose_mode
from .spec_values import split_model_ref
from .state import WorkspaceState


@dataclass
class Detached:
    """Returned by :meth:`Session.watch` when the user pressed Ctrl-C: the job keeps running."""

    job: str
    status: JobStatus | None


class Session:
    """One connection to a backend, plus the state of what it created."""

    def __init__(self, *, home: str | Path | None = None, default_backend: str = "local",
                 poll_interval: float = 5.0, registry: str = "azureml"):
        self.home = Path(home or defaults.default_home()).expanduser().resolve()
        self.default_backend = default_backend
        self.poll_interval = poll_interval
        self.registry = registry
        self.backend = None
        self.workspace: Workspace | None = None
        self.state: WorkspaceState | None = None

    # ------------------------------------------------------------------ connect
    def connect(self, backend: str | None = None, **options) -> Workspace:
        """Connect to backend ``backend`` (default: ``default_backend``) with its options (Azure: the
        workspace and credential; local: ``home``); returns the workspace and opens its state record."""
        name = backend or self.default_backend
        instance = backend_registry.load(name)
        options = {k: v for k, v in options.items() if v is not None}
        if "home" in options:
            self.home = Path(options["home"]).expanduser().resolve()
        options["home"] = str(self.home)
        options.setdefault("registry", self.registry)
        workspace = instance.connect(options)
        self.backend, self.workspace = instance, workspace
        recover = instance.owned_resources if OWNED_RESOURCES in instance.capabilities else None
        self.state = WorkspaceState(self.home, workspace.key, recover=recover)
        return workspace

    @property
    def connected(self) -> bool:
        """Whether a backend is connected (the API connects to the default one on first use)."""
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
        """The model card of ``name`` ('name', 'name:3' or 'name@label'): allow lists, defaults, state."""
        name, version, label = split_model_ref(name)
        return self.require().get_model(name, version=version, label=label)

    def models(self, task: str = "chat-completion") -> list[ModelInfo]:
        """The backend's models that support ``task``."""
        return self.require().list_models(task)

    # ------------------------------------------------------------------ data
    def prepare_data(self, source: str | None = None, *, model: str | None = None, **kwargs):
        """Download (hub) or read (files) the data, check every row with ``model``'s tokenizer and write
        the splits; keyword arguments go to :func:`azml_magics.data.prepare`. Returns its result."""
        from . import data

        prepared = data.prepare(source or defaults.DATASET_SOURCE, **self._model_checks(model, kwargs))
        data.record_prepared(self.home, prepared)
        return prepared

    def last_prepared(self) -> tuple[Path, dict[str, int]] | None:
        """The folder the last ``prepare_data`` wrote (and its rows per split), else the default data
        folder in the working directory when it holds a train split; None when there is neither."""
        from . import data

        return data.last_prepared(self.home)

    def validate_data(self, files, *, model: str | None = None, **kwargs):
        """Check every row of ``files`` (a path, or split -> path) against ``model``; returns the
        :class:`~azml_magics.data.ValidationReport` (problems with file and line, counts)."""
        from . import data

        return data.validate(files, **self._model_checks(model, kwargs))

    def summarize_data(self, files, *, model: str | None = None, **kwargs):
        """Rows, turns, token lengths (with ``model``'s tokenizer) and rendered examples of ``files``."""
        from . import data

        if isinstance(files, (str, Path)):
            from .files import require_data_path

            require_data_path(Path(files).expanduser())
        kwargs = self._model_checks(model, kwargs)
        kwargs.pop("supports_system_role", None)
        if model and kwargs.get("max_seq_length") is None:  # the limit training will use for this model
            limit = self.model(model).model_defaults.get("max_seq_length")
            kwargs["max_seq_length"] = limit if isinstance(limit, int) and limit > 0 else None
        return data.summarize(files, **kwargs)

    def _model_checks(self, model: str | None, kwargs: dict) -> dict:
        """The data-check options that come from the model: its tokenizer and whether it has a system role."""
        if model and "tokenizer" not in kwargs:
            info = self.model(model)
            kwargs["tokenizer"] = self._tokenizer(info)
            kwargs.setdefault("supports_system_role", info.supports_system_role)
        return kwargs

    def _tokenizer(self, info: ModelInfo):
        """The model's tokenizer for data checks, or None where the backend has none to offer."""
        backend = self.require()
        if TOKENIZER not in backend.capabilities:
            return None
        try:
            return backend.tokenizer_for(info)
        except AzmlError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken model folder is the user's to fix
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SpecError(f"cannot load the tokenizer of model {info.name}: {first}") from None

    # ------------------------------------------------------------------ fine-tune
    def plan_finetune(self, spec: FinetuneSpec | str | dict, *, check_data: bool = True,
                      dry_run: bool = False) -> FinetunePlan:
        """Check a spec (YAML text, dict or FinetuneSpec) against the model card, the compute allow list,
        the component's inputs and every data row; return the plan. Nothing is created or uploaded, and a
        dry run writes nothing of the user's (hub data is prepared in a scratch folder)."""
        spec = as_finetune_spec(spec)
        backend = self.require()
        model = self.model(spec.model)
        refuse_unusable_model(model)
        mode = choose_mode(spec, model, jobs_supported=FINETUNING_JOBS in backend.capabilities)
        if mode[0] == "pipeline":
            compute = backend.check_compute(spec.compute, model)
            plan = make_plan(spec, model, compute, backend.component_inputs(spec.pipeline_version),
                             backend.ignored_parameters(), mode)
        else:  # a FineTuning job: managed compute (VM size checked) or serverless (none)
            plan = make_plan(spec, model, backend.check_finetuning(spec, model, mode[0]), None, {}, mode)
        if check_data:
            tokenizer = self._tokenizer(model)
            if dry_run:
                import tempfile

                with tempfile.TemporaryDirectory(prefix="azml-dry-run-") as scratch:
                    plan.data_report = check_plan_data(plan, tokenizer, out=scratch)
                    plan.estimate = self._estimate(backend, plan)
                plan.dry_run = True
            else:
                plan.data_report = check_plan_data(plan, tokenizer)
                plan.estimate = self._estimate(backend, plan)
        return plan

    @staticmethod
    def _estimate(backend, plan: FinetunePlan):
        """The backend's estimate of tokens, steps, memory and time (None where it has none)."""
        return backend.estimate(plan) if ESTIMATE in backend.capabilities else None

    def _write_spec_data(self, plan: FinetunePlan) -> DataFiles:
        # one folder per submission: a running job keeps reading its own files while the next is prepared
        clean_dir = self.home / "data" / time.strftime("%Y%m%d-%H%M%S") / f"{time.time_ns() % 10**6:06d}"
        # a model without a system role gets the system text folded into the first user turn
        return plan.data_report.write_clean(clean_dir, fold_system=not plan.model.supports_system_role)

    def finetune(self, spec: FinetuneSpec | str | dict, *, plan: FinetunePlan | None = None) -> JobRef:
        """Plan ``spec`` (or take ``plan``), write this submission's clean data, create the compute if
        needed, submit, and record all three in the state; returns the job at once (watch it with
        :meth:`watch`)."""
        if plan is not None and plan.dry_run:
            raise SpecError("that plan came from a dry run (its data was not kept); plan again without dry_run.")
        plan = plan or self.plan_finetune(spec)
        plan.refuse_if_it_does_not_fit()
        backend = self.require()
        if plan.data is None and plan.data_report is not None:
            plan.data = self._write_spec_data(plan)
        if DATA_UPLOAD in backend.capabilities:
            backend.upload_data(plan)  # before the cluster: a storage refusal leaves nothing created
        compute = backend.ensure_compute(plan.spec.compute, plan.model) if plan.mode == "pipeline" else plan.compute
        if compute is not None and compute.created:
            self.state.add("computes", compute.name, size=compute.size)
        if plan.data is not None:
            self.state.add("data", plan.data.fingerprint[:16] or "data", train=plan.data.train,
                           test=plan.data.test, fingerprint=plan.data.fingerprint)
        plan.compute = compute
        job = backend.submit(plan)
        self.state.add(
            "jobs", job.name, display_name=job.display_name or plan.display_name, experiment=job.experiment,
            model=plan.model.id, url=job.url, state="Submitted",
            parameters={k: v for k, v in plan.effective.values.items() if k in defaults.KEY_PARAMETERS},
        )
        for kind, items in job.created.items():  # e.g. a marketplace subscription, removed by delete(all=True)
            for name, info in items.items():
                self.state.add(kind, name, **info)
        return job

    # ------------------------------------------------------------------ jobs
    def jobs(self) -> list[JobStatus]:
        """The backend's fine-tune jobs with their state (the state record is brought up to date)."""
        found = self.require().list_jobs()
        for job in found:  # keep %azml_status current
            if self.state.get("jobs", job.name) is not None:
                self.state.update("jobs", job.name, state=job.state)
        return found

    def job(self, name: str | None = None) -> JobStatus:
        """The status of job ``name`` (default: the latest submitted here): state, steps, progress."""
        return self.require().status(self.job_name(name))

    def job_name(self, name: str | None = None) -> str:
        """``name``, or the job submitted last in this workspace (NotFound when there is none)."""
        if name:
            return name
        latest = self._state().latest("jobs")
        if latest is None:
            raise NotFound("no job yet in this workspace; submit one with %%azml_finetune.")
        return latest.name

    def logs(self, name: str | None = None, cursor=None):
        """New log lines of a job since ``cursor`` (None: from the start); pass the returned cursor back."""
        return self.require().logs(self.job_name(name), cursor)

    def metrics(self, name: str | None = None):
        """A job's metrics: name -> list of MetricPoint (step, value, time)."""
        return self.require().metrics(self.job_name(name))

    def cancel(self, name: str | None = None) -> JobStatus:
        """Cancel a job (default: the latest); returns its status and records it."""
        name = self.job_name(name)
        status = self.require().cancel(name)
        self._state().update("jobs", name, state=status.state)
        return status

    def watch(self, name: str | None = None, on_update: Callable[[JobStatus], None] | None = None,
              interval: float | None = None, timeout: float | None = None,
              stop: threading.Event | None = None) -> JobStatus | Detached:
        """Poll job ``name`` (default: the latest) until it ends, calling ``on_update(status)`` each round.

        This is the one poll loop: the job view, the blocking magics and scripts all watch through it,
        and the job's final state is recorded here. Returns the last status (terminal, or the latest one
        when ``timeout`` seconds passed or ``stop`` was set); Ctrl-C returns :class:`Detached` and the
        job goes on.
        """
        name = self.job_name(name)
        interval = self.poll_interval if interval is None else interval
        backend = self.require()
        start = time.monotonic()
        status = None
        try:
            while True:
                status = backend.status(name)
                if on_update:
                    on_update(status)
                if status.state in TERMINAL_STATES:
                    self._state().update("jobs", name, state=status.state)
                    return status
                if timeout is not None and time.monotonic() - start > timeout:
                    return status
                if stop is None:
                    time.sleep(interval)
                elif stop.wait(interval):
                    return status
        except KeyboardInterrupt:
            return Detached(name, status)

    # ------------------------------------------------------------------ models
    def register(self, job: str | None = None, name: str | None = None, version: str | None = None) -> ModelRef:
        """Register the model a completed job made (default: the newest completed one); returns its ref."""
        model_refs.check_version(version)
        job = job or model_refs.last_completed_job(self.require(), self._state())
        ref = self.require().register(job, name=name, version=version)
        self.state.add("models", f"{ref.name}:{ref.version}", id=ref.id, job=job)
        return ref

    def registered_model(self, model: str | None = "last") -> ModelRef:
        """A registered model: 'name:version', 'name@latest', 'last' (registered here last), or 'base' /
        'base:REF' (the base model that one was fine-tuned from); see :mod:`azml_magics.model_refs`."""
        return model_refs.registered(self.require(), self.state, model)

    def base_model(self, model: str = "last") -> ModelRef:
        """The base model registered model ``model`` was fine-tuned from: a folder (local) or the registry
        model deployed as it is (Azure); see :mod:`azml_magics.model_refs`."""
        return model_refs.base(self.require(), self.state, model)

    def evaluate(self, candidates: list[str] | None = None, **options):
        """Compare ``candidates`` (default: the base model, then the last registered model) on held-out
        rows; returns an :class:`~azml_magics.evaluation.EvaluationResult`. The options (data, n, seed,
        params, judge, ...) are :func:`azml_magics.evaluation.evaluate`'s."""
        from .evaluation import evaluate

        return evaluate(self, candidates, **options)

    # ------------------------------------------------------------------ endpoints
    def deploy(self, spec: DeploySpec | str | dict) -> Endpoint:
        """Deploy a registered model as spec'd (YAML text, dict or DeploySpec); blocks until it answers.
        A half-made endpoint is recorded so that %azml_delete --all still removes it."""
        spec = as_deploy_spec(spec)
        if spec.endpoint is None:
            spec.endpoint = defaults.default_endpoint_name()
        model = self.registered_model(spec.model)
        backend = self.require()
        known_before = self.state.get("endpoints", spec.endpoint) is not None
        try:
            endpoint = backend.deploy(model, spec)
        except SpecError:
            raise  # refused before anything was created
        except BaseException:
            # a half-made endpoint bills too: remember it so %azml_delete --all removes it; but a
            # refusal that created nothing (or an endpoint we already knew) leaves the record alone
            if not known_before and self.endpoint_exists(spec.endpoint):
                self.state.add("endpoints", spec.endpoint, deployment=spec.deployment,
                               model=f"{model.name}:{model.version}", state="failed to deploy")
            raise
        self.state.add(
            "endpoints", endpoint.name, deployment=endpoint.deployment, model=f"{model.name}:{model.version}",
            instance_type=endpoint.instance_type, instance_count=endpoint.instance_count,
        )
        return endpoint

    def endpoint_exists(self, name: str) -> bool:
        """Whether the backend still has endpoint ``name`` (an unknown answer counts as yes, so it is cleaned up)."""
        try:
            self.require().get_endpoint(name)
            return True
        except AzmlError:
            return False
        except Exception:  # noqa: BLE001 - unknown: assume it may exist, so it gets cleaned up
            return True

    def endpoints(self) -> list[Endpoint]:
        """The backend's endpoints."""
        return self.require().list_endpoints()

    def endpoint_name(self, name: str | None = None) -> str:
        """``name``, or the endpoint deployed last in this workspace (NotFound when there is none)."""
        if name:
            return name
        latest = self._state().latest("endpoints")
        if latest is None:
            raise NotFound("no endpoint in this workspace; deploy one with %azml_deploy.")
        return latest.name

    def invoke(self, endpoint: str | None, request: dict | str | Path) -> dict:
        """Send a scoring request (a dict, or the path of a JSON file like the notebook's
        ``sample_score.json``) to an endpoint (default: the latest); returns the response body."""
        if isinstance(request, (str, Path)):
            from .files import read_request_file

            request = read_request_file(Path(request))
        from .scoring import check_sendable

        check_sendable(request)
        return self.require().invoke(self.endpoint_name(endpoint), request)

    def chat(self, endpoint: str | None, messages: list[dict] | str, params: GenerationParams | None = None) -> str:
        """One reply from an endpoint to ``messages`` (or one user message), through its /score route."""
        messages = [{"role": "user", "content": messages}] if isinstance(messages, str) else messages
        from . import scoring

        response = self.invoke(endpoint, scoring.build_score_request(messages, params or GenerationParams()))
        try:
            return scoring.score_output(response)
        except ValueError as exc:
            raise RemoteError(f"the endpoint answered in an unknown shape: {exc}") from None

    def endpoint_limits(self, endpoint: str | None = None) -> dict:
        """What the endpoint accepts (``{"max_new_tokens": N}``), where its backend can say; else ``{}``."""
        backend = self.require()
        return backend.endpoint_limits(self.endpoint_name(endpoint)) if ENDPOINT_LIMITS in backend.capabilities else {}

    def openai_client(self, endpoint: str | None = None):
        """An ``openai.OpenAI`` client for a local endpoint's OpenAI route, holding its key (never printed)."""
        name = self.endpoint_name(endpoint)
        backend = self.require()
        ep = backend.get_endpoint(name)
        if ENDPOINT_KEY not in backend.capabilities or not ep.openai_base_url:
            raise SpecError(f"the {backend.name} backend's endpoints have no OpenAI route; use %azml_chat or invoke().")
        import openai

        return openai.OpenAI(base_url=ep.openai_base_url, api_key=backend.endpoint_key(name))

    def stream_chat(self, endpoint: str | None, messages: list[dict], params: GenerationParams | None = None) -> Iterator:
        """The reply to ``messages`` as it is generated: text pieces (str), piece by piece where the
        backend streams, then one ``scoring.Reply`` (finish reason, token counts; None where the route
        does not report them). ``"".join(p for p in it if isinstance(p, str))`` is the text."""
        from .scoring import build_chat_request, check_sendable

        params = params or GenerationParams()
        check_sendable(build_chat_request(messages, params))
        return self.require().stream_chat(self.endpoint_name(endpoint), messages, params)

    def delete(self, endpoint: str | None = None, *, all: bool = False, compute: str | None = None) -> list[str]:
        """Delete an endpoint (or everything this workspace's state says we created). Returns what went."""
        from . import cleanup

        backend = self.require()
        if all:
            return cleanup.delete_everything(backend, self.state)
        removed: list[str] = []
        if compute:
            removed += cleanup.delete_compute(backend, self.state, compute)
            if not endpoint:
                return removed
        name = self.endpoint_name(endpoint)
        return removed + cleanup.delete_endpoint(backend, self.state, name, exists=self.endpoint_exists(name))

    # ------------------------------------------------------------------ status
    def status(self, check: bool = True):
        """Every workspace's saved record (no connection needed), each job and endpoint checked live where
        that needs no credentials (the connected backend, or local); returns overview.WorkspaceOverview list."""
        from . import overview

        return overview.overview(self, check=check)


_SESSION: Session | None = None


def session() -> Session:
    """The session the magics share (created on first use)."""
    global _SESSION
    if _SESSION is None:
        _SESSION = Session()
    return _SESSION


def reset_session(new: Session | None = None) -> Session:
    """Make ``new`` (or a fresh Session) the one the magics share; returns it."""
    global _SESSION
    _SESSION = new or Session()
    return _SESSION
