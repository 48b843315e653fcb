"""The Backend protocol and the plain dataclasses backends return.

Backends (``azure``, ``local``) are plugins found through the entry-point group
``azml_magics.backends``. The API, the magics and the UI only ever see these dataclasses, never an
SDK object, so the UI works the same whatever does the work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterator, Protocol, runtime_checkable

from ..scoring import GenerationParams

# Job states, shared by both backends (Azure's own names).
NOT_STARTED = "NotStarted"
QUEUED = "Queued"
PREPARING = "Preparing"
RUNNING = "Running"
FINALIZING = "Finalizing"
COMPLETED = "Completed"
FAILED = "Failed"
CANCELED = "Canceled"
TERMINAL_STATES = frozenset({COMPLETED, FAILED, CANCELED})


@dataclass
class Workspace:
    backend: str
    name: str
    key: str  # identifies the workspace in the state store
    location: str = ""
    registry: str | None = None
    details: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelInfo:
    name: str
    version: str
    id: str
    tasks: list[str] = field(default_factory=list)
    finetune_allow_list: list[str] | None = None
    inference_allow_list: list[str] | None = None
    model_defaults: dict[str, object] = field(default_factory=dict)
    archived: bool = False
    deprecated: str | None = None  # a date or a note
    description: str = ""
    supports_system_role: bool = True
    tags: dict[str, str] = field(default_factory=dict)
    state: str = "live"  # live, archived, retiring on <date>, deprecated on <date>, retired on <date>
    min_sku: str | None = None  # the registry's finetuneMinSkuSpec, read as words
    deployment_options: list[str] = field(default_factory=list)
    unpublished: list[str] = field(default_factory=list)  # facts the registry did not publish for this model
    problems: list[str] = field(default_factory=list)  # values the registry published that we could not read


@dataclass
class ComputeInfo:
    name: str
    size: str
    gpus_per_node: int = 1
    state: str = "Succeeded"
    created: bool = False
    notes: list[str] = field(default_factory=list)  # what could not be checked (no allow list published)


@dataclass
class JobStep:
    name: str
    state: str = NOT_STARTED
    started: float | None = None
    ended: float | None = None
    error: str | None = None


@dataclass
class JobRef:
    name: str
    backend: str
    display_name: str = ""
    experiment: str = ""
    url: str | None = None
    # other resources this submission created, {kind: {name: info}}, for the state record (so that
    # %azml_delete --all removes them): a FineTuning job's marketplace subscription ("subscriptions")
    created: dict[str, dict] = field(default_factory=dict)


@dataclass
class JobStatus:
    name: str
    state: str
    steps: list[JobStep] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    progress: float | None = None  # 0..1 where known
    url: str | None = None
    train_step: int | None = None  # optimizer steps done, and how many there will be, where known
    train_steps: int | None = None
    eval_split: str | None = None  # what the eval loss is computed on, in words
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass
class LogChunk:
    lines: list[str]
    cursor: object  # opaque; pass back to get only newer lines
    step: str | None = None


@dataclass
class MetricPoint:
    step: int
    value: float
    timestamp: float | None = None


@dataclass
class ModelRef:
    name: str
    version: str
    id: str
    job: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Endpoint:
    name: str
    backend: str
    scoring_uri: str
    state: str = "Succeeded"
    deployment: str = "demo"
    model: str | None = None
    instance_type: str | None = None
    instance_count: int = 1
    openai_base_url: str | None = None
    details: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DataFiles:
    """Training data ready for a backend: checked JSON-lines files on local disk."""

    train: str
    test: str | None = None
    validation: str | None = None
    fingerprint: str = ""  # sha256 over the files' bytes: names uploads, tags registered models
    rows: dict[str, int] = field(default_factory=dict)  # split -> usable rows


@dataclass
class Tracking:
    """Where evaluation runs are logged: an ``mlflow.MlflowClient`` on the workspace's tracking store."""

    client: object
    where: str  # said in the output: "the local MLflow store", "workspace ws's MLflow"
    artifacts: bool = True  # False: the store takes runs, metrics, params and tags, but no files
    no_artifacts: str = ""  # why not, when artifacts is False


# ----------------------------------------------------------------------------- the contract
# Optional capabilities. A backend lists the ones it has in its ``capabilities`` class attribute and
# then has the method named here; the API calls such a method only when the capability is declared,
# and says in one line what the backend cannot do otherwise. ``backends.load`` checks the declaration.
TOKENIZER = "tokenizer"  # tokenizer_for(model) -> a tokenizer or None: data checks use the model's own
REGISTERED_MODELS = "registered_models"  # get_registered_model(name, version, label) -> ModelRef
ENDPOINT_KEY = "endpoint_key"  # endpoint_key(name) -> str, for clients the user builds (never shown)
COMPUTE_DELETION = "compute_deletion"  # delete_compute(name): clusters that %azml_delete removes
# owned_resources() -> {kind: {name: info}}: everything of ours the backend still has (local: the home's
# endpoint records and job folders), to rebuild a damaged state record so cleanup finds what runs
OWNED_RESOURCES = "owned_resources"
LOCAL_WEIGHTS = "local_weights"  # model_folder(ref) -> str: weights this process can load (eval, base deploys)
REGISTRY_DEPLOY = "registry_deploy"  # registry_model(model_id) -> ModelRef that deploy() takes as it is (base deploys)
ENDPOINT_LIMITS = "endpoint_limits"  # endpoint_limits(name) -> {"max_new_tokens": int}: what it accepts
# check_finetuning(spec, model, mode) -> ComputeInfo | None: a FineTuning job's VM size checked (mode job) or
# None (serverless); submit(plan) then sends a FineTuning job for plan.mode job/serverless (spec_modes.py),
# and delete_subscription(name) removes a marketplace subscription it created (JobRef.created)
FINETUNING_JOBS = "finetuning_jobs"
ESTIMATE = "estimate"  # estimate(plan) -> azml_magics.estimate.Estimate: tokens, steps, memory, time
TRACKING = "tracking"  # tracking() -> Tracking: the MLflow store evaluation runs are logged to
# upload_data(plan): the plan's written data into the backend's store BEFORE any compute is created (a
# storage refusal then leaves nothing behind); submit(plan) uses what it uploaded
DATA_UPLOAD = "data_upload"
CAPABILITY_METHODS = {
    TRACKING: "tracking",
    DATA_UPLOAD: "upload_data",
    FINETUNING_JOBS: "check_finetuning",
    ESTIMATE: "estimate",
    ENDPOINT_LIMITS: "endpoint_limits",
    TOKENIZER: "tokenizer_for",
    REGISTERED_MODELS: "get_registered_model",
    ENDPOINT_KEY: "endpoint_key",
    COMPUTE_DELETION: "delete_compute",
    OWNED_RESOURCES: "owned_resources",
    LOCAL_WEIGHTS: "model_folder",
    REGISTRY_DEPLOY: "registry_model",
}
DECLARED_ATTRIBUTES = ("name", "extra", "requires", "capabilities")


@runtime_checkable
class Backend(Protocol):
    """What a backend does. Every call takes and returns the dataclasses above.

    Declared as class attributes (read before the class is instantiated, so a missing dependency is
    named without importing it): ``name``; ``requires``, the importable modules it needs; ``extra``,
    the pip extra of azml_magics that installs them (None: they come with azml_magics itself); and
    ``capabilities``, the optional capabilities above that it has.
    """

    name: str
    extra: str | None
    requires: tuple[str, ...]
    capabilities: frozenset[str]

    def connect(self, options: dict) -> Workspace: ...

    def get_model(self, name: str, version: str | None = None, label: str | None = "latest") -> ModelInfo: ...

    def list_models(self, task: str = "chat-completion") -> list[ModelInfo]: ...

    def component_inputs(self, version: str | None = None) -> set[str]: ...

    def check_compute(self, spec, model: ModelInfo) -> ComputeInfo:
        """Validate the compute request (allow list, size) without creating anything."""
        ...

    def ensure_compute(self, spec, model: ModelInfo) -> ComputeInfo: ...

    def ignored_parameters(self) -> dict[str, str]:
        """Pipeline inputs this backend has no use for, with why (shown, never silently dropped)."""
        ...

    def submit(self, plan) -> JobRef:
        """Start the fine-tune of ``plan`` (an :class:`azml_magics.plan.FinetunePlan` whose data is
        written and whose compute exists); returns at once."""
        ...

    def status(self, job: str) -> JobStatus: ...

    def logs(self, job: str, cursor: object = None) -> LogChunk: ...

    def metrics(self, job: str) -> dict[str, list[MetricPoint]]: ...

    def cancel(self, job: str) -> JobStatus: ...

    def list_jobs(self) -> list[JobStatus]: ...

    def register(self, job: str, name: str | None = None, version: str | None = None) -> ModelRef: ...

    def deploy(self, model: ModelRef, spec) -> Endpoint:
        """``spec`` is a DeploySpec; blocks until the endpoint answers or failed."""
        ...

    def get_endpoint(self, name: str) -> Endpoint: ...

    def list_endpoints(self) -> list[Endpoint]: ...

    def invoke(self, endpoint: str, request: dict) -> dict: ...

    def stream_chat(self, endpoint: str, messages: list[dict], params: GenerationParams) -> Iterator:
        """Yields the reply's text pieces (str), then one ``scoring.Reply``: the finished reply with its
        finish reason and token counts (None where the route does not report them). Closing the
        iterator early closes the request."""
        ...

    def delete_endpoint(self, name: str) -> None: ...


def contract_problems(cls) -> list[str]:
    """What a backend class leaves out of the declared contract (empty when it holds)."""
    problems = [f"no '{attr}' class attribute" for attr in DECLARED_ATTRIBUTES if not hasattr(cls, attr)]
    declared = getattr(cls, "capabilities", frozenset())
    for capability in sorted(declared):
        method = CAPABILITY_METHODS.get(capability)
        if method is None:
            problems.append(f"unknown capability '{capability}' (known: {', '.join(sorted(CAPABILITY_METHODS))})")
        elif not callable(getattr(cls, method, None)):
            problems.append(f"declares '{capability}' but has no {method}() method")
    return problems
